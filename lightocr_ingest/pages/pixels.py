"""Page pixels as 8-bit grey or RGB NumPy arrays: mode conversion, the grey check, and
shrinking to the size sent.

Why these choices:
- Pixels travel as NumPy arrays, the form OpenCV and the PNG writer use.
- A page whose pixels are all grey is sent as an 8-bit grey PNG: vLLM converts every image
  to RGB on arrival, so the model sees the same pixels, and the PNG is a third the data to
  encode (``to_model_mode``, ``grey_if_possible``).
- Pages are shrunk to fit the longest side sent, never enlarged past their own size, by
  area averaging (``downscale``): what rasterising a PDF page at the smaller size does to
  its shapes, so a scan looks like the pages LightOnOCR learnt from.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
from PIL import Image

GREY_SAMPLE_ROWS = 16  # every 16th row is compared first: a colour page shows it there almost always,
#                       found in 0.06 ms where the full check takes 1.3 (warm) to 3 (fresh render)
PLAIN_DECODE_MAX_PIXELS = 25_000_000  # OpenCV's PNG decoder briefly holds the image twice; past an A4
#                                      page at 500 DPI, Pillow decodes it and shrinks it in place instead
_SCRATCH = threading.local()  # per rendering thread: the grey check's RGB copy, reused page after page


def _scale_to_fit(width: float, height: float, longest_side: int, allow_upscale: bool) -> float:
    scale = longest_side / max(width, height)
    return scale if allow_upscale else min(1.0, scale)


DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # grey with more than 8 bits a pixel


DEEP_GREY_BAND_ROWS = 256  # rows scaled at a time: the float copy of a band, not of the page (8 bytes a pixel)


def _deep_grey_to_l(image: Image.Image) -> Image.Image:
    """16/32-bit grey to 8-bit grey, keeping the contrast.

    Scaled a band of rows at a time, read from the image itself: a float copy of a 30-megapixel
    page would take 240 MB (and three of them, as one expression, 720 MB); the bands give the
    same bytes."""
    top = float(image.getextrema()[1]) or 1.0
    # 16-bit scans use the full 0-65535 range; 32-bit ones may use any; scale by the max seen.
    scale = 255.0 / (65535.0 if top > 255 and image.mode.startswith("I;16") else max(top, 255.0))
    width, height = image.size
    grey = np.empty((height, width), dtype=np.uint8)
    for start in range(0, height, DEEP_GREY_BAND_ROWS):
        band = np.asarray(image.crop((0, start, width, min(height, start + DEEP_GREY_BAND_ROWS))), dtype=np.float64)
        band *= scale
        grey[start:start + DEEP_GREY_BAND_ROWS] = np.clip(band, 0, 255, out=band).astype(np.uint8)
    return Image.fromarray(grey, mode="L")


def to_model_mode(image: Image.Image) -> Image.Image:
    """8-bit grey for grey images (1-bit, 8/16/32-bit grey, grey+alpha), else 8-bit RGB.

    Both reach the model as the same RGB pixels (vLLM converts on arrival); grey is a third
    of the data to resize and encode.
    """
    if image.mode in DEEP_GREY_MODES:
        return _deep_grey_to_l(image)
    if image.mode == "L":
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode == "LA":
        background = Image.new("L", image.size, 255)
        background.paste(image.getchannel("L"), mask=image.getchannel("A"))
        return background
    return to_rgb(image)


def grey_if_possible(pixels: np.ndarray) -> np.ndarray:
    """The same pixels as 8-bit grey when an RGB image has R == G == B everywhere.

    OpenCV's grey conversion maps (v, v, v) to exactly v (its weights sum to one in fixed
    point), so converting back and comparing finds grey pages in contiguous passes: 1.5 ms
    for a page, against 2.5 ms comparing the channels as strided views. A sample of rows is
    compared first, so that a colour page is known in 0.06 ms (a grey page pays that on top).
    The RGB copy goes into a buffer the thread keeps, and is compared without making a mask:
    a fresh 5 MB copy and mask cost as much again in page faults (PDF pages 3.1 -> 1.6 ms).
    """
    if pixels.ndim != 3:
        return pixels
    sample = pixels[::GREY_SAMPLE_ROWS]
    if not (np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 0], sample[..., 2])):
        return pixels  # colour already in a few rows: the full check would find it too
    cv2 = _opencv()
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    back = getattr(_SCRATCH, "rgb", None)
    if back is None or back.shape != pixels.shape:
        back = _SCRATCH.rgb = np.empty(pixels.shape, dtype=np.uint8)  # C order whatever ``pixels`` is
    cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB, dst=back)
    return grey if cv2.norm(back, pixels, cv2.NORM_INF) == 0 else pixels


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: transparency onto white, 16-bit scaled down."""
    if image.mode in DEEP_GREY_MODES:
        image = _deep_grey_to_l(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    if image.mode != "RGB":
        image = image.convert("RGB")  # CMYK, L, 1, YCbCr, LAB...
    return image


@functools.cache
def _opencv():
    import cv2

    # One thread per call: the reader already renders several files at once, and a pool per
    # resize would only add hand-offs (and hide its CPU from the per-stage ledger).
    cv2.setNumThreads(1)
    return cv2


def downscale(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shrink 8-bit grey or RGB pixels to ``size`` (width, height) by area averaging.

    Area averaging is what rasterising a PDF page at the smaller size does to its shapes, so
    a scan shrunk this way looks like the pages LightOnOCR learnt from. OpenCV averages areas
    quickly only by a whole factor; by any other factor (a 200 DPI A4 scan to 1540 px is
    1.52x) its general path is plain C, 8.8 ms for that page. So a fractional shrink is done
    as a whole one: the pixels are first resampled bilinearly to a whole multiple of ``size``
    (``_area_multiple``: a mild enlargement, or a shrink by less than 1.5x), then averaged by
    that whole factor (3.3 ms). Against PDFium's own render of real pages at the smaller size
    it is as close as the general path (25.0 vs 25.3 grey levels RMS at 1.52x, 25.4 vs 25.3
    at 2.28x, 24.5 vs 24.9 at 1.14x; the two differ by 0.2 to 0.7 levels on average).
    """
    cv2 = _opencv()
    height, width = pixels.shape[:2]
    factors = (width / size[0], height / size[1])
    wholes = tuple(_area_multiple(factor) for factor in factors)
    if min(factors) <= 1 or all(factor == whole for factor, whole in zip(factors, wholes)) \
            or height * width > PLAIN_DECODE_MAX_PIXELS:
        # Enlarging, a whole factor already, or a poster-sized scan, whose bilinear copy would be
        # nearly as large as itself: OpenCV's own average, without one.
        return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    between = cv2.resize(pixels, (size[0] * wholes[0], size[1] * wholes[1]), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(between, size, interpolation=cv2.INTER_AREA)


def _area_multiple(factor: float) -> int:
    """The whole factor a shrink by ``factor`` is averaged by: 2 under 2x (the bilinear step
    before it enlarges, so it drops no pixel), else the whole part (the bilinear step shrinks
    by under 1.5x, and the averaging after it smooths what that step aliases)."""
    return 2 if factor < 2 else math.floor(factor)


def _fitted_size(width: int, height: int, longest_side: int) -> tuple[int, int]:
    """The size an image of ``width`` x ``height`` is sent at: shrunk to fit, never enlarged."""
    scale = _scale_to_fit(width, height, longest_side, allow_upscale=False)
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit(pixels: np.ndarray, longest_side: int) -> np.ndarray:
    """Shrink pixels whose longest side is over ``longest_side``; never enlarge them."""
    height, width = pixels.shape[:2]
    size = _fitted_size(width, height, longest_side)
    return pixels if size == (width, height) else downscale(pixels, size)


REDUCE_BAND_ROWS = 512  # rows reduced at a time (a multiple of every factor up to 8 after rounding down)


def reduce_in_bands(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)`` a band of rows at a time: the same pixels, without the full-size
    copy Pillow makes of an RGBA image to premultiply its alpha (4 bytes a pixel more)."""
    band_rows = REDUCE_BAND_ROWS - REDUCE_BAND_ROWS % factor  # bands on the boxes' edges: the same boxes
    if image.height <= band_rows:
        return image.reduce(factor)
    reduced = Image.new(image.mode, (-(-image.width // factor), -(-image.height // factor)))
    for top in range(0, image.height, band_rows):
        band = image.crop((0, top, image.width, min(image.height, top + band_rows))).reduce(factor)
        reduced.paste(band, (0, top // factor))
    return reduced
