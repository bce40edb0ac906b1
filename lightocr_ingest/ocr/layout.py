"""Detected text lines -> Markdown paragraphs in reading order (pure, no OCR needed).

The CPU engine detects lines with boxes but no structure. This module rebuilds it:
1. Vertical gutters (x ranges that no line covers, among rows holding several lines) mark
   the columns; narrow "columns" are table cells and do not count.
2. Lines that cross a gutter (titles, full-width text) cut the page into bands; inside a
   band, columns are read left to right, each top to bottom, so two-column papers come out
   in reading order.
3. Within a column, lines join into a paragraph while the gap to the next line stays under
   ``PARAGRAPH_GAP`` line heights; clearly taller lines become headings, and so do short
   lines in bold (strokes clearly wider than the body's: "5.1 Uploads" is no taller than the
   text under it). A numbered heading takes its level from its number ("5" ##, "5.1" ###).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import median

from ..records import Box, TextBox

MIN_GUTTER_SHARE = 0.02  # a gap this wide (share of the text block) separates columns
MIN_COLUMN_LINES = 2  # a "column" of one line is a table cell or a label, not a column
MIN_COLUMN_SHARE = 0.25  # a text column spans at least this share of the text block
PARAGRAPH_GAP = 0.7  # vertical gap, in median line heights, that starts a new paragraph
HEADING_RATIO = 1.3  # line height over the median body height that marks a heading
TITLE_RATIO = 1.7  # ... and a top-level heading
BOLD_RATIO = 1.35  # stroke width over the body's that marks bold type (regular ~2.8 px, bold ~4.8 at 1540 px)
MAX_HEADING_CHARS = 80  # a longer bold line is emphasis in the text, not a title
BOLD_HEADING_LEVEL = 3  # an unnumbered bold title: below the sections that large type marks
_SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+){0,4})\.?\s+\S")  # "5 Data", "5.1 Uploads", "2.3.1. Notes"


@dataclass(frozen=True)
class Paragraph:
    text: str
    box: Box
    heading_level: int = 0  # 0 for body text

    def markdown(self) -> str:
        return f"{'#' * self.heading_level} {self.text}" if self.heading_level else self.text


def _height(line: TextBox) -> float:
    return line.box[3] - line.box[1]


def _rows(lines: list[TextBox]) -> list[list[TextBox]]:
    """Group lines that share a baseline band (vertical overlap over half the smaller height)."""
    rows: list[list[TextBox]] = []
    for line in sorted(lines, key=lambda l: (l.box[1], l.box[0])):
        for row in rows[-3:]:
            if any(min(line.box[3], o.box[3]) - max(line.box[1], o.box[1]) > 0.5 * min(_height(line), _height(o))
                   for o in row):
                row.append(line)
                break
        else:
            rows.append([line])
    return rows


def _gutters(lines: list[TextBox], left: float, width: float) -> list[float]:
    """x positions of the gaps between text columns, found from rows holding several lines.

    Rows with one line (a centred title, a column's last line) are left out: a title would
    cover the gutter, and a lone line says nothing about columns.
    """
    shared = [line for row in _rows(lines) if len(row) > 1 for line in row]
    if len(shared) < 2 * MIN_COLUMN_LINES:
        return []
    spans = sorted((line.box[0], line.box[2]) for line in shared)
    gutters: list[float] = []
    covered_to = spans[0][1]
    for start, end in spans[1:]:
        if start - covered_to >= MIN_GUTTER_SHARE * width:
            gutters.append((start + covered_to) / 2)
        covered_to = max(covered_to, end)
    edges = [left] + gutters + [left + width]
    columns = [[l for l in shared if a <= (l.box[0] + l.box[2]) / 2 < b] for a, b in zip(edges, edges[1:])]
    if any(len(c) < MIN_COLUMN_LINES or max(l.box[2] for l in c) - min(l.box[0] for l in c) < MIN_COLUMN_SHARE * width
           for c in columns):
        return []  # narrow "columns" are table cells or labels: read row by row instead
    return gutters


def _bold(stroke: float, body_stroke: float) -> bool:
    return body_stroke > 0 and stroke >= BOLD_RATIO * body_stroke


def _heading_level(text: str, height: float, stroke: float, body_height: float, body_stroke: float) -> int:
    """0 for body text, else the Markdown heading level of a paragraph."""
    larger = height >= HEADING_RATIO * body_height
    if larger and len(text) > 120:
        return 0  # a long run of large text is a pull quote or a big font, not a heading
    if not larger and (not _bold(stroke, body_stroke) or len(text) > MAX_HEADING_CHARS
                       or sum(ch.isalpha() for ch in text) < 2):
        return 0  # body text, a bold sentence (emphasis), or a bold number in a table: not a title
    if height >= TITLE_RATIO * body_height:
        return 1
    numbered = _SECTION_NUMBER.match(text)
    if numbered:
        return min(6, 2 + numbered.group(1).count("."))
    return 2 if larger else BOLD_HEADING_LEVEL


def _paragraphs(column: list[TextBox], body_height: float, body_stroke: float = 0.0) -> list[Paragraph]:
    column = sorted(column, key=lambda line: (line.box[1], line.box[0]))
    # Lines on the same baseline (a split detection) merge first, left to right.
    rows: list[list[TextBox]] = []
    for line in column:
        if rows and abs(line.box[1] - rows[-1][0].box[1]) < 0.5 * min(_height(line), _height(rows[-1][0])):
            rows[-1].append(line)
        else:
            rows.append([line])
    paragraphs: list[Paragraph] = []
    current: list[tuple[str, Box, float, float]] = []

    def flush() -> None:
        if not current:
            return
        text = ""
        for piece, _, _, _ in current:
            if text.endswith("-") and piece[:1].islower():
                text = text[:-1] + piece  # re-join a word hyphenated at the line end
            else:
                text = f"{text} {piece}" if text else piece
        box = (min(b[0] for _, b, _, _ in current), min(b[1] for _, b, _, _ in current),
               max(b[2] for _, b, _, _ in current), max(b[3] for _, b, _, _ in current))
        height = max(h for _, _, h, _ in current)
        stroke = min(w for _, _, _, w in current)  # every line of a bold title is bold
        level = _heading_level(text, height, stroke, body_height, body_stroke)
        paragraphs.append(Paragraph(text=text, box=box, heading_level=level))
        current.clear()

    previous_bottom = None
    previous_height = None
    previous_bold = False
    for row in rows:
        row.sort(key=lambda line: line.box[0])
        text = " ".join(line.text.strip() for line in row if line.text.strip())
        if not text:
            continue
        box = (row[0].box[0], min(l.box[1] for l in row), row[-1].box[2], max(l.box[3] for l in row))
        height = max(_height(l) for l in row)
        stroke = median(l.stroke for l in row)
        bold = _bold(stroke, body_stroke)
        if previous_bottom is not None:
            gap = box[1] - previous_bottom
            size_changed = abs(height - previous_height) > 0.25 * max(height, previous_height)
            if gap > PARAGRAPH_GAP * body_height or size_changed or bold != previous_bold:
                flush()
        current.append((text, box, height, stroke))
        previous_bottom, previous_height, previous_bold = box[3], height, bold
    flush()
    return paragraphs


def lines_to_paragraphs(lines: list[TextBox]) -> list[Paragraph]:
    """Order detected lines into paragraphs, in reading order."""
    lines = [line for line in lines if line.text.strip() and _height(line) > 0]
    if not lines:
        return []
    left = min(line.box[0] for line in lines)
    width = max(line.box[2] for line in lines) - left or 1.0
    body_height = median(_height(line) for line in lines)
    # Body type is what most characters are set in; lines whose stroke is unknown (0) say
    # nothing, and when most are unknown, bold is not judged at all.
    strokes = sorted(line.stroke for line in lines for _ in range(max(1, len(line.text) // 10)))
    known = [stroke for stroke in strokes if stroke > 0]
    body_stroke = known[len(known) // 2] if len(known) * 2 > len(strokes) else 0.0
    gutters = _gutters(lines, left, width)
    # Walk down the page: a line that crosses a gutter (a title, a full-width line) closes the
    # current multi-column band; the band's lines are read column by column.
    bands: list[list[TextBox]] = []
    spanning: list[bool] = []
    for line in sorted(lines, key=lambda l: (l.box[1], l.box[0])):
        crosses = any(line.box[0] < g < line.box[2] for g in gutters)
        if bands and spanning[-1] == crosses:
            bands[-1].append(line)
        else:
            bands.append([line])
            spanning.append(crosses)
    paragraphs: list[Paragraph] = []
    for band, crosses in zip(bands, spanning):
        if crosses or not gutters:
            paragraphs.extend(_paragraphs(band, body_height, body_stroke))
            continue
        for column in range(len(gutters) + 1):
            members = [l for l in band if sum((l.box[0] + l.box[2]) / 2 > g for g in gutters) == column]
            paragraphs.extend(_paragraphs(members, body_height, body_stroke))
    return _rejoin_across_bands(paragraphs, body_height)


def _rejoin_across_bands(paragraphs: list[Paragraph], body_height: float) -> list[Paragraph]:
    """A full-width line directly under a one-column paragraph continues it."""
    out: list[Paragraph] = []
    for paragraph in paragraphs:
        if out and not paragraph.heading_level and not out[-1].heading_level:
            prev = out[-1]
            gap = paragraph.box[1] - prev.box[3]
            same_left = abs(paragraph.box[0] - prev.box[0]) < body_height
            if 0 <= gap <= PARAGRAPH_GAP * body_height and same_left:
                joined = prev.text[:-1] + paragraph.text if prev.text.endswith("-") and paragraph.text[:1].islower() \
                    else f"{prev.text} {paragraph.text}"
                out[-1] = Paragraph(joined, (min(prev.box[0], paragraph.box[0]), prev.box[1],
                                             max(prev.box[2], paragraph.box[2]), paragraph.box[3]))
                continue
        out.append(paragraph)
    return out


def paragraphs_to_markdown(paragraphs: list[Paragraph]) -> str:
    return "\n\n".join(paragraph.markdown() for paragraph in paragraphs)
