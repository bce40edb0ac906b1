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
(``tests/test_grounding.py`` holds that as a property).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GROUNDING_PROMPT = "grounding"  # the request's one text part that asks for blocks with boxes
KNOWN_LABELS = frozenset({"title", "section", "text", "list", "caption", "footnote", "aside_text", "header",
                          "footer", "page_number", "table", "chart", "formula", "code", "image"})
FURNITURE_LABELS = frozenset({"header", "footer", "page_number"})  # page furniture, never chunk text
BLOCK_SEPARATOR = "\n\n"  # between blocks in the page Markdown: each block is a Markdown block of its own
SCALE = 1000  # boxes are normalised to 0-1000 on both axes of the image sent

_NUMBER = r"\s*(\d+(?:\.\d+)?)\s*"
# At a line's start (after spaces), a label, "+" perhaps, and four numbers; no nested quantifiers
# over the same characters, so a long near-marker costs linear time.
MARKER = re.compile(r"^[ \t]*!\[([A-Za-z_][A-Za-z0-9_]*)(\+?)\]\(" + ",".join([_NUMBER] * 4) + r"\)", re.M)


@dataclass(frozen=True)
class GroundedBlock:
    """One block of a grounding answer, its box as the model wrote it (0-1000 of the image)."""

    label: str  # lower-cased, without the "+"
    box: tuple[float, float, float, float]  # x0 <= x1, y0 <= y1, each within 0-1000
    text: str  # the block's text, stripped of the whitespace around it
    continues: bool  # "text+": it goes on from the block before (next column, next page)
    start: int  # markdown[start:end] == text
    end: int


def has_markers(answer: str) -> bool:
    return MARKER.search(answer) is not None


def parse_grounding(answer: str) -> tuple[str, tuple[GroundedBlock, ...]]:
    """The page Markdown of a grounding answer (text before the first marker, then every
    block's text, a blank line between) and its blocks in the order written."""
    markers = list(MARKER.finditer(answer))
    if not markers:
        return answer.strip(), ()
    pieces: list[str] = []
    blocks: list[GroundedBlock] = []
    at = 0  # length of the Markdown so far

    def add(text: str) -> tuple[int, int]:
        nonlocal at
        if not text:
            return at, at
        if pieces:
            at += len(BLOCK_SEPARATOR)
        pieces.append(text)
        start = at
        at += len(text)
        return start, at

    add(answer[:markers[0].start()].strip())
    for marker, following in zip(markers, markers[1:] + [None]):
        text = answer[marker.end():following.start() if following else len(answer)].strip()
        start, end = add(text)
        if not text and pieces:  # an empty block sits where the next one would start
            start = end = at + len(BLOCK_SEPARATOR)
        x0, y0, x1, y1 = (min(float(SCALE), float(v)) for v in marker.groups()[2:])
        blocks.append(GroundedBlock(marker.group(1).lower(), (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
                                    text, marker.group(2) == "+", start, end))
    markdown = BLOCK_SEPARATOR.join(pieces)
    # an empty block after the last text points just past the end: bring it back inside
    blocks = [b if b.start <= len(markdown) else
              GroundedBlock(b.label, b.box, b.text, b.continues, len(markdown), len(markdown)) for b in blocks]
    return markdown, tuple(blocks)


def to_image_pixels(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float,
                                                                                              float, float]:
    """A 0-1000 box in pixels of the image sent (``width`` x ``height``)."""
    x0, y0, x1, y1 = box
    return (x0 * width / SCALE, y0 * height / SCALE, x1 * width / SCALE, y1 * height / SCALE)
