"""lightocr-ingest: scanned and born-digital documents -> LightOnOCR Markdown -> chunks -> Qdrant.

The stages, in the order data flows through them::

    pages (render) -> ocr (vLLM client | CPU engine, post-processing) -> chunking
    -> embedding -> store (Qdrant) -> pipeline (orchestration, reports) -> cli
"""

from .chunking import MarkdownBlockNodeParser
from .errors import ConfigError, InputError, LightOCRError, OCRServerError
from .reader import LightOnOCRReader, page_document_id

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InputError",
    "LightOCRError",
    "LightOnOCRReader",
    "MarkdownBlockNodeParser",
    "OCRServerError",
    "page_document_id",
]
