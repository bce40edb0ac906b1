"""A PDF text layer's words -> the page's lines in reading order: columns, then full-width blocks.

Pure geometry on ``PageWords`` (page points, top-left origin) with their fonts (``styles``);
``text_markdown`` writes the lines as Markdown. The order PDFium lists words in is the
order they were drawn, which is often but not always the order they are read (a page drawn
row by row across two columns reads interleaved), so the order is rebuilt from where the
words lie, by a recursive XY cut:

1. Words become *segments*: runs of words on one baseline with no gap wider than
   ``SEGMENT_GAP`` ems (a column gutter or a table's column gap ends a segment).
2. Segments that overlap vertically form *bands*; consecutive bands that share a vertical
   gap of white (a gutter) are grouped, so that two columns whose lines happen to share
   baselines are not cut across into line-by-line pairs.
3. A group is cut at its gutter into columns, read left then right, when both sides look
   like columns of prose (``_are_columns``); otherwise its lines are read top to bottom, each
   left to right (a table stays a table: its rows are rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from statistics import median

import numpy as np

from ..records import FIXED_PITCH, ITALIC, ROTATED, SOFT_HYPHEN, PageWords

SEGMENT_GAP = 1.0  # ems: a wider space between two words on a line is a gutter or a table's column gap
MIN_GUTTER = 0.8  # ems of white between columns (LaTeX's two-column gap is 1-2 ems; word spaces 0.3)
COLUMN_MIN_WIDTH = 0.18  # of the page width: narrower "columns" are a table's, read row by row
COLUMN_WIDE = 0.3  # of the page width: a column beside a column of prose that is not prose itself
COLUMN_MIN_WORDS = 3.0  # median words a segment on each side of a gutter: prose, not table cells
COLUMN_PROSE_LINES = 5  # lines of prose a side needs for its median word to speak for it
JUSTIFIED_SHARE = 0.5  # of a column's lines that reach its right edge: set justified
BOLD_WEIGHT = 550  # PDFium's font weight from which a font counts as bold (regular 400, CMBX 545-585)
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold", re.I)


@dataclass(slots=True)  # slots: a dense page makes a thousand of them, and reads their fields often
class Word:
    text: str
    box: tuple[float, float, float, float]
    size: float  # font size, points
    bold: bool
    mono: bool
    italic: bool
    hyphen: bool  # the word was broken across lines at a hyphen
    rotated: bool = False  # runs another way than the page's text


@dataclass
class Segment:
    """Words on one baseline with no gutter between them."""

    words: list[Word]
    x0: float = 0.0
    y0: float = 0.0
    x1: float = 0.0
    y1: float = 0.0

    def __post_init__(self) -> None:
        self.x0, self.y0, self.x1, self.y1 = self.words[0].box
        for word in self.words[1:]:
            self._grow(word.box)

    def add(self, word: Word) -> None:
        self.words.append(word)
        self._grow(word.box)

    def _grow(self, box: tuple[float, float, float, float]) -> None:
        x0, y0, x1, y1 = box
        if x0 < self.x0:
            self.x0 = x0
        if y0 < self.y0:
            self.y0 = y0
        if x1 > self.x1:
            self.x1 = x1
        if y1 > self.y1:
            self.y1 = y1

    @property
    def mid(self) -> float:
        return (self.y0 + self.y1) / 2


@dataclass
class Line:
    """One line as read: its segments left to right (several: a table row, or a line with a
    wide gap), and the edges of the column it was read in (for indents and short lines)."""

    segments: list[Segment]
    left: float  # the column's edges
    right: float
    x0: float = 0.0
    y0: float = 0.0
    x1: float = 0.0
    y1: float = 0.0
    words: list[Word] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.words = [w for s in self.segments for w in s.words]
        self.x0, self.x1 = min(s.x0 for s in self.segments), max(s.x1 for s in self.segments)
        self.y0, self.y1 = min(s.y0 for s in self.segments), max(s.y1 for s in self.segments)

    @cached_property  # asked by several rules; a line's words do not change once it is made
    def text(self) -> str:
        return " ".join([w.text for w in self.words])

    def share(self, attribute: str) -> float:
        """Share of the line's characters whose word has ``attribute`` (bold, mono, italic)."""
        total = sum(len(w.text) for w in self.words)
        return sum(len(w.text) for w in self.words if getattr(w, attribute)) / max(1, total)

    @cached_property
    def size(self) -> float:
        """The font size most of the line's characters are set in."""
        weights: dict[float, int] = {}
        for w in self.words:
            key = round(w.size * 2) / 2
            weights[key] = weights.get(key, 0) + len(w.text)
        return max(weights, key=weights.get)


def words_of(layer: PageWords) -> list[Word]:
    """The layer's words with their boxes and fonts, in the order PDFium lists them (a
    character PDFium gives as half a surrogate pair is joined to its other half, or replaced:
    a lone surrogate cannot be written to a payload)."""
    texts = layer.text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").split()
    styles = layer.styles[:, :3] if layer.styles is not None else np.zeros((len(texts), 3), dtype=np.float32)
    words = []
    for text, box, (size, weight, flags) in zip(texts, layer.boxes.tolist(), styles.tolist()):
        height = box[3] - box[1]
        # PDFium's size is the Tf operand: "1 Tf" scaled by a 10x text matrix says 1. A size far
        # under what the word's box shows (ascent to descent, about 1.2 ems) is taken from the box.
        if not size > 0.5 * height / 1.2:
            size = max(height / 1.2, 1.0)
        bits = int(flags)
        words.append(Word(text, tuple(box), size, bool(weight >= BOLD_WEIGHT), bool(bits & FIXED_PITCH),
                          bool(bits & ITALIC), bool(bits & SOFT_HYPHEN), bool(bits & ROTATED)))
    return words


def segments_of(words: list[Word]) -> list[Segment]:
    """Words joined into segments: the next word continues a segment when it sits on the same
    baseline just after it (PDFium's own line breaks are not trusted: it breaks lines inside a
    formula, and joins two columns' lines drawn one after the other on one baseline)."""
    segments: list[Segment] = []
    current: Segment | None = None
    last: Word | None = None
    for word in words:
        if last is not None:
            lx0, ly0, lx1, ly1 = last.box
            x0, y0, x1, y1 = word.box
            height = min(ly1 - ly0, y1 - y0)
            overlap = min(ly1, y1) - max(ly0, y0)
            gap = x0 - lx1
            em = max(last.size, word.size, 1.0)
            if overlap >= 0.5 * height and -0.3 * em <= gap <= SEGMENT_GAP * em:
                current.add(word)
                last = word
                continue
        current = Segment([word])
        segments.append(current)
        last = word
    return segments


def _bands(segments: list[Segment]) -> list[list[Segment]]:
    """Segments grouped into horizontal bands: runs that overlap vertically, top to bottom."""
    bands: list[list[Segment]] = []
    bottom = None
    for segment in sorted(segments, key=lambda s: (s.y0, s.x0)):
        overlap = 0.0 if bottom is None else bottom - segment.y0
        if bands and overlap > 0.3 * (segment.y1 - segment.y0):
            bands[-1].append(segment)
            bottom = max(bottom, segment.y1)
        else:
            bands.append([segment])
            bottom = segment.y1
    return bands


def _gutters(segments: list[Segment], min_width: float) -> list[tuple[float, float]]:
    """Vertical gaps of white at least ``min_width`` wide between the segments' extents."""
    gaps, reach = [], None
    for segment in sorted(segments, key=lambda s: s.x0):
        if reach is not None and segment.x0 - reach >= min_width:
            gaps.append((reach, segment.x0))
        reach = segment.x1 if reach is None else max(reach, segment.x1)
    return gaps


def _covered(spans: list[list[float]], gutter: float) -> list[list[float]]:
    """Horizontal spans joined where less than ``gutter`` apart: what is left between them are
    gutters (as ``_gutters`` finds them)."""
    runs: list[list[float]] = []
    for x0, x1 in sorted(spans):
        if runs and x0 - runs[-1][1] < gutter:
            runs[-1][1] = max(runs[-1][1], x1)
        else:
            runs.append([x0, x1])
    return runs


def _em(segments: list[Segment]) -> float:
    return median(w.size for s in segments for w in s.words)


def _are_columns(left: list[Segment], right: list[Segment], page_width: float) -> bool:
    """Both sides of a gutter are columns: several lines each, each side wide enough, and
    prose on both sides (a table's cells are short); or a justified column of prose beside
    a wide column of something else (a table set in one column, a table of contents). A table
    whose narrow first column holds names and the next their descriptions is neither: its
    rows stay rows."""
    widths = []
    for side in (left, right):
        widths.append(max(s.x1 for s in side) - min(s.x0 for s in side))
        if len(side) < 2 or widths[-1] < COLUMN_MIN_WIDTH * page_width:
            return False
    prose = [_is_prose(side) for side in (left, right)]
    if all(prose):
        return True
    return min(widths) >= COLUMN_WIDE * page_width and any(
        is_prose and _justified(side) for is_prose, side in zip(prose, (left, right)))


def _is_prose(side: list[Segment]) -> bool:
    """Whether a side of a gutter reads as prose: its median segment is a few words long; or,
    for a column with a listing's line numbers or a figure's labels in it (single words, as
    many segments as their lines), most of its words are in several lines of prose set in a
    text face (a table's cells are short, and a column of names in a typewriter face is a
    table's too)."""
    lengths = [len(s.words) for s in side]
    if median(lengths) >= COLUMN_MIN_WORDS:
        return True
    prose = [n for s, n in zip(side, lengths) if n >= COLUMN_MIN_WORDS and sum(w.mono for w in s.words) < n / 2]
    return len(prose) >= COLUMN_PROSE_LINES and sum(prose) >= sum(lengths) / 2


def _justified(side: list[Segment]) -> bool:
    edge, em = max(s.x1 for s in side), _em(side)
    return sum(s.x1 >= edge - em for s in side) >= JUSTIFIED_SHARE * len(side)


def _column_cut(segments: list[Segment], page_width: float,
                gutter: float) -> tuple[list[Segment], list[Segment]] | None:
    """The segments cut into a left and a right column at the widest gap of at least
    ``gutter`` points that parts two columns of prose, or None."""
    for x0, x1 in sorted(_gutters(segments, gutter), key=lambda g: g[0] - g[1]):
        cut = (x0 + x1) / 2
        left = [s for s in segments if s.x1 <= cut]
        right = [s for s in segments if s.x0 >= cut]
        if _are_columns(left, right, page_width):
            return left, right
    return None


def _rows(segments: list[Segment]) -> list[list[Segment]]:
    """Segments into lines, top to bottom, each left to right: a segment joins the line whose
    vertical extent holds its middle."""
    rows: list[list[Segment]] = []
    for segment in sorted(segments, key=lambda s: s.mid):
        if rows and rows[-1][0].y0 <= segment.mid <= rows[-1][0].y1:
            rows[-1].append(segment)
        else:
            rows.append([segment])
    return [sorted(row, key=lambda s: s.x0) for row in rows]


def reading_order(segments: list[Segment], page_width: float) -> list[Line]:
    """The page's lines in reading order (see the module's docstring)."""
    if not segments:
        return []
    gutter = MIN_GUTTER * _em(segments)  # the same em for every group: the page's (or the column's) text
    groups: list[list[Segment]] = []
    covered: list[list[float]] = []  # the last group's extent across the page, as runs parted by gutters
    for band in _bands(segments):
        runs = _covered([[s.x0, s.x1] for s in band], gutter)
        if groups and len(covered) > 1:
            merged = _covered(covered + runs, gutter)
            if len(merged) > 1:  # a gutter runs through both: one group
                groups[-1].extend(band)
                covered = merged
                continue
        groups.append(list(band))
        covered = runs
    lines: list[Line] = []
    for group in groups:
        cut = _column_cut(group, page_width, gutter) if len(group) > 2 else None
        if cut is not None and len(cut[0]) + len(cut[1]) == len(group):
            lines.extend(reading_order(cut[0], page_width))
            lines.extend(reading_order(cut[1], page_width))
            continue
        left, right = min(s.x0 for s in group), max(s.x1 for s in group)
        lines.extend(Line(row, left, right) for row in _rows(group))
    return lines


def page_lines(layer: PageWords, page_width: float) -> list[Line]:
    """A text layer's lines in reading order; text that runs another way than the page's (a
    stamp up the margin, a running head on a landscape page) after them, a line for each run
    of it in the order it was drawn, so that it never cuts into the page's lines."""
    words = words_of(layer)
    lines = reading_order(segments_of([w for w in words if not w.rotated]), page_width)
    run: list[Word] = []
    for word in words + [None]:
        if word is not None and word.rotated:
            run.append(word)
        elif run:
            segment = Segment(run)
            lines.append(Line([segment], segment.x0, segment.x1))
            run = []
    return lines
