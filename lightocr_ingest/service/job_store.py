"""Job records that outlive the process, and the instance lock that tells what a stopped
service left behind: both in the service's state folder.

``GET /v1/jobs/{id}`` answers after a restart: every job is saved when it is queued, as each of
its files ends, as it ends, and every few seconds while its pages come in. A job that was queued
or running in a service instance that is no longer running (a crash, a kill) is recorded as
interrupted at the next start, and that instance's uploads are removed.

Whether an instance still runs is told by a lock it holds on a file of its own
(``instances/<id>.lock``, ``flock``) for as long as it lives, not by a process id: a container
restarts with the same pid, and two containers sharing the folder see each other's pids as
unknown. The kernel lets the lock go when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

FILE_NAME = "jobs.sqlite3"


class Instance:
    """This service instance: an id, and the lock that says it runs while it does."""

    def __init__(self, state: Path):
        self.folder = state / "instances"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.id = uuid.uuid4().hex[:16]
        self._lock = open(self.folder / f"{self.id}.lock", "w")  # noqa: SIM115 - held until close()
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def running(self, instance_id: str) -> bool:
        """Whether the instance ``instance_id`` still runs (holds its lock)."""
        if instance_id == self.id:
            return True
        path = self.folder / f"{instance_id}.lock"
        try:
            handle = open(path)  # noqa: SIM115
        except OSError:
            return False  # never made, or its files were removed: it does not run
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True  # held: that instance runs
            path.unlink(missing_ok=True)  # free: it has gone; its lock file goes too
            return False

    def close(self) -> None:
        (self.folder / f"{self.id}.lock").unlink(missing_ok=True)
        self._lock.close()


class JobStore:
    """Job records by id, as the API shows them, with the instance that runs them."""

    def __init__(self, folder: Path, keep: int, instance: Instance):
        self.keep = keep  # finished jobs kept; the oldest are forgotten first
        self.instance = instance
        self._lock = threading.Lock()  # saved from the job's thread and the event loop
        self._db = sqlite3.connect(folder / FILE_NAME, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, created REAL, "
                         "finished INTEGER, instance TEXT, record TEXT)")
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(jobs)")]
        if "instance" not in columns:  # a store of an early 0.2 build kept a pid there
            self._db.execute("ALTER TABLE jobs ADD COLUMN instance TEXT")

    def save(self, job_id: str, created: float, finished: bool, record: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO jobs (job_id, created, finished, instance, record) "
                             "VALUES (?, ?, ?, ?, ?)",
                             (job_id, created, int(finished), self.instance.id, json.dumps(record)))
            if finished:
                self._db.execute("DELETE FROM jobs WHERE finished = 1 AND job_id NOT IN (SELECT job_id FROM jobs "
                                 "WHERE finished = 1 ORDER BY created DESC LIMIT ?)", (self.keep,))

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def left_unfinished(self) -> list[dict]:
        """Records of jobs queued or running in an instance that no longer runs (to be marked
        interrupted)."""
        with self._lock:
            rows = self._db.execute("SELECT instance, record FROM jobs WHERE finished = 0").fetchall()
        return [json.loads(record) for instance, record in rows if not self.instance.running(instance)]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def remove_left_uploads(uploads: Path, instance: Instance) -> int:
    """Upload folders of instances that no longer run (``<instance id>-*``): a crash leaves them.
    Returns how many went."""
    removed = 0
    if not uploads.is_dir():
        return 0
    for folder in uploads.iterdir():
        owner = folder.name.split("-", 1)[0]
        if folder.is_dir() and not instance.running(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
