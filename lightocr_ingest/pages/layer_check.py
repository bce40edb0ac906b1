"""Whether a PDF page's text layer can stand for the page: the CPU engine then reads the page
from it (``ocr/text_layer``), and the page need not even be rendered (``source``); otherwise
RapidOCR reads the page's image.

Judged from the words and fonts read while the page is open, and the share of the page under
images: no decision here needs the pixels.
"""

from __future__ import annotations

import re

import numpy as np

from ..records import INVISIBLE, PageWords

MIN_CHARS = 20  # visible word characters: fewer (a page number) may stand for a picture of text
MAX_BROKEN_SHARE = 0.05  # of characters: replacement, private-use or control characters (no ToUnicode map)
MIN_ALNUM_SHARE = 0.5  # of characters: letters and digits; a layer of "!#$%&" is a font without a map
LEADERS = ".\u2026\u00b7_-"  # a table of contents' dot leaders are not symbols
SCAN_IMAGE_SHARE = 0.5  # a page this much under images, ...
SCAN_MAX_CHARS = 200  # ... with fewer visible word characters, is a scan with a stamp or a typed header
_WORD = re.compile(r"\w")
# Unicode's categories Co (private use), Cc (control) and Cs (surrogates), and the replacement
# character: what a font without a Unicode map gives. Both ranges are fixed by Unicode's stability policy.
_BROKEN = re.compile("[\ufffd\x00-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]")
_NOT_LEADERS = str.maketrans("", "", LEADERS)


def content_chars(text: str) -> int:
    """Word characters in ``text`` (as ``ocr.runaway`` counts them)."""
    return len(_WORD.findall(text))


def why_unusable(words: PageWords | None, image_share: float | None, rotation: int = 0) -> str | None:
    """Why a page's text layer (``words`` read with their styles, the share of the page under
    images, the degrees it is turned to be read) cannot stand for the page (then RapidOCR reads
    it), or None. A page that lies sideways or upside down is read from its image, turned
    upright: the layout reads lines as they run across the page."""
    if rotation:
        return f"the page is turned {rotation} degrees to be read"
    if words is None or words.styles is None or not len(words):
        return "no text layer"
    visible = (words.styles[:, 2].astype(np.int64) & INVISIBLE) == 0
    if not visible.any():
        return "its text is invisible: an OCR layer laid over a scan"
    texts = words.text.split()
    shown = "".join(texts) if visible.all() else "".join(t for t, v in zip(texts, visible.tolist()) if v)
    shown = shown.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")  # pairs PDFium gave in halves
    characters = content_chars(shown)
    if (image_share or 0.0) >= SCAN_IMAGE_SHARE and characters < SCAN_MAX_CHARS:
        return f"a scan: images cover {image_share:.0%} of the page and its text layer holds little text"
    broken = len(_BROKEN.findall(shown))
    if len(shown) >= MIN_CHARS and broken > MAX_BROKEN_SHARE * len(shown):
        return "the layer's characters are unreadable (a font without a Unicode map)"
    if characters < MIN_CHARS:  # a page number, a label: the page's text may be in a picture or in outlines
        return "too little text in the layer"
    judged = shown.translate(_NOT_LEADERS)
    if sum(map(str.isalnum, judged)) < MIN_ALNUM_SHARE * len(judged):
        return "the layer is mostly symbols (a font without a Unicode map)"
    return None
