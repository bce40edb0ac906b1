"""LightOnOCR-3's grounding answers: one layout block per marker, read into the page's Markdown
and its blocks (label, box, and the span of the Markdown the block's text became).

Asked with the one text part ``grounding``, a LightOnOCR-3 model writes::

    ![title](113,608,263,623) ## 2.2 LightOnOCR-1
    ![text](112,640,882,698) The first version of LightOnOCR [13], established ...
    ![page_number](491,935,505,950) 3

(../shared/LIGHTONOCR.md, "Grounding"). The parser takes what the model writes, not what it
should: spaces around numbers and commas, the text starting on the line after the marker,
tables and lists over many lines, labels it has not seen (kept as written), ``label+`` for a
block that continues the one before. Only a well-formed marker at the start of a line is a
marker; anything else (``![image](image_1.png)``, three numbers, a marker after other text)
is page text and stays, character for character: nothing of an answer is lost but markers
(``tests/test_grounding.py`` holds that as a property). Pure functions, stdlib only: the
fake server and the benchmarks import this without the model stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NormalisedBox = tuple[float, float, float, float]  # x0, y0, x1, y1 in 0-1000 of the image sent

GROUNDING_PROMPT = "grounding"  # the request's one text part that asks for blocks with boxes
KNOWN_LABELS = frozenset({"title", "section", "text", "list", "caption", "footnote", "aside_text", "header",
                          "footer", "page_number", "table", "chart", "formula", "code", "image"})
# Page furniture: repeated on every page, it says nothing about the page's content.
FURNITURE_LABELS = frozenset({"header", "footer", "page_number"})
BLOCK_SEPARATOR = "\n\n"  # between pieces of the page Markdown: each block a Markdown block of its own
SCALE = 1000  # boxes are normalised to 0-1000 on both axes of the image sent, whatever its size

# A number of the box with the spaces (and tabs) around it; ASCII digits only (``\d`` would take
# other scripts' digits) and never a newline (a marker is one line). A "-" is read and clamped to 0.
_NUMBER = r"[ \t]*(-?[0-9]+(?:\.[0-9]+)?)[ \t]*"
# At a line's start (after spaces), a label, "+" perhaps, and four numbers. Every quantifier runs
# over characters its neighbours cannot match, so a near-marker fails in one pass along its line:
# linear time on any answer, however many near-markers it holds.
MARKER = re.compile(r"^[ \t]*!\[([A-Za-z_][A-Za-z0-9_]*)(\+?)\]\(" + ",".join([_NUMBER] * 4) + r"\)",
                    re.MULTILINE)


@dataclass(frozen=True)
class GroundedBlock:
    """One block of a grounding answer, its box as the model wrote it (0-1000 of the image)."""

    label: str  # as written, lower-cased, without the "+" (unknown labels kept)
    box: NormalisedBox  # x0 <= x1, y0 <= y1, each within 0-1000
    text: str  # the block's text, stripped of the whitespace around it, inner newlines kept
    continues: bool  # "text+": it goes on from the block before (next column, next page)
    start: int  # markdown[start:end] == text; an empty block sits where the next piece starts
    end: int


def has_markers(answer: str) -> bool:
    """Whether the answer holds at least one well-formed marker (a grounding answer at all)."""
    return MARKER.search(answer) is not None


def _box(numbers: tuple[str, ...]) -> NormalisedBox:
    x0, y0, x1, y1 = (min(float(SCALE), max(0.0, float(n))) for n in numbers)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def parse_grounding(answer: str) -> tuple[str, tuple[GroundedBlock, ...]]:
    """The page Markdown of a grounding answer (text before the first marker, then every
    block's text, a blank line between) and its blocks in the order written.

    An answer without a marker is plain Markdown: it comes back stripped, with no blocks."""
    markers = list(MARKER.finditer(answer))
    if not markers:
        return answer.strip(), ()
    pieces: list[str] = []
    length = 0  # of the Markdown so far: the pieces and the separators between them

    def append(text: str) -> int:
        """Adds a non-empty piece; returns where it starts in the Markdown."""
        nonlocal length
        if pieces:
            length += len(BLOCK_SEPARATOR)
        pieces.append(text)
        start, length = length, length + len(text)
        return start

    before = answer[:markers[0].start()].strip()
    if before:
        append(before)
    spans: list[tuple[str, int | None]] = []  # each block's text and start (None: empty, placed below)
    for marker, following in zip(markers, markers[1:] + [None]):
        text = answer[marker.end():following.start() if following else len(answer)].strip()
        spans.append((text, append(text) if text else None))
    markdown = BLOCK_SEPARATOR.join(pieces)
    blocks: list[GroundedBlock] = []
    next_start = len(markdown)  # an empty block sits where the next piece starts (or at the end)
    for marker, (text, start) in reversed(list(zip(markers, spans))):
        start = next_start if start is None else start
        next_start = start
        blocks.append(GroundedBlock(marker.group(1).lower(), _box(marker.groups()[2:]), text,
                                    marker.group(2) == "+", start, start + len(text)))
    return markdown, tuple(reversed(blocks))


def to_image_pixels(box: NormalisedBox, width: int, height: int) -> NormalisedBox:
    """A 0-1000 box in pixels of the image sent (``width`` x ``height``)."""
    x0, y0, x1, y1 = box
    return x0 * width / SCALE, y0 * height / SCALE, x1 * width / SCALE, y1 * height / SCALE
