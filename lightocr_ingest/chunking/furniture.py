"""Page furniture: running headers, footers and page numbers, told by repetition across a file.

The model transcribes them (it is trained for full-page transcription), and left in chunks
they pollute retrieval: every chunk of a journal would match the journal's name. Dropping
text is the one thing a chunker must never get wrong, so a block is furniture only when the
whole file shows it is:

- a running line: the same text (digits ignored: "Page 3" = "Page 4") at the same page edge
  on at least half the file's pages, and on two pages at least; it must hold letters, so a
  lone "2023" is never taken for one;
- a running title: a heading whose text is identical at the same edge as often;
- a page number: a number (arabic or roman, "Page 7", "- 7 -", "7 of 20") at a page edge
  whose value follows the pages: value minus page number is the same on at least three
  consecutive pages (both pages of a two-page file).

Nothing is furniture for being short or looking like a numeral: "Mix", "Civil", "MD",
"## III" or "2023" at a page edge stay text unless they repeat as above.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from .blocks import Block

EDGE_BLOCKS = 2  # blocks counted as the top (or bottom) edge of a page
MAX_FURNITURE_CHARS = 160  # running headers are one short line
REPEAT_SHARE = 0.5  # share of the file's pages a running line must repeat on
PAGE_NUMBER_RUN = 3  # consecutive pages whose numbers must follow the pages
_NUMBER = re.compile(
    r"(?:page|p\.|seite|pagina|página)?\s*[-–—]?\s*(?P<value>\d{1,4}|[ivxlcdm]{1,9})\s*[-–—]?"
    r"(?:\s*(?:/|of|sur|von|de)\s*\d{1,4})?", re.I)
_ROMAN = re.compile(r"m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})", re.I)
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}


def _key(block: Block) -> str:
    """Running lines compare with digits ignored; headings exactly, and only with headings,
    since "3.1 Setup" and "4.1 Setup" are different sections, not one running title."""
    text = re.sub(r"<[^>]+>|[#*_`]", "", block.text)
    if block.kind != "heading":
        text = re.sub(r"\d+", "#", text)
    return ("# " if block.kind == "heading" else "") + re.sub(r"\s+", " ", text).strip().lower()


def _edge_positions(blocks: list[Block]) -> list[tuple[int, str]]:
    count = len(blocks)
    top = [(i, "top") for i in range(min(EDGE_BLOCKS, count))]
    bottom = [(i, "bottom") for i in range(max(0, count - EDGE_BLOCKS), count) if i >= EDGE_BLOCKS]
    return [(i, edge) for i, edge in top + bottom
            if blocks[i].kind in ("paragraph", "heading") and len(blocks[i].text) <= MAX_FURNITURE_CHARS
            and "\n" not in blocks[i].text.strip()]


def _roman(text: str) -> int | None:
    if not text or not _ROMAN.fullmatch(text):
        return None
    values = [_ROMAN_VALUES[c] for c in text.lower()]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


def number_value(block: Block) -> int | None:
    """The page number a block would state ("Page 7", "vii", "- 7 -"), or None."""
    match = _NUMBER.fullmatch(re.sub(r"[#*_]", "", block.text).strip())
    if match is None:
        return None
    value = match.group("value")
    return int(value) if value.isdigit() else _roman(value)


def find_furniture(pages: list[list[Block]], numbers: list[int] | None = None) -> set[tuple[int, int]]:
    """Return ``(page index, block index)`` of every furniture block of one whole file.

    ``numbers`` are the pages' numbers in the file (1-based); consecutive when not given.
    """
    numbers = numbers or list(range(1, len(pages) + 1))
    seen: Counter[tuple[str, str]] = Counter()
    for blocks in pages:
        seen.update({(edge, _key(blocks[i])) for i, edge in _edge_positions(blocks)})
    needed = max(2, REPEAT_SHARE * len(pages))
    furniture: set[tuple[int, int]] = set()
    by_offset: dict[int, dict[int, list[int]]] = defaultdict(dict)  # value - page -> page index -> blocks
    for page_index, blocks in enumerate(pages):
        for i, edge in _edge_positions(blocks):
            key = _key(blocks[i])
            has_letters = re.search(r"[^\W\d_]", key) is not None
            if (has_letters or blocks[i].kind == "heading") and seen[(edge, key)] >= needed:
                furniture.add((page_index, i))
            value = number_value(blocks[i])
            if value is not None:
                by_offset[value - numbers[page_index]].setdefault(page_index, []).append(i)
    run_needed = max(2, min(PAGE_NUMBER_RUN, len(pages)))
    for on_pages in by_offset.values():
        indices = sorted(on_pages)
        run: list[int] = []
        for page_index in indices + [None]:
            if page_index is not None and run and page_index == run[-1] + 1 \
                    and numbers[page_index] == numbers[run[-1]] + 1:
                run.append(page_index)
                continue
            if len(run) >= run_needed:
                furniture.update((p, i) for p in run for i in on_pages[p])
            run = [page_index] if page_index is not None else []
    return furniture
