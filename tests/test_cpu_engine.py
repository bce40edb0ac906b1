"""The embedded CPU engine on real rendered pages, and its layout rules on synthetic boxes."""

import re

import pytest

from lightocr_ingest import LightOnOCRReader
from lightocr_ingest.ocr.layout import lines_to_paragraphs
from lightocr_ingest.records import TextBox

from .documents import LEFT_COLUMN, RIGHT_COLUMN


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
def cpu_pages(pdf_dir):
    reader = LightOnOCRReader(ocr_engine="cpu")
    return {name: reader.load_data(pdf_dir / name, extra_info=None) for name in ("report.pdf", "columns.pdf")}


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
