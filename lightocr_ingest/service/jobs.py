"""Ingest jobs: accepted at once (202), run one after another in the background by the same
``Ingestor`` as ``lightocr-ingest ingest``, and polled by id.

A job belongs to the service, not to the request that made it: a client that disconnects
does not stop it. Its uploads live in a folder of their own until the job ends, then go. Its
record is saved (``job_store``) so that its id still answers after a restart. At shutdown the
running job has ``shutdown_grace_s`` to finish; then it stops at its next page and is recorded
as interrupted: what it stored stays, and the same files submitted again resume it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .job_store import JobStore

log = logging.getLogger("lightocr_ingest")

FINISHED_JOBS_KEPT = 1000  # finished jobs remembered for polling; the oldest are forgotten first
STOP_AFTER_S = 15.0  # after the grace period, how long the job may take to reach its next page and stop
PROGRESS_SAVED_EVERY_S = 2.0  # a running job's record is saved at most this often between files

JobStatus = Literal["queued", "running", "done", "partial", "failed", "interrupted"]
FINISHED: tuple[JobStatus, ...] = ("done", "partial", "failed", "interrupted")
# A file's: queued, then running (its pages coming in), then the run report's file status as it
# ends ("ok", "partial", "failed", "skipped"), with "ok" shown as "done" once the whole job ends.
JobFileStatus = Literal["queued", "running", "ok", "done", "partial", "failed", "skipped", "interrupted"]

INTERRUPTED_QUEUED = "the service stopped before this job ran; submit the files again"
INTERRUPTED_RUNNING = ("the service stopped while this job ran: the files it finished are stored; submit the "
                       "same files again to finish (finished files are skipped)")


class JobInterrupted(Exception):
    """Raised in a job's thread at its next page once the service stops it."""


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
    pages_expected: int = 0  # counted when the uploads were checked: the work it brings
    peak_pixels: int = 0  # its largest page's decoded pixels: what it holds of the pixel budget

    def to_dict(self) -> dict:
        return {"job_id": self.job_id, "status": self.status, "collection": self.collection,
                "pages_total": self.pages_total, "pages_seen": self.pages_seen,
                "pages_ingested": self.pages_ingested, "pages_failed": self.pages_failed,
                "files": [{"file_name": f.file_name, "status": f.status, "pages": f.pages, "error": f.error}
                          for f in self.files],
                "problems": list(self.problems), "created": self.created}

    def interrupt(self, why: str) -> None:
        self.status = "interrupted"
        self.problems.append(why)
        for item in self.files:
            if item.status in ("queued", "running"):
                item.status = "interrupted"


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobRunner:
    """A queue of jobs and the one task that works through it."""

    def __init__(self, ingestor_for, metrics, max_queued: int, store: JobStore, workload, pixels,
                 grace_s: float):
        self.ingestor_for = ingestor_for  # collection -> Ingestor (shared Qdrant client)
        self.metrics = metrics
        self.store, self.workload, self.pixels, self.grace_s = store, workload, pixels, grace_s
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queued)
        self.jobs: dict[str, Job] = {}  # queued and running; finished ones are read back from the store
        self._task: asyncio.Task | None = None
        self._running: asyncio.Future | None = None  # the running job's thread
        self._current: Job | None = None
        self._stop = threading.Event()  # seen by the running job at its next page

    def start(self) -> None:
        for record in self.store.left_unfinished():  # a crash or a kill left them
            ran = record.get("status") == "running"
            record["status"] = "interrupted"
            record["problems"] = [*record.get("problems", []), INTERRUPTED_RUNNING if ran else INTERRUPTED_QUEUED]
            for item in record.get("files", []):
                if item.get("status") in ("queued", "running"):
                    item["status"] = "interrupted"
            self.store.save(record["job_id"], record.get("created", 0.0), True, record)
        self._task = asyncio.create_task(self._work())

    def get(self, job_id: str) -> dict | None:
        job = self.jobs.get(job_id)
        return job.to_dict() if job is not None else self.store.get(job_id)

    def _save(self, job: Job) -> None:
        self.store.save(job.job_id, job.created, job.status in FINISHED, job.to_dict())

    async def stop(self) -> bool:
        """Stop taking jobs: queued ones are recorded as interrupted; the running one has the
        grace period to finish, then is told to stop at its next page. Uploads go either way.
        Returns False when its thread is still running: its client must stay open."""
        while not self.queue.empty():
            job = self.queue.get_nowait()
            job.interrupt(INTERRUPTED_QUEUED)
            self._finish(job)
        if self._task is not None:
            self._task.cancel()  # _work ends at its next await: it takes no further job
        job = self._current
        thread_ended = True
        if self._running is not None and job is not None:
            done, _ = await asyncio.wait({self._running}, timeout=self.grace_s)
            if not done:
                log.warning("job %s still running after %g s: stopping it at its next page", job.job_id,
                            self.grace_s)
                self._stop.set()
                done, _ = await asyncio.wait({self._running}, timeout=STOP_AFTER_S)
                thread_ended = bool(done)
            if done:
                _settle(job, self._running)
            if job.status not in FINISHED:  # its thread did not reach a page boundary in time
                job.interrupt(INTERRUPTED_RUNNING)
        elif job is not None and job.status not in FINISHED:  # it was waiting for room to decode
            job.interrupt(INTERRUPTED_QUEUED)
        if job is not None and job.job_id in self.jobs:
            self._finish(job)
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return thread_ended

    def _finish(self, job: Job) -> None:
        """A job has ended (or been interrupted): its uploads go, its record is saved as final."""
        shutil.rmtree(job.folder, ignore_errors=True)
        self._save(job)
        self.jobs.pop(job.job_id, None)
        self.metrics.jobs.labels(status=job.status).inc()

    def writing(self, collection: str) -> bool:
        """A job queued or running stores into ``collection`` (a delete then waits: it could take
        the chunks a job has stored so far, and the job would mark the file complete without them)."""
        return any(j.collection == collection and j.status in ("queued", "running") for j in self.jobs.values())

    def submit(self, job: Job) -> None:
        """Queue ``job`` (``asyncio.QueueFull`` when the queue is full). Its record is saved first:
        a job that cannot be recorded is not queued."""
        if self.queue.full():
            raise asyncio.QueueFull
        self._save(job)
        self.queue.put_nowait(job)
        self.jobs[job.job_id] = job
        self.metrics.jobs_queued.set(self.queue.qsize())

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._work_on(job)
            except asyncio.CancelledError:
                raise  # the service stops: stop() settles the job
            except Exception as exc:  # noqa: BLE001 - the runner goes on with the next job whatever this one did
                log.exception("job %s could not be run or recorded", job.job_id)
                if job.status not in FINISHED:
                    job.status = "failed"
                    job.problems.append(f"the service could not run or record this job: {type(exc).__name__}: {exc}")
                try:
                    self._finish(job)
                except Exception:  # noqa: BLE001 - recorded as failed in memory at least
                    log.exception("job %s: its record could not be saved", job.job_id)
                    self.jobs.pop(job.job_id, None)
                self._running = self._current = None

    async def _work_on(self, job: Job) -> None:
        self.metrics.jobs_queued.set(self.queue.qsize())
        self._current = job
        await self.pixels.take(job.peak_pixels)
        try:
            self._running = _in_daemon_thread(self._run, job)
            try:
                await asyncio.shield(self._running)
            except asyncio.CancelledError:
                raise
            except BaseException:  # noqa: BLE001 - settled below
                pass
        finally:
            await self.pixels.give_back(job.peak_pixels)
        _settle(job, self._running)
        self._finish(job)
        self._running = self._current = None

    def _run(self, job: Job) -> None:
        job.status = "running"
        self._save(job)
        by_path = {f.known_as: f for f in job.files}  # the reports name files as they are known
        ingestor = self.ingestor_for(job.collection)
        saved_at = time.monotonic()

        with self.workload.admitted(job.pages_expected, job=True) as ticket:
            def on_page(file_report, page_report) -> None:
                nonlocal saved_at
                ticket.page_done(cached=page_report.cached)
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
                if time.monotonic() - saved_at > PROGRESS_SAVED_EVERY_S:
                    self._save(job)
                    saved_at = time.monotonic()
                if self._stop.is_set():
                    raise JobInterrupted  # the run stops here: files finished are stored, the rest resume

            def on_file(file_report) -> None:
                item = by_path.get(file_report.path)
                if item is not None:
                    item.status, item.error = file_report.status, _named(file_report.error, item)
                self._save(job)

            def on_total(total: int) -> None:
                job.pages_total = total

            report = ingestor.run([f.path for f in job.files], on_page=on_page, on_file=on_file,
                                  on_total=on_total, names={f.path: f.known_as for f in job.files})
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


def _in_daemon_thread(function, *args) -> asyncio.Future:
    """``function(*args)`` in a daemon thread of its own, as a future of this loop. Not the loop's
    default executor: a job stuck on a page at shutdown would hold the process's exit there."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result=None, error=None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            try:
                loop.call_soon_threadsafe(settle, None, exc)
            except RuntimeError:
                pass  # the loop has closed: the process is ending
        else:
            try:
                loop.call_soon_threadsafe(settle, result, None)
            except RuntimeError:
                pass

    threading.Thread(target=target, name="lightocr-job", daemon=True).start()
    return future


def _settle(job: Job, thread: asyncio.Future) -> None:
    """A job's status once its thread has ended: as its run left it, interrupted, or failed with
    the error (a job's failure is the job's, never the service's)."""
    error = thread.exception()
    if isinstance(error, JobInterrupted):
        job.interrupt(INTERRUPTED_RUNNING)
    elif error is not None:
        log.error("job %s failed", job.job_id, exc_info=error)
        job.status = "failed"
        job.problems.append(f"{type(error).__name__}: {error}")
        for item in job.files:
            if item.status in ("queued", "running"):
                item.status = "failed"


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
