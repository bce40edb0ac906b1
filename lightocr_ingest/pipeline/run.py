"""Orchestration: files -> pages -> OCR -> chunks -> embeddings -> Qdrant, streaming.

Pages come out of the reader in order while up to ``max_in_flight`` per server are being
OCR'd, and go onto a spool. A store task takes them off in batches of up to ``PAGES_PER_BATCH``
pages (one long file's, or many single-page files'), chunks, embeds and upserts them in a
thread, and stamps each file with how far it is stored. OCR never waits for embedding unless
the spool is full (``SPOOL_PAGES``), so a CPU embedder slower than the GPU does not idle the
GPU; a long PDF still becomes searchable as it goes, and memory stays bounded.

Re-running is cheap and safe: a file already stored with the same content hash and the same
chunking/embedding settings is skipped before any OCR; a changed file, or one re-ingested
with new settings, has the points of its old version deleted first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from llama_index.core.schema import Document, MetadataMode

from .._async import iterate_in_thread
from ..cpu_cost import LEDGER, stage_cpu
from ..chunking import MarkdownBlockNodeParser
from ..embedding import make_embed_model, max_sequence_tokens, resolve_model
from ..errors import InputError
from ..pages.selection import format_page_selection
from ..reader import LightOnOCRReader
from ..store import COMPLETE_KEY, ResumePoint, count_points, delete_pages_after, delete_stale_points, \
    ensure_payload_indexes, has_points, make_client, make_vector_store, mark_complete, mark_progress, resume_point
from .config import PipelineConfig
from .memory import release_free_memory
from .report import FileReport, PageReport, RunReport

log = logging.getLogger("lightocr_ingest")

PAGES_PER_BATCH = 16  # pages chunked+embedded+upserted together: searchable soon, embedding batches stay full
SPOOL_PAGES = 4096  # OCR'd pages waiting to be embedded: OCR may run this far ahead of a slower embedder,
#                     so the GPU is not idled by it (about 10 minutes of one GPU; ~10 kB of Markdown each)


def settings_fingerprint(config: PipelineConfig) -> str:
    """What decides a file's points besides its content: re-ingest when it changes."""
    relevant = {"chunking": config.chunking.model_dump(), "embedding_model": config.embedding.model,
                "pages": config.input.pages}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def collect_files(paths: Iterable[str], extensions: list[str],
                  recursive: bool = True) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand folders into files, sorted; return them and ``(path, problem)`` for what was left out.

    Symlinked folders are not followed (a link back to a parent would loop forever, and one
    elsewhere would ingest files outside the folder given); symlinked files are read.
    """
    wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    files: list[str] = []
    problems: list[tuple[str, str]] = []

    def walk_error(error: OSError) -> None:
        problems.append((error.filename, f"{error.filename}: cannot be listed: {error.strerror}"))

    for raw in paths:
        path = os.path.expanduser(str(raw))
        if os.path.isdir(path):
            walker = os.walk(path, followlinks=False, onerror=walk_error) if recursive \
                else [(path, [], os.listdir(path))]
            for folder, subfolders, names in walker:
                for name in sorted(subfolders):
                    link = os.path.join(folder, name)
                    if os.path.islink(link):
                        problems.append((link, f"{link}: symlinked folder not followed (ingest its target "
                                               f"{os.path.realpath(link)} directly if it is wanted)"))
                for name in sorted(names):
                    if Path(name).suffix.lower() not in wanted:
                        continue
                    file = os.path.join(folder, name)
                    if os.path.isfile(file):
                        files.append(file)
                    elif os.path.islink(file):
                        problems.append((file, f"{file}: broken symlink (its target {os.readlink(file)} is missing)"))
        elif os.path.exists(path):
            files.append(path)
        else:
            problems.append((path, f"{path}: no such file or folder"))
    return list(dict.fromkeys(files)), problems


class Ingestor:
    """Runs one pipeline config; reusable across runs (models and clients are loaded once)."""

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.fingerprint = settings_fingerprint(config)
        self.reader = make_reader(config)
        self._embed_model = None
        self._parser = None
        self.client = make_client(config.qdrant.path, config.qdrant.url,
                                  config.qdrant.api_key.get_secret_value() if config.qdrant.api_key else None)
        self.collection = config.qdrant.collection
        self.vector_store = make_vector_store(self.client, self.collection)

    @property
    def embed_model(self):
        if self._embed_model is None:
            e = self.config.embedding
            self._embed_model = make_embed_model(e.model, e.device, e.batch_size)
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
        self.client.close()

    # --- one run ------------------------------------------------------------------------
    def run(self, paths: Iterable[str] = (), on_page: Callable[[FileReport, PageReport], None] | None = None,
            on_file: Callable[[FileReport], None] | None = None, on_total: Callable[[int], None] | None = None) -> RunReport:
        """Ingest ``paths`` (plus the config's); returns the report. Works inside a running loop."""
        reports = list(iterate_in_thread(lambda: self._arun(list(paths), on_page, on_file, on_total)))
        return reports[-1]

    async def _arun(self, extra_paths, on_page, on_file, on_total):
        started = time.perf_counter()
        cpu_before, loop_cpu_before, process_cpu_before = LEDGER.snapshot(), time.thread_time_ns(), time.process_time_ns()
        report = RunReport(collection=self.collection, points_before=count_points(self.client, self.collection))
        files, problems = collect_files(list(self.config.input.paths) + extra_paths, self.config.input.extensions,
                                        self.config.input.recursive)
        for path, problem in problems:
            log.warning("%s", problem)
            report.files.append(FileReport(path=path, status="failed", error=problem))
        pending: list[str] = []
        by_path: dict[str, FileReport] = {}
        resumes: dict[str, ResumePoint] = {}  # unfinished files of an interrupted run
        first_with: dict[str, str] = {}  # content hash -> first path with it in this run
        for path in files:
            sha = await asyncio.to_thread(file_sha256, path)
            file_report = FileReport(path=path, sha256=sha)
            report.files.append(file_report)
            by_path[path] = file_report
            if sha in first_with:  # a byte-identical copy: its points would be the same points
                file_report.status, file_report.duplicate_of = "skipped", first_with[sha]
                if on_file:
                    on_file(file_report)
                continue
            if sha:
                first_with[sha] = path
                version = self._version(sha)
                if await asyncio.to_thread(has_points, self.client, self.collection, **version, **{COMPLETE_KEY: True}):
                    file_report.status = "skipped"
                    if on_file:
                        on_file(file_report)
                    continue
                resume = await asyncio.to_thread(resume_point, self.client, self.collection, version)
                if resume.after_page:
                    resumes[path] = resume
                    file_report.resumed_after_page = resume.after_page
            pending.append(path)
        resume_after = {path: resume.after_page for path, resume in resumes.items()}
        if pending:
            # Before any OCR: a model that cannot load fails the run before GPU time is spent.
            await asyncio.to_thread(self._load_models)
        if on_total:
            on_total(await asyncio.to_thread(self._count_pages, pending, resume_after))

        def file_failed(error: InputError) -> None:
            file_report = by_path.get(error.file)
            if file_report is not None:
                file_report.status, file_report.error = "failed", str(error)
                if on_file:
                    on_file(file_report)

        spool: asyncio.Queue = asyncio.Queue(maxsize=SPOOL_PAGES)
        storing = asyncio.create_task(self._store_pages(spool, by_path, resumes, resume_after, on_file))

        async def send(item) -> None:
            """Hand an item to the store task; fail at once if it has died rather than wait forever."""
            if not spool.full():
                spool.put_nowait(item)
                return
            putting = asyncio.ensure_future(spool.put(item))
            await asyncio.wait({putting, storing}, return_when=asyncio.FIRST_COMPLETED)
            if not putting.done():
                putting.cancel()
                storing.result()  # raises what stopped it
                raise RuntimeError("the store task ended before the run did")

        try:
            current = None
            async for document in self.reader.astream(pending, on_file_error=file_failed, resume_after=resume_after):
                path = document.metadata["file_path"]
                if path != current:
                    if current is not None:
                        await send(_FileEnd(current))
                    current = path
                    await send(_FileStart(path))
                page_report = page_report_of(document)
                for key in VOLATILE_KEYS:  # per-run facts: in the report, not in the stored points
                    document.metadata.pop(key, None)
                by_path[path].pages.append(page_report)
                if page_report.status != "failed":
                    document.metadata["pipeline_fingerprint"] = self.fingerprint
                    await send(document)
                if on_page:
                    on_page(by_path[path], page_report)
                if storing.done():
                    break  # it failed: its error is raised below
            if current is not None and not storing.done():
                await send(_FileEnd(current))
            if not storing.done():
                await send(None)
            await storing
        finally:
            if not storing.done():
                storing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await storing
        for path, resume in resumes.items():
            file_report = by_path[path]
            if not file_report.pages and file_report.status == "ok":
                # Killed after its last batch was stamped but before the file was marked complete:
                # nothing was left to read, so it is complete now.
                await asyncio.to_thread(mark_complete, self.client, self.collection, resume.point_id)
                if on_file:
                    on_file(file_report)
        await asyncio.to_thread(ensure_payload_indexes, self.client, self.collection)
        report.points_after = count_points(self.client, self.collection)
        report.elapsed_s = time.perf_counter() - started
        spent = LEDGER.snapshot().minus(cpu_before)
        loop_cpu = time.thread_time_ns() - loop_cpu_before
        # What the event loop did besides the stages timed on it: requests, responses, bookkeeping.
        report.cpu_ns = dict(spent.by_stage, requests=loop_cpu - spent.by_thread.get(threading.get_ident(), 0),
                             process=time.process_time_ns() - process_cpu_before)
        yield report

    async def _store_pages(self, spool: asyncio.Queue, by_path: dict[str, FileReport],
                           resumes: dict[str, ResumePoint], resume_after: dict[str, int], on_file) -> None:
        """Take OCR'd pages off the spool, a batch at a time across files, and store them.

        A batch is ``PAGES_PER_BATCH`` pages, of one long file or of many single-page ones, so
        embedding runs on full batches; the work runs in a thread while the event loop keeps
        OCR requests flowing.
        """
        files: dict[str, _FileProgress] = {}
        finished = False
        while not finished:
            items, pages = [], 0
            while True:
                items.append(await spool.get())
                pages += isinstance(items[-1], Document)
                # A long file's pages go in full batches (page furniture is told by repetition
                # across a batch); a batch closes early only at a file's end with nothing waiting.
                if items[-1] is None or pages >= PAGES_PER_BATCH or (
                        isinstance(items[-1], _FileEnd) and spool.empty()):
                    break
            if items[-1] is None:
                finished = True
                items.pop()
            await asyncio.to_thread(self._store_items, items, files, by_path, resumes, resume_after)
            for item in items:
                if isinstance(item, _FileEnd):
                    files.pop(item.path, None)
                    self._finish_file(by_path[item.path], on_file)

    def _store_items(self, items: list, files: dict[str, "_FileProgress"], by_path: dict[str, FileReport],
                     resumes: dict[str, ResumePoint], resume_after: dict[str, int]) -> None:
        """Store one batch: old versions deleted first, then chunks embedded and upserted
        together, then each file stamped with how far it is safely stored."""
        batches: dict[str, list[Document]] = {}
        ended: list[str] = []
        for item in items:
            if isinstance(item, _FileStart):
                path = item.path
                files[path] = _FileProgress(path, heading_path=list(resumes[path].heading_path)
                                            if path in resumes else [])
                version = self._version(by_path[path].sha256 or "")
                delete_stale_points(self.client, self.collection, path, version)
                delete_pages_after(self.client, self.collection, version, resume_after.get(path, 0))
            elif isinstance(item, _FileEnd):
                ended.append(item.path)
            else:
                batches.setdefault(item.metadata["file_path"], []).append(item)
        nodes_by_file: dict[str, list] = {}
        with stage_cpu("chunking"):
            for path, documents in batches.items():
                nodes_by_file[path] = self.parser.chunk_file_pages(documents, files[path].heading_path)
            nodes = [node for file_nodes in nodes_by_file.values() for node in file_nodes]
            texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
        if nodes:
            vectors = self.embed_model.get_text_embedding_batch(texts)
            for node, vector in zip(nodes, vectors):
                node.embedding = vector
            with stage_cpu("upsert"):
                self.vector_store.add(nodes)
        with stage_cpu("upsert"):  # charged to the store stage: it is the batch's clean-up
            release_free_memory()
        for path in dict.fromkeys([*batches, *ended]):
            file, file_report = files[path], by_path[path]
            file_nodes = nodes_by_file.get(path, [])
            self._count_chunks(file_report, file_nodes)
            final, clean = path in ended, not file_report.failed_pages
            if file_nodes:
                file.last_node = file_nodes[-1].node_id
                if clean:
                    mark_progress(self.client, self.collection, file.last_node,
                                  batches[path][-1].metadata["page"], file.heading_path, final)
            elif final and clean and file.last_node:
                mark_complete(self.client, self.collection, file.last_node)

    @staticmethod
    def _count_chunks(file_report: FileReport, nodes: list) -> None:
        file_report.chunks += len(nodes)
        per_page: dict[int, int] = {}
        for node in nodes:
            per_page[node.metadata["page"]] = per_page.get(node.metadata["page"], 0) + 1
        for page in file_report.pages:
            page.chunks += per_page.get(page.page, 0)

    def _version(self, sha256: str) -> dict:
        """The payload values that identify this run's points of a file: its content and our settings."""
        return {"file_sha256": sha256, "pipeline_fingerprint": self.fingerprint}

    def _count_pages(self, paths: list[str], resume_after: dict[str, int]) -> int:
        from ..pages import DocumentSource

        total = 0
        for path in paths:
            try:
                with DocumentSource(path, password=self.reader.password.get_secret_value()
                                    if self.reader.password else None) as source:
                    after = resume_after.get(path, 0)
                    total += sum(n > after for n in source.page_numbers(self.config.input.pages))
            except InputError:
                continue
        return total

    def _finish_file(self, file_report: FileReport, on_file) -> None:
        failed = file_report.failed_pages
        if failed:
            share = len(failed) / len(file_report.pages)
            whole = share > self.config.ocr.max_failed_share
            file_report.status = "failed" if whole else "partial"
            file_report.error = (f"{len(failed)} of {len(file_report.pages)} pages failed ({share:.0%}"
                                 f"{', over the limit of ' + format(self.config.ocr.max_failed_share, '.0%') if whole else ''}"
                                 f"): pages {format_page_selection(failed)}")
        if on_file:
            on_file(file_report)


@dataclass
class _FileProgress:
    """A file being stored: the heading path open at its last stored page, and its last point."""

    path: str
    heading_path: list = field(default_factory=list)
    last_node: str | None = None


@dataclass(frozen=True)
class _FileStart:
    path: str


@dataclass(frozen=True)
class _FileEnd:
    path: str


VOLATILE_KEYS = ("ocr_latency_s", "ocr_cached")


def page_report_of(document: Document) -> PageReport:
    meta = document.metadata
    return PageReport(page=meta.get("page") or 0, status=meta.get("ocr_status", "ok"), engine=meta.get("ocr_engine"),
                      attempts=meta.get("ocr_attempts", 1), latency_s=meta.get("ocr_latency_s") or 0.0,
                      output_tokens=meta.get("ocr_output_tokens"), cached=bool(meta.get("ocr_cached")),
                      error=meta.get("ocr_error"), warning=meta.get("ocr_warning"))


def make_reader(config: PipelineConfig) -> LightOnOCRReader:
    """The reader a config describes: every ``ocr`` key but the run-level ones maps to a field."""
    ocr = config.ocr.model_dump(exclude={"engine", "url", "max_failed_share"})
    ocr.update(retry_temperatures=tuple(ocr["retry_temperatures"]), fallbacks=tuple(ocr["fallbacks"]))
    return LightOnOCRReader(ocr_engine=config.ocr.engine, ocr_url=config.ocr.url, **ocr,
                            pages=config.input.pages, password=config.input.password)


def make_parser(config: PipelineConfig) -> MarkdownBlockNodeParser:
    c = config.chunking
    tokenizer = resolve_model(config.embedding.model) if c.tokenizer == "embedding" else None
    return MarkdownBlockNodeParser(chunk_size=c.chunk_size, tokenizer=tokenizer,
                                   embed_header_path=c.embed_header_path, drop_page_furniture=c.drop_page_furniture)


def build_pipeline(config: PipelineConfig, client=None):
    """The same pipeline as a LlamaIndex ``IngestionPipeline`` (chunker, embedder, Qdrant store).

    Feed it the Documents of ``make_reader(config)`` (or ``SimpleDirectoryReader`` with the
    reader as ``file_extractor``); query with ``VectorStoreIndex.from_vector_store(store)``.
    """
    from llama_index.core.ingestion import IngestionPipeline

    e = config.embedding
    client = client or make_client(config.qdrant.path, config.qdrant.url,
                                   config.qdrant.api_key.get_secret_value() if config.qdrant.api_key else None)
    return IngestionPipeline(transformations=[make_parser(config), make_embed_model(e.model, e.device, e.batch_size)],
                             vector_store=make_vector_store(client, config.qdrant.collection))
