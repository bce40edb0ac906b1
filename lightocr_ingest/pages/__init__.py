"""Stage 1 - pages: files in, rendered page images out (lazily, one page at a time)."""

from .files import IMAGE_SUFFIXES, PDF_SUFFIXES, SUPPORTED_SUFFIXES
from .pixels import to_rgb
from .png import encode_png
from .selection import parse_page_selection
from .source import LONGEST_SIDE, DocumentSource, iter_file_pages

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
