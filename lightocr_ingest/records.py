"""The small typed records the stages hand to one another.

pages -> ``PageImage``; ocr -> ``OcrResult`` (with ``Figure`` and ``TextBox``); the
reader turns both into one LlamaIndex ``Document`` per page. Coordinates in records are
those of the page image in pixels; the reader converts them to PDF points for metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x0, y0, x1, y1; origin at the top-left corner


@dataclass(frozen=True)
class SourceFile:
    """One input file, identified by its content so that ids survive renames and moves."""

    path: str
    name: str
    sha256: str
    page_count: int
    kind: str  # "pdf" or "image"


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
    page_width: float  # PDF points (1/72 in); for images, pixels at the image's stated DPI
    page_height: float
    image_width: int  # pixels of the rendered image sent to the model
    image_height: int
    png: bytes
    pixels_sha256: str  # hash of the PNG, which depends only on the pixels: the key of identical pages
    text_layer: str | None = None  # the PDF's own text, kept for fallbacks and checks

    def to_page_points(self, box: Box) -> Box:
        """Convert a box in image pixels to page coordinates (PDF points, top-left origin)."""
        sx = self.page_width / self.image_width
        sy = self.page_height / self.image_height
        x0, y0, x1, y1 = box
        return (round(x0 * sx, 2), round(y0 * sy, 2), round(x1 * sx, 2), round(y1 * sy, 2))


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


@dataclass(frozen=True)
class OcrResult:
    """What an engine made of one page."""

    markdown: str
    engine: str  # "vllm" or "cpu"
    model: str
    figures: tuple[Figure, ...] = ()
    text_boxes: tuple[TextBox, ...] = ()
    finish_reason: str | None = None
    output_tokens: int | None = None
    latency_s: float = 0.0
    attempts: int = 1  # requests sent to the OCR server for this page, retries included
    status: str = "ok"  # ok | retried | fallback_text_layer | fallback_cpu | failed
    error: str | None = None  # why the model's answer was not used (fallbacks, failures)
    warning: str | None = None  # kept but imperfect, e.g. "repetition loop trimmed"
    cached: bool = False  # read from the OCR cache: no request was sent this time
