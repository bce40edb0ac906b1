"""Page furniture: running headers, footers and page numbers, told by repetition across a file.

The model transcribes them (it is trained for full-page transcription), and left in chunks
they pollute retrieval: every chunk of a journal would match the journal's name. Dropping
text is the one thing a chunker must never get wrong, so a block is furniture only when the
whole file shows it is:

- a running line: the same text at the same page edge on at least half the file's pages, and
  on two pages at least, where from one of those pages to the next each number stays the
  same or moves with the pages (by one a page, or two for scanned spreads: "Page 3 of 10",
  then "Page 4 of 10"); it must hold letters and not read as a page number (those are judged
  by the page sequence alone), so a lone "2023" or "IV" is never taken for one, and
  "Reading 10: flow 1.7" above "Reading 17: flow 2.1" is text;
- a running title: a heading whose text is identical at the same edge as often;
- a page number: a number (arabic or roman, "Page 7", "- 7 -", "7 of 20") at a page edge
  whose value follows the pages: value minus page number is the same on at least three
  consecutive pages (both pages of a two-page file).

Nothing is furniture for being short or looking like a numeral: "Mix", "Civil", "MD",
"## III" or "2023" at a page edge stay text unless they repeat as above.
"""

from __future__ import annotations

import re
from collections import defaultdict

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


def _clean(block: Block) -> str:
    return re.sub(r"<[^>]+>|[#*_`]", "", block.text)


def _key(block: Block) -> str:
    """The shape a block repeats in: running lines with their numbers masked (which numbers
    may change is judged apart, in ``_running``); headings exactly, and only with headings,
    since "3.1 Setup" and "4.1 Setup" are different sections, not one running title."""
    text = _clean(block)
    if block.kind != "heading":
        text = re.sub(r"\d+", "#", text)
    return ("# " if block.kind == "heading" else "") + re.sub(r"\s+", " ", text).strip().lower()


def _numbers(block: Block) -> tuple[int, ...]:
    """The numbers ``_key`` masked, in order (as many as it masked: both read ``_clean``)."""
    return tuple(int(n) for n in re.findall(r"\d+", _clean(block))) if block.kind != "heading" else ()


STEPS_PER_PAGE = (0, 1, 2)  # how a running line's number may change from one page to the next:
#                             not at all, with the page, or by two a page (scanned two-page spreads)


def _running(members: list[tuple[int, int, tuple[int, ...], int]], needed: float) -> list[tuple[int, int]]:
    """The blocks of one repeated shape that form a running line.

    ``members`` are (page index, block index, its numbers, page number), in page order. A
    member fits when a neighbour (the member on the page before or after) has every number
    either the same or moved by 1 or 2 for each page between them: "Page 3 of 10" beside
    "Page 4 of 10", a numbering that skips a plate or starts again in the next merged
    document. Numbers that change any other way ("Reading 10", "Reading 17") are text. The
    fitting members are a running line when there are ``needed`` pages of them.
    """
    def agree(a: tuple[tuple[int, ...], int], b: tuple[tuple[int, ...], int]) -> bool:
        (numbers_a, page_a), (numbers_b, page_b) = a, b
        gap = page_b - page_a
        return all(any(y - x == step * gap for step in STEPS_PER_PAGE) for x, y in zip(numbers_a, numbers_b))

    members = sorted(members, key=lambda m: m[3])
    fitting = []
    for k, (page_index, block_index, numbers, page) in enumerate(members):
        neighbours = [members[j] for j in (k - 1, k + 1) if 0 <= j < len(members) and members[j][3] != page]
        if any(agree((numbers, page), (n[2], n[3])) if n[3] > page else agree((n[2], n[3]), (numbers, page))
               for n in neighbours):
            fitting.append((page_index, block_index))
    return fitting if len({p for p, _ in fitting}) >= needed else []


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
    needed = max(2, REPEAT_SHARE * len(pages))
    furniture: set[tuple[int, int]] = set()
    shapes: dict[tuple[str, str], list] = defaultdict(list)  # (edge, shape) -> its blocks
    by_offset: dict[int, dict[int, list[int]]] = defaultdict(dict)  # value - page -> page index -> blocks
    for page_index, blocks in enumerate(pages):
        for i, edge in _edge_positions(blocks):
            key = _key(blocks[i])
            # A heading is never a page number: "## III" then "## IV" on consecutive pages are
            # sections, however much they read like a run of numbers.
            value = number_value(blocks[i]) if blocks[i].kind != "heading" else None
            if value is not None:  # a page number, or text that reads as one ("IV", "Mix"): only
                #                    the page sequence below may drop it, never a repeat of its letters
                by_offset[value - numbers[page_index]].setdefault(page_index, []).append(i)
            elif re.search(r"[^\W\d_]", key) is not None:  # letters: a running line or title may
                shapes[(edge, key)].append((page_index, i, _numbers(blocks[i]), numbers[page_index]))
    for members in shapes.values():
        if len({p for p, _, _, _ in members}) >= needed:
            furniture.update(_running(members, needed))
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
