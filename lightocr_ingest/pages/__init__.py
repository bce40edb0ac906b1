"""Stage 1 - pages: files in, rendered page images out (lazily, one page at a time)."""

from .render import (
    IMAGE_SUFFIXES,
    LONGEST_SIDE,
    PDF_SUFFIXES,
    SUPPORTED_SUFFIXES,
    DocumentSource,
    encode_png,
    iter_file_pages,
    to_rgb,
)
from .selection import parse_page_selection

__all__ = [
    "DocumentSource",
    "iter_file_pages",
    "parse_page_selection",
    "encode_png",
    "to_rgb",
    "LONGEST_SIDE",
    "PDF_SUFFIXES",
    "IMAGE_SUFFIXES",
    "SUPPORTED_SUFFIXES",
]
