"""How the test server answers as LightOnOCR-3 does: which served name is which generation,
the request shapes and sampling each generation expects, grounding answers (one layout block
per marker, boxes in 0-1000 of the image), and the Qwen checkpoints' thinking preamble.

Written from LightOn's published description (../shared/LIGHTONOCR.md, "The models", "The
request", "Grounding"), on purpose apart from the reader's own ``ocr.profiles`` and
``ocr.grounding``: the server checks the client, so it must not share the client's code (a
mistake shared by both would pass every test).
"""

from __future__ import annotations

import hashlib
import math
import re

from ..records import PageImage, PageWords

GROUNDING_TEXT = "grounding"  # the one text part that asks LightOnOCR-3 for blocks with boxes
GROUNDING_PART = {"type": "text", "text": GROUNDING_TEXT}
PIXTRAL_SIDE = 1540  # px, longest side: the 1B models' Pixtral encoder (model cards, about 200 DPI)
QWEN_SIDE = 2048  # px, longest side: LightOnOCR-3-0.8B/-4B take the image as sent; LightOn renders 2048
MAX_TOKENS = 4096  # LightOn's client; larger caps only lengthen repetition loops
# The model cards' top_p: 0.9 for generations 1 and 2, 1.0 for 3 (temperature 0.2 for all; the
# server's temperature ladder, 0.2 to 0.8, is checked apart).
TOP_P = {1: 0.9, 2: 0.9, 3: 1.0}
# What a Qwen chat template makes the model write first unless the request says
# ``enable_thinking: false`` (LightOnOCR-3-0.8B/-4B were trained without thinking). Not a
# violation: the request is legal, the answer merely starts with reasoning the reader must cut.
THINKING = ("<think>\nThe user wants the text of this document page. The user sent one image and no "
            "instruction, so I should transcribe it top to bottom in reading order, keep the tables as HTML "
            "and the math as LaTeX, and add nothing of my own.\n</think>\n\n")

_GENERATION = re.compile(r"lightonocr-(\d+)-")


def served_generation(model: str) -> tuple[int, int, bool]:
    """``(generation, longest side in px, Qwen-based)`` of a served name, read as LightOn's
    client reads it (lower-cased): ``lightonocr-1b`` is the first generation,
    ``lightonocr-(N)-`` gives N, ``lightonocr-3-1b`` is the Pixtral-based LightOnOCR-3 at
    1540 px; any other generation-3 name, and a name that matches nothing (a custom
    ``--served-model-name``), is a Qwen-based LightOnOCR-3 at 2048 px, except a name with
    ``bbox`` in it: only LightOnOCR-2's ``-bbox`` checkpoints are so named, so a renamed one is
    generation 2 (as the reader's profiles take it, and tests serve such names)."""
    name = model.lower()
    if "lightonocr-1b" in name:
        return 1, PIXTRAL_SIDE, False
    match = _GENERATION.search(name)
    if match and int(match.group(1)) in (1, 2):
        return int(match.group(1)), PIXTRAL_SIDE, False
    if "lightonocr-3-1b" in name:
        return 3, PIXTRAL_SIDE, False
    if "bbox" in name and not match:
        return 2, PIXTRAL_SIDE, False
    return 3, QWEN_SIDE, True


def expected_sampling(generation: int) -> dict:
    """The sampling every first request must carry besides its temperature."""
    return {"top_p": TOP_P.get(generation, TOP_P[3]), "max_tokens": MAX_TOKENS}


def request_mode(content: object, generation: int) -> tuple[str, object]:
    """``("grounding", [image part])`` when a generation-3 request's content is the image and
    the text ``grounding``; else ``("plain", content)`` unchanged, for the server to check as
    image-only (so any other text part, and any text part at all for generations 1 and 2,
    which were never trained on a prompt and repeat it, stays a violation)."""
    if generation >= 3 and isinstance(content, list) and len(content) == 2 and content[1] == GROUNDING_PART:
        return "grounding", content[:1]
    return "plain", content


def thinking_disabled(body: dict) -> bool:
    """Whether a request says ``chat_template_kwargs: {"enable_thinking": false}`` (anything
    else, a malformed value included, leaves a Qwen chat template thinking)."""
    kwargs = body.get("chat_template_kwargs")
    return isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False


def grounded_page(seed: str) -> str:
    """A deterministic grounding answer, different for each seed (the server passes the image's
    sha256), laid out as a two-column paper page and listed in reading order:

    ``header`` (the running head "Journal of Tests", the same on every page), ``title`` (``#``)
    and ``section`` (``##``), a left-column ``text`` that flows into the right column as
    ``text+``, a ``formula`` (``$$``) and a ``table`` (HTML over several lines) whose text
    starts on the line after the marker, the table's ``caption``, a full-width ``image`` with a
    short description and its ``caption``, a ``footnote``, and the ``page_number`` (1-7).
    One box has spaces around its numbers and commas, as the model sometimes writes them.
    """
    digest = hashlib.sha256(seed.encode()).hexdigest()
    number = int(digest[:4], 16) % 90 + 10
    return "\n".join([
        "![header](100,30,900,45) Journal of Tests",
        f"![title](100,70,900,100) # {number} Results on page {digest[:8]}",
        f"![section](100,120,480,138) ## {number}.1 Ablations",
        f"![text]( 100, 150 ,480,500 ) We minimise the loss $\\mathcal{{L}}(\\theta)$ over {number} runs of the "
        "basin model, and every run starts from the same seed so that differences between",
        f"![text+](520,120,900,230) runs come from the setting alone. The survey of page {digest[8:14]} "
        "kept every station.",
        "![formula](520,245,900,285)",
        f"$$\\hat{{y}}_i = \\sum_{{j=1}}^{{{number % 9 + 2}}} w_j x_{{ij}}$$",
        "![table](520,300,900,470)",
        "<table><thead><tr><th>Model</th><th>Score</th></tr></thead>",
        f"<tbody><tr><td>A</td><td>{number}.2</td></tr>",
        f"<tr><td>B</td><td>{number}.9</td></tr></tbody></table>",
        f"![caption](520,475,900,490) Table {number % 7 + 1}: Scores by model.",
        "![image](100,530,900,800) A line chart of nitrate falling over twelve months at six stations",
        f"![caption](100,810,900,825) Figure {number % 5 + 1}: Nitrate by month.",
        f"![footnote](100,900,900,915) {number % 9 + 1} Measured at the outflow.",
        f"![page_number](490,960,510,975) {number % 7 + 1}",
    ])


# Paragraphs from text-layer lines. Loose word boxes run from the font's ascent to its descent,
# so consecutive lines of a paragraph touch or overlap a little, and leading adds ~0.2 of a line.
PARAGRAPH_GAP = 0.8  # a gap between lines above 0.8 line heights starts a new block
LINE_OVERLAP = 0.5  # lines of one paragraph may overlap this much (tight leading, loose boxes)
COLUMN_JUMP = 2.0  # a left edge more than 2 line heights left of the block's: another column
HEADER_BAND = 0.06  # top 6 % of the page: a short block there is the running head
FOOTER_BAND = 0.90  # bottom 10 %: a number alone there is the page number
HEADER_WORDS = 12  # a running head is short; a longer block up there is body text


def grounded_answer_from_words(words: PageWords, page: PageImage) -> str:
    """The grounding answer a model would give for a real page if its blocks were the text
    layer's paragraphs, for tests and benchmarks that need true block boxes.

    Words are taken in ``words.text``'s lines; a line joins the block before it unless the gap
    between them is over ``PARAGRAPH_GAP`` line heights (or the line sits above it: a new
    column), or its left edge jumps left by more than ``COLUMN_JUMP`` line heights, or it lies
    beside the block rather than under it. Each block is one marker, its lines joined by
    spaces, boxed in 0-1000 of the image and rounded outwards, so that the box mapped back to
    page points holds every word listed. A block whose centre is in the bottom 10 % and that is
    only digits is the ``page_number``; one whose centre is in the top 6 % with fewer than 12
    words is a ``header``; the rest is ``text``.

    Limitation: page points are scaled to the image of the page as stored. For a page turned
    upright (``page.rotation`` not 0) the image sent is turned too, so the boxes do not match
    that image; no test or benchmark uses this on such a page.
    """
    blocks: list[tuple[list[str], list[float]]] = []
    for line_words, box in _lines(words):
        if blocks and _continues(blocks[-1][1], box):
            last_words, last = blocks[-1]
            last_words.extend(line_words)
            blocks[-1] = (last_words, [min(last[0], box[0]), min(last[1], box[1]),
                                       max(last[2], box[2]), max(last[3], box[3])])
        else:
            blocks.append((list(line_words), box))
    # Points -> pixels (x image_width / page_width) -> 0-1000 (x 1000 / image_width): the image is
    # the page scaled, so the pixel sizes cancel (and rounding of the image's size does not enter).
    sx, sy = 1000 / page.page_width, 1000 / page.page_height
    out = []
    for block_words, (x0, y0, x1, y1) in blocks:
        text = " ".join(block_words)
        centre = (y0 + y1) / 2 / page.page_height
        label = "text"
        if centre > FOOTER_BAND and text.isdigit():
            label = "page_number"
        elif centre < HEADER_BAND and len(block_words) < HEADER_WORDS:
            label = "header"
        box = [math.floor(x0 * sx), math.floor(y0 * sy), math.ceil(x1 * sx), math.ceil(y1 * sy)]
        out.append(f"![{label}]({','.join(str(max(0, min(1000, v))) for v in box)}) {text}")
    return "\n".join(out)


def _lines(words: PageWords) -> list[tuple[list[str], list[float]]]:
    """Each non-empty line of ``words.text`` with its words and the box around them (points)."""
    tokens = words.text.split()
    lines = []
    at = 0
    for line in words.text.split("\n"):
        count = len(line.split())
        if count:
            boxes = words.boxes[at:at + count]
            lines.append((tokens[at:at + count], [float(boxes[:, 0].min()), float(boxes[:, 1].min()),
                                                  float(boxes[:, 2].max()), float(boxes[:, 3].max())]))
        at += count
    return lines


def _continues(block: list[float], line: list[float]) -> bool:
    """Whether ``line`` (a box in points) goes on the paragraph boxed by ``block``."""
    height = max(1.0, line[3] - line[1])
    gap = line[1] - block[3]
    under = -LINE_OVERLAP * height <= gap <= PARAGRAPH_GAP * height
    jump = block[0] - line[0]  # > 0: the line starts left of the block
    same_column = jump < COLUMN_JUMP * height and line[0] < block[2] and line[2] > block[0]
    return under and same_column
