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

from .metadata import PageMetadata
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

    def grounded_blocks(self) -> list[dict]:
        """The model's layout blocks of this page (LightOnOCR-3 grounding), in the shape LightOn's
        client writes each page's blocks: label, box as ``x1,y1,x2,y2`` normalised to 0-1000 of
        the page as stored (the image sent, for a page that was not turned), text, and whether
        it continues the block before. Empty for a page read without grounding."""
        if self.layout is None or not self.layout.blocks:
            return []
        facts = PageMetadata.from_metadata(self.metadata)
        width, height = facts.page_width or 1.0, facts.page_height or 1.0
        return [{"label": block.label,
                 "bbox": [round(block.box[0] * 1000 / width), round(block.box[1] * 1000 / height),
                          round(block.box[2] * 1000 / width), round(block.box[3] * 1000 / height)],
                 "text": self.text[block.start:block.end], "continues": block.continues}
                for block in self.layout.blocks]
