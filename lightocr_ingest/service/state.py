"""What the routes share, made once per app: the reader, the Qdrant client, the ingestors, the job
runner, the admission limits (``slots.py``) and the state folder (job records, uploads).

It lives on ``app.state.service``; a route asks for it with a ``ServiceDep`` parameter. Heavy
things (the Qdrant client, the reader, the job runner) are made when the app starts, in its
event loop, and closed when it stops. Nothing is kept per collection name a request gives: a
search or a listing resolves the name each time, and the ingestors (one per collection a job
stores into) are a small cache, least recently used first out.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from .job_store import Instance, JobStore, remove_left_uploads
from .jobs import FINISHED_JOBS_KEPT, JobRunner
from .metrics import Metrics
from .settings import ServiceSettings
from .slots import DEFAULT_SECONDS_A_PAGE, OcrSlots, PageMeter, PixelBudget, Workload

log = logging.getLogger("lightocr_ingest")

COLLECTION_NAME = r"^[A-Za-z0-9_\-]+$"  # the collection names a request may give
INGESTORS_KEPT = 8  # collections with an ingestor at hand; each holds little (the model is shared)


class Service:
    """What the routes share: the reader, the Qdrant client, the ingestors, the job runner, limits."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.config = settings.config
        self.metrics = Metrics()
        self.client = None
        self.reader = None
        self.ingestors: OrderedDict = OrderedDict()  # collection -> Ingestor, at most INGESTORS_KEPT
        self._ingestors_lock = threading.Lock()
        self.runner: JobRunner | None = None
        self.jobs_store: JobStore | None = None
        self.engine = "cpu" if uses_cpu_engine(self.config) else "vllm"
        # The CPU engine reads one page at a time in a process: more requests at once only wait.
        self.concurrency = 1 if self.engine == "cpu" else settings.concurrency
        self.workload = Workload(PageMeter(DEFAULT_SECONDS_A_PAGE[self.engine]))
        self.ocr_slots = OcrSlots(self.concurrency, settings.queue_size, settings.max_queue_wait_s, self.workload,
                                  self.metrics.ocr_queue)
        self.pixels: PixelBudget | None = None  # made on the event loop (start)
        self.upload_root: Path | None = None
        self.instance: Instance | None = None  # this instance's lock in the state folder (made at start)

    async def start(self) -> None:
        from ..pipeline.build import make_reader
        from ..store import open_client

        if self.concurrency < self.settings.concurrency:
            log.info("OCR requests worked on at once: 1, not %d (the CPU engine reads one page at a time)",
                     self.settings.concurrency)
        state = self.settings.state_folder
        state.mkdir(parents=True, exist_ok=True)
        self.instance = Instance(state)
        uploads = state / "uploads"
        removed = await asyncio.to_thread(remove_left_uploads, uploads, self.instance)
        if removed:
            log.warning("removed the uploads of %d request(s) a stopped service left in %s", removed, uploads)
        uploads.mkdir(parents=True, exist_ok=True)
        self.upload_root = Path(tempfile.mkdtemp(prefix=f"{self.instance.id}-", dir=uploads))
        self.jobs_store = JobStore(state, FINISHED_JOBS_KEPT, self.instance)
        self.pixels = PixelBudget(int(self.settings.max_decode_megapixels * 1e6))
        # Queries and the job thread share it, with no lock of ours: the embedded store (Qdrant
        # Edge) and a server both take calls from several threads at once.
        self.client = await asyncio.to_thread(open_client, self.config.qdrant)
        self.reader = make_reader(self.config)
        self.runner = JobRunner(self.ingestor_for, self.metrics, self.settings.max_jobs_queued, self.jobs_store,
                                self.workload, self.pixels, self.settings.shutdown_grace_s)
        self.runner.start()

    async def stop(self) -> None:
        finished = await self.runner.stop() if self.runner is not None else True
        if self.upload_root is not None:
            shutil.rmtree(self.upload_root, ignore_errors=True)  # the job's were deleted by stop() already
        if self.jobs_store is not None:
            self.jobs_store.close()
        if self.instance is not None:
            self.instance.close()
        if not finished:
            return  # a job's thread still uses the client; the process ending ends it
        if self.client is not None:
            self.client.close()

    def limits(self) -> dict:
        """The limits in force, as /readyz shows them (the concurrency admitted, not only the one asked)."""
        settings = self.settings
        return {"max_upload_mb": settings.max_upload_mb, "max_pages": settings.max_pages,
                "max_files": settings.max_files, "max_page_megapixels": settings.max_page_megapixels,
                "max_decode_megapixels": settings.max_decode_megapixels, "concurrency": self.concurrency,
                "queue_size": settings.queue_size, "max_queue_wait_s": settings.max_queue_wait_s,
                "max_jobs_queued": settings.max_jobs_queued, "engine": self.engine,
                "seconds_a_page": round(self.workload.meter.seconds_a_page(), 3)}

    def config_for(self, collection: str | None):
        """The pipeline config for a collection. A job reads its uploads only: the config's own
        ``input.paths`` (a server folder) are not the service's to read."""
        collection = collection or self.config.qdrant.collection
        return self.config.model_copy(update={
            "qdrant": self.config.qdrant.model_copy(update={"collection": collection}),
            # and never prunes: a job's uploads are not the whole collection (input.prune is for the CLI)
            "input": self.config.input.model_copy(update={"paths": [], "prune": False})})

    def ingestor_for(self, collection: str):
        """The collection's ``Ingestor`` (it checks the collection for writing when made: a mode
        mismatch is refused before a job is queued). A few are kept, least recently used out."""
        from ..pipeline.run import Ingestor

        with self._ingestors_lock:  # requests and the job thread ask at once
            ingestor = self.ingestors.pop(collection, None)
            if ingestor is None:
                ingestor = Ingestor(self.config_for(collection), client=self.client)
            self.ingestors[collection] = ingestor  # the most recently used last
            while len(self.ingestors) > INGESTORS_KEPT:
                self.ingestors.popitem(last=False)
            return ingestor


def uses_cpu_engine(config) -> bool:
    """Pages go to the embedded CPU engine: ``ocr.engine: cpu``, or ``auto`` with no server URL."""
    return config.ocr.engine == "cpu" or (config.ocr.engine == "auto" and not config.ocr.url)


def current_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(current_service)]  # a route's parameter: the app's Service
