"""What the routes share, made once per app: the reader, the Qdrant client, the ingestors, the job
runner, the OCR slots and the uploads folder.

It lives on ``app.state.service``; a route asks for it with a ``ServiceDep`` parameter. Heavy
things (the Qdrant client, the reader, the job runner) are made when the app starts, in its
event loop, and closed when it stops.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from .jobs import JobRunner
from .metrics import Metrics
from .settings import ServiceSettings
from .slots import OcrSlots

COLLECTION_NAME = r"^[A-Za-z0-9_\-]+$"  # the collection names a request may give


class Service:
    """What the routes share: the reader, the Qdrant client, the ingestors, the job runner, limits."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.config = settings.config
        self.metrics = Metrics()
        self.client = None
        self.reader = None
        self.ingestors: dict = {}
        self._ingestors_lock = threading.Lock()
        self.runner: JobRunner | None = None
        self.upload_root = Path(tempfile.mkdtemp(prefix="lightocr-uploads-"))
        self.ocr_slots = OcrSlots(settings.concurrency, settings.queue_size, self.metrics.ocr_queue)

    async def start(self) -> None:
        from ..pipeline.build import make_reader
        from ..store import open_client

        # Queries and the job thread share it, with no lock of ours: the embedded store (Qdrant
        # Edge) and a server both take calls from several threads at once.
        self.client = await asyncio.to_thread(open_client, self.config.qdrant)
        self.reader = make_reader(self.config)
        self.runner = JobRunner(self.ingestor_for, self.metrics, self.settings.max_jobs_queued)
        self.runner.start()

    async def stop(self) -> None:
        finished = await self.runner.stop() if self.runner is not None else True
        if not finished:
            return  # a job's thread still uses the client and its uploads; the process ending ends it
        if self.client is not None:
            self.client.close()
        shutil.rmtree(self.upload_root, ignore_errors=True)

    def config_for(self, collection: str | None):
        """The pipeline config for a collection. A job reads its uploads only: the config's own
        ``input.paths`` (a server folder) are not the service's to read."""
        collection = collection or self.config.qdrant.collection
        return self.config.model_copy(update={
            "qdrant": self.config.qdrant.model_copy(update={"collection": collection}),
            # and never prunes: a job's uploads are not the whole collection (input.prune is for the CLI)
            "input": self.config.input.model_copy(update={"paths": [], "prune": False})})

    def ingestor_for(self, collection: str):
        from ..pipeline.run import Ingestor

        with self._ingestors_lock:  # requests and the job thread ask at once
            if collection not in self.ingestors:
                self.ingestors[collection] = Ingestor(self.config_for(collection), client=self.client)
            return self.ingestors[collection]


def current_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(current_service)]  # a route's parameter: the app's Service
