"""Ingest jobs: accepted at once (202), run one after another in the background by the same
``Ingestor`` as ``lightocr-ingest ingest``, and polled by id.

A job belongs to the service, not to the request that made it: a client that disconnects
does not stop it. Its uploads live in a folder of their own until the job ends, then go.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger("lightocr_ingest")

FINISHED_JOBS_KEPT = 1000  # finished jobs remembered for polling; the oldest are forgotten first
STOP_WAIT_S = 60.0  # at shutdown, how long the running job may take to finish

JobStatus = Literal["queued", "running", "done", "partial", "failed"]
# A file's: queued, then running (its pages coming in), then the run report's file status as it
# ends ("ok", "partial", "failed", "skipped"), with "ok" shown as "done" once the whole job ends.
JobFileStatus = Literal["queued", "running", "ok", "done", "partial", "failed", "skipped"]


@dataclass
class JobFile:
    file_name: str  # as uploaded (shown, never used as a path)
    path: str  # where the upload was saved
    known_as: str = ""  # its file_path in Qdrant: the upload's name, so a new upload of it replaces the old one
    status: JobFileStatus = "queued"
    pages: int = 0
    error: str | None = None


@dataclass
class Job:
    job_id: str
    collection: str
    folder: Path
    files: list[JobFile]
    status: JobStatus = "queued"
    pages_total: int | None = None
    pages_seen: int = 0
    pages_ingested: int = 0
    pages_failed: int = 0
    problems: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"job_id": self.job_id, "status": self.status, "collection": self.collection,
                "pages_total": self.pages_total, "pages_seen": self.pages_seen,
                "pages_ingested": self.pages_ingested, "pages_failed": self.pages_failed,
                "files": [{"file_name": f.file_name, "status": f.status, "pages": f.pages, "error": f.error}
                          for f in self.files],
                "problems": list(self.problems)}


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobRunner:
    """A queue of jobs and the one task that works through it."""

    def __init__(self, ingestor_for, metrics, max_queued: int):
        self.ingestor_for = ingestor_for  # collection -> Ingestor (shared Qdrant client)
        self.metrics = metrics
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queued)
        self.jobs: dict[str, Job] = {}
        self._task: asyncio.Task | None = None
        self._running: asyncio.Future | None = None  # the running job's thread
        self._current: Job | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._work())

    async def stop(self) -> bool:
        """Stop taking jobs; wait up to ``STOP_WAIT_S`` for the one running (its thread cannot be
        interrupted). Returns False when it is still running: its client must stay open."""
        while not self.queue.empty():
            job = self.queue.get_nowait()
            job.status = "failed"
            job.problems.append("the service stopped before this job ran; submit it again")
            shutil.rmtree(job.folder, ignore_errors=True)
        if self._running is not None:
            done, _ = await asyncio.wait({self._running}, timeout=STOP_WAIT_S)
            if not done:
                log.warning("job %s still running at shutdown; it is abandoned", self._current.job_id)
                self._current.status = "failed"
                self._current.problems.append("the service stopped while this job ran; submit it again")
                return False
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return True

    def writing(self, collection: str) -> bool:
        """A job queued or running stores into ``collection`` (a delete then waits: it could take
        the chunks a job has stored so far, and the job would mark the file complete without them)."""
        return any(j.collection == collection and j.status in ("queued", "running") for j in self.jobs.values())

    def submit(self, job: Job) -> None:
        """Queue ``job`` (``asyncio.QueueFull`` when the queue is full)."""
        self.queue.put_nowait(job)
        self.jobs[job.job_id] = job
        self.metrics.jobs_queued.set(self.queue.qsize())
        finished = [j for j in self.jobs.values() if j.status not in ("queued", "running")]
        for old in sorted(finished, key=lambda j: j.created)[:max(0, len(finished) - FINISHED_JOBS_KEPT)]:
            self.jobs.pop(old.job_id, None)

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            self.metrics.jobs_queued.set(self.queue.qsize())
            self._current = job
            self._running = asyncio.ensure_future(asyncio.to_thread(self._run, job))
            try:
                await asyncio.shield(self._running)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a job's failure is the job's, never the service's
                log.exception("job %s failed", job.job_id)
                job.status = "failed"
                job.problems.append(f"{type(exc).__name__}: {exc}")
                for item in job.files:
                    if item.status in ("queued", "running"):
                        item.status = "failed"
            finally:
                if self._running.done():
                    shutil.rmtree(job.folder, ignore_errors=True)  # uploads go once the job ends
                    self.metrics.jobs.labels(status=job.status).inc()
                    self._running = self._current = None

    def _run(self, job: Job) -> None:
        job.status = "running"
        by_path = {f.known_as: f for f in job.files}  # the reports name files as they are known
        ingestor = self.ingestor_for(job.collection)

        def on_page(file_report, page_report) -> None:
            job.pages_seen += 1
            if page_report.status == "failed":
                job.pages_failed += 1
            else:
                job.pages_ingested += 1
            item = by_path.get(file_report.path)
            if item is not None:
                item.pages += 1
                item.status = "running"
            self.metrics.page(page_report.status, page_report.engine, page_report.cached)

        def on_file(file_report) -> None:
            item = by_path.get(file_report.path)
            if item is not None:
                item.status, item.error = file_report.status, _named(file_report.error, item)

        def on_total(total: int) -> None:
            job.pages_total = total

        report = ingestor.run([f.path for f in job.files], on_page=on_page, on_file=on_file, on_total=on_total,
                              names={f.path: f.known_as for f in job.files})
        for file_report in report.files:
            item = by_path.get(file_report.path)
            if item is None:
                continue
            item.status = "done" if file_report.status == "ok" else file_report.status
            item.error = _named(file_report.error, item)
            if item.error:
                job.problems.append(item.error)
        ingested = any(f.status in ("done", "skipped", "partial") for f in job.files)
        failed = any(f.status in ("failed", "partial") for f in job.files)
        job.status = "failed" if not ingested else "partial" if failed else "done"


def _named(error: str | None, item: JobFile) -> str | None:
    """A report's error with the upload's own name instead of the folder it was saved in."""
    return error.replace(item.path, item.known_as) if error else None


def known_names(uploads: list[str]) -> list[str]:
    """Each upload's name as a file_path, made unique within a job ("a.pdf", "a (2).pdf")."""
    taken: set[str] = set()
    names = []
    for name in uploads:
        base = Path(name.replace("\\", "/")).name or "upload"  # a name, never a path
        stem, suffix, number, candidate = Path(base).stem, Path(base).suffix, 1, base
        while candidate in taken:
            number += 1
            candidate = f"{stem} ({number}){suffix}"
        taken.add(candidate)
        names.append(candidate)
    return names
