"""Uploads: saved in chunks under the size limit, under a suffix the reader takes, and checked
against the page limit before a job takes them in.

An upload's own name is shown to the user and never used as a path: it is saved under a name
the service chooses, with the suffix from its name when supported, else from its content.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import UploadFile

from ..errors import InputError
from ..pages import DocumentSource
# The one import of the reader's file types in the service.
from ..pages.files import IMAGE_SUFFIXES, PDF_SUFFIXES, SUPPORTED_SUFFIXES, sniff
from .errors import ServiceError, too_large

UPLOAD_CHUNK = 1 << 20  # bytes read from an upload at a time
_SNIFFED_SUFFIX = {"a PDF": ".pdf", "a PNG image": ".png", "a JPEG image": ".jpg", "a TIFF image": ".tif",
                   "a GIF image": ".gif", "a BMP image": ".bmp", "a WebP image": ".webp"}


def upload_suffix(upload: UploadFile, head: bytes) -> str:
    """The suffix to save an upload under: from its name when supported, else from its content.
    The name itself is never used as a path."""
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    found = _SNIFFED_SUFFIX.get(sniff(head) or "")
    if found:
        return found
    raise ServiceError(415, "unsupported_type",
                       f"{upload.filename or 'the upload'}: unsupported file type "
                       f"{suffix or '(no extension)'}{', ' + sniff(head) if sniff(head) else ''}",
                       "upload a PDF or an image (" + ", ".join(sorted(PDF_SUFFIXES | IMAGE_SUFFIXES)) + ")")


async def save_upload(upload: UploadFile, folder: Path, stem: str, limit: int, limit_mb: float) -> Path:
    head = await upload.read(UPLOAD_CHUNK)
    if not head:
        raise ServiceError(400, "empty_file", f"{upload.filename or 'the upload'}: the upload is empty",
                           "upload the file again")
    path = folder / f"{stem}{upload_suffix(upload, head)}"
    size = 0
    with open(path, "wb") as out:
        while head:
            size += len(head)
            if size > limit:
                raise too_large(limit_mb)
            out.write(head)
            head = await upload.read(UPLOAD_CHUNK)
    return path


def check_page_count(path: Path, name: str, max_pages: int) -> None:
    """413 for a file over the page limit; a file that cannot be opened is the job's to report."""
    try:
        with DocumentSource(path) as source:
            pages = source.source.page_count
    except InputError:
        return
    if pages > max_pages:
        raise ServiceError(413, "too_many_pages", f"{name}: {pages} pages, over the limit of {max_pages}",
                           "split the file, or start the service with a larger --max-pages")
