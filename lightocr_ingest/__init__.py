"""lightocr-ingest: scanned and born-digital documents -> LightOnOCR Markdown -> chunks -> Qdrant.

The stages, in the order data flows through them::

    pages (render) -> ocr (vLLM client | CPU engine, post-processing) -> chunking
    -> embedding -> store (Qdrant) -> pipeline (orchestration, reports) -> cli
"""

import importlib
from typing import TYPE_CHECKING

from .errors import ConfigError, InputError, LightOCRError, OCRServerError

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, ``__getattr__`` below
    from .chunking import MarkdownBlockNodeParser
    from .reader import LightOnOCRReader, page_document_id

# Imported on first use (PEP 562): the reader and the chunker pull in LlamaIndex, the OpenAI
# client and Qdrant's models, which a process that only renders pages (a Ray render worker)
# does not need; importing them cost it about 2 core-seconds.
_LAZY = {"LightOnOCRReader": ".reader", "page_document_id": ".reader", "MarkdownBlockNodeParser": ".chunking"}

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


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    else:  # a submodule (``lightocr_ingest.reader``), as an eager import used to leave it
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the submodule is there, but something it imports is missing
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
