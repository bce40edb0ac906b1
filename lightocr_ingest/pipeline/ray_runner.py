"""``--runner ray``: the same pipeline as Ray Data operations, storing the same points.

The driver plans exactly as the local runner does (``plan.Planner``: skipped, duplicate,
resumed and failed files are settled before any OCR) and owns Qdrant: Qdrant's local mode
allows one process, so the points are upserted, stale versions deleted and files marked
complete by the driver, through the local runner's own ``StoreStage``. The files to read
then flow through Ray Data, one row per file:

1. ``_OcrFiles`` (one actor, called from many threads at once): each call queues the files of
   its batch; one stream on the actor's event loop opens them (``DocumentSource``), renders
   their pages in threads and sends them to the OCR engine (the reader's window of requests in
   flight over all the vLLM URLs, with its retries, temperature ladder, fallbacks and cache), so
   the window stays full across files and batches as in the local runner.
   Out: the file's page Documents, in page order, stamped with the settings fingerprint.
2. ``_chunk_files`` (CPU tasks): ``chunk_file`` of each whole file, as the local runner cuts it.
3. ``_EmbedChunks`` (an actor pool, one GPU each when the cluster has GPUs): embeds the chunks
   an interrupted run has not stored already.
4. The driver: page reports, then the chunks into ``StoreStage`` (upserts in batches of
   ``CHUNKS_PER_BATCH``, stale deletions, completion marks), and the same ``RunReport``.

Rows carry pickled Documents and nodes (Arrow holds them as bytes). Ray Data's streaming
executor bounds what each operator may hold, so files are not all read before storing starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import threading
import time
from collections.abc import Iterable

from llama_index.core.schema import MetadataMode

from ..cpu_cost import LEDGER
from ..errors import InputError
from ..pages import DocumentSource
from ..store import count_points, ensure_payload_indexes
from .config import PipelineConfig
from .plan import Planner, collect_files, settings_fingerprint
from .report import FileReport, RunReport
from .run import SPOOL_PAGES, Ingestor, make_parser, make_reader, page_report_of, stamp
from .storing import FileEnd, FileStart, StoreStage

log = logging.getLogger("lightocr_ingest")

__all__ = ["RayIngestor"]

OCR_FILES_PER_BATCH = 8  # files per call into the OCR actor (calls run concurrently: see _OcrFiles)
OCR_MAX_CALLS = 256  # at most this many calls (threads) at once in the OCR actor
OCR_IDLE_S = 0.25  # the OCR actor's stream of pages ends when no file was queued for this long
OCR_ACTORS = 1  # each holds the whole window over every URL (max_in_flight per server): more would overload them
EMBED_FILES_PER_BATCH = 8  # files whose chunks are embedded together
OCR_ACTOR_CPUS = 0.5  # rendering threads and an event loop; mostly waiting on the servers
CHUNK_TASK_CPUS = 0.25


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
        report = RunReport(collection=self.collection, points_before=count_points(self.client, self.collection))
        files, problems = await asyncio.to_thread(collect_files, list(self.config.input.paths) + extra_paths,
                                                  self.config.input.extensions, self.config.input.recursive)
        for path, problem in problems:
            report.files.append(FileReport(path=path, status="failed", error=problem))
            log.warning("%s", problem)
        by_path: dict[str, FileReport] = {}
        already: dict[str, dict[str, set[int]]] = {}
        password = self.reader.password.get_secret_value() if self.reader.password else None
        planner = Planner(self.config, self.client, self.collection, self.fingerprint, password, names)
        to_read: list[dict] = []
        total = 0
        for step in planner.steps(files):
            for path, item in zip(step, await asyncio.to_thread(planner.open_step, step)):
                file_report = item.report
                report.files.append(file_report)
                by_path[file_report.path] = file_report
                if item.source is None:
                    if file_report.status == "failed":
                        log.warning("%s", file_report.error)
                    if on_file:
                        on_file(file_report)
                    continue
                item.source.close()  # a worker opens it again (it may be on another machine)
                already[file_report.path] = item.already
                to_read.append({"read": os.path.abspath(path), "known_as": file_report.path,
                                "pages": len(item.page_numbers), "already": sorted(item.already)})
                total += len(item.page_numbers)
        if on_total:
            on_total(total)

        def file_failed(path: str, error: str) -> None:
            file_report = by_path[path]
            file_report.status, file_report.error = "failed", error
            log.warning("%s", error)
            if on_file:
                on_file(file_report)

        stage = _EmbeddedStage(self, by_path, already, on_file, self.config.ocr.max_failed_share)
        spool: asyncio.Queue = asyncio.Queue(maxsize=SPOOL_PAGES)
        storing = asyncio.create_task(stage.run(spool))

        async def send(item) -> None:
            putting = asyncio.ensure_future(spool.put(item))
            await asyncio.wait({putting, storing}, return_when=asyncio.FIRST_COMPLETED)
            if not putting.done():
                putting.cancel()
                storing.result()
                raise RuntimeError("the store stage ended before the run did")

        try:
            if to_read:
                rows = iter(_dataset(self.config, to_read).iter_rows())
                while (row := await asyncio.to_thread(next, rows, None)) is not None:
                    path = row["known_as"]
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
            if not storing.done():
                storing.cancel()
                try:
                    await storing
                except asyncio.CancelledError:
                    pass
        await asyncio.to_thread(ensure_payload_indexes, self.client, self.collection)
        report.points_after = count_points(self.client, self.collection)
        report.elapsed_s = time.perf_counter() - started
        spent = LEDGER.snapshot().minus(cpu_before)  # the driver's share only: the workers' is not gathered
        report.cpu_ns = dict(spent.by_stage, process=time.process_time_ns() - process_cpu_before)
        yield report


class _EmbeddedStage(StoreStage):
    """``StoreStage`` fed chunks cut and embedded by the workers (``chunked``: path -> nodes)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunked: dict[str, list] = {}

    def _chunks_of(self, path, documents):
        return self.chunked.pop(path, [])


def _dataset(config: PipelineConfig, to_read: list[dict]):
    """The Ray Data plan over the files to read (see the module docstring); lazy until iterated."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False  # the report is kept in plan order by the driver
    worker_config = _for_workers(config)
    e = config.embedding
    gpus = ray.cluster_resources().get("GPU", 0)
    embed_on_gpu = e.device.startswith("cuda") or (e.device == "auto" and gpus > 0)
    calls = _ocr_calls(config)
    dataset = ray.data.from_items([{"read": r["read"], "known_as": r["known_as"], "pages_planned": r["pages"],
                                    "already": "\n".join(r["already"])} for r in to_read])
    return (dataset
            .map_batches(_OcrFiles, fn_constructor_kwargs={"config": worker_config}, batch_size=OCR_FILES_PER_BATCH,
                         batch_format="pandas", num_cpus=OCR_ACTOR_CPUS,
                         compute=ray.data.ActorPoolStrategy(size=OCR_ACTORS, max_tasks_in_flight_per_actor=calls,
                                                            max_concurrent_calls_per_actor=calls,
                                                            enable_true_multi_threading=True))
            .map_batches(_chunk_files, fn_kwargs={"config": worker_config}, batch_size=1, batch_format="pandas",
                         num_cpus=CHUNK_TASK_CPUS)
            .map_batches(_EmbedChunks, fn_constructor_kwargs={"config": worker_config},
                         batch_size=EMBED_FILES_PER_BATCH, batch_format="pandas",
                         compute=ray.data.ActorPoolStrategy(size=max(1, int(gpus)) if embed_on_gpu else 1),
                         num_gpus=1 if embed_on_gpu else 0, num_cpus=1 if not embed_on_gpu else 0.5))


def _for_workers(config: PipelineConfig) -> PipelineConfig:
    """The config with relative folders made absolute: workers do not share the driver's working directory."""
    cache_dir = config.ocr.cache_dir
    if cache_dir:
        ocr = config.ocr.model_copy(update={"cache_dir": os.path.abspath(cache_dir)})
        return config.model_copy(update={"ocr": ocr})
    return config


class _OcrFiles:
    """Renders and OCRs whole files through one stream of pages that outlives batches.

    Ray Data calls the actor from up to ``_ocr_calls(config)`` threads at once (batches of
    ``OCR_FILES_PER_BATCH`` files). Each call queues its files and waits for their pages; one
    ``astream_sources`` on the actor's event loop reads the queued files one after the other, as
    the local runner reads its files: the reader's window of requests stays full across files and
    batches, and its look-ahead (twice the window) bounds the rendered pages held. A file is done
    when its planned pages have come back (or it failed to open). When no file has been queued
    for ``OCR_IDLE_S``, the stream ends (the window drains: the run's tail) and the next call
    starts another on the same engine.
    """

    def __init__(self, config: PipelineConfig):
        self.reader = make_reader(config)
        self.fingerprint = settings_fingerprint(config)
        self.password = config.input.password.get_secret_value() if config.input.password else None
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="ocr-loop", daemon=True).start()
        self._release: asyncio.Event | None = None
        self._holding = None
        self._queue: asyncio.Queue | None = None  # (read, known_as) to read, on self.loop
        self._pending: dict[str, _PendingFile] = {}  # known_as -> its pages so far and its waiter
        self._accepting = False  # a stream is taking queued files
        self._streams: set[asyncio.Task] = set()
        self._renamed: dict[str, str] = {}  # read -> known_as

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

    async def _read(self, rows: list[tuple[str, str, int]]) -> tuple[dict[str, list], dict[str, str]]:
        if self._holding is None:
            ready = self.loop.create_future()
            self._holding = asyncio.ensure_future(self._hold_engine(ready))
            try:
                await ready
            except Exception:
                self._holding = None  # the reader raises it again in the stream, as the local runner would
        if self._queue is None:
            self._queue = asyncio.Queue()
        waiting = []
        for read, known_as, expected in rows:
            pending = self._pending[known_as] = _PendingFile(expected, self.loop.create_future())
            waiting.append(pending.done)
            if expected == 0:
                self._finish(known_as)
            else:
                self._queue.put_nowait((read, known_as))
        if not self._accepting:  # the last stream stopped taking files (it may still be draining)
            self._accepting = True
            self._streams.add(stream := asyncio.ensure_future(self._stream()))
            stream.add_done_callback(self._streams.discard)
        await asyncio.gather(*waiting)
        documents, errors = {}, {}
        for _, known_as, _ in rows:
            pending = self._pending.pop(known_as)
            documents[known_as] = pending.documents
            if pending.error:
                errors[known_as] = pending.error
        return documents, errors

    def _finish(self, known_as: str, error: str = "") -> None:
        pending = self._pending.get(known_as)
        if pending is not None and not pending.done.done():
            pending.error = pending.error or error
            pending.done.set_result(None)

    async def _stream(self) -> None:
        """One stream over queued files, until none is queued for ``OCR_IDLE_S``; then it drains
        while a later call may start the next."""
        taken: list[str] = []

        async def sources():
            while True:
                try:
                    read, known_as = await asyncio.wait_for(self._queue.get(), OCR_IDLE_S)
                except TimeoutError:
                    if self._queue.empty():  # one thread runs the loop: no file is queued between here and return
                        self._accepting = False
                        return
                    continue
                taken.append(known_as)
                try:
                    source = await asyncio.to_thread(DocumentSource, read, password=self.password)
                except InputError as exc:
                    self._finish(known_as, str(exc).replace(read, known_as))
                    continue
                _rename(source, known_as)
                self._renamed[read] = known_as
                yield source

        def failed(error: InputError) -> None:
            known_as = self._renamed.get(error.file, error.file)
            self._finish(known_as, str(error).replace(error.file, known_as))

        try:
            async for document in self.reader.astream_sources(sources(), on_file_error=failed):
                if document.ocr.status != "failed":
                    stamp(document, self.fingerprint)
                known_as = document.metadata["file_path"]
                pending = self._pending.get(known_as)
                if pending is None or pending.done.done():
                    log.warning("%s: page %s came back after the file was done", known_as,
                                document.metadata.get("page"))
                    continue
                pending.documents.append(document)
                if len(pending.documents) >= pending.expected:
                    self._finish(known_as)
        except BaseException as exc:
            self._accepting = False
            for pending in self._pending.values():  # every waiting call fails with it, as a batch did
                if not pending.done.done():
                    pending.done.set_exception(exc)
            while not self._queue.empty():
                self._queue.get_nowait()
            return
        for known_as in taken:  # fewer pages than planned: what came back is the file's
            pending = self._pending.get(known_as)
            if pending is not None and not pending.done.done():
                log.warning("%s: %d of %d planned pages read", known_as, len(pending.documents), pending.expected)
                self._finish(known_as)

    def __call__(self, batch):
        rows = list(zip(batch["read"], batch["known_as"], (int(n) for n in batch["pages_planned"])))
        documents, errors = asyncio.run_coroutine_threadsafe(self._read(rows), self.loop).result()
        out = batch.copy()
        out["pages"] = [pickle.dumps(documents[known_as]) for _, known_as, _ in rows]
        out["error"] = [errors.get(known_as, "") for _, known_as, _ in rows]
        return out


class _PendingFile:
    __slots__ = ("expected", "done", "documents", "error")

    def __init__(self, expected: int, done: asyncio.Future):
        self.expected, self.done, self.documents, self.error = expected, done, [], ""


def _ocr_calls(config: PipelineConfig) -> int:
    """Concurrent calls into the OCR actor: enough queued files to cover the reader's look-ahead
    (twice the window over every URL) were each file one page."""
    urls = config.ocr.url if isinstance(config.ocr.url, list) else [config.ocr.url]
    window = config.ocr.max_in_flight * max(1, len(urls))
    return max(2, min(OCR_MAX_CALLS, -(-2 * window // OCR_FILES_PER_BATCH)))


def _rename(source: DocumentSource, known_as: str) -> None:
    """Read from an absolute path, known by the path the driver planned it under (as ``Planner`` renames)."""
    from dataclasses import replace
    from pathlib import Path

    if source.path != known_as:
        source.path = known_as
        source.source = replace(source.source, path=known_as, name=Path(known_as).name)


_parsers: dict[str, object] = {}  # per worker process: settings -> parser (its tokenizer loads once)


def _chunk_files(batch, config: PipelineConfig):
    key = settings_fingerprint(config)
    if (parser := _parsers.get(key)) is None:
        parser = _parsers[key] = make_parser(config)
    nodes = []
    for pages in batch["pages"]:
        documents = [d for d in pickle.loads(pages) if d.ocr.status != "failed"]
        nodes.append(pickle.dumps(parser.chunk_file(documents) if documents else []))
    out = batch.copy()
    out["nodes"] = nodes
    return out


class _EmbedChunks:
    """Embeds the chunks of a batch of files together (those an earlier run stored are left out)."""

    def __init__(self, config: PipelineConfig):
        from ..embedding import make_embed_model

        e = config.embedding
        self.model = make_embed_model(e.model, e.device, e.batch_size, e.precision)

    def __call__(self, batch):
        files = [pickle.loads(nodes) for nodes in batch["nodes"]]
        stored = [set(ids.split("\n")) for ids in batch["already"]]
        todo = [node for nodes, done in zip(files, stored) for node in nodes if node.node_id not in done]
        if todo:
            vectors = self.model.get_text_embedding_batch(
                [node.get_content(metadata_mode=MetadataMode.EMBED) for node in todo])
            for node, vector in zip(todo, vectors):
                node.embedding = vector
        out = batch.copy()
        out["nodes"] = [pickle.dumps(nodes) for nodes in files]
        return out


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True

