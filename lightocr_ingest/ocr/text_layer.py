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

from ..cpu_cost import stage_cpu
from ..pages import layer_check
from ..records import OcrResult, PageImage
from .text_lines import page_lines
from .text_markdown import lines_markdown

TEXT_LAYER_ENGINE = "pdf-text-layer"  # ocr_engine of a page read from its layer (as the fallback's)
TEXT_LAYER_MODEL = "pdfium-layout"  # words, fonts and positions from PDFium, laid out here


def why_unusable(page: PageImage) -> str | None:
    """Why ``page``'s text layer cannot stand for the page (then RapidOCR reads it), or None."""
    return layer_check.why_unusable(page.text_words, page.image_share, page.rotation)


def read_text_layer(page: PageImage) -> OcrResult:
    """The page's Markdown from its text layer (call when ``why_unusable`` is None)."""
    started = time.perf_counter()
    with stage_cpu("layout"):
        markdown = lines_markdown(page_lines(page.text_words, page.page_width))
    return OcrResult(markdown=markdown, engine=TEXT_LAYER_ENGINE, model=TEXT_LAYER_MODEL, finish_reason="stop",
                     latency_s=time.perf_counter() - started, attempts=0)  # no OCR request was sent
