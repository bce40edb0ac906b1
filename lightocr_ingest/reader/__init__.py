"""Stage 3 - reader: ``LightOnOCRReader``, the LlamaIndex reader that turns files into one
Document per page (pages rendered ahead, read by an OCR engine shared per event loop, placed
on the page when asked)."""

from .base import LightOnOCRReader
from .documents import page_document_id

__all__ = ["LightOnOCRReader", "page_document_id"]
