"""``PageDocument``: a LlamaIndex ``Document`` for one page that carries typed records beside it.

The page's Markdown is the text; its metadata holds only what describes the page (file,
page, size, which engine read it), so the document's hash, which LlamaIndex's ingestion
cache and docstore compare, changes only when the page does. What the chunker needs to place
text on the page (``PageLayout``: the text layer's words, the CPU engine's lines, figure
boxes) and how the page was read this time (``OcrRun``: attempts, latency, cache) travel as
typed fields, left out of serialisation and of the hash.
"""

from __future__ import annotations

from llama_index.core.schema import Document
from pydantic import ConfigDict, Field

from .records import OcrRun, PageLayout


class PageDocument(Document):
    """One page read by ``LightOnOCRReader``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    layout: PageLayout | None = Field(default=None, exclude=True, repr=False,
                                      description="Where things are on the page, in page points.")
    ocr: OcrRun = Field(default_factory=OcrRun, exclude=True, repr=False,
                        description="How the page was read in this run: not part of the page's identity.")

    @classmethod
    def class_name(cls) -> str:
        return "PageDocument"
