"""Render PDFs and images into ``PageImage`` records, one page at a time.

Pages are produced lazily so that a 1,000-page PDF never sits in memory as 1,000 bitmaps:
each page is rendered, converted to 8-bit grey or RGB, encoded to PNG and handed on before
the next.

Why these choices:
- 1540 px on the longest side is the size LightOnOCR-1B/2-1B were trained on; larger images
  only slow the model down, and images are never upscaled past their own size.
- PNG stays lossless (the model reads small print), and encoding it was the costliest CPU
  step, so it is written here (``encode_png``): no row filter, deflated by ISA-L (``isal``)
  at level 1. Pillow's encoder tries five filters on every row; on text pages, mostly runs
  of paper colour, that buys nothing and costs twice the time (26 ms vs 14 ms for an A4 page
  at 1540 px). ISA-L's deflate then does in 1 ms what zlib level 1 does in 6 (4 ms vs 28 ms
  for a colour page), with output as small; without ``isal`` the standard zlib is used.
- A page whose pixels are all grey is sent as an 8-bit grey PNG: vLLM converts every image
  to RGB on arrival, so the model sees the same pixels, and the PNG is a third the data to
  encode. Scans are also resized in their own mode, before any RGB copy exists.
- Pixels travel as NumPy arrays, the form OpenCV and the PNG writer use. Plain 8-bit PNG
  and JPEG scans, most of what scanners write, are decoded straight into arrays (PNG by
  libspng through ``pyspng``: 4.3 ms for a 200 DPI grey A4 scan where OpenCV's libpng takes
  6.8, the same pixels; JPEG by OpenCV) and shrunk by area averaging (``downscale``);
  Pillow reads every header and decodes the other formats and modes. A PDF page is rendered in RGB byte order and used in place.
- PDFium is not thread-safe, so every call into it holds one process-wide lock; the reader
  renders several files at once in threads, which overlap on everything but rasterising
  (decoding, resizing, PNG encoding).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from ..cpu_cost import stage_cpu
from ..errors import InputError
from ..records import PageImage, PageWords, SourceFile
from .orientation import NOT_JUDGED, Orientation, classify, from_text_layer, turn
from .selection import parse_page_selection
from .words import text_layer_words

try:  # libspng: decodes plain PNGs to the same pixels as libpng in two thirds of the time
    import pyspng as _spng
except ImportError:  # no wheel for this platform: OpenCV decodes PNGs too
    _spng = None
try:  # ISA-L's deflate: the same zlib stream format, about 6x faster at level 1
    from isal.isal_zlib import compress as _deflate
except ImportError:  # no wheel for this platform: the standard library's, slower
    from zlib import compress as _deflate

log = logging.getLogger("lightocr_ingest")

LONGEST_SIDE = 1540  # px: LightOnOCR-1B/2-1B training size (processor_config.json)
GREY_SAMPLE_ROWS = 16  # every 16th row is compared first: a colour page shows it there almost always,
#                       found in 0.06 ms where the full check takes 1.3 (warm) to 3 (fresh render)
PNG_COMPRESS_LEVEL = 1  # deflate level: ISA-L's 1 compresses text pages ~10x; its 0 is 15% bigger, no faster
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLAIN_DECODE_MAX_PIXELS = 25_000_000  # OpenCV's PNG decoder briefly holds the image twice; past an A4
#                                      page at 500 DPI, Pillow decodes it and shrinks it in place instead
MAX_PAGE_PIXELS = 400_000_000  # decoded pixels: a 20000 x 20000 scan; more would need over 1.2 GB as RGB
_PILLOW_LIMIT_LOCK = threading.Lock()
_EMPTY_PAGE_TREE = re.compile(rb"/Type\s*/Pages\b[^>]*/Count\s+0\b")  # a page tree that declares no page
_SCRATCH = threading.local()  # per rendering thread: the grey check's RGB copy, reused page after page
PDFIUM_LOCK = threading.RLock()  # PDFium keeps global state: one caller at a time per process

EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that makes it upright

PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES

_MAGIC = [  # (prefix, what it is) for telling the user what a mislabelled file really holds
    (b"%PDF-", "a PDF"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive (DOCX, XLSX, ...)"),
    (b"{", "JSON or text"),
    (b"<", "HTML or XML"),
]


def sniff(head: bytes) -> str | None:
    """Name what the first bytes of a file look like, or None when unknown."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    # PDF readers accept a header anywhere in the first 1 KiB, after junk such as a BOM.
    if b"%PDF-" in head[:1024]:
        return "a PDF"
    for prefix, what in _MAGIC:
        if head.startswith(prefix):
            return what
    return None


def _open_binary(path: str, fs: Any | None) -> BinaryIO:
    if fs is not None:
        return fs.open(path, "rb")
    return open(path, "rb")


def _read_source(path: str, fs: Any | None) -> tuple[bytes, str]:
    """Read the whole file and hash it. Files (not bitmaps) are small enough to hold."""
    try:
        with _open_binary(path, fs) as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a file") from None
    except PermissionError:
        raise InputError(path, "permission denied", hint="check the file's read permission") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror or exc}") from None
    return data, hashlib.sha256(data).hexdigest()


def _scale_to_fit(width: float, height: float, longest_side: int, allow_upscale: bool) -> float:
    scale = longest_side / max(width, height)
    return scale if allow_upscale else min(1.0, scale)


DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # grey with more than 8 bits a pixel


def _deep_grey_to_l(image: Image.Image) -> Image.Image:
    """16/32-bit grey to 8-bit grey, keeping the contrast."""
    array = np.asarray(image, dtype=np.float64)
    top = float(array.max()) or 1.0
    # 16-bit scans use the full 0-65535 range; 32-bit ones may use any; scale by the max seen.
    scale = 255.0 / (65535.0 if top > 255 and image.mode.startswith("I;16") else max(top, 255.0))
    return Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), mode="L")


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


def _fitted_size(width: int, height: int, longest_side: int) -> tuple[int, int]:
    """The size an image of ``width`` x ``height`` is sent at: shrunk to fit, never enlarged."""
    scale = _scale_to_fit(width, height, longest_side, allow_upscale=False)
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit(pixels: np.ndarray, longest_side: int) -> np.ndarray:
    """Shrink pixels whose longest side is over ``longest_side``; never enlarge them."""
    height, width = pixels.shape[:2]
    size = _fitted_size(width, height, longest_side)
    return pixels if size == (width, height) else downscale(pixels, size)


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


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    """A lossless 8-bit grey or RGB PNG: each row unfiltered, deflate level 1 (see the module notes).

    ``image`` is a Pillow image, or an array of 8-bit grey (height, width) or RGB (height, width, 3).
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image if image.mode in ("L", "RGB") else to_rgb(image))
    pixels = image
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = np.zeros((height, width * channels + 1), dtype=np.uint8)  # byte 0 of each row: filter 0
    rows[:, 1:] = pixels.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", _deflate(rows.data, PNG_COMPRESS_LEVEL)) + _png_chunk(b"IEND", b""))


def _page_record(source: SourceFile, page: int, label: str, size_pt: tuple[float, float],
                 pixels: np.ndarray, text_layer: str | None, text_words: PageWords | None = None,
                 orientation: Orientation = NOT_JUDGED) -> PageImage:
    pixels = turn(pixels, orientation.rotation)
    with stage_cpu("encode"):
        pixels = grey_if_possible(pixels)
        png = encode_png(pixels)
        pixels_sha256 = hashlib.sha256(png).hexdigest()  # the encoder is deterministic: same pixels, same PNG
    return PageImage(
        source=source,
        page=page,
        label=label,
        page_width=round(size_pt[0], 2),
        page_height=round(size_pt[1], 2),
        image_width=pixels.shape[1],
        image_height=pixels.shape[0],
        png=png,
        pixels_sha256=pixels_sha256,
        text_layer=text_layer,
        text_words=text_words,
        rotation=orientation.rotation,
        rotation_confidence=orientation.confidence,
    )


class DocumentSource:
    """An opened input file whose pages can be rendered lazily, in any selection.

    Opening reads and checks the file (type, emptiness, password) so that a bad file fails
    at once with a one-line ``InputError``; rendering happens in ``iter_pages``.
    """

    def __init__(self, path: str | os.PathLike, *, password: str | None = None,
                 fs: Any | None = None, longest_side: int = LONGEST_SIDE, text_words: bool = False,
                 detect_rotation: bool = True):
        self.path = str(path)
        self.text_words = text_words  # also read the text layer's word boxes (for chunk regions)
        self.detect_rotation = detect_rotation  # turn pages that lie sideways or upside down upright
        self.password = password
        self.longest_side = longest_side
        suffix = Path(self.path).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise InputError(
                self.path,
                f"unsupported file type {suffix or '(no extension)'!r}",
                hint="supported: " + ", ".join(sorted(SUPPORTED_SUFFIXES)),
            )
        with stage_cpu("open"):  # read, hash, check and parse: once per file
            self._data, sha256 = _read_source(self.path, fs)
            if not self._data:
                raise InputError(self.path, "file is empty (0 bytes)")
            kind = "pdf" if suffix in PDF_SUFFIXES else "image"
            actual = sniff(self._data[:1024])
            if kind == "pdf" and actual != "a PDF":
                raise InputError(
                    self.path,
                    f"content is not a PDF (it looks like {actual or 'an unknown format'})",
                    hint="rename the file to match its content or replace it",
                )
            if kind == "image" and actual == "a PDF":
                raise InputError(self.path, f"content is a PDF but the name ends in {suffix!r}",
                                 hint="rename it to .pdf")
            self._pdf = None
            if kind == "pdf":
                page_count = self._open_pdf()
            else:
                page_count = self._open_image()
            self.source = SourceFile(path=self.path, name=Path(self.path).name, sha256=sha256,
                                     page_count=page_count, kind=kind)

    def set_rendering(self, *, longest_side: int, text_words: bool, detect_rotation: bool) -> None:
        """How pages are rendered, for a file opened before its reader knew (the pipeline opens
        files ahead to hash them and count their pages, and renders from the same bytes)."""
        self.longest_side, self.text_words, self.detect_rotation = longest_side, text_words, detect_rotation

    # -- opening ---------------------------------------------------------------
    def _open_pdf(self) -> int:
        import pypdfium2 as pdfium

        with PDFIUM_LOCK:
            try:
                self._pdf = pdfium.PdfDocument(self._data, password=self.password)
            except pdfium.PdfiumError as exc:
                message = str(exc)
                # PDFium's error code is global and outlives the failure that set it, so a
                # password error is believed only of a file that is encrypted at all.
                wants_password = "password" in message.lower()
                if wants_password and b"/Encrypt" in self._data:
                    if self.password:
                        raise InputError(self.path, "is encrypted and the password given is wrong") from None
                    raise InputError(self.path, "is encrypted",
                                     hint="pass its password: password=... or --password") from None
                # "Success" is PDFium's way of saying it found no page tree.
                if wants_password or "PDFium: Success" in message or _EMPTY_PAGE_TREE.search(self._data):
                    raise InputError(self.path, "has no pages (its page tree is empty or unreadable)") from None
                raise InputError(self.path, f"is corrupt or truncated: {message}") from None
            if len(self._pdf) == 0:
                raise InputError(self.path, "has no pages")
            return len(self._pdf)

    def _open_image(self) -> int:
        image, _ = self._decode_image()
        frames = max(1, getattr(image, "n_frames", 1))
        if image.format == "TIFF":
            return frames  # a multi-page scan: one page per frame
        if frames > 1:
            log.warning("%s: animated %s with %d frames: only the first frame is read", self.path, image.format, frames)
        return 1

    def _decode_image(self) -> tuple[Image.Image, tuple[int, int]]:
        """Open the image (header only), check what decoding it would cost; return it and its
        stated size in pixels.

        JPEGs are set to decode at a reduced size (``draft``), so a 20000 px photo never
        exists at full size; the pixel limit applies to what will really be decoded.
        """
        try:
            image = _open_header(self._data)
            header_size = image.size
            if image.format == "JPEG":
                # Decode at the smallest DCT scale (1/2, 1/4, 1/8) still at least the size sent.
                image.draft(image.mode if image.mode in ("L", "RGB") else "RGB",
                            _fitted_size(image.width, image.height, self.longest_side))
        except Exception as exc:  # Pillow raises many types for broken data
            raise InputError(self.path, f"is not a readable image: {exc}") from None
        if image.width * image.height > MAX_PAGE_PIXELS:
            raise InputError(self.path, f"image is too large to decode safely ({image.width} x {image.height} px, "
                                        f"possibly a decompression bomb)",
                             hint=f"images up to {MAX_PAGE_PIXELS:,} pixels are accepted; downscale it first")
        return image, header_size

    # -- rendering -------------------------------------------------------------
    def page_numbers(self, selection: str | None = None) -> list[int]:
        try:
            return parse_page_selection(selection, self.source.page_count)
        except ValueError as exc:
            raise InputError(self.path, str(exc)) from None

    def iter_pages(self, selection: str | None = None) -> Iterator[PageImage | InputError]:
        """Yield each selected page, or an ``InputError`` for a page that failed to render.

        Errors are yielded, not raised, so that one broken page never hides the others.
        """
        for number in self.page_numbers(selection):
            yield self.page_or_error(number)

    def page_or_error(self, number: int) -> PageImage | InputError:
        """Page ``number`` rendered, or the ``InputError`` that says why it could not be."""
        try:
            return self.render_page(number)
        except InputError as exc:
            return exc
        except MemoryError:
            return InputError(self.path, "page too large to render in memory", page=number)
        except Exception as exc:  # pdfium and Pillow raise many types on broken pages
            return InputError(self.path, f"cannot be rendered: {type(exc).__name__}: {exc}", page=number)

    def render_page(self, number: int) -> PageImage:
        if self._pdf is not None:
            return self._render_pdf_page(number)
        return self._render_image_page(number)

    def _render_pdf_page(self, number: int) -> PageImage:
        with stage_cpu("render"):
            width, height, bitmap, text_layer, label, words, orientation = self._rasterise_pdf_page(number)
        try:
            with stage_cpu("render"):
                pixels = _bitmap_pixels(bitmap)  # a view of the buffer the bitmap was drawn into
            if orientation is None:
                orientation = self._classify(pixels, number)
            return _page_record(self.source, number, label, (width, height), pixels, text_layer or None, words,
                                orientation)
        finally:
            with PDFIUM_LOCK:  # freeing PDFium's bitmap is a call into PDFium too: not beside another render
                bitmap.close()

    def _classify(self, pixels: np.ndarray, number: int) -> Orientation:
        """The classifier's answer for a page with no text layer to tell its orientation; a
        classifier that fails leaves the page as it is (its text is worth more than its turn)."""
        if not self.detect_rotation:
            return NOT_JUDGED
        try:
            with stage_cpu("orient"):
                return classify(pixels)
        except Exception as exc:  # onnxruntime raises many types
            log.warning("%s, page %d: orientation not checked (%s: %s); the page is read as stored",
                        self.path, number, type(exc).__name__, exc)
            return NOT_JUDGED

    def _rasterise_pdf_page(self, number: int) -> tuple[float, float, Any, str, str, PageWords | None,
                                                         Orientation | None]:
        import pypdfium2.raw as pdfium_raw

        with PDFIUM_LOCK:
            page = self._pdf[number - 1]
            try:
                width, height = page.get_size()
                if width <= 0 or height <= 0:
                    raise InputError(self.path, f"page has an empty size ({width} x {height} pt)", page=number)
                scale = _scale_to_fit(width, height, self.longest_side, allow_upscale=True)
                bitmap = page.render(scale=scale, may_draw_forms=True, rev_byteorder=True)  # RGB, not BGR
            except BaseException:
                page.close()
                raise
            try:
                textpage = page.get_textpage()
                text_layer = textpage.get_text_range()
                words = None
                if self.text_words and text_layer.strip():
                    with stage_cpu("words"):
                        try:
                            words = text_layer_words(page, textpage, text_layer, width, height)
                        except Exception as exc:  # boxes are extra: never lose the page's text for them
                            log.warning("%s, page %d: text layer boxes unreadable (%s: %s); its chunks get "
                                        "no text-layer regions", self.path, number, type(exc).__name__, exc)
                orientation = None  # None: the text layer cannot tell (or detection is off): ``_classify`` decides
                if self.detect_rotation and text_layer.strip():
                    with stage_cpu("orient"):
                        orientation = from_text_layer(pdfium_raw, textpage.raw, page.get_rotation())
                textpage.close()
                label = self._pdf.get_page_label(number - 1) or str(number)
            except BaseException:
                bitmap.close()  # here, under the lock, not later by the garbage collector in any thread
                raise
            finally:
                page.close()
        return width, height, bitmap, text_layer, label, words, orientation

    def _render_image_page(self, number: int) -> PageImage:
        with stage_cpu("render"):
            pixels, size_pt = self._rasterise_image_page(number)
        return _page_record(self.source, number, str(number), size_pt, pixels, None,
                            orientation=self._classify(pixels, number))

    def _rasterise_image_page(self, number: int) -> tuple[np.ndarray, tuple[float, float]]:
        image, (width_px, height_px) = self._decode_image()
        if number > 1:
            image.seek(number - 1)
            width_px, height_px = image.size
        dpi = image.info.get("dpi") or (72.0, 72.0)  # unknown DPI: one pixel per point
        points_per_pixel = 72.0 / float(dpi[0] or 72.0)
        orientation = _orientation(image)
        pixels = _decode_plain(self._data, image, (width_px, height_px), self.longest_side) if number == 1 else None
        if pixels is None:
            factor = max(image.width, image.height) // self.longest_side
            if factor >= 2:
                if image.mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F"):
                    image = to_model_mode(image)  # palette, 1-bit and 16-bit images have no reduce()
                # Box-average a poster-sized scan down in its own mode (1 byte a pixel for grey)
                # before anything copies it as RGB: a 20000 px page never exists three times over.
                image = image.reduce(factor)
            pixels = fit(np.asarray(to_model_mode(image)), self.longest_side)
        if orientation in _TRANSPOSE:  # rare (phone photos): Pillow's transposes are the reference
            pixels = np.asarray(Image.fromarray(pixels).transpose(_TRANSPOSE[orientation]))
            if orientation >= 5:  # the turns by 90 degrees
                width_px, height_px = height_px, width_px
        return pixels, (width_px * points_per_pixel, height_px * points_per_pixel)

    def close(self) -> None:
        """Let the file's bytes go; closing twice (from two threads even) is harmless."""
        if self._pdf is not None:
            with PDFIUM_LOCK:
                if self._pdf is not None:
                    self._pdf.close()
                    self._pdf = None
        self._data = b""

    def __enter__(self) -> "DocumentSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_file_pages(path: str | os.PathLike, *, pages: str | None = None, password: str | None = None,
                    fs: Any | None = None, longest_side: int = LONGEST_SIDE,
                    detect_rotation: bool = True) -> Iterator[PageImage | InputError]:
    """Open ``path`` and yield its selected pages (or per-page errors) lazily.

    A file that cannot be opened at all raises ``InputError`` on the first ``next()``.
    """
    with DocumentSource(path, password=password, fs=fs, longest_side=longest_side,
                        detect_rotation=detect_rotation) as document:
        yield from document.iter_pages(pages)
