"""The store stage: OCR'd pages in, chunks embedded and upserted into Qdrant.

Pages arrive on the spool file by file. A file is chunked whole once its last page is in,
so its chunks, their ids and what counts as page furniture do not depend on how pages were
batched, how fast the servers answered, or where an earlier run stopped. Chunks then queue
across files and are embedded and upserted in batches of ``CHUNKS_PER_BATCH``, so many
single-page files still fill the embedding model's batches; the work runs in a thread while
the event loop keeps OCR requests flowing.

After a file's last chunk is stored, points of the same version that its chunks no longer
hold are deleted when this run read all their pages again (they were cut before a page that
had failed then, or from pages that fail now); one that holds text of a page this run could
not read stays until a run reads it. The file's last point is marked complete when no page
failed. Chunks already stored by an interrupted run are found by id and not embedded again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from llama_index.core.schema import TextNode

from ..cpu_cost import stage_cpu
from ..documents import PageDocument
from ..embedding import embed_nodes
from ..metadata import ChunkMetadata, PageMetadata
from ..pages.selection import format_page_selection
from ..store import delete_ids, delete_stale_points, mark_complete
from .memory import release_free_memory
from .plan import version_of
from .progress import RunProgress, StoredPoints

CHUNKS_PER_BATCH = 64  # chunks embedded and upserted together: full embedding batches, searchable soon


@dataclass(frozen=True)
class FileStart:
    path: str


@dataclass(frozen=True)
class FileEnd:
    """A file's last page has been read: what a runner's ``_read_files`` yields after a file's
    pages, and what the spool hands the store stage to cut it now (or store ``chunks``, cut
    already by a Ray worker)."""

    path: str
    chunks: list[TextNode] | None = None


@dataclass
class _FileChunks:
    """A chunked file whose chunks are being stored (ids only: nodes leave once stored)."""

    path: str
    ids: set[str]  # of all its chunks
    last_id: str | None  # its last chunk: marked complete once all are stored
    already: StoredPoints  # of this version, stored before this run
    failed_pages: set[int]
    waiting: int = 0  # its chunks still queued or being stored


class StoreStage:
    """Takes pages off the spool until ``None``; see the module docstring."""

    def __init__(self, ingestor, progress: RunProgress):
        self.ingestor = ingestor
        self.progress = progress
        self.by_path = progress.by_path
        self.max_failed_share = ingestor.config.ocr.max_failed_share
        self.pages: dict[str, list[PageDocument]] = {}
        self.queue: list[tuple[_FileChunks, TextNode]] = []
        self.files: dict[str, _FileChunks] = {}

    async def run(self, spool: asyncio.Queue) -> None:
        finished = False
        while not finished:
            item = await spool.get()
            if item is None:
                finished = True
            elif isinstance(item, FileStart):
                self.pages[item.path] = []
                if item.path in self.progress.stale:  # most files have no other version: no trip to a thread
                    await asyncio.to_thread(self._start_file, item.path)
            elif isinstance(item, FileEnd):
                await asyncio.to_thread(self._chunk_file, item.path, item.chunks)
            else:
                self.pages[PageMetadata.from_metadata(item.metadata).file_path].append(item)
            # Store when a batch is full, or when nothing else is waiting (so results come soon).
            while len(self.queue) >= CHUNKS_PER_BATCH or (self.queue and (finished or spool.empty())):
                batch, self.queue = self.queue[:CHUNKS_PER_BATCH], self.queue[CHUNKS_PER_BATCH:]
                await asyncio.to_thread(self._store, batch)
            for path in [p for p, f in self.files.items() if f.waiting == 0]:
                await asyncio.to_thread(self._finish_file, self.files.pop(path))

    def _start_file(self, path: str) -> None:
        """Delete the points of the file's other versions (changed content or settings): by
        filter, so that what any writer stored for it since the plan looked goes too. (A file the
        plan found with no other version is not looked at again.)"""
        with stage_cpu("upsert"):
            delete_stale_points(self.ingestor.client, self.ingestor.collection, path,
                                version_of(self.by_path[path].sha256 or "", self.ingestor.fingerprint))

    def _chunk_file(self, path: str, chunks: list[TextNode] | None) -> None:
        documents = self.pages.pop(path, [])
        report = self.by_path[path]
        if chunks is not None:
            nodes = chunks
        else:
            with stage_cpu("chunking"):
                nodes = self.ingestor.parser.chunk_file(documents) if documents else []
        already = self.progress.already.pop(path, {})
        chunks = _FileChunks(path, ids={n.node_id for n in nodes}, last_id=nodes[-1].node_id if nodes else None,
                             already=already, failed_pages=set(report.failed_pages))
        report.chunks += len(nodes)
        report.chunks_already_stored = sum(n.node_id in already for n in nodes)
        per_page: dict[int, int] = {}
        for node in nodes:
            facts = ChunkMetadata.from_metadata(node.metadata)
            per_page[facts.page] = per_page.get(facts.page, 0) + 1
            report.regions[facts.bbox_source] = report.regions.get(facts.bbox_source, 0) + 1
        for page in report.pages:
            page.chunks = per_page.get(page.page, 0)
        for node in nodes:
            if node.node_id not in already:
                chunks.waiting += 1
                self.queue.append((chunks, node))
        self.files[path] = chunks

    def _store(self, batch: list[tuple[_FileChunks, TextNode]]) -> None:
        ingestor = self.ingestor
        nodes = [node for _, node in batch]
        todo = [node for node in nodes if node.embedding is None]  # the Ray runner's come embedded
        if todo:
            embed_nodes(ingestor.embed_model, todo)
        with stage_cpu("upsert"):
            ingestor.vector_store.add(nodes)
            release_free_memory()  # the batch's clean-up: hand freed heap back to the OS
        for chunks, _ in batch:
            chunks.waiting -= 1

    def _finish_file(self, chunks: _FileChunks) -> None:
        ingestor = self.ingestor
        report = self.by_path[chunks.path]
        replaced = {point for point, pages in chunks.already.items()
                    if point not in chunks.ids and not pages & chunks.failed_pages}
        with stage_cpu("upsert"):
            delete_ids(ingestor.client, ingestor.collection, replaced)
            if chunks.last_id and not chunks.failed_pages:
                mark_complete(ingestor.client, ingestor.collection, chunks.last_id)
        failed = report.failed_pages
        if failed:
            share = len(failed) / len(report.pages)
            whole = share > self.max_failed_share
            report.status = "failed" if whole else "partial"
            report.error = (f"{len(failed)} of {len(report.pages)} pages failed ({share:.0%}"
                            f"{', over the limit of ' + format(self.max_failed_share, '.0%') if whole else ''}"
                            f"): pages {format_page_selection(failed)}")
        self.progress.file_done(report)
