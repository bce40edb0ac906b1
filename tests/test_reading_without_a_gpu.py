"""The embedded CPU engine (RapidOCR) on scanned pages, and its layout rules on synthetic boxes.

The pages are the test PDFs printed and scanned (``as_scan``): a PDF with a text layer is
read from the layer instead (tests/test_text_layer.py)."""

import re

import numpy as np

import pytest

from lightocr_ingest import LightOnOCRReader
from lightocr_ingest.ocr.layout import lines_to_paragraphs
from lightocr_ingest.records import TextBox

from .documents import LEFT_COLUMN, RIGHT_COLUMN, as_scan


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"^#+ ", "", text, flags=re.M)).strip().lower()


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over characters / reference length."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_char in enumerate(reference, 1):
        current = [i]
        for j, hyp_char in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_char != hyp_char)))
        previous = current
    return previous[-1] / max(1, len(reference))


@pytest.fixture(scope="module")
def cpu_pages(pdf_dir, tmp_path_factory):
    reader = LightOnOCRReader(ocr_engine="cpu")
    scans = tmp_path_factory.mktemp("scans")
    return {name: reader.load_data(as_scan(pdf_dir / name, scans / name), extra_info=None)
            for name in ("report.pdf", "columns.pdf")}


@pytest.fixture(scope="module")
def text_layers(pdf_dir):
    from lightocr_ingest.pages import iter_file_pages

    return {name: [p.text_layer for p in iter_file_pages(pdf_dir / name)] for name in ("report.pdf", "columns.pdf")}


def test_one_column_text_matches_the_pdf_text_layer(cpu_pages, text_layers):
    for document, layer in zip(cpu_pages["report.pdf"], text_layers["report.pdf"]):
        cer = character_error_rate(normalise(layer), normalise(document.text))
        assert cer < 0.03, f"page {document.metadata['page']}: CER {cer:.3f}\n{document.text}"
        assert document.metadata["ocr_engine"] == "cpu" and document.metadata["ocr_model"].startswith("rapidocr")


def test_title_becomes_a_heading_and_paragraphs_stay_apart(cpu_pages):
    text = cpu_pages["report.pdf"][0].text
    blocks = text.split("\n\n")
    assert blocks[0].startswith("#") and "Quarterly Report" in blocks[0]
    assert len(blocks) == 3, blocks  # title + two paragraphs


def test_two_column_page_reads_left_column_first(cpu_pages, text_layers):
    (document,) = cpu_pages["columns.pdf"]
    text = normalise(document.text)
    positions = [text.find(normalise(p)[:40]) for p in LEFT_COLUMN + RIGHT_COLUMN]
    assert all(p >= 0 for p in positions), text
    assert positions == sorted(positions), "columns interleaved or out of order"
    cer = character_error_rate(normalise(text_layers["columns.pdf"][0]), text)
    assert cer < 0.05


def test_line_boxes_are_kept_in_page_points(cpu_pages):
    document = cpu_pages["columns.pdf"][0]
    lines = document.layout.ocr_lines
    assert lines.source == "ocr_lines" and len(lines.text.split("\n")) >= 9  # title + 8 column lines
    words = lines.text.split()
    assert len(words) == len(lines.boxes)
    for x0, y0, x1, y1 in lines.boxes:
        assert 0 <= x0 < x1 <= document.metadata["page_width"] and 0 <= y0 < y1 <= document.metadata["page_height"]
    left = [box for word, box in zip(words, lines.boxes) if word == "Alpha"]
    right = [box for word, box in zip(words, lines.boxes) if word == "Bravo"]
    assert left and right and max(b[2] for b in left) < min(b[0] for b in right)


# --- layout rules on synthetic lines --------------------------------------------------------
def line(text, x0, y0, x1, height=20):
    return TextBox(text, (x0, y0, x1, y0 + height))


def test_two_columns_under_a_full_width_title():
    lines = [line("A Title Across The Page", 100, 50, 1400, height=40)]
    for i in range(4):
        lines.append(line(f"left {i}", 100, 150 + 30 * i, 700))
        lines.append(line(f"right {i}", 800, 150 + 30 * i, 1400))
    paragraphs = lines_to_paragraphs(lines)
    assert [p.text for p in paragraphs] == ["A Title Across The Page", "left 0 left 1 left 2 left 3",
                                            "right 0 right 1 right 2 right 3"]
    assert paragraphs[0].heading_level == 1


def test_paragraph_break_on_a_gap_and_hyphen_rejoined():
    lines = [line("The measure-", 100, 100, 900), line("ments agree.", 100, 125, 900),
             line("New paragraph.", 100, 200, 900)]
    assert [p.text for p in lines_to_paragraphs(lines)] == ["The measurements agree.", "New paragraph."]


def test_split_detections_on_one_baseline_join_left_to_right():
    lines = [line("world", 500, 100, 700), line("Hello", 100, 102, 400)]
    assert [p.text for p in lines_to_paragraphs(lines)] == ["Hello world"]


def test_short_bold_lines_become_headings_levelled_by_their_number():
    """'5.1 Uploads' is no taller than the text under it; only its strokes are wider."""
    body = dict(height=26)
    lines = [line("5 Data Management", 50, 100, 400, height=41), line("5.1 Uploads", 50, 170, 210, **body),
             line("Sonde logs are uploaded every night to the data server as CSV files.", 50, 215, 1030, **body),
             line("If the upload fails the logger keeps forty days of records.", 50, 250, 900, **body),
             line("Notes on quality", 50, 320, 260, **body),
             line("Each record gets a quality flag; flagged values are reviewed on Mondays.", 50, 365, 1030, **body)]
    strokes = [6.5, 4.9, 2.8, 2.7, 4.8, 2.8]
    lines = [TextBox(l.text, l.box, stroke=s) for l, s in zip(lines, strokes)]
    paragraphs = lines_to_paragraphs(lines)
    assert [(p.heading_level, p.text[:16]) for p in paragraphs] == [
        (2, "5 Data Managemen"), (3, "5.1 Uploads"), (0, "Sonde logs are u"), (3, "Notes on quality"),
        (0, "Each record gets")]


def test_bold_sentences_and_unknown_strokes_stay_body_text():
    long_bold = "This whole sentence is set in bold for emphasis, and it runs far past any title's length."
    lines = [TextBox(long_bold, (50, 100, 1030, 126), stroke=4.9),
             TextBox("Plain text under it, set in the body weight of the page.", (50, 135, 1030, 161), stroke=2.8)]
    assert all(p.heading_level == 0 for p in lines_to_paragraphs(lines))
    unknown = [TextBox("5.1 Uploads", (50, 100, 210, 126)), TextBox("Body text of the section.", (50, 140, 900, 166))]
    assert all(p.heading_level == 0 for p in lines_to_paragraphs(unknown))  # stroke 0: no bold judged


@pytest.fixture(scope="module")
def handbook_page_5():
    from pathlib import Path

    from lightocr_ingest.pages import DocumentSource

    sample = Path(__file__).resolve().parents[1] / "samples" / "field-station-handbook.pdf"
    with DocumentSource(sample, detect_rotation=False) as source:
        return source.render_page(5)


def test_a_clean_long_line_is_read_whole_and_subsections_are_headings(handbook_page_5):
    """RapidOCR's line classifier used to flip this line and read 'Eae s s s s t are' (score 0.65)."""
    from lightocr_ingest.ocr.cpu import ocr_page_sync

    markdown = ocr_page_sync(handbook_page_5).markdown
    assert "Each record gets a quality flag; flagged values are reviewed on Monday mornings." in markdown
    assert "\n### 5.1 Uploads\n" in markdown and "\n### 5.2 Quality control\n" in markdown
    assert "## 5 Data Management" in markdown


def test_a_weak_line_is_read_again_and_an_upside_down_line_comes_out_right(handbook_page_5):
    """One line of an upright page pasted upside down (a label, a stamp): read first as noise,
    then re-read turned, it comes out as it is written."""
    import io

    import numpy as np
    from PIL import Image

    from lightocr_ingest.ocr.cpu import recognise_lines
    from lightocr_ingest.pages import encode_png

    pixels = np.asarray(Image.open(io.BytesIO(handbook_page_5.png))).copy()
    band = pixels[362:391, 53:1035]
    pixels[362:391, 53:1035] = band[::-1, ::-1]
    png = encode_png(pixels)
    reread = " ".join(l.text for l in recognise_lines(png))
    first = " ".join(l.text for l in recognise_lines(png, reread_below=0.0))
    wanted = "Each record gets a quality flag; flagged values are reviewed on Monday mornings."
    assert wanted not in first and wanted in reread


def test_a_skewed_scan_is_straightened_for_the_cpu_engine(handbook_page_5):
    """A page scanned 3 degrees off: read straightened, its subsections stay headings and its
    line boxes come back on the tilted page (where the text is there)."""
    import io

    import numpy as np
    from PIL import Image

    from lightocr_ingest.ocr.cpu import ocr_page_sync, read_lines
    from lightocr_ingest.ocr.skew import estimate_skew
    from lightocr_ingest.pages import encode_png

    image = Image.open(io.BytesIO(handbook_page_5.png))
    tilted = np.asarray(image.rotate(3, resample=Image.BICUBIC, expand=True, fillcolor=255))
    assert estimate_skew(tilted) == pytest.approx(3, abs=0.2)
    page = handbook_page_5.__class__(**{**handbook_page_5.__dict__, "png": encode_png(tilted),
                                        "image_width": tilted.shape[1], "image_height": tilted.shape[0]})
    result = ocr_page_sync(page)
    assert "\n### 5.1 Uploads\n" in result.markdown and "### 5.2 Quality control" in result.markdown
    title = next(b for b in result.text_boxes if b.text.startswith("5 Data"))
    x0, y0, x1, y1 = (int(v) for v in title.box)
    ink = tilted[y0:y1, x0:x1] < 128
    assert ink.mean() > 0.1  # the box lies on the title's ink on the tilted page
    assert read_lines(page.png, deskew=False).skew == 0


def test_stroke_width_is_the_strokes_not_the_underscores_or_rules():
    """Regular strokes 2 px, bold 4 px; an underscore or a table rule under them changes nothing."""
    from lightocr_ingest.ocr.cpu import stroke_width

    def line_of(stroke: int, underline: bool):
        grey = np.full((30, 300), 255, np.uint8)
        for x in range(10, 290, 12):
            grey[5:25, x:x + stroke] = 0  # vertical strokes of letters
        if underline:
            grey[26:28, 10:290] = 0
        return grey

    regular, bold = line_of(2, False), line_of(4, False)
    assert stroke_width(regular, (0, 0, 300, 30)) == pytest.approx(2, abs=0.01)
    assert stroke_width(bold, (0, 0, 300, 30)) == pytest.approx(4, abs=0.01)
    assert stroke_width(line_of(2, True), (0, 0, 300, 30)) == pytest.approx(2, abs=0.01)


class _FakeRecogniser:
    """Answers the re-read crops in order: the margin crop, then the upside-down one."""

    def __init__(self, readings):
        self.readings = readings

    def text_rec(self, request):
        from types import SimpleNamespace

        assert len(request.img) == len(self.readings)
        return SimpleNamespace(txts=[t for t, _ in self.readings], scores=[s for _, s in self.readings])


@pytest.mark.parametrize("flipped, kept", [("969", "?"), ("Each record", "Each record")])
def test_a_line_read_upside_down_must_hold_words(flipped, kept):
    """Digits read upside down are other digits ('696' -> '969'): such a reading never wins."""
    from lightocr_ingest.ocr.cpu import _reread

    image = np.full((40, 200, 3), 255, np.uint8)
    quad = np.array([[10, 10], [110, 10], [110, 30], [10, 30]], dtype=np.float32)  # short: no cut
    best = _reread(_FakeRecogniser([("?", 0.2), (flipped, 0.99)]), image, [quad], [0.3])
    assert best[0][0] == kept


def test_a_weak_upright_line_is_not_read_upside_down():
    from lightocr_ingest.ocr.cpu import _reread

    image = np.full((40, 200, 3), 255, np.uint8)
    quad = np.array([[10, 10], [110, 10], [110, 30], [10, 30]], dtype=np.float32)
    best = _reread(_FakeRecogniser([("0.69 mg", 0.8)]), image, [quad], [0.85])  # only the margin crop is asked
    assert best[0] == ("0.69 mg", 0.8)
