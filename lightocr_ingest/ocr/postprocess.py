"""Pure clean-ups of the model's Markdown: escaped math delimiters and figure boxes.

Both are string -> string functions with no I/O, tested on their own. Whether figure boxes
are parsed is the caller's to say, from the model profile (``profiles.py``).
"""

from __future__ import annotations

import re

from ..records import Figure

# --- escaped math delimiters -------------------------------------------------------------
# The model sometimes writes \$x\$ for $x$. A pair is repaired only when its body reads as
# math; prices (\$5, "\$5 and \$10") and prose between two dollar signs are left alone.

_SINGLE_DOLLAR = re.compile(r"(?<!\\)\\\$(?!\$)|(?<![\\$])\$(?!\$)")
_ESCAPED_DISPLAY = re.compile(r"\\\$\\\$(?P<body>.*?)\\\$\\\$", re.S)
_TEXT_ARG = re.compile(r"\\(?:text|mathrm|mathbf|mathit|operatorname)\s*\{[^{}]*\}")
_PROSE = re.compile(r"[^\W\d_]{2,}\s+[^\W\d_]{2,}", re.UNICODE)
_NUMBER = re.compile(r"[+\-−]?\s*[\d.,]+%?")
_MATH_SIGNAL = re.compile(r"\\[A-Za-z]+|[\^_=<>{}+*/|]|\\[,;!]")
_SHORT_SYMBOL = re.compile(r"[A-Za-z](?:'|[0-9])?|[A-Za-z]\([A-Za-z0-9, ]*\)")


def reads_as_math(body: str) -> bool:
    """An unescaped ``$body$`` the model wrote: math unless it reads as prose or a bare number.
    The model means math when it writes the delimiters itself, so this is looser than
    ``looks_like_math``, which judges whether escaped ones should become delimiters again."""
    if not body or body != body.strip() or "\n" in body or _NUMBER.fullmatch(body):
        return False  # "\$5\$", "\$1,200\$": currency far more often than math
    depth = 0
    for char in body:
        depth += (char == "{") - (char == "}")
        if depth < 0:
            return False
    return depth == 0 and not _PROSE.search(_TEXT_ARG.sub("", body))


def looks_like_math(body: str) -> bool:
    """Conservative: True only for bodies a reader would call a formula (what ``reads_as_math``
    allows, and a math sign or a lone symbol besides)."""
    return reads_as_math(body) and bool(_MATH_SIGNAL.search(body) or _SHORT_SYMBOL.fullmatch(body))


def math_pairs(line: str, dollars: list[re.Match], is_math) -> list[tuple[re.Match, re.Match]]:
    """The dollar signs of one line that pair up as math, as LightOn's fixer reads them: left
    to right, a sign pairs with the next one when the text between them is math (``is_math``),
    else it is a literal dollar and the next sign is tried. A ``$`` never pairs across lines."""
    pairs = []
    i = 0
    while i + 1 < len(dollars):
        left, right = dollars[i], dollars[i + 1]
        if is_math(line[left.end():right.start()]):
            pairs.append((left, right))
            i += 2
        else:
            i += 1
    return pairs


def _repair_line(line: str) -> str:
    edits = []
    for left, right in math_pairs(line, list(_SINGLE_DOLLAR.finditer(line)), looks_like_math):
        if left.group().startswith("\\") or right.group().startswith("\\"):
            edits.append((left.start(), right.end(), f"${line[left.end():right.start()]}$"))
    for start, end, text in reversed(edits):
        line = line[:start] + text + line[end:]
    return line


def fix_escaped_dollars(markdown: str) -> str:
    """Turn ``\\$x\\$`` back into ``$x$`` (and ``\\$\\$..\\$\\$`` into ``$$..$$``).

    Code fences are left untouched: a shell prompt or a price in code is not math.
    """
    if "\\$" not in markdown:
        return markdown

    def display(match: re.Match) -> str:
        body = match.group("body")
        inner = body.strip()
        if inner and (_MATH_SIGNAL.search(inner) or "\n" in body) and not _PROSE.search(_TEXT_ARG.sub("", inner)):
            return f"$${body}$$"
        return match.group(0)

    out: list[str] = []
    in_fence = False
    for chunk in re.split(r"(^[ \t]*(?:```|~~~).*$)", markdown, flags=re.M):
        if re.match(r"^[ \t]*(?:```|~~~)", chunk):
            in_fence = not in_fence
            out.append(chunk)
            continue
        if in_fence:
            out.append(chunk)
            continue
        chunk = _ESCAPED_DISPLAY.sub(display, chunk)
        out.append("\n".join(_repair_line(line) for line in chunk.split("\n")))
    return "".join(out)


# --- figure references with boxes -----------------------------------------------------
# LightOnOCR-2-1B-bbox writes ![image](image_1.png)x1,y1,x2,y2 with integers in 0-1000,
# relative to the page image's width and height. Other checkpoints write no box, so digits
# right after their image reference ("![image](image_1.png)2024 sales") are page text.

_REFERENCE = r"!\[(?P<alt>[^\]\n]*)\]\((?P<ref>[^)\s]+)\)"
_IMAGE = re.compile(_REFERENCE)
_FIGURE = re.compile(
    _REFERENCE
    + r"(?:[ \t]*(?P<x0>\d+(?:\.\d+)?)[ \t]*,[ \t]*(?P<y0>\d+(?:\.\d+)?)[ \t]*,"
    r"[ \t]*(?P<x1>\d+(?:\.\d+)?)[ \t]*,[ \t]*(?P<y1>\d+(?:\.\d+)?))?"
)
BOX_SCALE = 1000.0  # the model's coordinates run 0..1000 on each axis


def extract_figures(markdown: str, image_width: int, image_height: int, *,
                    figure_boxes: bool) -> tuple[str, list[Figure]]:
    """Every image reference as a ``Figure`` record, with its box when the model writes boxes.

    ``figure_boxes`` (the model profile's) says whether the model appends ``x1,y1,x2,y2``; when
    it does, the box is stripped from the text and returned in image pixels, clamped to the
    image and ordered (x0 <= x1, y0 <= y1). References without a box get ``box=None``. When it
    does not, the text is returned as the model wrote it and every box is None.
    """
    if not figure_boxes:
        return markdown, [Figure(ref=match.group("ref"), box=None) for match in _IMAGE.finditer(markdown)]

    figures: list[Figure] = []

    def replace(match: re.Match) -> str:
        ref = match.group("ref")
        box = None
        if match.group("x0") is not None:
            raw = [min(max(float(match.group(k)), 0.0), BOX_SCALE) for k in ("x0", "y0", "x1", "y1")]
            x0, x1 = sorted((raw[0], raw[2]))
            y0, y1 = sorted((raw[1], raw[3]))
            box = (
                round(x0 / BOX_SCALE * image_width, 1),
                round(y0 / BOX_SCALE * image_height, 1),
                round(x1 / BOX_SCALE * image_width, 1),
                round(y1 / BOX_SCALE * image_height, 1),
            )
        figures.append(Figure(ref=ref, box=box))
        return f"![{match.group('alt')}]({ref})"

    return _FIGURE.sub(replace, markdown), figures


def clean_markdown(markdown: str, image_width: int, image_height: int, *,
                   figure_boxes: bool) -> tuple[str, list[Figure]]:
    """Everything the reader applies to a model answer, in order.

    ``figure_boxes`` comes from the model's profile (``profile_for(model).figure_boxes``); it
    has no default because guessing wrong either loses page text or leaves boxes in it.
    """
    text = markdown.replace("\r\n", "\n").strip()
    text = fix_escaped_dollars(text)
    return extract_figures(text, image_width, image_height, figure_boxes=figure_boxes)


# --- thinking --------------------------------------------------------------------------
# Qwen-based LightOnOCR-3 checkpoints think first when a request does not turn thinking off
# (a server without --default-chat-template-kwargs, a client that forgot the flag); the
# preamble opens the answer. Only a preamble at the very start is cut: "</think>" further on
# may be page text (a page about chat templates).
_THINKING = re.compile(r"\A\s*<think>.*?</think>\s*", re.S)


def strip_thinking(answer: str) -> tuple[str, bool]:
    """The answer without a leading ``<think>...</think>`` preamble, and whether there was one.
    A preamble never closed (cut at max_tokens) is all the answer had: nothing is left."""
    match = _THINKING.match(answer)
    if match:
        return answer[match.end():], True
    if answer.lstrip().startswith("<think>"):
        return "", True
    return answer, False


# --- the PDF's own text layer, as a fallback ---------------------------------------------

def text_layer_markdown(text: str) -> str:
    """A PDF text layer (PDFium's ``\\r\\n``-separated lines) as plain Markdown paragraphs.

    Lines stay lines; runs of blank lines become one paragraph break; a line that would read
    as Markdown syntax (``# ...``, ``> ...``) is escaped, since the PDF meant it as text.
    """
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        if line[0] in "#>":
            line = "\\" + line
        out.append(line)
    return "\n".join(out).strip()
