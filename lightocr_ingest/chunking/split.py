"""Cut one block that is over the token budget into pieces that fit (pure functions).

- Tables are cut only between rows, never inside one; each piece repeats the header rows
  (HTML ``<thead>``/leading ``<th>`` rows, or a pipe table's header and separator lines) and
  the closing tags, and cuts never fall inside a ``rowspan``.
- Formulas and code are cut only at line ends (code) or not at all (a formula): a formula
  longer than the budget by itself stays whole and is reported as oversize.
- Prose is cut at paragraph breaks, then line breaks, then sentence ends, then spaces, never
  inside inline math; a single word longer than the budget is the only thing cut mid-way.

A piece records the text it repeats from another piece (``carried``), so that "no text lost"
can be checked exactly: every piece's own text, joined, is the block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .tokens import TokenCounter, is_additive

_ROW = re.compile(r"<tr\b.*?</tr\s*>", re.I | re.S)
_CELL = re.compile(r"<t([hd])\b([^>]*)>", re.I)
_ROWSPAN = re.compile(r"rowspan\s*=\s*[\"']?(\d+)", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+(?=\S)")
_INLINE_MATH = re.compile(r"(?<!\\)\$(?:\\.|[^$\\])+?(?<!\\)\$|\\\(.*?\\\)", re.S)


@dataclass(frozen=True)
class Piece:
    text: str
    oversize: bool = False  # a single row or formula longer than the budget by itself
    carried: tuple[str, ...] = ()  # repeated text (table header, closing tags) owned elsewhere


# --- tables ---------------------------------------------------------------------------------
def _pack_rows(head: str, rows: list[str], tail: str, joiner: str, budget: int, count: TokenCounter,
               breakable: list[bool]) -> list[Piece]:
    """Greedy packing of rows under head/tail; cut only where ``breakable[i]`` (before row i)."""
    groups: list[list[str]] = []
    for i, row in enumerate(rows):
        if groups and (not breakable[i] or count(head + joiner.join(groups[-1] + [row]) + tail) <= budget):
            groups[-1].append(row)
        else:
            groups.append([row])
    pieces = []
    last = len(groups) - 1
    for i, group in enumerate(groups):
        text = head + joiner.join(group) + tail
        carried = tuple(part for part, owned in ((head, i == 0), (tail, i == last)) if part.strip() and not owned)
        pieces.append(Piece(text, oversize=count(text) > budget, carried=carried))
    return pieces


def split_html_table(text: str, budget: int, count: TokenCounter) -> list[Piece]:
    rows = list(_ROW.finditer(text))
    if len(rows) < 2:
        return [Piece(text, oversize=count(text) > budget)]
    thead_end = re.search(r"</thead\s*>", text, re.I)
    if thead_end is not None:
        header_count = sum(1 for match in rows if match.end() <= thead_end.start())
    else:  # no <thead>: the leading rows made only of <th> cells are the header
        header_count = 0
        for match in rows:
            cells = _CELL.findall(match.group())
            if not cells or any(kind.lower() != "h" for kind, _ in cells):
                break
            header_count += 1
    header_count = min(header_count, len(rows) - 1)
    body = rows[header_count:]
    head = text[:body[0].start()]
    tail = text[body[-1].end():]
    row_texts = [text[body[i].start():(body[i + 1].start() if i + 1 < len(body) else body[i].end())]
                 for i in range(len(body))]
    # A row covered by a rowspan from an earlier row must stay with it.
    reach = 0
    breakable = []
    for i, match in enumerate(body):
        breakable.append(i >= reach)
        spans = [int(n) for n in _ROWSPAN.findall(match.group())]
        reach = max(reach, i + max(spans, default=1))
    return _pack_rows(head, row_texts, tail, "", budget, count, breakable)


def split_pipe_table(text: str, budget: int, count: TokenCounter) -> list[Piece]:
    lines = text.split("\n")
    if len(lines) < 4:
        return [Piece(text, oversize=count(text) > budget)]
    head = "\n".join(lines[:2]) + "\n"
    return _pack_rows(head, lines[2:], "", "\n", budget, count, [True] * (len(lines) - 2))


# --- prose ------------------------------------------------------------------------------------
def _protected(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _INLINE_MATH.finditer(text)]


def _cut_points(text: str, level: str) -> list[int]:
    if level == "paragraph":
        points = [m.end() for m in re.finditer(r"\n\s*\n", text)]
    elif level == "line":
        points = [m.end() for m in re.finditer(r"\n", text)]
    elif level == "sentence":
        points = [m.end() for m in _SENTENCE_END.finditer(text)]
    else:
        points = [m.end() for m in re.finditer(r"\s+", text)]
    spans = _protected(text)
    return [p for p in points if 0 < p < len(text) and not any(a < p < b for a, b in spans)]


LEVELS = ("paragraph", "line", "sentence", "word")


def split_text(text: str, budget: int, count: TokenCounter, levels: tuple[str, ...] = LEVELS) -> list[Piece]:
    """Cut prose into pieces under ``budget`` at the coarsest boundary that works."""
    if count(text) <= budget:
        return [Piece(text)]
    for position, level in enumerate(levels):
        points = _cut_points(text, level)
        if not points:
            continue
        segments = [text[a:b] for a, b in zip([0] + points, points + [len(text)])]
        # Every cut point follows whitespace, so an additive counter's counts add up here.
        additive = is_additive(count)
        texts: list[tuple[str, int]] = []  # (text, its count)
        current, current_tokens = "", 0
        for segment in segments:
            segment_tokens = count(segment) if additive else None
            joined = current_tokens + segment_tokens if additive else count(current + segment)
            if current and joined > budget:
                texts.append((current, current_tokens))
                current, current_tokens = segment, segment_tokens if additive else count(segment)
            else:
                current, current_tokens = current + segment, joined
        texts.append((current, current_tokens))
        out: list[Piece] = []
        for text_piece, tokens in texts:
            out.extend(split_text(text_piece, budget, count, levels[position + 1:]) if tokens > budget
                       else [Piece(text_piece)])
        return _strip(out)
    if _INLINE_MATH.fullmatch(text.strip()):
        return [Piece(text, oversize=True)]  # one formula: never cut
    return _strip(_split_characters(text, budget, count))


def _split_characters(text: str, budget: int, count: TokenCounter) -> list[Piece]:
    """Last resort for one enormous word (a hash, a URL): cut it into budget-sized slices."""
    pieces, start = [], 0
    while start < len(text):
        low, high = start + 1, len(text)
        while low < high:  # longest slice that fits
            middle = (low + high + 1) // 2
            if count(text[start:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        pieces.append(Piece(text[start:low]))
        start = low
    return pieces


def _strip(pieces: list[Piece]) -> list[Piece]:
    return [Piece(p.text.strip(), p.oversize, p.carried) for p in pieces if p.text.strip()]


def split_block(kind: str, text: str, budget: int, count: TokenCounter) -> list[Piece]:
    """The pieces of one block; a block that fits is one piece."""
    if count(text) <= budget:
        return [Piece(text)]
    if kind == "html_table":
        return split_html_table(text, budget, count)
    if kind == "table":
        return split_pipe_table(text, budget, count)
    if kind in ("math", "heading", "figure", "rule"):
        return [Piece(text, oversize=True)]
    if kind == "code":
        return split_text(text, budget, count, levels=("line",))
    return split_text(text, budget, count)
