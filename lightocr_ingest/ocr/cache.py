"""The OCR cache on disk: a page read once is never sent to the server again.

Keyed by the page image's pixel hash, the engine's model and the sampling settings, so:
- re-ingesting with other chunking or embedding settings sends no OCR request at all;
- a run killed half-way resumes without re-reading the pages it had finished;
- the same page image in several files (a cover sheet, a stamped form) is read once.

Only the model's own answers are kept (``ok``, ``retried``); fallbacks and failures are not,
so the next run asks the server again for exactly those pages. SQLite in WAL mode: one file,
safe when the process is killed mid-write, shared by worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, replace

from ..defaults import USER_CACHE
from ..records import Figure, LayoutBlock, OcrResult, TextBox

CACHE_FILE = "ocr-cache.sqlite"
CACHE_DIR_ENV = "LIGHTOCR_CACHE_DIR"
FORMAT = 3  # bump when what is stored changes (its shape, or post-processing such as box parsing): old entries are then missed
CACHEABLE = {"ok", "retried"}


def resolve_cache_dir(setting: str | os.PathLike | None) -> str | None:
    """The absolute OCR cache folder a setting names; None: no cache.

    ``"auto"`` is the user's cache folder, the same whichever folder a command runs from (so
    running it from elsewhere reads no page again): ``$LIGHTOCR_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/lightocr-ingest/ocr``, else ``~/.cache/lightocr-ingest/ocr``. One cache
    serves every collection: its keys are the page's pixels, the model and the sampling.
    Any other setting is a folder (``~`` expanded, relative to the current folder).
    """
    if setting is None:
        return None
    if str(setting) == USER_CACHE:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join("~", ".cache")  # the XDG spec ignores relative ones
        folder = os.environ.get(CACHE_DIR_ENV) or os.path.join(base, "lightocr-ingest", "ocr")
    else:
        folder = str(setting)
    return os.path.abspath(os.path.expanduser(folder))


def cache_key(pixels_sha256: str, engine: str, model: str, sampling: dict) -> str:
    identity = {"format": FORMAT, "pixels": pixels_sha256, "engine": engine, "model": model, "sampling": sampling}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _encode(result: OcrResult) -> str:
    data = asdict(result)
    data.pop("cached")
    return json.dumps(data, ensure_ascii=False)


def _decode(text: str) -> OcrResult:
    data = json.loads(text)
    data["figures"] = tuple(Figure(ref=f["ref"], box=tuple(f["box"]) if f["box"] else None) for f in data["figures"])
    data["text_boxes"] = tuple(TextBox(text=b["text"], box=tuple(b["box"]), score=b["score"], stroke=b.get("stroke", 0.0))
                               for b in data["text_boxes"])
    data["blocks"] = tuple(LayoutBlock(b["label"], tuple(b["box"]), b["start"], b["end"], b["continues"])
                           for b in data.get("blocks", ()))  # answers cached before grounding have none
    return OcrResult(**data, cached=True)


class OcrCache:
    """``get``/``put`` OCR results by key; thread-safe; one SQLite file in ``folder``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = os.path.expanduser(str(folder))
        os.makedirs(self.folder, exist_ok=True)
        self.path = os.path.join(self.folder, CACHE_FILE)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed answer survives the process being killed (it is in the log
        # file); only a power cut or an OS crash can lose the last commits, never corrupt the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS ocr (key TEXT PRIMARY KEY, result TEXT NOT NULL, "
                         "created REAL NOT NULL)")

    def get(self, key: str) -> OcrResult | None:
        with self._lock:
            row = self._db.execute("SELECT result FROM ocr WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return _decode(row[0])
        except (ValueError, KeyError, TypeError):
            return None  # an entry from another version: read the page again

    def put(self, key: str, result: OcrResult) -> None:
        if result.status not in CACHEABLE:
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO ocr (key, result, created) VALUES (?, ?, ?)",
                             (key, _encode(replace(result, cached=False)), time.time()))

    def prune(self, older_than_s: float | None = None, max_bytes: int | None = None) -> tuple[int, int, int]:
        """Drop answers stored more than ``older_than_s`` seconds ago, then those stored longest
        ago (first in, not least used: a hit does not refresh them) until the answers take at
        most ``max_bytes``; the file shrinks to match (VACUUM: it needs the cache to itself, and
        free disk about its size). Returns (entries removed,
        entries left, bytes of answers left). A page dropped here is read again by the model
        if a run meets it again; nothing in a collection depends on the cache."""
        with self._lock:
            before = self._db.execute("SELECT COUNT(*) FROM ocr").fetchone()[0]
            if older_than_s is not None:
                self._db.execute("DELETE FROM ocr WHERE created < ?", (time.time() - older_than_s,))
            if max_bytes is not None:
                kept, cutoff = 0, None
                for created, size in self._db.execute("SELECT created, LENGTH(CAST(result AS BLOB)) FROM ocr "
                                                      "ORDER BY created DESC"):
                    if kept + size > max_bytes:
                        cutoff = created
                        break
                    kept += size
                if cutoff is not None:
                    self._db.execute("DELETE FROM ocr WHERE created <= ?", (cutoff,))
            left, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(result AS BLOB))), 0) "
                                          "FROM ocr").fetchone()
            if left < before:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("VACUUM")  # the freed pages back to the file system
        return before - left, left, size

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM ocr").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
