"""Open a PDF or image once and render its pages into ``PageImage`` records, one at a time.

Pages are produced lazily so that a 1,000-page PDF never sits in memory as 1,000 bitmaps:
each page is rendered, converted to 8-bit grey or RGB, encoded to PNG and handed on before
the next.

Why these choices:
- 1540 px on the longest side is the size LightOnOCR-1B/2-1B were trained on; larger images
  only slow the model down, and images are never upscaled past their own size.
- A PDF page is rendered in RGB byte order and used in place. Scans are resized in their
  own mode, before any RGB copy exists.
- PDFium is not thread-safe, so every call into it holds one process-wide lock; the reader
  renders several files at once in threads, which overlap on everything but rasterising
  (decoding, resizing, PNG encoding).

The steps live beside this module: ``files`` (suffixes, reading, what a file really is),
``decode`` (image files to pixels), ``pixels`` (modes, the grey check, resizing), ``png``
(the encoder) and ``orientation`` (pages turned upright).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..cpu_cost import stage_cpu
from ..errors import InputError
from ..records import PageImage, PageWords, SourceFile
from .decode import (_TRANSPOSE, MAX_PAGE_PIXELS, _bitmap_pixels, _decode_plain, _open_header, _orientation,
                     _unreadable_image)
from .files import PDF_SUFFIXES, SUPPORTED_SUFFIXES, _read_source, sniff
from .orientation import NOT_JUDGED, Orientation, classify, from_text_layer, from_word_turns, turn
from .pixels import _fitted_size, _scale_to_fit, fit, grey_if_possible, reduce_in_bands, to_model_mode
from .png import encode_png
from .selection import parse_page_selection
from .layer_check import why_unusable
from .words import image_share, text_layer_words

log = logging.getLogger("lightocr_ingest")

LONGEST_SIDE = 1540  # px: LightOnOCR-1B/2-1B training size (processor_config.json)
_EMPTY_PAGE_TREE = re.compile(rb"/Type\s*/Pages\b[^>]*/Count\s+0\b")  # a page tree that declares no page
PDFIUM_LOCK = threading.RLock()  # PDFium keeps global state: one caller at a time per process


def _page_record(source: SourceFile, page: int, label: str, size_pt: tuple[float, float],
                 pixels: np.ndarray, text_layer: str | None, text_words: PageWords | None = None,
                 orientation: Orientation = NOT_JUDGED, image_share: float | None = None) -> PageImage:
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
        image_share=image_share,
        rotation=orientation.rotation,
        rotation_confidence=orientation.confidence,
    )


def _unrendered_record(source: SourceFile, page: int, label: str, size_pt: tuple[float, float], longest_side: int,
                       text_layer: str, words: PageWords | None, orientation: Orientation | None,
                       image_share: float | None) -> PageImage:
    """A page read from its text layer, with no image: ``png`` is empty, and the image size is
    the one the page would have been rendered at."""
    scale = _scale_to_fit(size_pt[0], size_pt[1], longest_side, allow_upscale=True)
    width, height = max(1, round(size_pt[0] * scale)), max(1, round(size_pt[1] * scale))
    orientation = orientation or NOT_JUDGED
    if orientation.rotation in (90, 270):
        width, height = height, width
    return PageImage(source=source, page=page, label=label, page_width=round(size_pt[0], 2),
                     page_height=round(size_pt[1], 2), image_width=width, image_height=height, png=b"",
                     pixels_sha256="", text_layer=text_layer or None, text_words=words, image_share=image_share,
                     rotation=orientation.rotation, rotation_confidence=orientation.confidence)


class DocumentSource:
    """An opened input file whose pages can be rendered lazily, in any selection.

    Opening reads and checks the file (type, emptiness, password) so that a bad file fails
    at once with a one-line ``InputError``; rendering happens in ``iter_pages``.
    """

    def __init__(self, path: str | os.PathLike, *, password: str | None = None,
                 fs: Any | None = None, longest_side: int = LONGEST_SIDE, text_words: bool | str = False,
                 detect_rotation: bool = True):
        self.path = str(path)
        # Also read the text layer's word boxes (for chunk regions); "styled": with their fonts
        # too (the CPU engine reads born-digital pages from them).
        self.text_words = text_words
        self.detect_rotation = detect_rotation  # turn pages that lie sideways or upside down upright
        self.password = password
        self.longest_side = longest_side
        suffix = Path(self.path).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise InputError(
                self.path,
                f"unsupported file type {suffix or '(no extension)'!r}",
                hint="supported: " + ", ".join(sorted(SUPPORTED_SUFFIXES)),
                kind="unsupported",
            )
        with stage_cpu("open"):  # read, hash, check and parse: once per file
            self._data, sha256 = _read_source(self.path, fs)
            if not self._data:
                raise InputError(self.path, "file is empty (0 bytes)", kind="empty")
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

    def known_as(self, path: str) -> None:
        """Give the file the path its pages, chunks and points carry, when it is read from another
        (a staged copy, an absolute path planned under a relative one)."""
        if path != self.path:
            self.path = path
            self.source = replace(self.source, path=path, name=Path(path).name)

    def set_rendering(self, *, longest_side: int, text_words: bool | str, detect_rotation: bool) -> None:
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
                        raise InputError(self.path, "is encrypted and the password given is wrong",
                                         kind="encrypted") from None
                    raise InputError(self.path, "is encrypted",
                                     hint="pass its password: password=... or --password", kind="encrypted") from None
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
            raise InputError(self.path, _unreadable_image(self._data, Path(self.path).suffix.lower(), exc)) from None
        if image.width * image.height > MAX_PAGE_PIXELS:
            raise InputError(self.path, f"image is too large to decode safely ({image.width} x {image.height} px, "
                                        f"possibly a decompression bomb)",
                             hint=f"images up to {MAX_PAGE_PIXELS:,} pixels are accepted; downscale it first",
                             kind="too_large")
        return image, header_size

    def largest_page_pixels(self) -> tuple[int, int]:
        """(page, pixels) of the page that costs most to decode (a JPEG at its DCT scale, each TIFF
        frame counted; a PDF page is rendered at ``longest_side`` at most)."""
        if self.source.kind == "pdf":
            return 1, self.longest_side * self.longest_side
        image, _ = self._decode_image()
        largest = (1, image.width * image.height)
        if image.format == "TIFF":
            for frame in range(1, self.source.page_count):
                try:
                    image.seek(frame)
                except EOFError:
                    break
                if image.width * image.height > largest[1]:
                    largest = (frame + 1, image.width * image.height)
        return largest

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
            return InputError(self.path, "page too large to render in memory", page=number,
                              kind="too_large")
        except Exception as exc:  # pdfium and Pillow raise many types on broken pages
            return InputError(self.path, f"cannot be rendered: {type(exc).__name__}: {exc}", page=number)

    def render_page(self, number: int) -> PageImage:
        if self._pdf is not None:
            return self._render_pdf_page(number)
        return self._render_image_page(number)

    def _render_pdf_page(self, number: int) -> PageImage:
        with stage_cpu("render"):
            width, height, bitmap, text_layer, label, words, orientation, images = self._rasterise_pdf_page(number)
        if bitmap is None:  # read from its text layer: no image is needed
            return _unrendered_record(self.source, number, label, (width, height), self.longest_side, text_layer,
                                      words, orientation, images)
        try:
            with stage_cpu("render"):
                pixels = _bitmap_pixels(bitmap)  # a view of the buffer the bitmap was drawn into
            if orientation is None:
                orientation = self._classify(pixels, number)
            return _page_record(self.source, number, label, (width, height), pixels, text_layer or None, words,
                                orientation, images)
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
                                                         Orientation | None, float | None]:
        """The page's size, bitmap (None: not rendered, its text layer stands for it), text,
        label, words, orientation (None: the classifier must tell) and share under images."""
        import pypdfium2.raw as pdfium_raw

        with PDFIUM_LOCK:
            page = self._pdf[number - 1]
            bitmap = None
            try:
                width, height = page.get_size()
                if width <= 0 or height <= 0:
                    raise InputError(self.path, f"page has an empty size ({width} x {height} pt)", page=number)
                textpage = page.get_textpage()
                text_layer = textpage.get_text_range()
                words, images = None, None
                styled = self.text_words == "styled"
                if styled:  # the CPU engine judges whether the page is a scan by it
                    images = image_share(page, width, height)
                if self.text_words and text_layer.strip():
                    with stage_cpu("words"):
                        try:
                            words = text_layer_words(page, textpage, text_layer, width, height, styles=styled)
                        except Exception as exc:  # boxes are extra: never lose the page's text for them
                            log.warning("%s, page %d: text layer boxes unreadable (%s: %s); its chunks get "
                                        "no text-layer regions", self.path, number, type(exc).__name__, exc)
                orientation = None  # None: the text layer cannot tell (or detection is off): ``_classify`` decides
                if self.detect_rotation and text_layer.strip():
                    with stage_cpu("orient"):
                        if words is not None and words.styles is not None:  # their turns are read: no second pass
                            orientation = from_word_turns(words, page.get_rotation())
                        else:
                            orientation = from_text_layer(pdfium_raw, textpage.raw, page.get_rotation())
                textpage.close()
                label = self._pdf.get_page_label(number - 1) or str(number)
                # The CPU engine reads a page whose layer stands for it from the layer: rendering it
                # (two thirds of its cost) would be wasted. A page the classifier must judge is rendered.
                judged = orientation is not None or not self.detect_rotation
                if not (styled and judged and why_unusable(words, images, orientation.rotation if orientation else 0)
                        is None):
                    scale = _scale_to_fit(width, height, self.longest_side, allow_upscale=True)
                    bitmap = page.render(scale=scale, may_draw_forms=True, rev_byteorder=True)  # RGB, not BGR
            except BaseException:
                if bitmap is not None:
                    bitmap.close()  # here, under the lock, not later by the garbage collector in any thread
                raise
            finally:
                page.close()
        return width, height, bitmap, text_layer, label, words, orientation, images

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
                image = reduce_in_bands(image, factor)
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
