"""``--runner ray``: the same pipeline as Ray Data operations, storing the same points.

The driver plans exactly as the local runner does (``plan.Planner``: skipped, duplicate,
resumed and failed files are settled before any OCR) and owns Qdrant: Qdrant's local mode
allows one process, so the points are upserted, stale versions deleted and files marked
complete by the driver, through the local runner's own ``StoreStage``. The files to read
then flow through Ray Data:

1. ``ray_workers.render_group`` (CPU tasks, whole files of about ``RENDER_PAGES_PER_TASK`` pages each): each file opened once
   (``DocumentSource``), its pages rendered, turned upright and encoded, and passed on in rows
   of ``ray_workers.RENDER_PAGES_PER_ROW`` as they come (a long PDF streams; a file that cannot be opened
   is one row with its error). These spread over every CPU of the cluster.
2. ``_OcrPages`` (one actor, called from many threads at once): each call queues its pages;
   one stream on the actor's event loop sends them to the OCR engine (the reader's window of
   requests in flight over all the vLLM URLs, with its retries, temperature ladder, fallbacks
   and cache), so the window stays full across files and batches as in the local runner.
   Out: one row per file, once all its pages are back: its page Documents in page order,
   stamped with the settings fingerprint.
3. ``ray_workers.ChunkFiles`` (one actor): ``chunk_file`` of each whole file, as
   the local runner cuts it.
4. ``ray_workers.EmbedChunks`` (an actor pool, one GPU each when the cluster has GPUs): embeds the chunks
   an interrupted run has not stored already.
5. The driver: page reports, then the chunks into ``StoreStage`` (upserts in batches of
   ``CHUNKS_PER_BATCH``, stale deletions, completion marks), and the same ``RunReport``.

Rows carry pickled Documents and nodes (Arrow holds them as bytes). Ray Data's streaming
executor bounds what each operator may hold, so files are not all read before storing starts.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pickle
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..cpu_cost import LEDGER
from ..errors import ConfigError
from ..ocr.cache import resolve_cache_dir
from ..ocr.vllm import split_urls
from ..pages.orientation import ensure_classifier
from ..reader import LightOnOCRReader
from .config import PipelineConfig
from .plan import Planner, settings_fingerprint
from .ray_workers import CPU_COLUMNS, PROCESS_CPU, ChunkFiles, EmbedChunks, RenderSettings, render_group, summed
from .report import FileReport, RunReport
from .run import SPOOL_PAGES, Ingestor, hand_on, make_reader, page_report_of, stamp, stop_tasks
from .storing import FileEnd, FileStart, StoreStage

log = logging.getLogger("lightocr_ingest")

__all__ = ["RayIngestor"]

# Logical CPUs each stage asks Ray for (scheduling only: they bound how many run at once, not the CPU
# they use). The actors add up to 0.95, so on a 2-core machine two render tasks run beside them; on a
# cluster, render tasks take the spare cores.
RENDER_BLOCK_BYTES = 1 << 20  # blocks this small leave a task about a row (8 pages of PNG) at a time
RENDER_TASK_CPUS = 0.5  # rendering, orientation and PNG encoding: CPU work, one thread a task. Each new
#                        worker process costs about a core-second to start (Python, Ray, onnxruntime):
#                        fewer, busier workers fill the GPUs' first batch sooner (a quarter core: slot
#                        use 0.44 against 0.49 on 2 cores, one run each)
RENDER_PAGES_PER_TASK = 16  # pages a render task takes on (whole files: a longer one is a task of its own, and
#                             streams). Starting a task costs tens of milliseconds and only a few run at once
#                             (their CPU ask), so small tasks leave the workers waiting between them: at 4
#                             files a task the 233-page run's last page reached the GPU 11.8 s after the
#                             first, at 16 pages 10.0 s (one run each; local: 5.0)
# Each call into the OCR actor takes one block of rendered rows as the render task made it
# (``batch_size=None``; calls run concurrently: see _OcrPages). A batch size in rows would have
# Ray Data cut blocks into bundles of that many rows, and the rows left over waited for later
# blocks: on the 233-page run the last of them reached the GPU 41 s after the first page, not 12.
OCR_MAX_CALLS = 1024  # at most this many calls (threads, most of them waiting) at once in the OCR actor
OCR_IDLE_S = 0.25  # the OCR actor's stream of pages ends when no page was queued for this long
OCR_ACTORS = 1  # each holds the whole window over every URL (max_in_flight per server): more would overload them
OCR_ACTOR_CPUS = 0.2  # an event loop and its requests, mostly waiting on the servers. Not the render
#                      tasks' share: Ray Data fuses operations that ask for the same, and rendering
#                      would run inside the actor again, one file at a time per call
EMBED_FILES_PER_BATCH = 8  # files whose chunks are embedded together
EMBED_ACTOR_CPUS = 0.5  # on CPU torch uses every core of the machine whatever this says; asking for less
#                         leaves render tasks room to run meanwhile
CHUNK_FILES_PER_BATCH = 4  # files cut per call
CHUNK_ACTOR_CPUS = 0.25
CHUNK_ACTORS = 1  # one cuts about 300 pages a second (3 core-ms a page), more than 40 GPUs read; each
#                  more actor loads its own tokenizer (a pool growing to 8 cost 30 core-ms a page here)
ACTORS_START_S = 600  # the longest each stage's actors may take to start (an autoscaling cluster may add nodes)


class RayIngestor(Ingestor):
    """``Ingestor`` whose reading, chunking and embedding run on Ray Data (see the module docstring).

    ``address``: the cluster to join (default: the config's ``ray_address``); with none, a
    local Ray instance is started for each run and shut down after it, unless Ray was already
    initialised in this process (then that one is used and left running).
    """

    def __init__(self, config: PipelineConfig, client=None, address: str | None = None):
        super().__init__(config, client)
        self.address = address if address is not None else config.ray_address

    def _load_models(self) -> None:
        """The driver neither embeds nor chunks: the workers load the models."""

    def run(self, paths: Iterable[str] = (), on_page=None, on_file=None, on_total=None, names=None) -> RunReport:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        try:
            return super().run(paths, on_page=on_page, on_file=on_file, on_total=on_total, names=names)
        finally:
            if started_here:
                ray.shutdown()

    async def _arun(self, extra_paths, on_page, on_file, on_total, names=None):
        started = time.perf_counter()
        cpu_before, process_cpu_before = LEDGER.snapshot(), time.process_time_ns()
        report, files = await self._start_report(extra_paths)
        by_path: dict[str, FileReport] = {}
        already: dict[str, dict[str, set[int]]] = {}
        stale: set[str] = set()  # paths with points of other versions
        password = self.reader.password.get_secret_value() if self.reader.password else None
        planner = Planner(self.config, self.client, self.collection, self.fingerprint, password, names)
        to_read: list[dict] = []
        total = 0
        for step in planner.steps(files):
            for path, item in zip(step, await asyncio.to_thread(planner.open_step, step)):
                if not self._record_planned(item, report, by_path, on_file):
                    continue
                file_report = item.report
                item.source.close()  # a worker opens it again (it may be on another machine)
                already[file_report.path] = item.already
                if item.stale:
                    stale.add(file_report.path)
                to_read.append({"read": os.path.abspath(path), "known_as": file_report.path,
                                "sha256": file_report.sha256 or "", "already": sorted(item.already),
                                "pages": len(item.page_numbers)})
                total += len(item.page_numbers)
        if on_total:
            on_total(total)

        def file_failed(path: str, error: str) -> None:
            file_report = by_path[path]
            file_report.status, file_report.error = "failed", error
            log.warning("%s", error)
            if on_file:
                on_file(file_report)

        stage = _EmbeddedStage(self, by_path, already, stale, on_file, self.config.ocr.max_failed_share)
        spool: asyncio.Queue = asyncio.Queue(maxsize=SPOOL_PAGES)
        storing = asyncio.create_task(stage.run(spool))

        async def send(item) -> None:
            await hand_on(spool, storing, item)

        workers_cpu: dict[str, int] = {}
        rows, data_context = None, None
        try:
            if to_read:
                if self.reader.detect_rotation:
                    await asyncio.to_thread(ensure_classifier)  # a missing model stops here, with the fix
                longest_side = await self.reader.rendering_size()  # the model's, asked once for every render task
                data_context = _apply_data_settings(_DATA_SETTINGS)
                dataset, actors = _dataset(self.config, to_read, _render_settings(self.reader, longest_side))
                rows = iter(dataset.iter_rows())
                while (row := await asyncio.to_thread(_next_row, rows, actors)) is not None:
                    path = row["known_as"]
                    workers_cpu = summed([workers_cpu] + [pickle.loads(row[column]) for column in CPU_COLUMNS])
                    documents = pickle.loads(row["pages"])
                    if row["error"]:
                        file_failed(path, row["error"])
                    if documents:
                        await send(FileStart(path))
                        stage.chunked[path] = pickle.loads(row["nodes"])
                        for document in documents:
                            page_report = page_report_of(document)
                            by_path[path].pages.append(page_report)
                            if page_report.status != "failed":
                                await send(document)
                            if on_page:
                                on_page(by_path[path], page_report)
                        await send(FileEnd(path))
                    if storing.done():
                        break
            if not storing.done():
                await send(None)
            await storing
        finally:
            if rows is not None and hasattr(rows, "close"):
                await asyncio.to_thread(rows.close)  # stops the dataset: no more rendering or requests
            if data_context is not None:
                _apply_data_settings(data_context)
            await stop_tasks(storing)
        await self._close_report(report, started)
        spent = LEDGER.snapshot().minus(cpu_before)
        report.cpu_ns = summed([dict(spent.by_stage, process=time.process_time_ns() - process_cpu_before),
                                 workers_cpu])
        yield report


class _EmbeddedStage(StoreStage):
    """``StoreStage`` fed chunks cut and embedded by the workers (``chunked``: path -> nodes)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunked: dict[str, list] = {}

    def _chunks_of(self, path, documents):
        return self.chunked.pop(path, [])


def _dataset(config: PipelineConfig, to_read: list[dict], render: RenderSettings):
    """The Ray Data plan over the files to read (see the module docstring), lazy until iterated,
    and what its actors ask the cluster for (for an error that says so)."""
    import ray
    import ray.data

    worker_config = _for_workers(config)
    e = config.embedding
    gpus = ray.cluster_resources().get("GPU", 0)
    embed_on_gpu = e.device.startswith("cuda") or (e.device == "auto" and gpus > 0)
    calls = _ocr_calls(config)
    packed = pickle.dumps(worker_config)  # what the chunking and embedding actors unpickle as they load
    # Small enough that every render slot of the cluster gets a task, at most RENDER_PAGES_PER_TASK.
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) / RENDER_TASK_CPUS))
    groups = _task_groups(to_read, _pages_per_task(sum(r["pages"] for r in to_read), slots))
    # One block a group: batch_size=1 then makes a task of each (from_items would put several in a block).
    dataset = ray.data.from_items([{"files": pickle.dumps(group)} for group in groups],
                                  override_num_blocks=max(1, len(groups)))
    actors = (f"OCR: {OCR_ACTORS} x {OCR_ACTOR_CPUS} CPU; chunking: {CHUNK_ACTORS} x {CHUNK_ACTOR_CPUS} CPU; "
              f"embedding: {max(1, int(gpus)) if embed_on_gpu else 1} x "
              + ("1 GPU" if embed_on_gpu else f"{EMBED_ACTOR_CPUS} CPU"))
    return (dataset
            .map_batches(render_group, fn_kwargs={"settings": render},
                         batch_size=1, batch_format="pandas", num_cpus=RENDER_TASK_CPUS)
            .map_batches(_OcrPages, fn_constructor_kwargs={"config": worker_config}, batch_size=None,
                         batch_format="pandas", num_cpus=OCR_ACTOR_CPUS,
                         compute=ray.data.ActorPoolStrategy(size=OCR_ACTORS, max_tasks_in_flight_per_actor=calls,
                                                            max_concurrent_calls_per_actor=calls,
                                                            enable_true_multi_threading=True))
            .map_batches(ChunkFiles, fn_constructor_kwargs={"config": packed}, batch_size=CHUNK_FILES_PER_BATCH,
                         batch_format="pandas", num_cpus=CHUNK_ACTOR_CPUS,
                         compute=ray.data.ActorPoolStrategy(size=CHUNK_ACTORS))
            .map_batches(EmbedChunks, fn_constructor_kwargs={"config": packed},
                         batch_size=EMBED_FILES_PER_BATCH, batch_format="pandas",
                         compute=ray.data.ActorPoolStrategy(size=max(1, int(gpus)) if embed_on_gpu else 1),
                         num_gpus=1 if embed_on_gpu else 0, num_cpus=EMBED_ACTOR_CPUS)), actors


def _pages_per_task(pages: int, slots: int) -> int:
    """Pages a render task takes on: ``RENDER_PAGES_PER_TASK``, or fewer where a cluster has more
    render slots (its CPUs over what a task asks) than that would give tasks."""
    return max(1, min(RENDER_PAGES_PER_TASK, -(-pages // slots)))


def _task_groups(to_read: list[dict], pages_per_task: int = RENDER_PAGES_PER_TASK) -> list[list[dict]]:
    """The files to read, in order, cut into render tasks of about ``pages_per_task`` pages
    (``pages``: a file's pages to read): sixteen single-page scans go together, a long PDF alone.
    Each file as ``render_group`` takes it (its stored ids one string, a line each)."""
    groups: list[list[dict]] = []
    pages = 0
    for file in to_read:
        if not groups or pages + file["pages"] > pages_per_task:
            groups.append([])
            pages = 0
        groups[-1].append({"read": file["read"], "known_as": file["known_as"], "sha256": file["sha256"],
                           "already": "\n".join(file["already"])})
        pages += file["pages"]
    return groups


def _next_row(rows, actors: str):
    """The next row out of the dataset (None at the end); a cluster that cannot start the
    actors says which and what they ask for, instead of Ray's bare timeout."""
    import ray.exceptions

    try:
        return next(rows, None)
    except ray.exceptions.GetTimeoutError as exc:
        if "starting actors" not in str(exc):
            raise
        raise ConfigError(f"the Ray cluster did not start the pipeline's actors within {ACTORS_START_S} s "
                          f"({actors}): add nodes with those resources, or set embedding.device: cpu where the "
                          "cluster has no GPU") from exc


_DATA_SETTINGS = {  # DataContext attribute path -> value for this runner's datasets (restored after the run)
    "enable_progress_bars": False,  # the CLI draws its own
    "execution_options.preserve_order": False,  # the driver keeps the report in plan order
    # Rows leave a render task as they are made: with Ray's default blocks (128 MiB) a long PDF
    # would be rendered whole inside its task before any page reached the OCR actor.
    "target_max_block_size": RENDER_BLOCK_BYTES,
    # The actors start before the first render task: otherwise render tasks take every CPU and
    # the OCR actor waits for one while rendered pages pile up (on 2 cores the first request
    # reached the GPU 13 s into a 73 s run; now 5 s). They start light (``ray_workers``).
    "wait_for_min_actors_s": ACTORS_START_S,
}


def _apply_data_settings(settings: dict) -> dict:
    """Set DataContext attributes (``"execution_options.preserve_order"``: a path) to these
    values; returns what they were, which applied in turn restores them."""
    import ray.data

    before = {}
    for path, value in settings.items():
        *parents, name = path.split(".")
        owner = ray.data.DataContext.get_current()
        for parent in parents:
            owner = getattr(owner, parent)
        before[path] = getattr(owner, name)
        setattr(owner, name, value)
    return before


def _render_settings(reader: LightOnOCRReader, longest_side: int) -> RenderSettings:
    """What the render tasks need of the driver's reader (built from the run's config)."""
    return RenderSettings(longest_side, reader.password.get_secret_value() if reader.password else None,
                          text_words=reader.regions != "off", detect_rotation=reader.detect_rotation,
                          pages=reader.pages)


def _for_workers(config: PipelineConfig) -> PipelineConfig:
    """The config with the OCR cache's folder made absolute as the driver sees it: workers share
    neither its working directory nor, on other nodes, its environment ("auto")."""
    cache_dir = resolve_cache_dir(config.ocr.cache_dir)
    if cache_dir:
        ocr = config.ocr.model_copy(update={"cache_dir": cache_dir})
        return config.model_copy(update={"ocr": ocr})
    return config


class _OcrPages:
    """Reads rendered pages through one stream that outlives batches, and hands files on whole.

    Ray Data calls the actor from up to ``_ocr_calls(config)`` threads at once, each with a few
    rows of rendered pages. Each call queues its pages and waits for them; one ``astream_pages``
    on the actor's event loop reads the queued pages in turn, so the reader's window of requests
    stays full across files and batches, as in the local runner. A stream's Documents come back
    in the order it took the pages (``ocr_in_order``), which says whose each is. A file is handed
    on, its pages in page order, by the call whose pages completed it (its last row says how many
    it has, and every one is back: rows may arrive in any order); the others return nothing. When no page has been queued for ``OCR_IDLE_S``
    the stream ends (the window drains: the run's tail) and the next call starts another.
    """

    def __init__(self, config: PipelineConfig):
        self.reader = make_reader(config)
        self.fingerprint = settings_fingerprint(config)
        self.restarted = _restarted_actor()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="ocr-loop", daemon=True).start()
        self._release: asyncio.Event | None = None
        self._holding = None
        self._queue: asyncio.Queue | None = None  # (page, call, file) to read, on self.loop
        self._files: dict[str, _PendingFile] = {}  # known_as -> its pages so far
        self._accepting = False  # a stream is taking queued pages
        self._streams: set[asyncio.Task] = set()
        self._loop_cpu: int | None = None  # the loop thread's CPU and its timed stages when last asked
        self._loop_staged = 0
        self._requests_ns = 0  # the loop's not yet handed on (calls that hand no file on leave theirs here)

    async def _hold_engine(self, ready: asyncio.Future) -> None:
        """Lease the reader's engine for the actor's life: every batch then shares it."""
        self._release = asyncio.Event()
        try:
            async with self.reader._lease_engine():
                ready.set_result(None)
                await self._release.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def _read(self, rows: list[_Row]) -> tuple[list[_PendingFile], int]:
        if self._loop_cpu is None:
            self._loop_cpu, self._loop_staged = time.thread_time_ns(), LEDGER.snapshot().by_thread.get(
                threading.get_ident(), 0)
        if self._holding is None:
            ready = self.loop.create_future()
            self._holding = asyncio.ensure_future(self._hold_engine(ready))
            try:
                await ready
            except Exception:
                self._holding = None  # the reader raises it again in the stream, as the local runner would
        if self._queue is None:
            self._queue = asyncio.Queue()
        call = _Call(self.loop.create_future())
        for row in rows:
            file = self._files.get(row.known_as)
            if file is None:
                file = self._files[row.known_as] = _PendingFile(row.read, row.known_as, row.already)
            file.render_cpu = summed([file.render_cpu, row.render_cpu])
            file.error = file.error or row.error
            if row.total >= 0:
                file.total = row.total
            for index, item in enumerate(row.items, start=row.first):
                call.waiting += 1
                self._queue.put_nowait((item, call, file, index))
            self._check_done(file, call)
        if call.waiting == 0:
            call.done.set_result(None)
        elif not self._accepting:  # the last stream stopped taking pages (it may still be draining)
            self._accepting = True
            self._streams.add(stream := asyncio.ensure_future(self._stream()))
            stream.add_done_callback(self._streams.discard)
        await call.done
        return call.files, self._requests_cpu(handing_on=bool(call.files))

    def _requests_cpu(self, handing_on: bool) -> int:
        """The event loop's CPU, less the stages timed on it: sending requests and taking answers,
        as the local runner's ``requests``. Kept until a call hands a file on (on the loop)."""
        loop_now = time.thread_time_ns()
        staged_now = LEDGER.snapshot().by_thread.get(threading.get_ident(), 0)
        self._requests_ns += max(0, (loop_now - self._loop_cpu) - (staged_now - self._loop_staged))
        self._loop_cpu, self._loop_staged = loop_now, staged_now
        if not handing_on:
            return 0
        spent, self._requests_ns = self._requests_ns, 0
        return spent

    def _check_done(self, file: _PendingFile, call: _Call) -> None:
        """Hand ``file`` to ``call`` once every one of its pages is back: its last row says how
        many it has, and rows may come in any order (Ray Data runs an actor's tasks out of order)."""
        if 0 <= file.total == len(file.documents) and self._files.get(file.known_as) is file:
            del self._files[file.known_as]
            call.files.append(file)

    async def _stream(self) -> None:
        """One stream over queued pages, until none is queued for ``OCR_IDLE_S``; then it drains
        while a later call may start the next."""
        owners: collections.deque = collections.deque()  # (call, file, index) of each page taken, in order
        taking = True

        async def pages():
            nonlocal taking
            while True:
                try:
                    item, call, file, index = await asyncio.wait_for(self._queue.get(), OCR_IDLE_S)
                except asyncio.TimeoutError:  # not the builtin before Python 3.11
                    if self._queue.empty():  # one thread runs the loop: no page is queued between here and return
                        taking = self._accepting = False
                        return
                    continue
                owners.append((call, file, index))
                yield item

        try:
            # In the order taken (``ocr_in_order``), so ``owners`` says whose each is; a draining
            # stream and the next one run side by side, each with its own.
            async for document in self.reader.astream_pages(pages()):
                if document.ocr.status != "failed":
                    stamp(document, self.fingerprint)
                call, file, index = owners.popleft()
                file.documents[index] = document
                call.waiting -= 1
                self._check_done(file, call)
                if call.waiting == 0 and not call.done.done():
                    call.done.set_result(None)
        except BaseException as exc:
            # The calls waiting on this stream's pages fail with it (their tasks, and so the run,
            # fail; a new run resumes). A draining stream leaves the queue to the stream taking it.
            waiting = [call for call, _, _ in owners]
            if taking:
                self._accepting = False
                while not self._queue.empty():
                    waiting.append(self._queue.get_nowait()[1])
            for call in waiting:
                if not call.done.done():
                    call.done.set_exception(exc)

    def close(self) -> None:
        """Give the engine back and stop the loop (Ray ends the actor's process without it)."""
        async def release():
            if self._release is not None:
                self._release.set()
            if self._holding is not None:
                await asyncio.gather(self._holding, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(release(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def __call__(self, batch):
        import pandas as pd

        if self.restarted:
            # Ray restarts a dead actor and retries the calls it had; the pages of files that
            # earlier calls left here are gone, so those files could never be handed on.
            raise RuntimeError("the OCR actor was restarted after its process died, losing the pages it held; the "
                               "run stops here: run it again to resume (stored files are skipped)")
        rows = [_Row(read, known_as, already, pickle.loads(items), int(first), error, int(total), pickle.loads(cpu))
                for read, known_as, already, items, first, error, total, cpu
                in zip(batch["read"], batch["known_as"], batch["already"], batch["items"], batch["first"],
                       batch["error"], batch["total"], batch["cpu_render"])]
        files, requests_ns = asyncio.run_coroutine_threadsafe(self._read(rows), self.loop).result()
        own = PROCESS_CPU.column(len(files))
        if files:
            own[0] = pickle.dumps(dict(pickle.loads(own[0]), requests=requests_ns))
        return pd.DataFrame({"read": [f.read for f in files], "known_as": [f.known_as for f in files],
                             "already": [f.already for f in files],
                             "pages": [pickle.dumps([f.documents[i] for i in sorted(f.documents)]) for f in files],
                             "error": [f.error for f in files],
                             "cpu_render": [pickle.dumps(f.render_cpu) for f in files], "cpu_ocr": own},
                            columns=["read", "known_as", "already", "pages", "error", "cpu_render", "cpu_ocr"])


@dataclass(frozen=True)
class _Row:
    """A row out of a render task: ``items`` are its file's pages ``first``, ``first`` + 1...;
    ``total`` is the file's page count on its last row, -1 on the others."""

    read: str
    known_as: str
    already: str
    items: list
    first: int
    error: str
    total: int
    render_cpu: dict


class _PendingFile:
    """A file whose pages are being read: done when ``total`` is known and every page is back."""

    __slots__ = ("read", "known_as", "already", "total", "documents", "error", "render_cpu")

    def __init__(self, read: str, known_as: str, already: str):
        self.read, self.known_as, self.already = read, known_as, already
        self.total, self.error = -1, ""
        self.documents: dict[int, object] = {}  # index in the file -> its Document (a retried row overwrites)
        self.render_cpu: dict[str, int] = {}


class _Call:
    """One call into the OCR actor: its pages still out, and the files it hands on."""

    __slots__ = ("done", "waiting", "files")

    def __init__(self, done: asyncio.Future):
        self.done, self.waiting, self.files = done, 0, []


def _ocr_calls(config: PipelineConfig) -> int:
    """Concurrent calls into the OCR actor: enough blocks queued to cover the reader's look-ahead
    (twice the window over every URL) were each block one page."""
    window = config.ocr.max_in_flight * max(1, len(split_urls(config.ocr.url or "")))
    return max(2, min(OCR_MAX_CALLS, 2 * window))


def _restarted_actor() -> bool:
    try:
        import ray

        return ray.get_runtime_context().was_current_actor_reconstructed
    except Exception:  # not in a Ray actor (the tests call it directly)
        return False


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True

