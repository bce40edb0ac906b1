"""Uploads: saved in chunks under the size limit, under a suffix the reader takes, and checked
against the request's limits (pages, decoded pixels a page) before anything reads them.

An upload's own name is shown to the user and never used as a path: it is saved under a name
the service chooses, with the suffix from its name when supported, else from its content.
"""

from __future__ import annotations

from dataclasses import dataclass
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
                raise too_large(limit_mb, upload.filename or "the upload")
            out.write(head)
            head = await upload.read(UPLOAD_CHUNK)
    return path


# PDF pages are rendered at the model's size: 1540 px on the long side, 2048 for LightOnOCR-3's
# Qwen-based checkpoints; counted at the larger.
RENDERED_SIDE_AT_MOST = 2048


@dataclass(frozen=True)
class UploadCost:
    """What reading an upload takes: its pages, and its largest page's decoded pixels."""

    pages: int
    peak_pixels: int


def check_upload(path: Path, name: str, settings, pages: str | None = None,
                 source: DocumentSource | None = None) -> UploadCost:
    """The upload's cost, or the 413 that says which limit it is over: pages (``max_pages``,
    of the selection when one is given) or one page's decoded pixels (``max_page_megapixels``).
    A file that cannot be opened costs nothing here: the reader reports why (its own error)."""
    opened = source
    try:
        if opened is None:
            opened = DocumentSource(path, longest_side=RENDERED_SIDE_AT_MOST)
        count = len(opened.page_numbers(pages)) if pages else opened.source.page_count
        page, pixels = (1, RENDERED_SIDE_AT_MOST ** 2) if opened.source.kind == "pdf" else \
            opened.largest_page_pixels()
    except InputError:
        return UploadCost(0, 0)
    finally:
        if source is None and opened is not None:
            opened.close()
    if count > settings.max_pages:
        raise ServiceError(413, "too_many_pages", f"{name}: {count} pages, over the limit of {settings.max_pages} "
                                                  "pages a request",
                           "send a page selection (pages=1-100), split the file, or start the service with a "
                           "larger --max-pages")
    limit = settings.max_page_megapixels * 1e6
    if pixels > limit:
        where = name if opened.source.page_count == 1 else f"{name}, page {page}"
        raise ServiceError(413, "too_many_pixels",
                           f"{where}: {pixels / 1e6:.0f} megapixels to decode, over the limit of "
                           f"{settings.max_page_megapixels:g} a page",
                           "downscale it (a 300 dpi A4 scan is 8.7 megapixels), or start the service with a "
                           "larger --max-page-megapixels")
    return UploadCost(count, pixels)


def request_pages_over(total: int, limit: int, files: int) -> ServiceError:
    """413 for an ingest request whose files together bring more pages than a request may."""
    return ServiceError(413, "too_many_pages",
                        f"the request's files bring {total} pages (counting the first {files}), over the limit "
                        f"of {limit} pages a request",
                        "send the files in several requests, or start the service with a larger --max-pages")
