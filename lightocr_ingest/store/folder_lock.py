"""One process at a time in an embedded store's folder: an exclusive ``flock`` on its ``.lock``
file, which says who holds it. The kernel lets go when the process ends, however it ends, so
a killed run leaves no stale lock. (qdrant-client's local mode locked the same file, so a
version before 0.2.0 and this one do not open a folder at once either.)"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import LightOCRError

LOCK_FILE = ".lock"


class FolderInUse(LightOCRError, RuntimeError):
    """Another process has the embedded store's folder open (the CLI prints it as an error)."""


def hold_folder(path: Path):
    """An exclusive lock on ``path/.lock`` for this process's life with the folder, with our pid
    in it; ``FolderInUse`` with the holder's pid and command when another has it."""
    handle = open(path / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FolderInUse(f"the embedded Qdrant store {path} is open in {holder}; one process at a time may "
                          f"open it. Stop that process (or query through its service: lightocr-ingest serve), "
                          f"or use a Qdrant server (--qdrant-url) for several processes") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} ({_command()})")
    handle.flush()
    return handle


def release_folder(handle) -> None:
    try:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _command() -> str:
    try:
        return Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "python"
