"""The small typed records the stages hand to one another.

pages -> ``PageImage`` (with the text layer's ``PageWords``); ocr -> ``OcrResult`` (with
``Figure`` and ``TextBox`` in image pixels); the reader turns both into one LlamaIndex
``Document`` per page that carries a ``PageLayout`` (everything in page points) and an
``OcrRun`` (how the page was read this time); chunking turns layouts into ``Region``s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1; origin at the top-left corner
# How a page was read: by the model (at once, or "retried" after a bad answer or a transient error),
# from the PDF's text layer or by the CPU engine when the model gave nothing usable, or not at all.
OcrStatus = Literal["ok", "retried", "fallback_text_layer", "fallback_cpu", "failed"]


# Bits of ``PageWords.styles[:, 2]``: the PDF font descriptor's own, then three of ours.
FIXED_PITCH, ITALIC = 1, 64
INVISIBLE = 1 << 16  # drawn invisibly: the OCR text a scanner lays over its scan
SOFT_HYPHEN = 1 << 17  # the word was broken across lines at a hyphen (written "-" in ``text``)
ROTATED = 1 << 18  # runs another way than most of the page's text (a stamp up the margin)


@dataclass(frozen=True, eq=False)
class PageWords:
    """Words located on a page, in the order their source lists them, in page points.

    Kept as one string and one array rather than an object per word: a file's pages are held
    until the file is chunked, and a dense page has a thousand words.
    """

    source: str  # "text_layer" (the PDF's own text), "ocr_lines" (the CPU engine) or "located"
    text: str  # the words, " " between words of a line and "\n" between lines
    boxes: np.ndarray  # float32 (words, 4): the box of word i of ``text.split()``
    # float32 (words, 4), text layers read for the text-layer engine only: the font size (pt),
    # weight (400 regular, 700 bold; <= 0 unknown), flags (the PDF font flags: FIXED_PITCH,
    # ITALIC; and INVISIBLE, SOFT_HYPHEN, ROTATED) and quarter turns clockwise it runs at (-1:
    # unknown) of each word's first character. None: not read.
    styles: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def from_lines(cls, source: str, lines: list[tuple[str, Box]]) -> "PageWords":
        """Words of text lines with a box each, cut across the line in proportion to characters
        (detectors give line boxes; a word's share of the line is close enough to place it)."""
        texts, boxes = [], []
        for text, (x0, y0, x1, y1) in lines:
            words = text.split()
            if not words:
                continue
            per_char = (x1 - x0) / max(1, len(" ".join(words)))
            at = 0
            for word in words:
                boxes.append((x0 + at * per_char, y0, x0 + (at + len(word)) * per_char, y1))
                at += len(word) + 1
            texts.append(" ".join(words))
        return cls(source, "\n".join(texts), np.asarray(boxes, dtype=np.float32).reshape(-1, 4))


@dataclass(frozen=True)
class Region:
    """Where a chunk's text lies on one page: a box in page points, top-left origin."""

    page: int
    bbox: Box

    def to_payload(self) -> dict:
        return {"page": self.page, "bbox": [round(v, 1) for v in self.bbox]}


@dataclass(frozen=True)
class SourceFile:
    """One input file, identified by its content so that ids survive renames and moves."""

    path: str
    name: str
    sha256: str
    page_count: int
    kind: Literal["pdf", "image"]


@dataclass(frozen=True)
class PageImage:
    """One rendered page, ready to send: lossless PNG bytes plus where it came from.

    The PNG is encoded once, at render time, so that pages waiting in the in-flight window
    cost a few hundred kB each instead of a 5 MB bitmap, and so that the record pickles
    cheaply across worker processes.
    """

    source: SourceFile
    page: int  # 1-based
    label: str  # the PDF's page label when it has one ("iv", "A-3"), else str(page)
    page_width: float  # PDF points (1/72 in) of the page as stored (and shown); images: pixels at their DPI
    page_height: float
    image_width: int  # pixels of the rendered image sent to the model (after ``rotation``)
    image_height: int
    png: bytes  # empty for a page the CPU engine reads from its text layer: it was not rendered
    pixels_sha256: str  # hash of the PNG, which depends only on the pixels: the key of identical pages ("": none)
    text_layer: str | None = None  # the PDF's own text, kept for fallbacks and checks
    text_words: PageWords | None = None  # the text layer's words with their boxes (page points)
    image_share: float | None = None  # of the page's area under images; None: not measured (see text_words)
    rotation: int = 0  # degrees clockwise the page was turned to make it upright (0, 90, 180, 270)
    rotation_confidence: float | None = None  # how sure that was; None: not judged (blank, switched off)

    def to_page_points(self, box: Box) -> Box:
        """Convert a box in image pixels to the page as stored (PDF points, top-left origin),
        undoing the turn that made the image upright."""
        turned_sideways = self.rotation in (90, 270)
        stored_w, stored_h = (self.image_height, self.image_width) if turned_sideways else \
            (self.image_width, self.image_height)
        x0, y0, x1, y1 = box
        xa, ya = _unturn(x0, y0, self.rotation, stored_w, stored_h)
        xb, yb = _unturn(x1, y1, self.rotation, stored_w, stored_h)
        sx, sy = self.page_width / stored_w, self.page_height / stored_h
        return (round(min(xa, xb) * sx, 2), round(min(ya, yb) * sy, 2),
                round(max(xa, xb) * sx, 2), round(max(ya, yb) * sy, 2))

    def lines_in_points(self, lines: tuple["TextBox", ...], source: str) -> PageWords:
        """Detected lines (image pixels) as located words in page points."""
        return PageWords.from_lines(source, [(line.text, self.to_page_points(line.box)) for line in lines])


def _unturn(x: float, y: float, rotation: int, width: float, height: float) -> tuple[float, float]:
    """Where a point of an image turned ``rotation`` degrees clockwise lies on the image before
    the turn (``width`` x ``height`` is the size before the turn)."""
    if rotation == 90:
        return y, height - x
    if rotation == 180:
        return width - x, height - y
    if rotation == 270:
        return width - y, x
    return x, y


@dataclass(frozen=True)
class Figure:
    """An embedded image the model referenced, with its box when the model gave one."""

    ref: str  # the file name in the Markdown reference, e.g. "image_1.png"
    box: Box | None  # image pixels


@dataclass(frozen=True)
class TextBox:
    """A line of text with its box, as the CPU engine detects it."""

    text: str
    box: Box  # image pixels
    score: float = 1.0
    stroke: float = 0.0  # mean width of the line's strokes in pixels (bold or large type is wider); 0: unknown


@dataclass(frozen=True)
class LayoutBlock:
    """One layout block of a page as LightOnOCR-3's grounding mode writes it: its label
    (``text``, ``table``, ``page_number``... or one the model made up, kept as written), its
    box, and the span of the page Markdown its text became."""

    label: str
    box: Box  # image pixels in an ``OcrResult``; page points in a ``PageLayout``
    start: int  # page_markdown[start:end] is the block's text
    end: int
    continues: bool = False  # "text+": the block goes on from the one before (next column, next page)


@dataclass(frozen=True)
class OcrResult:
    """What an engine made of one page."""

    markdown: str
    engine: str  # "vllm" or "cpu"
    model: str
    figures: tuple[Figure, ...] = ()
    text_boxes: tuple[TextBox, ...] = ()
    blocks: tuple[LayoutBlock, ...] = ()  # grounding mode: every block with its box and label
    finish_reason: str | None = None
    output_tokens: int | None = None
    latency_s: float = 0.0
    attempts: int = 1  # requests sent to the OCR server for this page, retries included
    status: OcrStatus = "ok"
    error: str | None = None  # why the model's answer was not used (fallbacks, failures)
    warning: str | None = None  # kept but imperfect, e.g. "repetition loop trimmed"
    cached: bool = False  # read from the OCR cache: no request was sent this time
    thinking_removed: bool = False  # a <think>...</think> preamble came back and was cut off


@dataclass(frozen=True)
class PlacedFigure:
    """An embedded image the model referenced, with its box in page points when known."""

    ref: str
    box: Box | None


@dataclass(frozen=True, eq=False)
class PageLayout:
    """What is known of where things are on a page, in page points; chunking turns it into
    each chunk's regions. Travels beside the page's Markdown, never in its metadata."""

    figures: tuple[PlacedFigure, ...] = ()
    text_layer: PageWords | None = None  # the PDF's text layer, when the page has one
    ocr_lines: PageWords | None = None  # lines the CPU engine read, or located on a scan (``locate``)
    blocks: tuple[LayoutBlock, ...] = ()  # the model's own blocks (grounding), boxes in page points
    locate_s: float = 0.0  # CPU seconds spent placing the model's text with the embedded detector


@dataclass(frozen=True)
class OcrRun:
    """How a page was read this time: facts of the run, not of the page, so they stay out of the
    Document's metadata and hash (a retried or cached page is the same page)."""

    status: OcrStatus = "ok"  # "retried" is told here; the page's metadata says "ok"
    attempts: int = 1
    latency_s: float = 0.0
    cached: bool = False
    finish_reason: str | None = None
    output_tokens: int | None = None
    thinking_removed: bool = False  # the model thought aloud first, and that was cut off
