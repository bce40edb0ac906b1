"""Born-digital pages read from their own text layer: the embedded default's first reader.

Without a model server every page used to go through RapidOCR, about 5 s a page on two
cores, born-digital pages too, and a two-column page came out with its columns interleaved.
A PDF made by a typesetting program already holds every word with its font and position, and
reading that takes milliseconds (``text_lines`` for the order, ``text_markdown`` for the
Markdown). So the CPU engine reads a page from its text layer when the layer can be trusted
to be the page (``why_unusable`` says when not: scans, the invisible OCR text a scanner lays
over its scan, broken font encodings), and sends only the other pages to RapidOCR.

With a model server nothing changes: LightOnOCR reads every page (its tables and LaTeX are
the point), and the text layer stays its fallback (``resilient``).
"""

from __future__ import annotations

import time
import unicodedata

import numpy as np

from ..cpu_cost import stage_cpu
from ..records import INVISIBLE, OcrResult, PageImage
from .runaway import content_chars
from .text_lines import page_lines
from .text_markdown import lines_markdown

TEXT_LAYER_ENGINE = "pdf-text-layer"  # ocr_engine of a page read from its layer (as the fallback's)
TEXT_LAYER_MODEL = "pdfium-layout"  # words, fonts and positions from PDFium, laid out here
MIN_CHARS = 20  # visible characters: fewer are too few to judge a layer's characters by
MAX_BROKEN_SHARE = 0.05  # of characters: replacement, private-use or control characters (no ToUnicode map)
MIN_ALNUM_SHARE = 0.5  # of characters: letters and digits; a layer of "!#$%&" is a font without a map
LEADERS = ".\u2026\u00b7_-"  # a table of contents' dot leaders are not symbols
SCAN_IMAGE_SHARE = 0.5  # a page this much under images, ...
SCAN_MAX_CHARS = 200  # ... with fewer visible word characters, is a scan with a stamp or a typed header


def why_unusable(page: PageImage) -> str | None:
    """Why ``page``'s text layer cannot stand for the page (then RapidOCR reads it), or None."""
    words = page.text_words
    if words is None or words.styles is None or not len(words):
        return "no text layer"
    visible = (words.styles[:, 2].astype(np.int64) & INVISIBLE) == 0
    if not visible.any():
        return "its text is invisible: an OCR layer laid over a scan"
    shown = "".join(t for t, v in zip(words.text.split(), visible) if v)
    shown = shown.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")  # pairs PDFium gave in halves
    characters = content_chars(shown)
    if (page.image_share or 0.0) >= SCAN_IMAGE_SHARE and characters < SCAN_MAX_CHARS:
        return f"a scan: images cover {page.image_share:.0%} of the page and its text layer holds little text"
    if len(shown) < MIN_CHARS:  # a figure, a blank page with its number: too little to judge, and to lose
        return None
    broken = sum(1 for c in shown if c == "\ufffd" or unicodedata.category(c) in ("Co", "Cc", "Cs"))
    if broken > MAX_BROKEN_SHARE * len(shown):
        return "the layer's characters are unreadable (a font without a Unicode map)"
    judged = [c for c in shown if c not in LEADERS]
    if sum(c.isalnum() for c in judged) < MIN_ALNUM_SHARE * len(judged):
        return "the layer is mostly symbols (a font without a Unicode map)"
    return None


def read_text_layer(page: PageImage) -> OcrResult:
    """The page's Markdown from its text layer (call when ``why_unusable`` is None)."""
    started = time.perf_counter()
    with stage_cpu("layout"):
        markdown = lines_markdown(page_lines(page.text_words, page.page_width))
    return OcrResult(markdown=markdown, engine=TEXT_LAYER_ENGINE, model=TEXT_LAYER_MODEL, finish_reason="stop",
                     latency_s=time.perf_counter() - started)
