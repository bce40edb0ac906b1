"""Image files decoded into page pixels (8-bit grey or RGB arrays), and PDFium bitmaps viewed
as them.

Plain 8-bit PNG and JPEG scans, most of what scanners write, are decoded straight into
arrays (PNG by libspng through ``pyspng``: 4.3 ms for a 200 DPI grey A4 scan where OpenCV's
libpng takes 6.8, the same pixels; JPEG by OpenCV, at the DCT scale Pillow's ``draft``
chose) and shrunk by area averaging (``pixels.downscale``); Pillow reads every header and
decodes the other formats and modes. What will really be decoded is counted against
``MAX_PAGE_PIXELS`` first, and a photo's EXIF orientation is read from its header.
"""

from __future__ import annotations

import io
import re
import threading
from typing import Any

import numpy as np
from PIL import Image

from .files import sniff
from .pixels import PLAIN_DECODE_MAX_PIXELS, _opencv, fit, to_rgb

try:  # libspng: decodes plain PNGs to the same pixels as libpng in two thirds of the time
    import pyspng as _spng
except ImportError:  # no wheel for this platform: OpenCV decodes PNGs too
    _spng = None

MAX_PAGE_PIXELS = 400_000_000  # decoded pixels: a 20000 x 20000 scan; more would need over 1.2 GB as RGB
_PILLOW_LIMIT_LOCK = threading.Lock()

EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that makes it upright

_JPEG_SCALES = {1: ("IMREAD_GRAYSCALE", "IMREAD_COLOR"), 2: ("IMREAD_REDUCED_GRAYSCALE_2", "IMREAD_REDUCED_COLOR_2"),
                4: ("IMREAD_REDUCED_GRAYSCALE_4", "IMREAD_REDUCED_COLOR_4"),
                8: ("IMREAD_REDUCED_GRAYSCALE_8", "IMREAD_REDUCED_COLOR_8")}  # DCT scale -> OpenCV flag (grey, colour)


def _decode_plain(data: bytes, image: Image.Image, header_size: tuple[int, int], longest_side: int) -> np.ndarray | None:
    """A plain 8-bit grey or RGB PNG or JPEG decoded straight into an array and fitted to
    ``longest_side``; None for anything else.

    The common scan formats skip Pillow's decoder and its copy out to NumPy (5 ms a page);
    a JPEG decodes at the DCT scale that ``draft`` chose, and colour is put in RGB order only
    once shrunk. Anything else (palettes, transparency, CMYK, 16-bit grey, TIFF...) returns
    None and goes through Pillow.
    """
    if image.format not in ("PNG", "JPEG") or image.mode not in ("L", "RGB") or "transparency" in image.info \
            or image.width * image.height > PLAIN_DECODE_MAX_PIXELS:
        return None
    cv2 = _opencv()
    grey = image.mode == "L"
    scale = round(header_size[0] / image.width) if image.format == "JPEG" else 1
    if scale not in _JPEG_SCALES:
        return None
    rgb_order = image.format == "PNG" and _spng is not None  # libspng gives RGB, OpenCV BGR
    try:
        if rgb_order:
            pixels = _spng.load(data)
        else:
            flag = getattr(cv2, _JPEG_SCALES[scale][0 if grey else 1]) | cv2.IMREAD_IGNORE_ORIENTATION  # EXIF is ours
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except Exception:  # cv2.error, libspng's RuntimeError: let Pillow decode it, and explain what is wrong
        return None
    if pixels is None or pixels.shape[:2] != (image.height, image.width) or pixels.ndim != (2 if grey else 3):
        return None  # let Pillow decode it, and explain what is wrong if it cannot
    pixels = fit(pixels, longest_side)
    return pixels if grey or rgb_order else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright) of an opened, not yet decoded image."""
    if image.format == "PNG" and "exif" not in image.info:
        # Pillow looks for an eXIf chunk after the pixel data by decoding them all; the PNG
        # spec puts it before them, where opening the file has already read it.
        return 1
    return image.getexif().get(EXIF_ORIENTATION, 1)


def _bitmap_pixels(bitmap: Any) -> np.ndarray:
    """A PDFium bitmap rendered in RGB byte order as 8-bit RGB (or grey), viewing its buffer."""
    pixels = bitmap.to_numpy()
    if bitmap.mode in ("RGB", "L"):
        return pixels
    if bitmap.mode in ("RGBA", "RGBX"):  # drawn on opaque white: the fourth byte carries nothing
        return np.ascontiguousarray(pixels[..., :3])
    return np.asarray(to_rgb(bitmap.to_pil()))


def _open_header(data: bytes) -> Image.Image:
    """Open an image (header only) without Pillow's own decompression-bomb guard.

    Pillow counts the pixels the header states, before ``draft()`` could shrink a JPEG; the
    caller counts what will really be decoded. The lock keeps the swap of Pillow's global
    limit from racing with another thread.
    """
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _unreadable_image(data: bytes, suffix: str, error: Exception) -> str:
    """Why an image cannot be read, in words: what its content really is when that is known (a ZIP
    named .png), else Pillow's reason without the object it names (``<_io.BytesIO object at ...>``)."""
    actual = sniff(data[:1024])
    if actual is not None and not actual.endswith("image"):
        return f"is not a readable image: its content is {actual}, not the image its name ({suffix}) says"
    reason = re.sub(r"\s*<[^>]* object at 0x[0-9a-fA-F]+>", "", str(error)).strip() or type(error).__name__
    return f"is not a readable image ({actual or 'unknown format'}): {reason}"
