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

import numpy as np
from PIL import Image

from ..records import OcrResult, PageImage, TextBox
from .layout import lines_to_paragraphs, paragraphs_to_markdown

CPU_MODEL = "rapidocr/PP-OCRv6-small"  # what rapidocr's default config loads from its wheel
MIN_LINE_SCORE = 0.5  # recognitions below this confidence are mostly noise on graphics

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


def recognise_lines(png: bytes) -> list[TextBox]:
    """Detect and read the lines of one page image; boxes in image pixels."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    with _ENGINE_LOCK:
        output = _load()(image)
    if output.boxes is None or output.txts is None:
        return []
    lines = []
    for quad, text, score in zip(output.boxes, output.txts, output.scores):
        if score < MIN_LINE_SCORE or not text.strip():
            continue
        xs, ys = [float(p[0]) for p in quad], [float(p[1]) for p in quad]
        lines.append(TextBox(text=text.strip(), box=(min(xs), min(ys), max(xs), max(ys)), score=float(score)))
    return lines


def ocr_page_sync(page: PageImage) -> OcrResult:
    started = time.perf_counter()
    lines = recognise_lines(page.png)
    paragraphs = lines_to_paragraphs(lines)
    return OcrResult(
        markdown=paragraphs_to_markdown(paragraphs),
        engine="cpu",
        model=CPU_MODEL,
        text_boxes=tuple(lines),  # every detected line with its box: where chunks lie (regions)
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
