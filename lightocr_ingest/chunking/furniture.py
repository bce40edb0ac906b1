"""Page furniture: running headers, footers and page numbers that repeat across pages.

The model transcribes them (it is trained for full-page transcription), and left in chunks
they pollute retrieval: every chunk of a journal would match the journal's name. A block is
furniture when it sits at the top or bottom edge of a page and either looks like a page
number, or repeats (digits ignored: "Page 3" and "Page 4" match) at the same edge on at
least half the pages of the file, and on at least two pages. Headings repeat only when
their text is identical.
"""

from __future__ import annotations

import re
from collections import Counter

from .blocks import Block

EDGE_BLOCKS = 2  # blocks counted as the top (or bottom) edge of a page
MAX_FURNITURE_CHARS = 160  # running headers are one short line
REPEAT_SHARE = 0.5  # share of the file's pages a header must repeat on
_PAGE_NUMBER = re.compile(
    r"(?:page|p\.|seite|pagina|página)?\s*[-–—]?\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*[-–—]?"
    r"(?:\s*(?:/|of|sur|von|de)\s*\d{1,4})?", re.I)


def _key(block: Block) -> str:
    """Compare running lines with digits ignored ("Page 3" = "Page 4"); headings exactly,
    since "3.1 Setup" and "4.1 Setup" are different sections, not one running title."""
    text = re.sub(r"<[^>]+>|[#*_`]", "", block.text)
    if block.kind != "heading":
        text = re.sub(r"\d+", "#", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def _edge_positions(blocks: list[Block]) -> list[tuple[int, str]]:
    count = len(blocks)
    top = [(i, "top") for i in range(min(EDGE_BLOCKS, count))]
    bottom = [(i, "bottom") for i in range(max(0, count - EDGE_BLOCKS), count) if i >= EDGE_BLOCKS]
    return [(i, edge) for i, edge in top + bottom
            if blocks[i].kind in ("paragraph", "heading") and len(blocks[i].text) <= MAX_FURNITURE_CHARS
            and "\n" not in blocks[i].text.strip()]


def is_page_number(block: Block) -> bool:
    return bool(_PAGE_NUMBER.fullmatch(re.sub(r"[#*_]", "", block.text).strip()))


def find_furniture(pages: list[list[Block]]) -> set[tuple[int, int]]:
    """Return ``(page index, block index)`` of every furniture block of one file."""
    seen: Counter[tuple[str, str]] = Counter()
    for blocks in pages:
        seen.update({(edge, _key(blocks[i])) for i, edge in _edge_positions(blocks)})
    needed = max(2, REPEAT_SHARE * len(pages))
    furniture: set[tuple[int, int]] = set()
    for page_index, blocks in enumerate(pages):
        for i, edge in _edge_positions(blocks):
            if is_page_number(blocks[i]) or seen[(edge, _key(blocks[i]))] >= needed:
                furniture.add((page_index, i))
    return furniture
