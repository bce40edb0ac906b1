"""PDFium's per-character text calls, made cheap enough to ask a few thousand times a page.

Reading a page's words asks PDFium two or three things per word (its first and last
character's box, its text object, its font), about 3,000 calls on a dense page. Through
pypdfium2's bindings each call costs about 1.6 µs of argument conversion (typed pointers), and
each one lets go of the GIL: a thread making thousands of them beside a thread busy in Python
(the layout of the page before) waits for the GIL after every call, the "convoy effect", and
on two cores the reader ran at half the speed of one thread alone.

These prototypes take handles as plain addresses (about 0.6 µs a call) and keep the GIL
(``ctypes.PYFUNCTYPE``): each call is a lookup of well under a microsecond inside PDFium,
shorter than the switch it would cause. Long calls (loading a page, building its text page,
rendering) stay on pypdfium2's bindings, which let other threads run meanwhile. Call them
under PDFium's lock, with ``address(handle)`` of pypdfium2's raw handles.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

_HANDLE = ctypes.c_void_p  # any PDFium handle or pointer argument, as an address


def address(handle: Any) -> int | None:
    """The address a pypdfium2 raw handle (a ctypes pointer) points to; None for NULL."""
    return ctypes.cast(handle, ctypes.c_void_p).value


def _held_gil(function: Any) -> Any:
    """``function`` of pypdfium2's raw bindings, called with addresses and keeping the GIL."""
    def plain(kind: Any) -> Any:
        return _HANDLE if issubclass(kind, (ctypes._Pointer, ctypes.c_void_p)) else kind

    restype = None if function.restype is None else plain(function.restype)  # None: a void function
    prototype = ctypes.PYFUNCTYPE(restype, *(plain(kind) for kind in function.argtypes))
    return prototype(address(function))


@cache
def text_calls() -> Any:
    """The fast prototypes, made once (on first use: importing pypdfium2 loads PDFium)."""
    import pypdfium2.raw as raw

    class TextCalls:
        loose_char_box = _held_gil(raw.FPDFText_GetLooseCharBox)  # (textpage, index, &FS_RECTF) -> ok
        text_object = _held_gil(raw.FPDFText_GetTextObject)  # (textpage, index) -> address or None
        font_info = _held_gil(raw.FPDFText_GetFontInfo)  # (textpage, index, &buffer, size, &flags) -> name's length
        render_mode = _held_gil(raw.FPDFTextObj_GetTextRenderMode)  # (text object) -> FPDF_TEXTRENDERMODE_*
        font_weight = _held_gil(raw.FPDFText_GetFontWeight)  # (textpage, index) -> weight or -1
        char_angle = _held_gil(raw.FPDFText_GetCharAngle)  # (textpage, index) -> radians, -1: none
        font_size = _held_gil(raw.FPDFText_GetFontSize)  # (textpage, index) -> points
        unicode = _held_gil(raw.FPDFText_GetUnicode)  # (textpage, index) -> code point
        is_generated = _held_gil(raw.FPDFText_IsGenerated)  # (textpage, index) -> 1: PDFium's own space
        INVISIBLE = raw.FPDF_TEXTRENDERMODE_INVISIBLE

    return TextCalls
