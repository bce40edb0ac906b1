"""Page furniture: running headers, footers and page numbers, told by repetition across a file.

The model transcribes them (it is trained for full-page transcription), and left in chunks
they pollute retrieval: every chunk of a journal would match the journal's name. Dropping
text is the one thing a chunker must never get wrong, so a block is furniture only when the
whole file shows it is:

- a running line: the same text at the same page edge on at least half the file's pages, and
  on two pages at least, where each number in it is either the same on all those pages or
  follows the page number ("Page 3" on page 3 and "Page 4" on page 4); it must hold letters,
  so a lone "2023" is never taken for one, and "Reading 10: flow 1.7" above "Reading 12:
  flow 2.1" is text;
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


def _key(block: Block) -> str:
    """The shape a block repeats in: running lines with their numbers masked (which numbers
    may change is judged apart, in ``_running``); headings exactly, and only with headings,
    since "3.1 Setup" and "4.1 Setup" are different sections, not one running title."""
    text = re.sub(r"<[^>]+>|[#*_`]", "", block.text)
    if block.kind != "heading":
        text = re.sub(r"\d+", "#", text)
    return ("# " if block.kind == "heading" else "") + re.sub(r"\s+", " ", text).strip().lower()


def _numbers(block: Block) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", block.text)) if block.kind != "heading" else ()


def _running(members: list[tuple[int, int, tuple[int, ...], int]], needed: float) -> list[tuple[int, int]]:
    """The blocks of one repeated shape that form a running line.

    ``members`` are (page index, block index, its numbers, page number). Each number position
    must either hold one value on all of them, or follow the page (value minus page number
    the same); the rule each position follows is the one most members agree with, and the
    members that fit every position form the running line when there are ``needed`` of them.
    """
    width = len(members[0][2])
    rules = []
    for position in range(width):
        votes: dict[tuple[str, int], int] = {}
        for _, _, numbers, page in members:
            for rule in (("same", numbers[position]), ("follows", numbers[position] - page)):
                votes[rule] = votes.get(rule, 0) + 1
        rules.append(max(votes, key=votes.get))

    def fits(numbers: tuple[int, ...], page: int) -> bool:
        return all((numbers[k] if kind == "same" else numbers[k] - page) == value
                   for k, (kind, value) in enumerate(rules))

    fitting = [(p, i) for p, i, numbers, page in members if len(numbers) == width and fits(numbers, page)]
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
            if re.search(r"[^\W\d_]", key) is not None:  # letters: a running line or title may
                shapes[(edge, key)].append((page_index, i, _numbers(blocks[i]), numbers[page_index]))
            value = number_value(blocks[i])
            if value is not None:
                by_offset[value - numbers[page_index]].setdefault(page_index, []).append(i)
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
