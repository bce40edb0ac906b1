"""The embedded CPU engine: RapidOCR (PP-OCR ONNX models shipped in its wheel) on onnxruntime.

It needs no GPU and no download, so ingestion runs on any machine. It reads plain text only
(no tables as tables, no LaTeX), about 4-5 s a page on two cores (9 CPU-seconds a dense page
of tests/real_documents): a fallback and a way to try the pipeline, not a substitute for
LightOnOCR. The recogniser is loaded once per process and
used by one page at a time (onnxruntime already spreads one page over all cores).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from ..cpu_cost import stage_cpu
from ..records import OcrResult, PageImage, TextBox
from .layout import lines_to_paragraphs, paragraphs_to_markdown
from .skew import estimate_skew, map_box, straighten

CPU_MODEL = "rapidocr/PP-OCRv6-small"  # what rapidocr's default config loads from its wheel
MIN_LINE_SCORE = 0.5  # recognitions below this confidence are mostly noise on graphics
REREAD_BELOW = 0.9  # a line read with less confidence than this is read again (``_reread``): clean print
#                     scores over 0.95, and a garbled long line ("Eae s s s s t are") about 0.65
REREAD_GAIN = 0.03  # a new reading replaces the first only when its score is this much higher
FLIP_BELOW = 0.7  # a line is also read upside down only when read this badly (an upside-down line
#                   reads as noise, well under 0.7; a weak upright line must not be swapped for a flip)

_ENGINE = None
_ENGINE_LOCK = threading.Lock()  # guards both loading and use: one page at a time per process


def _load():
    global _ENGINE
    if _ENGINE is None:
        from rapidocr import RapidOCR

        # Set after import: rapidocr sets its logger to INFO when imported, and its lines about
        # model files drown our progress bar. Its handler has its own level, hence both.
        rapid_log = logging.getLogger("RapidOCR")
        rapid_log.setLevel(logging.WARNING)
        for handler in rapid_log.handlers:
            handler.setLevel(logging.WARNING)
        _ENGINE = RapidOCR()
    return _ENGINE


@dataclass(frozen=True)
class PageLines:
    """The lines read on a page, with boxes on the page as straightened (what layout reads)."""

    lines: list[TextBox]
    skew: float  # degrees the page's lines rose to the right before straightening; 0: read as it was
    back: np.ndarray | None  # affine map from the straightened page to the page image (None: not straightened)
    width: int  # of the page image
    height: int

    def in_image(self) -> list[TextBox]:
        """The lines with their boxes on the page image itself (what regions are placed by)."""
        if self.back is None:
            return list(self.lines)
        return [replace(line, box=map_box(line.box, self.back, self.width, self.height)) for line in self.lines]


def recognise_lines(png: bytes, **options) -> list[TextBox]:
    """Detect and read the lines of one page image; boxes in image pixels (see ``read_lines``)."""
    return read_lines(png, **options).in_image()


def read_lines(png: bytes, *, reread_below: float = REREAD_BELOW, classify_lines: bool = False,
               deskew: bool = True) -> PageLines:
    """Detect and read the lines of one page image, straightened first when it is skewed.

    The page comes upright (``pages.orientation``), so RapidOCR's per-line direction
    classifier is not run: on upright pages it flipped whole lines and garbled them, and it
    cost a second a page. A line read with little confidence is read again (``_reread``),
    upside down among other ways, which also covers a line that really is upside down.
    ``reread_below=0``, ``classify_lines=True`` and ``deskew=False`` give the engine as it was
    (benchmarks compare).
    """
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    height, width = image.shape[:2]
    skew, back = (estimate_skew(image.min(axis=2)) if deskew else 0.0), None
    if skew:
        image, back = straighten(image, skew)
    with _ENGINE_LOCK:
        engine = _load()
        # text_score 0: rapidocr would drop weak lines before they could be read again.
        output = engine(image, use_cls=classify_lines, text_score=0.0)
        if output.boxes is None or output.txts is None:
            return PageLines([], skew, back, width, height)
        quads = [np.asarray(q, dtype=np.float32) for q in output.boxes]
        texts, scores = list(output.txts), [float(s) for s in output.scores]
        weak = [i for i, score in enumerate(scores) if score < reread_below]
        if weak:
            with stage_cpu("reread"):
                for i, (text, score) in zip(weak, _reread(engine, image, [quads[i] for i in weak],
                                                          [scores[i] for i in weak])):
                    if score > scores[i] + REREAD_GAIN:
                        texts[i], scores[i] = text, score
    grey = image.mean(axis=2)
    lines = []
    for quad, text, score in zip(quads, texts, scores):
        if score < MIN_LINE_SCORE or not text.strip():
            continue
        box = (float(quad[:, 0].min()), float(quad[:, 1].min()), float(quad[:, 0].max()), float(quad[:, 1].max()))
        lines.append(TextBox(text=text.strip(), box=box, score=round(score, 4), stroke=stroke_width(grey, box)))
    return PageLines(lines, skew, back, width, height)


def _reread(engine, image: np.ndarray, quads: list[np.ndarray], scores: list[float]) -> list[tuple[str, float]]:
    """The best of several new readings of each weak line: cut in two at its widest gap
    between words (long lines are squeezed into the recogniser's input), with a margin of
    paper around it, and, for a line read very badly, upside down. Scores of a cut line are
    averaged by characters. An upside-down reading must hold words: digits read upside down
    are other digits ("696", "969"), so a numeric line is never flipped."""
    from rapidocr.ch_ppocr_rec.typings import TextRecInput
    from rapidocr.utils.process_img import get_rotate_crop_image

    crops, owners = [], []  # owners[k] = (line, part): which reading crop k belongs to
    for line, quad in enumerate(quads):
        crop = get_rotate_crop_image(image, quad)
        height = crop.shape[0]
        margin = max(2, height // 6)
        padded = np.pad(crop, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
        candidates = [("pad", [padded])]
        if scores[line] < FLIP_BELOW:
            candidates.append(("flip", [np.ascontiguousarray(crop[::-1, ::-1])]))
        cut = _widest_gap(crop)
        if cut is not None:
            candidates.append(("cut", [crop[:, :cut], crop[:, cut:]]))
        for name, parts in candidates:
            for part in parts:
                crops.append(part)
                owners.append((line, name))
    recognised = engine.text_rec(TextRecInput(img=crops))
    readings: dict[tuple[int, str], list[tuple[str, float]]] = {}
    for owner, text, score in zip(owners, recognised.txts, recognised.scores):
        readings.setdefault(owner, []).append((text.strip(), float(score)))
    best: list[tuple[str, float]] = [("", 0.0)] * len(quads)
    for (line, name), parts in readings.items():
        text = " ".join(t for t, _ in parts if t)
        if name == "flip" and sum(ch.isalpha() for ch in text) < 2:
            continue
        weight = sum(max(1, len(t)) for t, _ in parts)
        score = sum(max(1, len(t)) * sc for t, sc in parts) / weight
        if score > best[line][1]:
            best[line] = (text, score)
    return best


def _line_ink(grey: np.ndarray) -> np.ndarray:
    """Ink in a line's crop: darker than halfway from its darkest pixel to its paper (a line
    crop is mostly glyphs and a little paper, so the page's paper-minus-contrast rule misses
    light print there)."""
    return grey < (float(np.percentile(grey, 95)) + float(grey.min())) / 2


def _widest_gap(crop: np.ndarray) -> int | None:
    """The column at the middle of the widest run of ink-free columns in the middle half of a
    line crop (a space between words), or None for a line too short to cut."""
    height, width = crop.shape[:2]
    if width < 8 * height:
        return None
    ink = _line_ink(crop.mean(axis=2)).any(axis=0)
    best, best_len, start = None, 0, None
    for x in range(width // 4, 3 * width // 4):
        if not ink[x]:
            start = x if start is None else start
            if x - start + 1 > best_len:
                best, best_len = (start + x) // 2, x - start + 1
        else:
            start = None
    return best


def stroke_width(grey: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Mean length of the horizontal runs of ink in a line's box, in pixels: the width of its
    strokes, which tells bold and large type from body text (``layout``). Runs longer than
    0.4 line heights are left out: underscores, underlines and table rules are not strokes."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    crop = grey[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
    if crop.size == 0:
        return 0.0
    ink = _line_ink(crop)
    edges = np.diff(np.pad(ink, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    lengths = np.nonzero(edges == -1)[1] - np.nonzero(edges == 1)[1]  # row-major: starts and ends pair up
    lengths = lengths[lengths <= 0.4 * crop.shape[0]]
    return round(float(lengths.mean()), 2) if len(lengths) else 0.0


def ocr_page_sync(page: PageImage, **options) -> OcrResult:
    """Read one page with the CPU engine (``options`` go to ``read_lines``)."""
    started = time.perf_counter()
    read = read_lines(page.png, **options)
    paragraphs = lines_to_paragraphs(read.lines)
    return OcrResult(
        markdown=paragraphs_to_markdown(paragraphs),
        engine="cpu",
        model=CPU_MODEL,
        text_boxes=tuple(read.in_image()),  # every line with its box on the page image: where chunks lie
        finish_reason="stop",
        latency_s=time.perf_counter() - started,
    )


class CpuEngine:
    """Async face of the CPU engine, with the same interface as ``VLLMEngine``."""

    name = "cpu"
    model = CPU_MODEL
    longest_side = 1540

    async def start(self) -> None:
        await asyncio.to_thread(_load)

    async def ocr(self, page: PageImage) -> OcrResult:
        return await asyncio.to_thread(ocr_page_sync, page)

    async def aclose(self) -> None:
        return None
