"""The words of a PDF page's text layer with their boxes, in page points (top-left origin).

Read while the page is open for rendering (one PDFium lock, no second parse). Only the first
and last character of each word are asked for their box: a dense page has 5,000 characters
but 900 words, and each PDFium call costs about a microsecond. Loose boxes (the font's
ascent to descent) are used so that every word on a line has the line's height.

Coordinates go through PDFium's own page-to-device mapping, so ``/Rotate`` and a crop box
that does not start at the origin come out as the page is shown.
"""

from __future__ import annotations

import ctypes
import math
import re
from functools import lru_cache

import numpy as np

from ..records import FIXED_PITCH, INVISIBLE, ROTATED, SOFT_HYPHEN, PageWords
from .pdfium_calls import address, text_calls

# A word ends at white space or just after a soft hyphen: PDFium writes a hyphen that breaks a
# word across lines as U+FFFE (or \x02) with no line break after it, so "Se-/bastian" would
# otherwise be one word spanning two lines.
_SOFT_HYPHENS = "\ufffe\x02"
_WORD = re.compile(r"[^\s\ufffe\x02]+[\ufffe\x02]?|[\ufffe\x02]")
DEVICE_SCALE = 100  # PageToDevice answers in whole device pixels: 100 per point keeps 0.01 pt
# Font facts asked of each word's first character (``PageWords.styles``), once per text object:
# the text-layer engine tells headings, code and hidden text by them.
FONT_FLAGS_KEPT = 0xFFFF  # the PDF font descriptor's flags (FixedPitch 1, Italic 64, ...)
FONT_NAME_BYTES = 64  # font names are short ("ABCDEF+CMTT10"); a longer one is cut, harmlessly
_TYPEWRITER = re.compile(rb"mono|courier|consol|cmtt|sftt|txtt|lmtt|inconsolata|menlo|typewriter|code", re.I)
# PDFium's font weight comes from the font descriptor, which is often wrong (Latin Modern's
# Regular says 744, its Bold 620): a font whose name tells its weight is taken at its word.
_BOLD = re.compile(rb"bold|black|heavy|demi|cmbx|sfbx|cmb\d", re.I)
_NOT_BOLD = re.compile(rb"regular|roman|book|light|medium|italic|oblique|^([A-Z]{6}\+)?(CM|SF|LM|EU)[A-Z]*\d", re.I)


def _page_to_points(raw, page, width: float, height: float) -> np.ndarray:
    """The affine map (2 x 3) from PDF user space to page points with a top-left origin."""
    size_x, size_y = int(round(width * DEVICE_SCALE)), int(round(height * DEVICE_SCALE))
    dx, dy = ctypes.c_int(), ctypes.c_int()
    mapped = []
    for x, y in ((0.0, 0.0), (1000.0, 0.0), (0.0, 1000.0)):
        raw.FPDF_PageToDevice(page, 0, 0, size_x, size_y, 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
        mapped.append((dx.value / DEVICE_SCALE, dy.value / DEVICE_SCALE))
    (ox, oy), (ax, ay), (bx, by) = mapped
    return np.array([[(ax - ox) / 1000.0, (bx - ox) / 1000.0, ox],
                     [(ay - oy) / 1000.0, (by - oy) / 1000.0, oy]])


def _char_text(calls, textpage: int, count: int, text: str) -> str:
    """One character per PDFium index (get_text_range can differ for characters beyond the BMP)."""
    if len(text) == count:
        return text
    return "".join(chr(calls.unicode(textpage, i) or 32) for i in range(count))


def text_layer_words(page, textpage, text: str, width: float, height: float,
                     styles: bool = False) -> PageWords | None:
    """The words of ``textpage`` (whose full text is ``text``); None when it has none.
    ``styles``: also each word's font size, weight, flags and turn (``PageWords.styles``)."""
    import pypdfium2.raw as raw

    count = textpage.count_chars()
    if count <= 0:
        return None
    calls = text_calls()
    handle = address(textpage.raw)
    chars = _char_text(calls, handle, count, text)
    rect = raw.FS_RECTF()
    at = ctypes.addressof(rect)
    char_box = calls.loose_char_box  # bound once: a dense page asks 2,000 times
    corners: list[tuple[float, float, float, float, float, float, float, float]] = []  # first and last char
    fonts: list[tuple[float, float, int, int]] = []
    fonts_of = _FontReader(calls, handle) if styles else None
    out: list[str] = []
    previous_end = None
    for match in _WORD.finditer(chars):
        start, end = match.span()
        first = (rect.left, rect.right, rect.bottom, rect.top) if char_box(handle, start, at) else None
        last = first if end - 1 == start else \
            (rect.left, rect.right, rect.bottom, rect.top) if char_box(handle, end - 1, at) else None
        if first is None and last is None:
            continue
        corners.append((first or last) + (last or first))
        word = match.group()
        hyphen = word[-1] in _SOFT_HYPHENS
        if out:
            gap = chars[previous_end:start]
            out.append("\n" if "\n" in gap or "\r" in gap or chars[previous_end - 1] in _SOFT_HYPHENS else " ")
        out.append(word[:-1] + "-" if hyphen else word)
        if fonts_of is not None:
            fonts.append(fonts_of(start, hyphen))
        previous_end = end
    if not corners:
        return None
    edges = np.asarray(corners, dtype=np.float64).reshape(-1, 2, 4)  # word, char, (left, right, bottom, top)
    user = np.stack([edges[:, :, 0:2].min(axis=(1, 2)), edges[:, :, 2:4].min(axis=(1, 2)),
                     edges[:, :, 0:2].max(axis=(1, 2)), edges[:, :, 2:4].max(axis=(1, 2))], axis=1)
    affine = _page_to_points(raw, page.raw, width, height)
    xs = np.stack([user[:, 0], user[:, 2], user[:, 0], user[:, 2]], axis=1)
    ys = np.stack([user[:, 1], user[:, 1], user[:, 3], user[:, 3]], axis=1)
    px = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    py = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    boxes = np.stack([px.min(axis=1), py.min(axis=1), px.max(axis=1), py.max(axis=1)], axis=1)
    # Text outside the crop box is not shown: its words stay (the text layer's own Markdown has
    # them) but their boxes are held to the page's edge.
    boxes = np.clip(boxes, 0.0, [width, height, width, height])
    joined = "".join(out)
    return PageWords("text_layer", joined, boxes.astype(np.float32),
                     _mark_rotated(fonts, joined.split()) if styles else None)


class _FontReader:
    """(size in points, weight, flags, quarter turns it runs at; -1: unknown) of a word's first
    character: the PDF font flags (and FIXED_PITCH for a typewriter font by its name: TeX's
    fonts do not set the flag), plus ``INVISIBLE`` for text drawn invisibly (an OCR layer laid
    over a scan) and ``SOFT_HYPHEN`` for a word PDFium found broken across lines. Asked once per
    text object: words drawn by one object share its font (pdfTeX draws about four words an
    object), and the facts a font's name tells once per name."""

    def __init__(self, calls, textpage: int) -> None:
        self.calls, self.textpage = calls, textpage
        self.name = ctypes.create_string_buffer(FONT_NAME_BYTES)
        self.flags = ctypes.c_int()
        self.by_object: dict[int, tuple[float, float, int, int]] = {}

    def __call__(self, index: int, soft_hyphen: bool) -> tuple[float, float, int, int]:
        calls, textpage = self.calls, self.textpage
        text_object = calls.text_object(textpage, index)
        font = self.by_object.get(text_object) if text_object else None
        if font is None:
            font = self._read(index, text_object)
            if text_object:
                self.by_object[text_object] = font
        return (font[0], font[1], font[2] | SOFT_HYPHEN, font[3]) if soft_hyphen else font

    def _read(self, index: int, text_object: int | None) -> tuple[float, float, int, int]:
        calls, textpage = self.calls, self.textpage
        self.name.value = b""  # a font PDFium cannot name must not take the last one's name,
        self.flags.value = 0  # nor its flags (PDFium writes neither for a character without a text object)
        calls.font_info(textpage, index, ctypes.addressof(self.name), FONT_NAME_BYTES, ctypes.addressof(self.flags))
        bold, fixed_pitch = _named_style(self.name.value)
        bits = (self.flags.value & FONT_FLAGS_KEPT) | fixed_pitch
        if text_object and calls.render_mode(text_object) == calls.INVISIBLE:
            bits |= INVISIBLE
        weight = 700 if bold is True else 400 if bold is False else calls.font_weight(textpage, index)
        angle = calls.char_angle(textpage, index)  # radians; -1: no direction (a space)
        turn = round(math.degrees(angle) / 90) % 4 if angle >= 0 else -1
        return (calls.font_size(textpage, index), weight, bits, turn)


@lru_cache(maxsize=1024)
def _named_style(name: bytes) -> tuple[bool | None, int]:
    """(bold by the font's name: True, False, or None when the name does not say; FIXED_PITCH
    when the name is a typewriter font's, else 0)."""
    bold = True if _BOLD.search(name) else False if _NOT_BOLD.search(name) else None
    return bold, FIXED_PITCH if _TYPEWRITER.search(name) else 0


def _mark_rotated(fonts: list[tuple], texts: list[str]) -> np.ndarray:
    """The styles array, with ``ROTATED`` on words that run another way than most of the
    page's characters (an arXiv stamp up the margin, a running head on a landscape page)."""
    votes = [0, 0, 0, 0]
    for (_, _, _, turn), text in zip(fonts, texts):
        if turn >= 0:
            votes[turn] += len(text)
    main = int(np.argmax(votes))
    return np.asarray([(size, weight, bits | (ROTATED if turn >= 0 and turn != main else 0), turn)
                       for (size, weight, bits, turn) in fonts], dtype=np.float32).reshape(-1, 4)


def image_share(page, width: float, height: float) -> float:
    """The share of the page's area under images (a scan is one image over the page), overlaps
    counted twice, at most 1. An image inside a form XObject (a scan wrapped in one) counts the
    form's bounds."""
    import pypdfium2.raw as raw

    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    area = 0.0
    for index in range(raw.FPDFPage_CountObjects(page.raw)):
        item = raw.FPDFPage_GetObject(page.raw, index)
        kind = raw.FPDFPageObj_GetType(item)
        if (kind == raw.FPDF_PAGEOBJ_IMAGE or (kind == raw.FPDF_PAGEOBJ_FORM and _holds_image(raw, item))) and \
                raw.FPDFPageObj_GetBounds(item, ctypes.byref(left), ctypes.byref(bottom), ctypes.byref(right),
                                          ctypes.byref(top)):
            area += max(0.0, right.value - left.value) * max(0.0, top.value - bottom.value)
    return min(1.0, area / max(1.0, width * height))


def _holds_image(raw, form, depth: int = 0) -> bool:
    """A form XObject holds an image, at any depth (up to 8: a loop of forms is cut there)."""
    for index in range(raw.FPDFFormObj_CountObjects(form)):
        item = raw.FPDFFormObj_GetObject(form, index)
        kind = raw.FPDFPageObj_GetType(item)
        if kind == raw.FPDF_PAGEOBJ_IMAGE or (kind == raw.FPDF_PAGEOBJ_FORM and depth < 8
                                              and _holds_image(raw, item, depth + 1)):
            return True
    return False
