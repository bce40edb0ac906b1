"""A text layer's lines in reading order (``text_lines``) -> Markdown like the model's.

Headings from the fonts (size against the page's body text, bold, numbering), paragraphs
joined across line breaks and hyphenation, bulleted and numbered lists, code in fixed-pitch
fonts as fenced blocks, and tables as HTML where rows line up in columns. Where the
geometry is unsure the words stay plain text, in order: no rule here drops a word
(``tests/test_text_layer.py`` checks every word of the layer comes out).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from statistics import median

from .text_lines import Line, Word

# Heading levels by the font size against the page's body text: a title, a section; a bold line a
# little larger than the body, a subsection; bold text at the body's size is the level below.
# (A line set a little larger but not bold is body text in another size: an introduction at
# 11 pt on a page whose abstract is at 10.)
HEADING_RATIOS = ((1.4, 1), (1.17, 2))
BOLD_HEADING_RATIO = 1.1  # a bold line this much larger than the body: level 3
BOLD_HEADING_LEVEL = 4
NUMBERED_HEADING_LEVEL = 5  # "1. Wide text" in italics or capitals at the body's size
NUMBERED_BOLD_SHARE = 0.6  # a numbered bold heading may set a name in it in another face
HEADING_MAX_WORDS = 14  # a longer line is a sentence, whatever its font
BYLINE_LINES = 3  # lines under a page's first heading where its authors' names are looked for
_FOOTNOTE_MARKS = "0123456789*\u2020\u2021\u00a7\u00b6\u2217\u22c6?"  # digits, * † ‡ § ¶ ∗ ⋆ ? after a name
_INITIAL = re.compile(r"^[A-Z]\.(-[A-Z]\.)?$")  # "T.", "J.-P."
SENTENCE_WORDS = 6  # a line of this many words ending in a full stop is a sentence, not a title
MAX_HEADING_LINES = (2, 3)  # lines a heading runs to (a title: the second); more in its style is a paragraph
PARAGRAPH_GAP = 0.5  # ems of extra white above a line (more than the usual leading): a new paragraph
INDENT = (0.7, 5.0)  # ems: a first line indented this much starts a paragraph
SHORT_LINE = 2.5  # ems short of the column's right edge: the last line of a paragraph
MIN_TABLE_ROWS = 3
# A bullet glyph, or a dash or star followed by a space ("-5 degrees" is no item).
_BULLET = re.compile(r"^(?:[\u2022\u25e6\u25aa\u25ab\u2023\u2219\u00b7\u25cf\u25cb\u25a0\u25a1\u27a2\u25ba]\s*"
                     r"|[*\u2013\u2014-]\s+)(\S.*)$")
_ENUMERATOR = re.compile(r"^(\d{1,3}[.)])\s+(\S.*)$")
_NUMBERED_HEADING = re.compile(r"^(\d+(\.\d+)*\.?|[IVXL]+\.|[A-Z]\.|Appendix\s+[A-Z0-9]+\.?)\s+\S")
_APPENDIX_NUMBER = re.compile(r"^[A-Z]\.\d+(\.\d+)*\s")  # "C.202 synth_intel – synthesis for Intel FPGAs."
_PAGE_NUMBER = re.compile(r"^(\d{1,4}|[ivxlc]{1,6})$")
_LINE_NUMBER = re.compile(r"^\d{1,4}$")  # a listing's numbered lines (at its left; a page number is not)
CODE_SPACE = 0.5  # in fixed pitch, words nearer than this many characters are one word
_CAPTION = re.compile(r"^(Fig(ure)?|Table|Listing|Algorithm)\.?\s*[\dIVX]", re.I)
_MARKDOWN_START = re.compile(r"^(#{1,6}(\s|$)|[>+*-](\s|$)|\d+[.)](\s|$)|[=_]{3,}|`{3}|~{3}|\||<)")


@dataclass
class _Block:
    kind: str  # "paragraph", "heading", "item", "code", "table"
    lines: list[Line] = field(default_factory=list)
    level: int = 0  # headings
    rows: list[list[str]] = field(default_factory=list)  # tables


def body_size(lines: list[Line]) -> float:
    """The font size most of the page's characters are set in."""
    weights: dict[float, int] = {}
    for line in lines:
        for word in line.words:
            key = round(word.size * 2) / 2
            weights[key] = weights.get(key, 0) + len(word.text)
    return max(max(weights, key=weights.get), 1.0) if weights else 10.0


def heading_level(line: Line, body: float) -> int:
    """The Markdown heading level of a line, or 0 for a line of text."""
    if len(line.words) > HEADING_MAX_WORDS:  # cheap tests first: most lines are a paragraph's
        return 0
    text = line.text
    words = text.split()
    if text[0].islower() or line.words[-1].hyphen or line.words[0].rotated:
        return 0
    letters = sum(map(str.isalpha, text))
    if (letters < 2 or letters < 0.5 * len(text.replace(" ", "")) or line.share("mono") > 0.5
            or _CAPTION.match(text) or _BULLET.match(text) or _is_code(line)):  # "18 cd 19": listing lines
        return 0
    ratio = line.size / body
    for at_least, level in HEADING_RATIOS:
        if ratio >= at_least:  # a sentence set large is text (a page of smaller print around it)
            sentence = len(words) >= SENTENCE_WORDS and text.endswith(".") and \
                not (_NUMBERED_HEADING.match(text) or _APPENDIX_NUMBER.match(text))
            return 0 if sentence else level
    if line.share("bold") >= 0.9 and ratio >= 0.85:
        return 3 if ratio >= BOLD_HEADING_RATIO else BOLD_HEADING_LEVEL
    numbered = _NUMBERED_HEADING.match(text) and len(words) <= 10 and not text.endswith((".", ",", ";", ":"))
    if numbered and ratio >= BOLD_HEADING_RATIO:  # "2.1 Template Styles" a point larger than the body
        return 3
    if numbered and (line.share("italic") >= 0.9 or sum(c.isupper() for c in text) >= 0.8 * letters):
        return NUMBERED_HEADING_LEVEL
    if numbered and ratio >= 0.85 and line.words[0].bold and line.words[-1].bold and \
            line.share("bold") >= NUMBERED_BOLD_SHARE and line.words[0].text[0].isdigit():
        # "4 Class options: The ltugboat class", the class's name in another face; not a run-in
        # heading ("2.1. Basic notions. Let X be"), nor initials ("J. Smith, A. Jones 1,2")
        return BOLD_HEADING_LEVEL
    return 0


def _continues_heading(heading: _Block, line: Line, em: float, leading: float) -> bool:
    """``line`` is the second line of a heading: set in the same font, just below it."""
    last = heading.lines[-1]
    return (len(heading.lines) < MAX_HEADING_LINES[heading.level == 1] and abs(line.size - last.size) <= 0.5 and len(line.words) <= HEADING_MAX_WORDS
            and abs(line.share("bold") - last.share("bold")) < 0.2 and line.y0 > last.y0
            and line.y0 - last.y1 < leading + PARAGRAPH_GAP * em)


def _is_code(line: Line) -> bool:
    """A line of a program listing: set in a fixed-pitch font, but for its line number."""
    words = [w for w in line.words if not _LINE_NUMBER.match(w.text)]
    if not words:
        return False
    total = sum(len(w.text) for w in words)
    return sum(len(w.text) for w in words if w.mono) >= 0.9 * total


def _is_numbered_code(line: Line) -> bool:
    """A listing's numbered line: its number, then code (not a table's first column)."""
    return bool(_LINE_NUMBER.match(line.words[0].text)) and len(line.words) > 1 and _is_code(line)


def _wraps_on(item: list[Line], line: Line, em: float) -> bool:
    """``line`` goes on with a list item whose lines wrap back to the margin rather than under
    the item's text (MNRAS's lists): it starts near the bullet, and the item's last line runs
    as far right as any of them (a full line wraps; a short one ends the item) and does not end
    a sentence before a line that starts like one (a paragraph set flush after the list)."""
    last = item[-1]
    ends_sentence = last.text.endswith((".", "!", "?", ":")) and not line.text[0].islower()
    return (item[0].x0 - 1.5 * em <= line.x0 <= item[0].x0 + 0.5 * em and len(last.words) > 3
            and not ends_sentence and last.x1 >= max(line.x1, *(other.x1 for other in item)) - em)


def _starts_paragraph(previous: Line, line: Line, em: float, leading: float) -> bool:
    """``line`` starts a new paragraph rather than continuing the one ``previous`` belongs to."""
    if abs(previous.size - line.size) > 0.5:
        return True
    if previous.words[-1].hyphen:  # the line ends inside a word
        return False
    if line.y0 < previous.y0:  # the next column: the paragraph goes on unless it visibly ended
        return previous.x1 < previous.right - SHORT_LINE * em
    if line.y0 - previous.y1 > leading + PARAGRAPH_GAP * em:
        return True
    indent = line.x0 - previous.x0
    if INDENT[0] * em <= indent <= INDENT[1] * em and line.x0 - line.left >= INDENT[0] * em:
        return True
    return previous.x1 < previous.right - SHORT_LINE * em


def _table_rows(lines: list[Line], em: float) -> list[list[str]] | None:
    """Lines whose segments line up in two or more columns as table rows (one cell a segment),
    or None when they do not (a bulleted list's bullets are not a column)."""
    segments = [s for line in lines for s in line.segments]
    edges = sorted(segments, key=lambda s: s.x0)
    columns: list[list[float]] = []  # [x0, x1] extents, left to right
    for segment in edges:
        if columns and segment.x0 < columns[-1][1] + 0.3 * em:
            columns[-1][1] = max(columns[-1][1], segment.x1)
        else:
            columns.append([segment.x0, segment.x1])
    if len(columns) < 2:
        return None
    rows = []
    for line in lines:
        cells = [""] * len(columns)
        for segment in line.segments:
            at = next(i for i, (x0, x1) in enumerate(columns) if x0 <= segment.x0 <= x1)
            if cells[at]:
                return None
            cells[at] = " ".join(w.text for w in segment.words)
        rows.append(cells)
    for column in range(len(columns)):
        if all(_BULLET.match(row[column] + " x") or _ENUMERATOR.match(row[column] + " x") or not row[column]
               for row in rows):
            return None
    return rows


def heading_levels(lines: list[Line], body: float) -> list[int]:
    """Each line's heading level (0: text). A run of lines in one heading style longer than a
    heading runs (``MAX_HEADING_LINES``) is a paragraph set larger or bolder than the page's
    body text (an introduction at 11 pt on a page whose abstract is at 10), not headings."""
    levels = [heading_level(line, body) for line in lines]
    if lines:  # a running head with its page number set apart ("6     K. T. Smith"): furniture, not a heading
        top, bottom = min(line.y0 for line in lines), max(line.y1 for line in lines)
        for number, line in enumerate(lines):
            ends = (line.segments[0].words, line.segments[-1].words)
            if levels[number] and (line.y0 <= top + 1 or line.y1 >= bottom - 1) and len(line.segments) > 1 and \
                    any(len(end) == 1 and _PAGE_NUMBER.match(end[0].text) for end in ends):
                levels[number] = 0
            elif levels[number] and len(line.segments) > 1 and len(ends[1]) == 1 and _PAGE_NUMBER.match(ends[1][0].text) \
                    and _NUMBERED_HEADING.match(line.text):
                levels[number] = 0  # a table of contents' entry: "4 Implementation Overview      31"
    first = next((number for number, level in enumerate(levels) if level), None)
    if first is not None and levels[first] == 1:  # the byline under a title is set large too
        after = first + 1
        while after < len(lines) and levels[after] == levels[first]:
            after += 1  # the title's other lines
        for number in range(after, min(after + BYLINE_LINES, len(lines))):
            if levels[number] and _is_byline(lines[number].text):
                levels[number] = 0
    start = 0
    for end in range(1, len(lines) + 1):
        if end < len(lines) and levels[start] and abs(lines[end].size - lines[start].size) <= 0.5 and \
                lines[end].y0 > lines[end - 1].y0 and \
                (levels[end] == levels[start] or levels[end] == 0 and levels[start] <= len(HEADING_RATIOS)
                 and _same_text(lines[start], lines[end - 1], lines[end])):
            continue
        if levels[start] and end - start > MAX_HEADING_LINES[levels[start] == 1]:
            levels[start:end] = [0] * (end - start)
        start = end
    return levels


def _is_byline(text: str) -> bool:
    """Whether ``text`` is only people's names ("Achim Zeileis Susanne Köll", "Keith T. Smith1,2†",
    "A. Author and B. Author"): capitalised names and initials, with footnote marks, joined by
    "and" or commas. A few capitalised words could be a heading ("Questions and Answers",
    "2 Related Work"): a byline has four names, or an initial or a footnote mark on a name."""
    names, marked = 0, False
    for word in text.split():
        word = word.rstrip(",")
        if word in ("and", "&", ""):
            continue
        bare = word.rstrip(_FOOTNOTE_MARKS)
        if not bare:  # a number standing alone: a section's, not a mark
            return False
        initial = bool(_INITIAL.match(bare))
        if not (initial or bare[0].isupper() and bare[1:].replace("-", "").isalpha()
                and bare[1:].replace("-", "").islower()):
            return False
        names += 1
        marked = marked or initial or bare != word
    return names >= 4 or names >= 2 and marked


def _same_text(heading: Line, above: Line, line: Line) -> bool:
    """Whether ``line``, no heading, set right below ``above`` in a run that a heading told by its
    size alone begins, is set like that heading: then the heading is no larger than the text it
    leads, and the run is a paragraph at a size above the page's body (a page of references at
    7 pt whose text is at 9)."""
    return line.y0 - above.y1 < heading.size and \
        (heading.share("bold") >= 0.5) == (line.share("bold") >= 0.5)


def blocks_of(lines: list[Line]) -> list[_Block]:
    """The page's lines grouped into Markdown blocks."""
    body = body_size(lines)
    em = body
    gaps = [b.y0 - a.y1 for a, b in zip(lines, lines[1:]) if 0 <= b.y0 - a.y1 < em]
    leading = median(gaps) if gaps else 0.2 * em
    levels = heading_levels(lines, body)
    blocks: list[_Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if len(line.segments) > 1 and not _is_numbered_code(line):  # a table's rows, each in several segments
            end = index
            while end < len(lines) and len(lines[end].segments) > 1 and not _is_numbered_code(lines[end]):
                end += 1
            rows = _table_rows(lines[index:end], em) if end - index >= MIN_TABLE_ROWS else None
            if rows is not None:
                blocks.append(_Block("table", lines[index:end], rows=rows))
                index = end
                continue
        level = levels[index]
        previous = blocks[-1] if blocks else None
        if previous and previous.kind == "heading" and previous.level < NUMBERED_HEADING_LEVEL and \
                _continues_heading(previous, line, em, leading):
            previous.lines.append(line)  # a heading set on two lines
        elif level:
            blocks.append(_Block("heading", [line], level=level))
        elif _is_code(line) or (previous and previous.kind == "code" and _LINE_NUMBER.match(line.text)
                                and line.y0 > previous.lines[-1].y0
                                and (line.x0 < min(l.x0 for l in previous.lines) + em  # not a page number
                                     or line.words[0].mono)):  # a number the listing prints
            if previous and previous.kind == "code" and line.y0 > previous.lines[-1].y0:
                previous.lines.append(line)  # a listing's next line (an empty one shows its number only)
            else:
                blocks.append(_Block("code", [line]))
        elif _BULLET.match(line.text) or _ENUMERATOR.match(line.text):
            blocks.append(_Block("item", [line]))
        elif previous and previous.kind == "item" and (line.x0 > previous.lines[0].x0 + 0.5 * em or
                                                        _wraps_on(previous.lines, line, em)) and \
                0 <= line.y0 - previous.lines[-1].y1 < leading + PARAGRAPH_GAP * em:
            previous.lines.append(line)  # an item's next line, indented under its text (or wrapped to the margin)
        elif previous and previous.kind == "paragraph" and not _starts_paragraph(previous.lines[-1], line, em, leading):
            previous.lines.append(line)
        else:
            blocks.append(_Block("paragraph", [line]))
        index += 1
    return blocks


def _joined(lines: list[Line]) -> str:
    """Lines of a paragraph as one line of text: a word broken at a line's end is mended
    with the first word of the next line."""
    out: list[str] = []
    previous_hyphen = False
    for line in lines:
        first, rest = line.words[0].text, [w.text for w in line.words[1:]]
        last = out[-1] if out else ""
        if previous_hyphen and len(last) > 1 and last[-2].isalnum():
            out[-1] = last[:-1] + first
        else:
            out.append(first)
        out.extend(rest)
        previous_hyphen = line.words[-1].hyphen
    return " ".join(out)


def _escaped(text: str) -> str:
    """Text that starts like Markdown syntax ("1. ", "# ", "- ") kept as text."""
    return "\\" + text if _MARKDOWN_START.match(text) else text


def _pitch(word: Word) -> float:
    """A word's width a character (0 for a word without a box)."""
    return max(0.0, word.box[2] - word.box[0]) / max(1, len(word.text))


def _code(lines: list[Line]) -> str:
    """Fixed-pitch lines as a fenced block, indents kept in characters, and the words of a
    line spaced as drawn: PDFium puts a space wherever a listing's glyphs sit a little apart
    ("- expect - return <int >" for "-expect-return <int>"), but a space in fixed pitch is a
    character wide, so words closer than half a character are one."""
    chars = [_pitch(w) for line in lines for w in line.words if w.text and w.box[2] > w.box[0]]
    width = median(chars) if chars else 6.0  # boxes held to the page's edge can be empty
    left = min(line.x0 for line in lines)

    def spaced(line: Line) -> str:
        out = [line.words[0].text]
        for before, word in zip(line.words, line.words[1:]):
            pitch = min(_pitch(before), _pitch(word))  # 0 past the page's edge (no box): kept apart
            out.append(word.text if pitch > 0 and word.box[0] - before.box[2] < CODE_SPACE * pitch
                       else " " + word.text)
        return "".join(out)

    text = "\n".join(" " * int(round((line.x0 - left) / width)) + spaced(line) for line in lines)
    fence = "~~~" if "```" in text else "```"
    return f"{fence}\n{text}\n{fence}"


def _table(rows: list[list[str]]) -> str:
    """Rows as HTML like LightOnOCR's: the first row is the header (``<th>`` cells), as in
    Markdown tables and pymupdf4llm's; a table cut to fit a chunk repeats it in every piece,
    so a row far down still says what its columns are."""
    def row(cells: list[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in cells) + "</tr>"

    return "<table>" + "".join(row(cells, "th" if number == 0 else "td") for number, cells in enumerate(rows)) + \
        "</table>"


def _item(lines: list[Line]) -> str:
    text = _joined(lines)
    bullet = _BULLET.match(text)
    if bullet:
        return f"- {_escaped(bullet.group(1))}"
    number = _ENUMERATOR.match(text)
    return f"{number.group(1)} {_escaped(number.group(2))}"  # "2)" is CommonMark's too


def lines_markdown(lines: list[Line]) -> str:
    """Markdown for lines in reading order."""
    out = []
    for block in blocks_of(lines):
        if block.kind == "heading":
            out.append("#" * block.level + " " + _joined(block.lines))
        elif block.kind == "code":
            out.append(_code(block.lines))
        elif block.kind == "table":
            out.append(_table(block.rows))
        elif block.kind == "item":
            out.append(_item(block.lines))
        else:
            out.append(_escaped(_joined(block.lines)))
    return "\n\n".join(out)
