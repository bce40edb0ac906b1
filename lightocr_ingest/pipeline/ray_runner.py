"""``--runner ray``: the same pipeline as Ray Data operations, storing the same points.

The driver plans exactly as the local runner does (``plan.Planner``: skipped, duplicate,
resumed and failed files are settled before any OCR) and owns Qdrant: Qdrant's local mode
allows one process, so the points are upserted, stale versions deleted and files marked
complete by the driver, through the local runner's own ``StoreStage``. The files to read
then flow through Ray Data, one row per file:

1. ``_OcrFiles`` (an actor pool): opens each file of a batch (``DocumentSource``), renders its
   pages in threads and sends them to the OCR engine (the reader's window of requests in
   flight over all the vLLM URLs, with its retries, temperature ladder, fallbacks and cache)
   on an event loop the actor keeps, so the pages of all the files of a batch share the window.
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

OCR_FILES_PER_BATCH = 16  # files an OCR actor reads together: their pages share its window of requests
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
                                "already": sorted(item.already)})
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
    dataset = ray.data.from_items([{"read": r["read"], "known_as": r["known_as"], "already": "\n".join(r["already"])}
                                   for r in to_read])
    return (dataset
            .map_batches(_OcrFiles, fn_constructor_kwargs={"config": worker_config}, batch_size=OCR_FILES_PER_BATCH,
                         batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=OCR_ACTORS),
                         num_cpus=OCR_ACTOR_CPUS)
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
    """Renders and OCRs whole files; keeps one engine (its window, retries and cache) across batches."""

    def __init__(self, config: PipelineConfig):
        self.reader = make_reader(config)
        self.fingerprint = settings_fingerprint(config)
        self.password = config.input.password.get_secret_value() if config.input.password else None
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="ocr-loop", daemon=True).start()
        self._release: asyncio.Event | None = None
        self._holding = None

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

    async def _read(self, rows: list[tuple[str, str]]) -> tuple[dict[str, list], dict[str, str]]:
        if self._holding is None:
            ready = self.loop.create_future()
            self._holding = asyncio.ensure_future(self._hold_engine(ready))
            try:
                await ready
            except Exception:
                self._holding = None  # the reader raises it again below, as the local runner would
        documents: dict[str, list] = {known_as: [] for _, known_as in rows}
        errors: dict[str, str] = {}
        renamed = {read: known_as for read, known_as in rows}

        async def sources():
            for read, known_as in rows:
                try:
                    source = await asyncio.to_thread(DocumentSource, read, password=self.password)
                except InputError as exc:
                    errors[known_as] = str(exc).replace(read, known_as)
                    continue
                _rename(source, known_as)
                yield source

        def failed(error: InputError) -> None:
            known_as = renamed.get(error.file, error.file)
            errors[known_as] = str(error).replace(error.file, known_as)

        async for document in self.reader.astream_sources(sources(), on_file_error=failed):
            if document.ocr.status != "failed":
                stamp(document, self.fingerprint)
            documents[document.metadata["file_path"]].append(document)
        return documents, errors

    def __call__(self, batch):
        rows = list(zip(batch["read"], batch["known_as"]))
        documents, errors = asyncio.run_coroutine_threadsafe(self._read(rows), self.loop).result()
        out = batch.copy()
        out["pages"] = [pickle.dumps(documents[known_as]) for _, known_as in rows]
        out["error"] = [errors.get(known_as, "") for _, known_as in rows]
        return out


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

