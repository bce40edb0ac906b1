"""``--runner ray``: the same pipeline as Ray Data operations, storing the same points.

The driver runs the one run loop (``run.Ingestor``): it plans exactly as the local runner
does (``plan.Planner``: skipped, duplicate, resumed and failed files are settled before any
OCR) and owns Qdrant: one process may open the embedded store's folder, so the points are upserted,
stale versions deleted and files marked complete by the driver, through the same
``StoreStage``. Only reading differs (``RayIngestor._read_files``): the files to read flow
through Ray Data (``dataset``):

1. ``workers.render_group`` (CPU tasks, whole files of about ``RENDER_PAGES_PER_TASK`` pages each): each file opened once
   (``DocumentSource``), its pages rendered, turned upright and encoded, and passed on in rows
   of ``workers.RENDER_PAGES_PER_ROW`` as they come (a long PDF streams; a file that cannot be opened
   is one row with its error). These spread over every CPU of the cluster.
2. ``ocr_actor.OcrPages`` (one actor, called from many threads at once): each call queues its pages;
   one stream on the actor's event loop sends them to the OCR engine (the reader's window of
   requests in flight over all the vLLM URLs, with its retries, temperature ladder, fallbacks
   and cache), so the window stays full across files and batches as in the local runner.
   Out: one row per file, once all its pages are back: its page Documents in page order,
   stamped with the settings fingerprint.
3. ``workers.ChunkFiles`` (one actor): ``chunk_file`` of each whole file, as
   the local runner cuts it.
4. ``workers.EmbedChunks`` (an actor pool, one GPU each when the cluster has GPUs): embeds the chunks
   an interrupted run has not stored already.
5. The driver: each file's pages and chunks back into the run loop, which reports the pages
   and hands the chunks to ``StoreStage`` (upserts in batches of ``CHUNKS_PER_BATCH``, stale
   deletions, completion marks), and the same ``RunReport``.

Rows carry pickled Documents and nodes (Arrow holds them as bytes). Ray Data's streaming
executor bounds what each operator may hold, so files are not all read before storing starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from collections.abc import AsyncIterator, Iterable

from ...embedding import configured_max_tokens
from ...errors import ConfigError
from ...pages.orientation import ensure_classifier
from ..build import check_chunk_size
from ..config import PipelineConfig
from ..plan import PlannedFile
from ..progress import RunProgress
from ..report import RunReport, sum_counts
from ..run import FileEnd, Ingestor, PageRead
from .dataset import ACTORS_START_S, RENDER_BLOCK_BYTES, build_dataset
from .workers import CPU_COLUMNS, FileToRead

log = logging.getLogger("lightocr_ingest")

__all__ = ["RayIngestor", "ray_available"]


class RayIngestor(Ingestor):
    """``Ingestor`` whose reading, chunking and embedding run on Ray Data (see the module docstring).

    ``address``: the cluster to join (default: the config's ``ray_address``); with none, a
    local Ray instance is started for each run and shut down after it, unless Ray was already
    initialised in this process (then that one is used and left running).
    """

    counts_requests_on_loop = False  # the OCR actor sends them, and reports its CPU with its rows

    def __init__(self, config: PipelineConfig, client=None, address: str | None = None):
        super().__init__(config, client)
        self.address = address if address is not None else config.ray_address

    def _load_models(self) -> None:
        """The driver neither embeds nor chunks: the workers load the models. What they would
        warn of in their own logs is said here."""
        check_chunk_size(self.config, configured_max_tokens(self.config.embedding.model))

    def run(self, paths: Iterable[str] = (), on_page=None, on_file=None, on_total=None, names=None,
            prune: bool | None = None) -> RunReport:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        try:
            return super().run(paths, on_page=on_page, on_file=on_file, on_total=on_total, names=names, prune=prune)
        finally:
            if started_here:
                ray.shutdown()

    async def _read_files(self, planned: AsyncIterator[PlannedFile],
                          progress: RunProgress) -> AsyncIterator[PageRead | FileEnd]:
        """Every planned file through the Ray Data plan; each comes back whole, with its chunks
        cut and embedded by the workers."""
        to_read: list[FileToRead] = []
        async for item in planned:
            item.source.close()  # a worker opens it again (it may be on another machine)
            to_read.append(FileToRead(read=os.path.abspath(item.read), known_as=item.report.path,
                                      sha256=item.report.sha256 or "", already=item.already,
                                      pages=len(item.page_numbers)))
        if not to_read:
            return
        if self.reader.detect_rotation:
            await asyncio.to_thread(ensure_classifier)  # a missing model stops here, with the fix
        longest_side, text_words = await self.reader.rendering_size()  # asked once for every render task
        data_context = _apply_data_settings(_DATA_SETTINGS)
        rows = None
        try:
            dataset, actors = build_dataset(self.config, to_read, longest_side, text_words)
            rows = iter(dataset.iter_rows())
            while (row := await asyncio.to_thread(_next_row, rows, actors)) is not None:
                path = row["known_as"]
                progress.worker_cpu = sum_counts([progress.worker_cpu] +
                                                 [pickle.loads(row[column]) for column in CPU_COLUMNS])
                documents = pickle.loads(row["pages"])
                if row["error"]:
                    progress.file_failed(path, row["error"])
                if documents:
                    for document in documents:
                        yield PageRead(document)
                    yield FileEnd(path, chunks=pickle.loads(row["nodes"]))
        finally:
            if rows is not None and hasattr(rows, "close"):
                await asyncio.to_thread(rows.close)  # stops the dataset: no more rendering or requests
            _apply_data_settings(data_context)


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



def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True
