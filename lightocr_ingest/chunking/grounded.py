"""What the chunker takes from a page the model grounded (LightOnOCR-3): each Markdown block's
label, which blocks are page furniture, and where a chunk's text lies, from the model's boxes.

A grounded page's Markdown is the model's blocks joined by blank lines, and every
``LayoutBlock`` knows its span of it, so a Markdown block (``blocks.Block``) belongs to the
layout block its first character lies in. Pure: no I/O, no LlamaIndex.

Where a chunk holds only part of a block (a long paragraph cut at a sentence, a table cut
between rows), its box is the block's box cut across: the share of the block's characters
before the part's start and up to its end gives the top and bottom of the cut. Text runs top
to bottom within a block and lines of one block are of about equal length, so the share of
characters is the share of lines, within a line's height (``test_grounded_chunks``: a block cut
in two gives two boxes that tile the block's box).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ..ocr.grounding import FURNITURE_LABELS
from ..records import LayoutBlock

KEEP_WHOLE_LABELS = frozenset({"formula", "code"})  # never cut (a table's or a chart's rows may part, header repeated)
FIGURE_LABELS = frozenset({"table", "chart", "image"})  # what a caption belongs with


@dataclass(frozen=True)
class PlacedPart:
    """A layout block (or the part of it a chunk holds) as a chunk's payload shows it."""

    page: int
    label: str
    bbox: tuple[float, float, float, float]

    def to_payload(self) -> dict:
        return {"page": self.page, "label": self.label, "bbox": [round(v, 1) for v in self.bbox]}


class GroundedPage:
    """One page's layout blocks, looked up by where a Markdown block starts."""

    def __init__(self, page: int, blocks: tuple[LayoutBlock, ...]):
        self.page = page
        self.blocks = blocks
        self._starts = [block.start for block in blocks]
        images = [i for i, block in enumerate(blocks) if block.label == "image"]
        self._image_ref = {index: f"image_{n}" for n, index in enumerate(images, 1)}  # as the OCR client named them

    def index_at(self, offset: int) -> int | None:
        """The layout block whose span holds ``offset`` (or starts right after it: the blank
        line between blocks belongs to the next)."""
        at = bisect.bisect_right(self._starts, offset) - 1
        if at >= 0 and offset < max(self.blocks[at].end, self.blocks[at].start + 1):
            return at
        if at + 1 < len(self.blocks):
            return at + 1
        return at if at >= 0 else None

    def block_at(self, offset: int) -> LayoutBlock | None:
        index = self.index_at(offset)
        return None if index is None else self.blocks[index]

    def label_at(self, offset: int) -> str | None:
        block = self.block_at(offset)
        return block.label if block else None

    def image_ref_at(self, offset: int) -> str | None:
        """``image_N``: the figure an image block became (``ocr.vllm``), for the chunk's figures."""
        index = self.index_at(offset)
        return self._image_ref.get(index) if index is not None else None

    def parts(self, spans: list[tuple[int, int]]) -> list[PlacedPart]:
        """The boxes of the blocks a chunk's spans of this page touch, each cut to the share of
        the block the spans hold, in reading order, one per block."""
        held: dict[int, tuple[int, int]] = {}
        for start, end in spans:
            for index, block in enumerate(self.blocks):
                low, high = max(start, block.start), min(end, block.end)
                if high > low or (block.start == block.end and start <= block.start < end):
                    first, last = held.get(index, (low, high))
                    held[index] = (min(first, low), max(last, high))
        return [PlacedPart(self.page, self.blocks[i].label, cut_box(self.blocks[i], *held[i])) for i in sorted(held)]


def cut_box(block: LayoutBlock, start: int, end: int) -> tuple[float, float, float, float]:
    """The part of ``block``'s box that holds its characters ``start:end`` (page Markdown
    offsets): full width, cut across by the share of characters before and up to them."""
    x0, y0, x1, y1 = block.box
    length = block.end - block.start
    if length <= 0 or (start <= block.start and end >= block.end):
        return block.box
    top = (max(start, block.start) - block.start) / length
    bottom = (min(end, block.end) - block.start) / length
    height = y1 - y0
    return (x0, round(y0 + top * height, 2), x1, round(y0 + bottom * height, 2))


def is_furniture_at(page: GroundedPage):
    """offset -> whether the model labelled the block there header, footer or page number."""
    return lambda offset: page.label_at(offset) in FURNITURE_LABELS


def furniture_blocks(page: GroundedPage, starts: list[int]) -> set[int]:
    """Indexes (into ``starts``, the page's Markdown blocks) of blocks the model labelled
    header, footer or page number."""
    return {i for i, start in enumerate(starts) if page.label_at(start) in FURNITURE_LABELS}
