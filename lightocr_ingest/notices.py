"""Warnings a person should read once: the same one is said once per process.

A run over 10,000 files, a service answering requests all day, or a re-run that reads nothing
would otherwise repeat the same advice (no OCR server, the CPU engine is slow, a collection
searched dense) until nobody reads it. Each warning is a line or two that names the fix.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("lightocr_ingest")

_said: set[str] = set()
_lock = threading.Lock()


def warn_once(message: str, key: str | None = None) -> bool:
    """Log ``message`` as a warning unless this process said it (or one with the same ``key``)
    already; True when it was said now."""
    with _lock:
        if (key or message) in _said:
            return False
        _said.add(key or message)
    log.warning("%s", message)
    return True


def forget_warnings() -> None:
    """Say every warning again (tests: each behaves as a new process would)."""
    with _lock:
        _said.clear()
