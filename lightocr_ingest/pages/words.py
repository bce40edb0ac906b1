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

import numpy as np

from ..records import FIXED_PITCH, INVISIBLE, ROTATED, SOFT_HYPHEN, PageWords

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


def _char_text(raw, textpage, count: int, text: str) -> str:
    """One character per PDFium index (get_text_range can differ for characters beyond the BMP)."""
    if len(text) == count:
        return text
    return "".join(chr(raw.FPDFText_GetUnicode(textpage, i) or 32) for i in range(count))


def text_layer_words(page, textpage, text: str, width: float, height: float,
                     styles: bool = False) -> PageWords | None:
    """The words of ``textpage`` (whose full text is ``text``); None when it has none.
    ``styles``: also each word's font size, weight and flags (``PageWords.styles``)."""
    import pypdfium2.raw as raw

    count = textpage.count_chars()
    if count <= 0:
        return None
    chars = _char_text(raw, textpage.raw, count, text)
    rect = raw.FS_RECTF()
    char_box = raw.FPDFText_GetLooseCharBox  # bound once: a dense page asks 2,000 times
    handle = textpage.raw
    corners: list[tuple[float, float, float, float, float, float, float, float]] = []  # first and last char
    fonts: list[tuple[float, float, int, int]] = []
    name = ctypes.create_string_buffer(FONT_NAME_BYTES)
    known_fonts: dict = {}  # text object -> its font facts
    out: list[str] = []
    previous_end = None
    for match in _WORD.finditer(chars):
        start, end = match.span()
        first = (rect.left, rect.right, rect.bottom, rect.top) if char_box(handle, start, rect) else None
        last = first if end - 1 == start else \
            (rect.left, rect.right, rect.bottom, rect.top) if char_box(handle, end - 1, rect) else None
        if first is None and last is None:
            continue
        corners.append((first or last) + (last or first))
        if out:
            gap = chars[previous_end:start]
            out.append("\n" if "\n" in gap or "\r" in gap or chars[previous_end - 1] in _SOFT_HYPHENS else " ")
        word = match.group()
        out.append(word[:-1] + "-" if word[-1] in _SOFT_HYPHENS else word)
        if styles:
            fonts.append(_font_of(raw, handle, start, word[-1] in _SOFT_HYPHENS, name, known_fonts))
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
    return PageWords("text_layer", "".join(out), boxes.astype(np.float32),
                     _mark_rotated(fonts, "".join(out).split()) if styles else None)


def _font_of(raw, textpage, index: int, soft_hyphen: bool, name, known: dict) -> tuple[float, float, int, int]:
    """(size in points, weight, flags, quarter turns it runs at; -1: unknown) of the character
    at ``index``: the PDF font flags (and FIXED_PITCH for a typewriter font by its name: TeX's
    fonts do not set the flag), plus ``INVISIBLE`` for text drawn invisibly (an OCR layer laid
    over a scan) and ``SOFT_HYPHEN`` for a word PDFium found broken across lines. Asked once per
    text object (``known``): words drawn by one object share its font (pdfTeX draws most words
    as objects of their own, so this saves little there)."""
    text_object = raw.FPDFText_GetTextObject(textpage, index)
    key = ctypes.cast(text_object, ctypes.c_void_p).value if text_object else None
    font = known.get(key) if key is not None else None
    if font is None:
        flags = ctypes.c_int()
        name.value = b""  # a font PDFium cannot name must not take the last one's name
        raw.FPDFText_GetFontInfo(textpage, index, name, FONT_NAME_BYTES, ctypes.byref(flags))
        bits = flags.value & FONT_FLAGS_KEPT
        if _TYPEWRITER.search(name.value):
            bits |= FIXED_PITCH
        if text_object and raw.FPDFTextObj_GetTextRenderMode(text_object) == raw.FPDF_TEXTRENDERMODE_INVISIBLE:
            bits |= INVISIBLE
        weight = 700 if _BOLD.search(name.value) else 400 if _NOT_BOLD.search(name.value) else \
            raw.FPDFText_GetFontWeight(textpage, index)
        angle = raw.FPDFText_GetCharAngle(textpage, index)  # radians; -1: no direction (a space)
        turn = round(math.degrees(angle) / 90) % 4 if angle >= 0 else -1
        font = (raw.FPDFText_GetFontSize(textpage, index), weight, bits, turn)
        if key is not None:
            known[key] = font
    return (font[0], font[1], font[2] | SOFT_HYPHEN, font[3]) if soft_hyphen else font


def _mark_rotated(fonts: list[tuple], texts: list[str]) -> np.ndarray:
    """The styles array, with ``ROTATED`` on words that run another way than most of the
    page's characters (an arXiv stamp up the margin, a running head on a landscape page)."""
    votes = [0, 0, 0, 0]
    for (_, _, _, turn), text in zip(fonts, texts):
        if turn >= 0:
            votes[turn] += len(text)
    main = int(np.argmax(votes))
    return np.asarray([(size, weight, bits | (ROTATED if turn >= 0 and turn != main else 0))
                       for (size, weight, bits, turn) in fonts], dtype=np.float32).reshape(-1, 3)


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
