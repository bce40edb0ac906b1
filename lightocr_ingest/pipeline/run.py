"""Orchestration: files -> pages -> OCR -> chunks -> embeddings -> Qdrant, streaming.

The one run loop every runner drives (``Ingestor._arun``). Its parts, each in its own module:
``plan`` decides which files need reading, as a task that opens files ahead of the reader;
reading turns the planned files into pages (``_read_files``: here, the reader in this process;
``ray.RayIngestor``: Ray Data tasks and actors, which also cut and embed); the loop puts each
page on a spool and records it in the report; ``storing`` chunks each file whole once its
last page is in, and embeds and upserts chunks in batches across files in a thread. OCR never
waits for embedding unless the spool is full (``SPOOL_PAGES``), so a CPU embedder slower
than the GPU does not idle the GPU, and memory stays bounded.

Re-running is cheap and safe: a file already stored with the same content hash and the same
chunking/embedding settings is skipped before any OCR; a changed file, or one re-ingested
with new settings, has the points of its old version deleted first; a file an interrupted
run left half-stored is read again (the OCR cache answers its pages) and only its missing
chunks are embedded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass


from .._async import hand_on, iterate_in_thread, stop_tasks, unless_stopped
from ..chunking import MarkdownBlockNodeParser
from ..cpu_cost import LEDGER
from ..documents import PageDocument
from ..errors import InputError
from ..metadata import PageMetadata
from ..store import check_mode, count_points, finish_writes, make_vector_store, open_client
from ..store.documents import delete_document, rename_document
from .build import make_embedder, make_parser, make_reader, stamp
from .config import PipelineConfig
from .plan import STEP_FILES, PlannedFile, Planner, collect_inputs, settings_fingerprint
from .progress import RunProgress
from .report import FileReport, PageReport, PruneReport, RunReport, sum_counts
from .storing import FileEnd, FileStart, StoreStage
from .sync import SyncPlan, blocks_prune, plan_for

log = logging.getLogger("lightocr_ingest")

SPOOL_PAGES = 4096  # OCR'd pages waiting to be stored: OCR may run this far ahead of a slower embedder,
#                     so the GPU is not idled by it (about 10 minutes of one GPU; ~10 kB of Markdown each)

__all__ = ["FileEnd", "Ingestor", "PageRead", "page_report_of"]


@dataclass(frozen=True)
class PageRead:
    """A page read (or failed), in its file's page order."""

    document: PageDocument


class Ingestor:
    """Runs one pipeline config; reusable across runs (models and clients are loaded once)."""

    counts_requests_on_loop = True  # this process's event loop sends the OCR requests (report: "requests")

    def __init__(self, config: PipelineConfig, client=None):
        """``client``: a Qdrant client to share (one process at a time may open an embedded
        store's folder); else one is opened from the config, and closed by ``close()``."""
        self.config = config
        self.fingerprint = settings_fingerprint(config)
        self.reader = make_reader(config)
        self._embed_model = None
        self._parser = None
        self._owns_client = client is None
        self.client = client or open_client(config.qdrant)
        self.collection = config.qdrant.collection
        try:
            check_mode(self.client, self.collection, config.retrieval.mode)  # before any page is read
        except Exception:
            if self._owns_client:
                self.client.close()  # the embedded store locks its folder until closed
            raise
        self.vector_store = make_vector_store(self.client, self.collection, config.retrieval.mode)

    @property
    def embed_model(self):
        if self._embed_model is None:
            self._embed_model = make_embedder(self.config)
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
            names: dict[str, str] | None = None, prune: bool | None = None) -> RunReport:
        """Ingest ``paths`` (plus the config's); returns the report. Works inside a running loop.

        ``names``: path -> the path a file is known by, in its points and the report (the service
        saves uploads under names of its own and stores them under the name they came with).
        ``prune`` (default: the config's ``input.prune``): the collection then holds exactly the
        files under the inputs (``sync``): renamed files' points take their new path first, and
        the documents of files no longer there are deleted after the run has read everything
        else; a run that stops early (an error, Ctrl-C) deletes nothing."""
        prune = self.config.input.prune if prune is None else prune
        try:
            reports = list(iterate_in_thread(lambda: self._arun(list(paths), on_page, on_file, on_total, names,
                                                                prune)))
        except BaseException:
            if prune:  # removals come last: an error there may have removed some (run again to finish)
                log.warning("the run stopped before its end: documents of removed files were not pruned "
                            "(run it again to prune them)")
            raise
        return reports[-1]

    async def _read_files(self, planned: AsyncIterator[PlannedFile],
                          progress: RunProgress) -> AsyncIterator[PageRead | FileEnd]:
        """The pages of the planned files, file by file and each in page order, then ``FileEnd``.

        Here: the reader in this process (its render-ahead and window of requests). A runner
        that reads elsewhere overrides this alone."""
        last_pages: dict[str, int | None] = {}  # path -> its last selected page: the file is complete there

        async def sources():
            async for item in planned:
                last_pages[item.report.path] = item.page_numbers[-1] if item.page_numbers else None
                yield item.source

        def file_failed(error: InputError) -> None:
            progress.file_failed(error.file, str(error))

        async for document in self.reader.astream_sources(sources(), on_file_error=file_failed):
            yield PageRead(document)
            page = PageMetadata.from_metadata(document.metadata)
            if page.page == last_pages.get(page.file_path):
                yield FileEnd(page.file_path)  # chunk and store it now, not when the next file starts

    async def _arun(self, extra_paths, on_page, on_file, on_total, names=None, prune=False):
        started = time.perf_counter()
        cpu_before, loop_cpu_before, process_cpu_before = LEDGER.snapshot(), time.thread_time_ns(), time.process_time_ns()
        progress = RunProgress(RunReport(collection=self.collection,
                                         points_before=count_points(self.client, self.collection)), on_page, on_file)
        files = await self._collect(extra_paths, progress)
        sync = await self._start_prune(files, names, progress.report) if prune else None
        planner = Planner(self.config, self.client, self.collection, self.fingerprint,
                          self.reader.password.get_secret_value() if self.reader.password else None, names)
        opened: asyncio.Queue = asyncio.Queue(maxsize=STEP_FILES)  # files opened for reading, in order
        planning = asyncio.create_task(self._plan(planner, files, progress, opened, on_total))

        async def planned() -> AsyncIterator[PlannedFile]:
            while True:
                # Planning ends with None; if it stops first, what stopped it is raised here.
                item = opened.get_nowait() if not opened.empty() else \
                    await unless_stopped(opened.get(), planning, "planning")
                if item is None:
                    return
                yield item

        spool: asyncio.Queue = asyncio.Queue(maxsize=SPOOL_PAGES)
        storing = asyncio.create_task(StoreStage(self, progress).run(spool))

        async def send(item) -> None:
            await hand_on(spool, storing, item)

        try:
            current = None  # the file whose pages are coming
            async for event in self._read_files(planned(), progress):
                if isinstance(event, FileEnd):
                    if current == event.path:
                        await send(event)
                        current = None
                else:
                    document = event.document
                    path = PageMetadata.from_metadata(document.metadata).file_path
                    if path != current:
                        if current is not None:
                            await send(FileEnd(current))
                        current = path
                        await send(FileStart(path))
                    page_report = page_report_of(document)
                    progress.by_path[path].pages.append(page_report)
                    if page_report.status != "failed":
                        stamp(document, self.fingerprint)
                        await send(document)
                    progress.page_done(progress.by_path[path], page_report)
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
            while not opened.empty():  # opened ahead but never read: let their bytes go
                if (item := opened.get_nowait()) is not None and item.source is not None:
                    item.source.close()
        report = progress.report
        if sync is not None:  # everything was read: the documents of files that have gone go now
            await asyncio.to_thread(self._remove_gone, sync, report.prune)
        await asyncio.to_thread(finish_writes, self.client, self.collection)  # indexes built (HNSW, payload)
        report.points_after = count_points(self.client, self.collection)
        report.elapsed_s = time.perf_counter() - started
        spent = LEDGER.snapshot().minus(cpu_before)
        cpu = dict(spent.by_stage)
        if self.counts_requests_on_loop:
            # What the event loop did besides the stages timed on it: requests, responses, bookkeeping.
            loop_cpu = time.thread_time_ns() - loop_cpu_before
            cpu["requests"] = loop_cpu - spent.by_thread.get(threading.get_ident(), 0)
        cpu["process"] = time.process_time_ns() - process_cpu_before
        report.cpu_ns = sum_counts([cpu, progress.worker_cpu]) if progress.worker_cpu else cpu
        yield report

    async def _start_prune(self, files: list[str], names: dict[str, str] | None, report: RunReport) -> SyncPlan | None:
        """The run's sync plan, with its renames done (before planning, so that a renamed file is
        found stored under its new path and skipped); None when nothing may be pruned: an input
        that could not be listed would look deleted."""
        report.prune = PruneReport()
        unlisted = [f.path for f in report.files if f.status == "failed" and blocks_prune(f.path)]
        if unlisted:
            report.prune.withheld = f"{len(unlisted)} input(s) could not be listed ({unlisted[0]}...): nothing pruned"
            log.warning("%s", report.prune.withheld)
            return None
        sync = await asyncio.to_thread(plan_for, self.client, self.collection, files, names)
        for document, new_path in sync.renamed:
            await asyncio.to_thread(rename_document, self.client, self.collection, document, new_path)
            report.prune.renamed.append((document.file_path, new_path))
        return sync

    def _remove_gone(self, sync: SyncPlan, prune: PruneReport) -> None:
        for document in sync.removed:  # old versions of replaced files are gone already (0 deleted)
            deleted = delete_document(self.client, self.collection, document)
            if deleted:
                prune.removed_chunks += deleted
                prune.removed.append(document.file_path)

    async def _collect(self, extra_paths: list[str], progress: RunProgress) -> list[str]:
        """The files named (folders expanded); the paths that name no readable file go in the
        report as failed."""
        files, problems = await asyncio.to_thread(collect_inputs, self.config, extra_paths)
        for path, problem in problems:
            progress.report.files.append(FileReport(path=path, status="failed", error=problem))
            log.warning("%s", problem)
        return files

    async def _plan(self, planner: Planner, files: list[str], progress: RunProgress, opened: asyncio.Queue,
                    on_total: Callable[[int], None] | None) -> None:
        """Open the files step by step ahead of reading (at most a step ahead: ``opened`` is
        bounded), settle those that need no reading, and queue the others, then None."""
        total, models_loaded = 0, False
        for step in planner.steps(files):
            for item in await asyncio.to_thread(planner.open_step, step):
                file_report = item.report
                progress.report.files.append(file_report)
                progress.by_path[file_report.path] = file_report
                if item.source is None:  # skipped, a duplicate, or failed to open
                    if file_report.status == "failed":
                        log.warning("%s", file_report.error)
                    progress.file_done(file_report)
                    continue
                if not models_loaded:
                    # Before any OCR: a model that cannot load fails the run before GPU time is spent.
                    await asyncio.to_thread(self._load_models)
                    models_loaded = True
                progress.already[file_report.path] = item.already
                if item.stale:
                    progress.stale.add(file_report.path)
                total += len(item.page_numbers)
                if on_total:
                    on_total(total)  # grows as files are opened; final once the last step is planned
                await opened.put(item)
        await opened.put(None)


def page_report_of(document: PageDocument) -> PageReport:
    page, run = PageMetadata.from_metadata(document.metadata), document.ocr
    return PageReport(page=page.page or 0, status=run.status, engine=page.ocr_engine, attempts=run.attempts,
                      latency_s=run.latency_s, output_tokens=run.output_tokens, cached=run.cached,
                      error=page.ocr_error, warning=page.ocr_warning, thinking_removed=run.thinking_removed)
