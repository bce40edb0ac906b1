"""Input files as bytes: the suffixes read, a file read whole (with its hash), and what its
first bytes say it really is.

Nothing here decodes. A file is checked before any parser sees it, so that a missing,
unreadable or mislabelled file fails at once with a one-line ``InputError`` that says what
it holds; the service checks uploads against the same suffixes and ``sniff``.
"""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO

from ..errors import InputError

PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES

_MAGIC = [  # (prefix, what it is) for telling the user what a mislabelled file really holds
    (b"%PDF-", "a PDF"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive (DOCX, XLSX, ...)"),
    (b"{", "JSON or text"),
    (b"<", "HTML or XML"),
]


def sniff(head: bytes) -> str | None:
    """Name what the first bytes of a file look like, or None when unknown."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    # PDF readers accept a header anywhere in the first 1 KiB, after junk such as a BOM.
    if b"%PDF-" in head[:1024]:
        return "a PDF"
    for prefix, what in _MAGIC:
        if head.startswith(prefix):
            return what
    return None


def _open_binary(path: str, fs: Any | None) -> BinaryIO:
    if fs is not None:
        return fs.open(path, "rb")
    return open(path, "rb")


def _read_source(path: str, fs: Any | None) -> tuple[bytes, str]:
    """Read the whole file and hash it. Files (not bitmaps) are small enough to hold."""
    try:
        with _open_binary(path, fs) as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError(path, "file not found", kind="unreadable") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a file", kind="unreadable") from None
    except PermissionError:
        raise InputError(path, "permission denied", hint="check the file's read permission", kind="unreadable") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror or exc}", kind="unreadable") from None
    return data, hashlib.sha256(data).hexdigest()
