"""Orchestration: files -> pages -> OCR -> chunks -> embeddings -> Qdrant, streaming.

Three parts, each in its own module: ``plan`` decides which files need reading; the page
stream here runs the reader over them, up to ``max_in_flight`` pages per server being OCR'd,
and puts each page on a spool; ``storing`` chunks each file whole once its last page is in,
and embeds and upserts chunks in batches across files in a thread. OCR never waits for
embedding unless the spool is full (``SPOOL_PAGES``), so a CPU embedder slower than the GPU
does not idle the GPU, and memory stays bounded.

Re-running is cheap and safe: a file already stored with the same content hash and the same
chunking/embedding settings is skipped before any OCR; a changed file, or one re-ingested
with new settings, has the points of its old version deleted first; a file an interrupted
run left half-stored is read again (the OCR cache answers its pages) and only its missing
chunks are embedded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from llama_index.core.schema import TransformComponent

from .._async import iterate_in_thread
from ..cpu_cost import LEDGER
from ..chunking import MarkdownBlockNodeParser
from ..documents import PageDocument
from ..embedding import make_embed_model, max_sequence_tokens, resolve_model
from ..errors import InputError
from ..reader import LightOnOCRReader
from ..store import check_mode, count_points, ensure_payload_indexes, make_client, make_vector_store
from .config import PipelineConfig
from .plan import STEP_FILES, Planner, collect_files, settings_fingerprint
from .report import FileReport, PageReport, RunReport
from .storing import FileEnd, FileStart, StoreStage

log = logging.getLogger("lightocr_ingest")

SPOOL_PAGES = 4096  # OCR'd pages waiting to be stored: OCR may run this far ahead of a slower embedder,
#                     so the GPU is not idled by it (about 10 minutes of one GPU; ~10 kB of Markdown each)

__all__ = ["FingerprintStamp", "Ingestor", "build_pipeline", "make_parser", "make_reader", "page_report_of"]


class Ingestor:
    """Runs one pipeline config; reusable across runs (models and clients are loaded once)."""

    def __init__(self, config: PipelineConfig, client=None):
        """``client``: a Qdrant client to share (local mode allows one per folder); else one is
        opened from the config, and closed by ``close()``."""
        self.config = config
        self.fingerprint = settings_fingerprint(config)
        self.reader = make_reader(config)
        self._embed_model = None
        self._parser = None
        self._owns_client = client is None
        self.client = client or make_client(config.qdrant.path, config.qdrant.url,
                                            config.qdrant.api_key.get_secret_value() if config.qdrant.api_key else None)
        self.collection = config.qdrant.collection
        try:
            check_mode(self.client, self.collection, config.retrieval.mode)  # before any page is read
        except Exception:
            if self._owns_client:
                self.client.close()  # local mode locks its folder until closed
            raise
        self.vector_store = make_vector_store(self.client, self.collection, config.retrieval.mode)

    @property
    def embed_model(self):
        if self._embed_model is None:
            e = self.config.embedding
            self._embed_model = make_embed_model(e.model, e.device, e.batch_size, e.precision)
            limit = max_sequence_tokens(self._embed_model)
            if limit and self.config.chunking.chunk_size > limit:
                log.warning("chunk_size %d exceeds what %s reads (%d tokens): the ends of long chunks will be "
                            "ignored by the embedding; set chunking.chunk_size <= %d",
                            self.config.chunking.chunk_size, e.model, limit, limit)
        return self._embed_model

    @property
    def parser(self) -> MarkdownBlockNodeParser:
        if self._parser is None:
            self._parser = make_parser(self.config)
        return self._parser

    def _load_models(self) -> None:
        """Load the embedding model and the chunker's tokenizer now, not at the first batch."""
        _ = self.embed_model
        _ = self.parser.counter

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # --- one run ------------------------------------------------------------------------
    def run(self, paths: Iterable[str] = (), on_page: Callable[[FileReport, PageReport], None] | None = None,
            on_file: Callable[[FileReport], None] | None = None, on_total: Callable[[int], None] | None = None,
            names: dict[str, str] | None = None) -> RunReport:
        """Ingest ``paths`` (plus the config's); returns the report. Works inside a running loop.

        ``names``: path -> the path a file is known by, in its points and the report (the service
        saves uploads under names of its own and stores them under the name they came with)."""
        reports = list(iterate_in_thread(lambda: self._arun(list(paths), on_page, on_file, on_total, names)))
        return reports[-1]

    async def _start_report(self, extra_paths) -> tuple[RunReport, list]:
        """The run's report, with the paths that name no readable file already in it as failed,
        and the files to plan."""
        report = RunReport(collection=self.collection, points_before=count_points(self.client, self.collection))
        files, problems = await asyncio.to_thread(collect_files, list(self.config.input.paths) + extra_paths,
                                                  self.config.input.extensions, self.config.input.recursive)
        for path, problem in problems:
            report.files.append(FileReport(path=path, status="failed", error=problem))
            log.warning("%s", problem)
        return report, files

    async def _close_report(self, report: RunReport, started: float) -> None:
        """Payload indexes made sure of, then the points after the run and its time."""
        await asyncio.to_thread(ensure_payload_indexes, self.client, self.collection)
        report.points_after = count_points(self.client, self.collection)
        report.elapsed_s = time.perf_counter() - started

    @staticmethod
    def _record_planned(item, report: RunReport, by_path: dict[str, FileReport], on_file) -> bool:
        """Put a planned file in the report; True when it is to be read, False when planning
        settled it (skipped, a duplicate, or failed to open: said here)."""
        file_report = item.report
        report.files.append(file_report)
        by_path[file_report.path] = file_report
        if item.source is None:
            if file_report.status == "failed":
                log.warning("%s", file_report.error)
            if on_file:
                on_file(file_report)
            return False
        return True

    async def _arun(self, extra_paths, on_page, on_file, on_total, names=None):
        started = time.perf_counter()
        cpu_before, loop_cpu_before, process_cpu_before = LEDGER.snapshot(), time.thread_time_ns(), time.process_time_ns()
        report, files = await self._start_report(extra_paths)
        by_path: dict[str, FileReport] = {}
        already: dict[str, dict[str, set[int]]] = {}  # path -> chunks an interrupted run stored (resume)
        stale: set[str] = set()  # paths with points of other versions (changed content or settings)
        last_pages: dict[str, int | None] = {}  # path -> its last selected page: the file is complete there
        planner = Planner(self.config, self.client, self.collection, self.fingerprint,
                          self.reader.password.get_secret_value() if self.reader.password else None, names)
        opened: asyncio.Queue = asyncio.Queue(maxsize=STEP_FILES)  # files opened for the reader, in order

        async def plan_ahead() -> None:
            """Open the files step by step ahead of rendering, and settle those that need no reading."""
            total, models_loaded = 0, False
            for step in planner.steps(files):
                for item in await asyncio.to_thread(planner.open_step, step):
                    if not self._record_planned(item, report, by_path, on_file):
                        continue
                    file_report = item.report
                    if not models_loaded:
                        # Before any OCR: a model that cannot load fails the run before GPU time is spent.
                        await asyncio.to_thread(self._load_models)
                        models_loaded = True
                    already[file_report.path] = item.already
                    if item.stale:
                        stale.add(file_report.path)
                    last_pages[file_report.path] = item.page_numbers[-1] if item.page_numbers else None
                    total += len(item.page_numbers)
                    if on_total:
                        on_total(total)  # grows as files are opened; final once the last step is planned
                    await opened.put(item.source)
            await opened.put(None)

        async def sources():
            while True:
                # Planning ends with None; if it stops first, what stopped it is raised here.
                source = opened.get_nowait() if not opened.empty() else \
                    await _unless_stopped(opened.get(), planning, "planning")
                if source is None:
                    return
                yield source

        planning = asyncio.create_task(plan_ahead())

        def file_failed(error: InputError) -> None:
            file_report = by_path.get(error.file)
            if file_report is not None:
                file_report.status, file_report.error = "failed", str(error)
                if on_file:
                    on_file(file_report)

        spool: asyncio.Queue = asyncio.Queue(maxsize=SPOOL_PAGES)
        stage = StoreStage(self, by_path, already, stale, on_file, self.config.ocr.max_failed_share)
        storing = asyncio.create_task(stage.run(spool))

        async def send(item) -> None:
            await hand_on(spool, storing, item)

        try:
            current = None
            async for document in self.reader.astream_sources(sources(), on_file_error=file_failed):
                path = document.metadata["file_path"]
                if path != current:
                    if current is not None:
                        await send(FileEnd(current))
                    current = path
                    await send(FileStart(path))
                page_report = page_report_of(document)
                by_path[path].pages.append(page_report)
                if page_report.status != "failed":
                    stamp(document, self.fingerprint)
                    await send(document)
                if on_page:
                    on_page(by_path[path], page_report)
                if page_report.page == last_pages.get(path):
                    await send(FileEnd(path))  # chunk and store it now, not when the next file starts
                    current = None
                if storing.done():
                    break  # it failed: its error is raised below
            if current is not None and not storing.done():
                await send(FileEnd(current))
            if not storing.done():
                await send(None)
            await storing
            await planning  # done by now; raises what stopped it (a Qdrant error, say)
        finally:
            await stop_tasks(storing, planning)
            while not opened.empty():  # opened ahead but never rendered: let their bytes go
                if (source := opened.get_nowait()) is not None:
                    source.close()
        await self._close_report(report, started)
        spent = LEDGER.snapshot().minus(cpu_before)
        loop_cpu = time.thread_time_ns() - loop_cpu_before
        # What the event loop did besides the stages timed on it: requests, responses, bookkeeping.
        report.cpu_ns = dict(spent.by_stage, requests=loop_cpu - spent.by_thread.get(threading.get_ident(), 0),
                             process=time.process_time_ns() - process_cpu_before)
        yield report


async def hand_on(spool: asyncio.Queue, storing: asyncio.Task, item) -> None:
    """Hand an item to the store stage; fail at once if it has died rather than wait forever."""
    if not spool.full():
        spool.put_nowait(item)
        return
    await _unless_stopped(spool.put(item), storing, "the store stage")


async def stop_tasks(*tasks: asyncio.Task) -> None:
    """Cancel the tasks still running and wait for them to end."""
    for task in tasks:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _unless_stopped(operation, worker: asyncio.Task, what: str):
    """Await ``operation`` (a queue's put or get) unless ``worker``, the task at the other end of
    the queue, stops first: then raise what stopped it, rather than wait forever."""
    pending = asyncio.ensure_future(operation)
    await asyncio.wait({pending, worker}, return_when=asyncio.FIRST_COMPLETED)
    if pending.done():
        return pending.result()
    pending.cancel()
    worker.result()  # raises what stopped it
    raise RuntimeError(f"{what} ended before the run did")


def page_report_of(document: PageDocument) -> PageReport:
    meta, run = document.metadata, document.ocr
    return PageReport(page=meta.get("page") or 0, status=run.status, engine=meta.get("ocr_engine"),
                      attempts=run.attempts, latency_s=run.latency_s, output_tokens=run.output_tokens,
                      cached=run.cached, error=meta.get("ocr_error"), warning=meta.get("ocr_warning"))


def make_reader(config: PipelineConfig) -> LightOnOCRReader:
    """The reader a config describes: every ``ocr`` key but the run-level ones maps to a field."""
    ocr = config.ocr.model_dump(exclude={"engine", "url", "max_failed_share"})
    ocr.update(retry_temperatures=tuple(ocr["retry_temperatures"]), fallbacks=tuple(ocr["fallbacks"]))
    return LightOnOCRReader(ocr_engine=config.ocr.engine, ocr_url=config.ocr.url, **ocr,
                            pages=config.input.pages, password=config.input.password,
                            regions=config.chunking.regions)


def make_parser(config: PipelineConfig) -> MarkdownBlockNodeParser:
    c = config.chunking
    tokenizer = resolve_model(config.embedding.model) if c.tokenizer == "embedding" else None
    return MarkdownBlockNodeParser(chunk_size=c.chunk_size, tokenizer=tokenizer,
                                   embed_header_path=c.embed_header_path, drop_page_furniture=c.drop_page_furniture,
                                   regions=c.regions != "off")


def build_pipeline(config: PipelineConfig, client=None, **kwargs):
    """The same pipeline as a LlamaIndex ``IngestionPipeline`` (chunker, embedder, Qdrant store).

    Feed it the Documents of ``make_reader(config)`` (or ``SimpleDirectoryReader`` with the
    reader as ``file_extractor``); query with ``VectorStoreIndex.from_vector_store(store)``.
    It gives the nodes and ids ``ingest`` gives. ``kwargs`` go to ``IngestionPipeline``
    (``cache=IngestionCache()``, ``docstore=...`` to skip unchanged pages on a re-run).
    """
    from llama_index.core.ingestion import IngestionPipeline

    e = config.embedding
    owned = client is None
    client = client or make_client(config.qdrant.path, config.qdrant.url,
                                   config.qdrant.api_key.get_secret_value() if config.qdrant.api_key else None)
    try:
        check_mode(client, config.qdrant.collection, config.retrieval.mode)
    except Exception:
        if owned:
            client.close()  # local mode locks its folder until closed
        raise
    embed_model = make_embed_model(e.model, e.device, e.batch_size, e.precision)
    return IngestionPipeline(transformations=[FingerprintStamp(fingerprint=settings_fingerprint(config)),
                                              make_parser(config), embed_model],
                             vector_store=make_vector_store(client, config.qdrant.collection, config.retrieval.mode),
                             **kwargs)


class FingerprintStamp(TransformComponent):
    """Stamps pages with the settings fingerprint, as ``ingest`` does, so that both paths store
    the same payloads (the fingerprint tells a file's current points from stale ones).

    It stamps copies: the pages given stay as they were, so the hashes an ``IngestionPipeline``
    keeps in its docstore are those of the pages a re-run will read.
    """

    fingerprint: str

    def __call__(self, nodes, **kwargs):
        copies = []
        for node in nodes:
            copy = node.model_copy(update={"metadata": dict(node.metadata),
                                           "excluded_embed_metadata_keys": list(node.excluded_embed_metadata_keys),
                                           "excluded_llm_metadata_keys": list(node.excluded_llm_metadata_keys)})
            stamp(copy, self.fingerprint)
            copies.append(copy)
        return copies


def stamp(page: PageDocument, fingerprint: str) -> None:
    """Mark a page with the settings it is chunked and embedded under (kept out of embeddings)."""
    page.metadata["pipeline_fingerprint"] = fingerprint
    for excluded in (page.excluded_embed_metadata_keys, page.excluded_llm_metadata_keys):
        if "pipeline_fingerprint" not in excluded:
            excluded.append("pipeline_fingerprint")
