"""lightocr-ingest: scanned and born-digital documents -> LightOnOCR Markdown -> chunks -> Qdrant.

The stages, in the order data flows through them::

    pages (render) -> ocr (vLLM client | CPU engine, post-processing) -> chunking
    -> embedding -> store (Qdrant) -> pipeline (orchestration, reports) -> cli
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_members
from .errors import ConfigError, InputError, LightOCRError, OCRServerError

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, ``__getattr__`` below
    from .chunking import MarkdownBlockNodeParser
    from .reader import LightOnOCRReader, page_document_id

# Imported on first use (PEP 562): the reader and the chunker pull in LlamaIndex, the OpenAI
# client and Qdrant's models, which a process that only renders pages (a Ray render worker)
# does not need; importing them cost it about 2 core-seconds.
_LAZY = {"LightOnOCRReader": ".reader", "page_document_id": ".reader", "MarkdownBlockNodeParser": ".chunking"}

from ._version import __version__  # noqa: E402,F401  (kept equal to pyproject.toml's version)

__all__ = [
    "ConfigError",
    "InputError",
    "LightOCRError",
    "LightOnOCRReader",
    "MarkdownBlockNodeParser",
    "OCRServerError",
    "page_document_id",
]


__getattr__, __dir__ = lazy_members(__name__, _LAZY, __all__)
