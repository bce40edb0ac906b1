"""Stage 1: rendering pages from PDFs and images, page selection, bad input."""

import io
import zlib
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
import numpy as np
import pyspng
from isal import isal_zlib
from PIL import Image, ImageOps

from lightocr_ingest.errors import InputError
from lightocr_ingest.pages import LONGEST_SIDE, DocumentSource, iter_file_pages, parse_page_selection
from lightocr_ingest.pages import encode_png, to_rgb
from lightocr_ingest.pages.pixels import GREY_SAMPLE_ROWS, downscale, grey_if_possible

from .documents import encrypted_pdf, one_column_pdf

REAL_DOCUMENTS = Path(__file__).parent / "real_documents"


def decode(page):
    return Image.open(io.BytesIO(page.png))


# --- page selection -----------------------------------------------------------------------
@pytest.mark.parametrize("selection, expected", [
    (None, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ("1-3,7", [1, 2, 3, 7]),
    ("7,1-3", [1, 2, 3, 7]),
    ("3-", [3, 4, 5, 6, 7, 8, 9, 10]),
    ("-2", [1, 2]),
    ("9-20", [9, 10]),
    (" 2 , 2-3 ", [2, 3]),
])
def test_page_selection(selection, expected):
    assert parse_page_selection(selection, 10) == expected


@pytest.mark.parametrize("bad", ["0", "3-1", "a", "1-2-3", "-", "1,,2"])
def test_bad_page_selection_says_what_is_accepted(bad):
    with pytest.raises(ValueError, match="N-M"):
        parse_page_selection(bad, 10)


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 40)), min_size=1, max_size=6), st.integers(1, 30))
def test_page_selection_matches_a_plain_set(ranges, count):
    text = ",".join(f"{a}-{a + n}" for a, n in ranges)
    expected = sorted({p for a, n in ranges for p in range(a, a + n + 1) if p <= count})
    assert parse_page_selection(text, count) == expected


# --- PDFs ---------------------------------------------------------------------------------
def test_pdf_pages_render_to_1540_on_the_longest_side(tmp_path):
    path = one_column_pdf(tmp_path / "a.pdf", pages=2)
    pages = list(iter_file_pages(path))
    assert [p.page for p in pages] == [1, 2]
    for page in pages:
        image = decode(page)
        assert image.format == "PNG" and image.mode == "L"  # black text on white: sent as grey
        assert max(image.size) == LONGEST_SIDE
        assert (page.image_width, page.image_height) == image.size
        assert page.page_width == pytest.approx(595.28, abs=0.1)  # A4 in points
        assert page.image_width / page.image_height == pytest.approx(page.page_width / page.page_height, rel=0.01)
        assert "Quarterly Report" in page.text_layer
        assert page.source.page_count == 2 and page.source.kind == "pdf"


def test_page_selection_on_a_pdf_and_lazy_rendering(tmp_path):
    """A page is rendered only when it is taken, so a 500-page PDF never sits in memory as images
    and the OCR window starts on page 1 without waiting for the rest."""
    path = one_column_pdf(tmp_path / "a.pdf", pages=5)
    rendered = []
    render_page = DocumentSource.render_page

    def spy(self, number):
        rendered.append(number)
        return render_page(self, number)

    with mock.patch.object(DocumentSource, "render_page", spy):
        iterator = iter_file_pages(path, pages="2,4-")
        assert rendered == []
        assert next(iterator).page == 2
        assert rendered == [2]
        assert next(iterator).page == 4
        assert rendered == [2, 4]
        assert [p.page for p in iterator] == [5]
    assert rendered == [2, 4, 5]  # and the pages left out of the selection never


def test_same_file_same_hash_and_pixels(tmp_path):
    path = one_column_pdf(tmp_path / "a.pdf")
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(path.read_bytes())
    a, b = next(iter_file_pages(path)), next(iter_file_pages(copy))
    assert a.source.sha256 == b.source.sha256
    assert a.pixels_sha256 == b.pixels_sha256


# --- images -------------------------------------------------------------------------------
def test_large_image_is_downscaled_small_one_kept(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (3080, 2000), "white").save(big)
    small = tmp_path / "small.jpg"
    Image.new("RGB", (800, 600), "white").save(small)
    page = next(iter_file_pages(big))
    assert (page.image_width, page.image_height) == (1540, 1000)
    page = next(iter_file_pages(small))
    assert (page.image_width, page.image_height) == (800, 600)  # never upscaled


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (400, 200), "white")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(path, exif=exif)
    page = next(iter_file_pages(path))
    assert (page.image_width, page.image_height) == (200, 400)


def test_multipage_tiff_gives_one_page_per_frame(tmp_path):
    path = tmp_path / "scan.tiff"
    frames = [Image.new("RGB", (300, 400), color) for color in ("white", "gray", "black")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    pages = list(iter_file_pages(path))
    assert [p.page for p in pages] == [1, 2, 3]
    assert len({p.pixels_sha256 for p in pages}) == 3
    assert [p.page for p in iter_file_pages(path, pages="2")] == [2]


def test_gif_reads_the_first_frame_only(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("P", (50, 50), i) for i in (1, 2, 3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    pages = list(iter_file_pages(path))
    assert len(pages) == 1 and pages[0].source.page_count == 1


@pytest.mark.parametrize("mode, suffix, colour, sent_as", [
    ("RGBA", ".webp", (200, 30, 30, 255), "RGB"), ("L", ".bmp", 90, "L"), ("CMYK", ".tif", (0, 200, 0, 0), "RGB"),
    ("I;16", ".png", 30000, "L"), ("P", ".png", 3, "RGB"), ("LA", ".png", (90, 255), "L"), ("1", ".bmp", 1, "L"),
    ("RGB", ".png", (77, 77, 77), "L"), ("RGB", ".png", (77, 77, 78), "RGB")])
def test_every_image_mode_is_sent_as_grey_or_rgb_with_the_pixels_vllm_would_see(tmp_path, mode, suffix, colour,
                                                                                 sent_as):
    path = tmp_path / f"img{suffix}"
    source = Image.new(mode, (120, 80), colour)
    if mode == "P":
        source.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 200, 100, 50] + [0] * 756)
    source.save(path)
    image = decode(next(iter_file_pages(path)))
    assert image.mode == sent_as and image.size == (120, 80)  # grey only when no colour is lost
    expected = to_rgb(Image.open(path))
    assert image.convert("RGB").tobytes() == expected.tobytes()  # what the model sees after vLLM's RGB conversion


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from(["L", "RGB"]), st.integers(0, 2 ** 32 - 1),
       st.sampled_from(["isal", "zlib"]))
def test_png_encoding_is_lossless(width, height, mode, seed, deflater):
    """With ISA-L's deflate and with the standard library's fallback alike."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width) + ((3,) if mode == "RGB" else ()),
                                                  dtype=np.uint8)
    image = Image.fromarray(pixels, mode=mode)
    with mock.patch("lightocr_ingest.pages.png._deflate", zlib.compress if deflater == "zlib" else isal_zlib.compress):
        decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.format == "PNG" and decoded.mode == mode
    assert np.array_equal(np.asarray(decoded), pixels)


def test_a_jpeg_scan_is_decoded_at_a_reduced_scale_but_sent_at_full_size(tmp_path):
    path = tmp_path / "scan.jpg"
    Image.new("RGB", (2480, 3508), (250, 240, 230)).save(path, dpi=(300, 300))
    page = next(iter_file_pages(path))
    assert (page.image_width, page.image_height) == (1089, 1540)
    assert page.page_width == pytest.approx(595.2, abs=0.5)  # sizes in points survive the reduced decode


def test_sixteen_bit_image_keeps_its_contrast(tmp_path):
    path = tmp_path / "deep.png"
    image = Image.new("I;16", (100, 10), 0)
    image.paste(65535, (50, 0, 100, 10))
    image.save(path)
    pixels = decode(next(iter_file_pages(path))).convert("L")
    assert pixels.getpixel((10, 5)) == 0 and pixels.getpixel((90, 5)) == 255


def test_image_dpi_gives_the_page_size_in_points(tmp_path):
    path = tmp_path / "scan.png"
    Image.new("RGB", (2480, 3508), "white").save(path, dpi=(300, 300))  # A4 at 300 dpi
    page = next(iter_file_pages(path))
    assert page.page_width == pytest.approx(595.2, abs=0.5)
    assert page.page_height == pytest.approx(841.9, abs=0.5)
    assert max(page.image_width, page.image_height) == 1540


# --- bad input ----------------------------------------------------------------------------
def open_error(path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        DocumentSource(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message  # one line that names the file
    return message


def test_empty_pdf(tmp_path):
    (tmp_path / "empty.pdf").write_bytes(b"")
    assert "empty (0 bytes)" in open_error(tmp_path / "empty.pdf")


def test_truncated_pdf(tmp_path):
    data = one_column_pdf(tmp_path / "full.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 3])
    assert "corrupt or truncated" in open_error(tmp_path / "cut.pdf")


def test_corrupt_pdf(tmp_path):
    (tmp_path / "junk.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    assert "corrupt or truncated" in open_error(tmp_path / "junk.pdf")


def test_encrypted_pdf_asks_for_the_password_and_opens_with_it(tmp_path):
    path = encrypted_pdf(tmp_path / "locked.pdf", password="s3cret")
    assert "encrypted" in open_error(path) and "password" in open_error(path)
    assert "password given is wrong" in open_error(path, password="nope")
    page = next(iter_file_pages(path, password="s3cret"))
    assert "Confidential" in page.text_layer


def test_content_that_does_not_match_the_extension(tmp_path):
    png = tmp_path / "really-a-png.pdf"
    Image.new("RGB", (10, 10)).save(png, format="PNG")
    assert "not a PDF (it looks like a PNG image)" in open_error(png)
    fake = tmp_path / "paper.png"
    fake.write_bytes(one_column_pdf(tmp_path / "x.pdf").read_bytes())
    assert "content is a PDF" in open_error(fake)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    assert "not a readable image" in open_error(text)


def test_unsupported_type_lists_what_is_supported(tmp_path):
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    message = open_error(tmp_path / "sheet.xlsx")
    assert "unsupported file type '.xlsx'" in message and ".pdf" in message


def test_missing_file(tmp_path):
    assert "file not found" in open_error(tmp_path / "nope.pdf")


@settings(max_examples=200, deadline=None)
@given(pages=st.lists(st.integers(min_value=1, max_value=60), max_size=30))
def test_formatted_page_lists_parse_back_to_themselves(pages):
    from lightocr_ingest.pages.selection import format_page_selection

    text = format_page_selection(pages)
    assert parse_page_selection(text or None, 60) == (sorted(set(pages)) if pages else list(range(1, 61)))


# --- the fast decoders agree with Pillow ---------------------------------------------------
def textured(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Paper with dark strokes and, in colour, a red and a blue band: like a scan, not flat."""
    rng = np.random.default_rng(seed)
    grey = np.full(size[::-1], 235, np.uint8)
    for _ in range(300):
        y, x = rng.integers(0, size[1] - 4), rng.integers(0, size[0] - 40)
        grey[y:y + 3, x:x + rng.integers(5, 40)] = rng.integers(0, 80)
    if mode == "L":
        return Image.fromarray(grey, mode="L")
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[: size[1] // 8, :, :] = (200, 30, 30)
    rgb[-size[1] // 8:, :, :] = (30, 30, 200)
    return Image.fromarray(rgb, mode="RGB")


def pillow_only(path):
    with mock.patch("lightocr_ingest.pages.source._decode_plain", return_value=None):
        return next(iter_file_pages(path))


@pytest.mark.parametrize("mode, suffix, size, tolerance", [
    ("L", ".png", (1654, 2339), 0), ("RGB", ".png", (1240, 1754), 0), ("L", ".png", (900, 700), 0),
    ("L", ".jpg", (2480, 3508), 3), ("RGB", ".jpg", (2480, 3508), 3), ("RGB", ".jpg", (1200, 1600), 3)])
def test_plain_scans_are_decoded_as_pillow_decodes_them(tmp_path, mode, suffix, size, tolerance):
    """OpenCV decodes plain PNG/JPEG scans (at the same DCT scale); Pillow decodes the rest.
    The pages sent must be the same pixels (JPEG decoders may round an IDCT differently)."""
    path = tmp_path / f"scan{suffix}"
    textured(mode, size).save(path, dpi=(200, 200))
    fast, reference = next(iter_file_pages(path)), pillow_only(path)
    assert (fast.image_width, fast.image_height) == (reference.image_width, reference.image_height)
    assert (fast.page_width, fast.page_height) == (reference.page_width, reference.page_height)
    fast_pixels, reference_pixels = np.asarray(decode(fast)), np.asarray(decode(reference))
    assert fast_pixels.shape == reference_pixels.shape  # same mode: grey stays grey, colour stays RGB
    assert np.abs(fast_pixels.astype(int) - reference_pixels.astype(int)).max() <= tolerance
    if mode == "RGB":
        red = fast_pixels[5, 5]
        assert red[0] > 150 and red[2] < 80  # RGB order, not OpenCV's BGR


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_plain_png_scans_are_decoded_by_libspng_to_opencvs_pixels(tmp_path, mode):
    """libspng decodes plain PNGs (faster; a dependency); where it is missing OpenCV does. Same pages."""
    path = tmp_path / "scan.png"
    textured(mode, (1654, 2339)).save(path, dpi=(200, 200))
    with mock.patch.object(pyspng, "load", wraps=pyspng.load) as spng_load:
        fast = next(iter_file_pages(path))
    assert spng_load.call_count == 1
    with mock.patch("lightocr_ingest.pages.decode._spng", None):
        reference = next(iter_file_pages(path))
    assert fast.pixels_sha256 == reference.pixels_sha256
    assert np.array_equal(np.asarray(decode(fast)), np.asarray(decode(reference)))
    if mode == "RGB":
        assert np.asarray(decode(fast))[5, 5][0] > 150  # RGB order: libspng's, where OpenCV's needs swapping


def test_a_corrupt_png_falls_back_to_pillows_explanation(tmp_path):
    """libspng refuses it; Pillow then names the cause, page by page, as for any image."""
    path = tmp_path / "cut.png"
    buffer = io.BytesIO()
    textured("L", (800, 1000)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with mock.patch.object(pyspng, "load", wraps=pyspng.load) as spng_load:
        page = next(iter_file_pages(path))
    assert spng_load.call_count == 1
    assert isinstance(page, InputError) and page.page == 1 and "truncated" in str(page)


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_turns_the_page_as_viewers_do(tmp_path, orientation, suffix):
    path = tmp_path / f"phone{suffix}"
    image = np.full((300, 500), 255, np.uint8)
    image[:60, :100] = 0  # a dark mark in the stored top-left corner
    exif = Image.new("L", (1, 1)).getexif()
    exif[0x0112] = orientation
    Image.fromarray(image, mode="L").save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("L")) < 128
    sent = np.asarray(decode(next(iter_file_pages(path))).convert("L")) < 128
    assert sent.shape == expected.shape
    assert (sent != expected).mean() < 0.01  # JPEG blurs the mark's edge a little


@settings(max_examples=90, deadline=None)
@given(st.integers(1, 40), st.integers(1, 60), st.integers(0, 2 ** 32 - 1),
       st.sampled_from(["grey", "tint in a sampled row", "tint in another row"]))
def test_a_page_is_grey_exactly_when_every_pixel_is(width, height, seed, tint):
    """Rows sampled first (a colour page is found there almost always) or not, the answer is the
    full check's: one channel of one pixel off by one anywhere keeps the page in colour."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, (height, width), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    sampled = list(range(0, height, GREY_SAMPLE_ROWS))
    others = [row for row in range(height) if row not in sampled]
    assume(tint != "tint in another row" or others)
    if tint != "grey":  # one channel of one pixel off by one
        rows = sampled if tint == "tint in a sampled row" else others
        y, x, channel = rows[rng.integers(len(rows))], rng.integers(width), rng.integers(3)
        rgb[y, x, channel] = rgb[y, x, channel] + 1 if rgb[y, x, channel] < 255 else 254
    event(tint)
    result = grey_if_possible(rgb)
    if tint != "grey":
        assert result is rgb
    else:
        assert result.ndim == 2 and np.array_equal(result, grey)


def test_pdf_pages_keep_their_colours_in_rgb_order(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_fill_color(220, 20, 20)
    pdf.rect(10, 10, 100, 50, style="F")
    pdf.output(str(tmp_path / "red.pdf"))
    image = decode(next(iter_file_pages(tmp_path / "red.pdf")))
    assert image.mode == "RGB"
    r, g, b = image.getpixel((200, 150))
    assert r > 200 and g < 50 and b < 50


@pytest.mark.parametrize("source_side, target_side", [
    (2339, LONGEST_SIDE), (3508, LONGEST_SIDE), (1754, LONGEST_SIDE),  # 200 DPI; 300 DPI; a JPEG's half DCT scale
    (4928, LONGEST_SIDE),  # a 3.2x shrink: bilinear to 3x the size, then averaged by 3
    (LONGEST_SIDE, 224), (LONGEST_SIDE, 362)])  # the orientation views' 6.9x and 4.3x
def test_a_shrunk_page_is_as_close_to_a_render_at_that_size_as_area_averaging(source_side, target_side):
    """``downscale`` averages by a whole factor after a bilinear step; the page it gives must be
    as close to PDFium's own render at the smaller size as OpenCV's exact area average of the
    same page."""
    import cv2
    import pypdfium2 as pdfium

    def rendered(page, longest):
        width, height = page.get_size()
        return page.render(scale=longest / max(width, height), grayscale=True).to_numpy().copy()

    def rms(a, b):
        return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))

    for name in ("paper-two-column-1.pdf", "manual-tables.pdf"):
        pdf = pdfium.PdfDocument(str(REAL_DOCUMENTS / name))
        try:
            reference = rendered(pdf[0], target_side)
            source = rendered(pdf[0], source_side)
        finally:
            pdf.close()
        size = reference.shape[1], reference.shape[0]
        shrunk = downscale(source, size)
        exact = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        assert shrunk.shape == reference.shape
        assert rms(shrunk, reference) <= rms(exact, reference) + 0.3
        assert abs(float(shrunk.mean()) - float(exact.mean())) < 0.5  # no ink lost or added


def test_the_grey_check_takes_arrays_in_any_memory_order():
    """Its RGB copy goes into a buffer the thread keeps: an array in another order (a transposed
    view) must neither fail nor leave a buffer that fails the next page."""
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    sideways = rgb.transpose(1, 0, 2)  # a view, not C-contiguous
    assert np.array_equal(grey_if_possible(sideways), grey.T)
    assert np.array_equal(grey_if_possible(np.ascontiguousarray(sideways)), grey.T)
    tinted = np.ascontiguousarray(sideways)
    tinted[5, 7, 1] ^= 1
    assert grey_if_possible(tinted) is tinted


def test_a_document_closed_twice_is_closed_once(tmp_path):
    source = DocumentSource(one_column_pdf(tmp_path / "a.pdf", pages=2))
    source.close()
    source.close()  # the reader may close it on the last page's trip and again on the way out
    assert source._pdf is None


@given(st.integers(1, 70), st.integers(1, 70), st.sampled_from(["L", "LA", "RGB", "RGBA", "CMYK", "I", "F"]),
       st.integers(2, 8), st.integers(1, 24), st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_reducing_in_bands_gives_the_pixels_of_one_reduce(width, height, mode, factor, band_rows, seed):
    """A poster-sized page is box-averaged a band of rows at a time (no full-size premultiplied copy
    of an RGBA scan): the pixels are exactly those of Pillow's one ``reduce``, whatever the bands."""
    from lightocr_ingest.pages import pixels as source_module

    rng = np.random.default_rng(seed)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "I": 1, "F": 1}[mode]
    if mode in ("I", "F"):
        data = rng.integers(0, 70000, (height, width)).astype(np.int32 if mode == "I" else np.float32)
        image = Image.fromarray(data, mode=mode)
    else:
        data = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        image = Image.frombytes(mode, (width, height), data.tobytes())
    saved = source_module.REDUCE_BAND_ROWS
    source_module.REDUCE_BAND_ROWS = max(band_rows, factor)
    event("several bands" if height > source_module.REDUCE_BAND_ROWS - source_module.REDUCE_BAND_ROWS % factor
          else "one band")
    try:
        banded = source_module.reduce_in_bands(image, factor)
    finally:
        source_module.REDUCE_BAND_ROWS = saved
    assert banded.mode == image.mode and banded.size == image.reduce(factor).size
    assert np.array_equal(np.asarray(banded), np.asarray(image.reduce(factor)))
