"""Job records that outlive the process: a small SQLite file in the service's state folder.

``GET /v1/jobs/{id}`` answers after a restart: every job is saved when it is queued, as each of
its files ends, as it ends, and every few seconds while its pages come in. A job that was queued
or running in a process that is no longer alive (a crash, a kill) is recorded as interrupted at
the next start: what it stored stays, and submitting its files again resumes it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

FILE_NAME = "jobs.sqlite3"


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class JobStore:
    """Job records by id, as the API shows them, with the process that runs them."""

    def __init__(self, folder: Path, keep: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep  # finished jobs kept; the oldest are forgotten first
        self._lock = threading.Lock()  # saved from the job's thread and the event loop
        self._db = sqlite3.connect(folder / FILE_NAME, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, created REAL, "
                         "finished INTEGER, pid INTEGER, record TEXT)")

    def save(self, job_id: str, created: float, finished: bool, record: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?)",
                             (job_id, created, int(finished), os.getpid(), json.dumps(record)))
            if finished:
                self._db.execute("DELETE FROM jobs WHERE finished = 1 AND job_id NOT IN (SELECT job_id FROM jobs "
                                 "WHERE finished = 1 ORDER BY created DESC LIMIT ?)", (self.keep,))

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def unfinished_of_dead_processes(self) -> list[dict]:
        """Records of jobs queued or running in a process that has gone (to be marked interrupted)."""
        with self._lock:
            rows = self._db.execute("SELECT pid, record FROM jobs WHERE finished = 0").fetchall()
        return [json.loads(record) for pid, record in rows if not process_alive(pid)]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def remove_left_uploads(uploads: Path) -> int:
    """Upload folders of service processes that are no longer alive (``<pid>-*``): a crash
    leaves them. Returns how many went."""
    import shutil

    removed = 0
    if not uploads.is_dir():
        return 0
    for folder in uploads.iterdir():
        pid = folder.name.split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
