"""``regions="locate"``: place the model's text on a scan with the embedded detector.

The model writes Markdown without boxes. Where a page has neither the CPU engine's lines nor a
text layer that matches its Markdown (a scan), the embedded detector and recogniser read the
page again to find where its lines are; the chunker then aligns the Markdown with them. It
takes seconds of CPU a page, so it runs in a thread beside OCR, and its lines are cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..cpu_cost import stage_cpu
from ..ocr.cache import OcrCache, cache_key
from ..pages.alignment import align
from ..records import OcrResult, PageImage, PageWords

log = logging.getLogger("lightocr_ingest")


def read_by_the_model(result: OcrResult) -> bool:
    """Text that came without lines to place it: the model's (the CPU engine gives its lines)."""
    return result.status != "failed" and bool(result.markdown.strip()) and not result.text_boxes


def needs_locating(page: PageImage, result: OcrResult) -> bool:
    """A page read by the model with neither lines of the CPU engine nor a text layer that
    matches its Markdown (a scan, or a scan whose OCR layer is wrong: the chunker's own test)."""
    if not read_by_the_model(result):
        return False
    if page.text_words is None or not len(page.text_words):
        return True
    return not align(result.markdown, page.text_words).trusted


def locate_if_needed(page: PageImage, result: OcrResult, cache: OcrCache | None) -> tuple[PageWords, float] | None:
    """``locate_lines`` for a page that ``needs_locating`` (both take CPU: run in a thread)."""
    return locate_lines(page, cache) if needs_locating(page, result) else None


async def located(page: PageImage, task: asyncio.Task | None) -> tuple[PageWords, float] | None:
    """What locating found, or None: a detector that fails costs the page its regions, never its text."""
    if task is None:
        return None
    try:
        return await task
    except Exception as exc:  # onnxruntime and image decoding raise many types
        log.warning("%s, page %d: could not locate its lines (%s: %s); its chunks get no regions",
                    page.source.path, page.page, type(exc).__name__, exc)
        return None


def locate_lines(page: PageImage, cache: OcrCache | None = None) -> tuple[PageWords, float]:
    """Read the page with the embedded detector and recogniser, to place the model's text on it.

    Returns the located words (page points) and the CPU seconds it took (0 when the OCR cache
    had the page's lines: locating takes seconds, so a re-run does not locate again).
    """
    from ..ocr.cpu import CPU_MODEL, recognise_lines  # onnxruntime and the detector: only when locating

    key = cache_key(page.pixels_sha256, "locate", CPU_MODEL, {})
    try:
        hit = cache.get(key) if cache is not None else None
    except Exception:  # a cache closed by a cancelled run: locate again
        hit = None
    if hit is not None:
        return page.lines_in_points(hit.text_boxes, "located"), 0.0
    started = time.process_time()
    with stage_cpu("locate"):
        lines = tuple(recognise_lines(page.png))
    if cache is not None:
        with contextlib.suppress(Exception):  # a cache closed by a cancelled run: nothing to keep it in
            cache.put(key, OcrResult(markdown="", engine="locate", model=CPU_MODEL, text_boxes=lines))
    return page.lines_in_points(lines, "located"), time.process_time() - started
