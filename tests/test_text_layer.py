"""The CPU engine reads born-digital pages from their text layer (ocr/text_layer.py,
text_lines.py, text_markdown.py): reading order, headings, paragraphs, lists, tables, code;
scans and broken layers still go to RapidOCR; no word of the layer is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lightocr_ingest.ocr.text_layer import TEXT_LAYER_ENGINE, read_text_layer, why_unusable
from lightocr_ingest.ocr.text_lines import page_lines
from lightocr_ingest.ocr.text_markdown import lines_markdown
from lightocr_ingest.pages.source import DocumentSource
from lightocr_ingest.records import FIXED_PITCH, SOFT_HYPHEN, PageWords
from lightocr_ingest.testing.text_quality import plain_words, reading_order, word_recall

REAL = Path(__file__).parent / "real_documents"
TWO_COLUMN = sorted(REAL.glob("paper-two-column-*.pdf"))
LOREM = ("river", "station", "nitrate", "sample", "oxygen", "spring", "basin", "delta", "flow", "rain")


def styled_page(path: Path, number: int = 1):
    with DocumentSource(path, text_words="styled") as source:
        return source.render_page(number)


def markdown_of(path: Path, number: int = 1) -> str:
    return read_text_layer(styled_page(path, number)).markdown


def sentence(seed: int, words: int = 9) -> str:
    return " ".join(LOREM[(seed * 7 + i * 3) % len(LOREM)] + str(seed) for i in range(words)) + "."


# -- reading order ----------------------------------------------------------------------------

def test_two_columns_drawn_line_by_line_across_the_page_are_read_column_by_column(tmp_path):
    """The PDF draws left line 1, right line 1, left line 2, ... (PDFium lists the words in that
    order): the Markdown must still read the whole left column before the right one."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    left = [f"Left line {i} tells of the northern basin and its wells" for i in range(20)]
    right = [f"Right line {i} tells of the southern coast and its dunes" for i in range(20)]
    for i, (a, b) in enumerate(zip(left, right)):
        pdf.text(56, 100 + 13 * i, a)
        pdf.text(320, 100 + 13 * i, b)
    path = tmp_path / "interleaved.pdf"
    pdf.output(str(path))
    page = styled_page(path)
    assert "Right line 0" in page.text_layer.split("Left line 1")[0]  # the layer itself is interleaved
    markdown = read_text_layer(page).markdown
    positions = [markdown.index(line) for line in left + right]
    assert positions == sorted(positions)


def test_a_column_holding_a_numbered_listing_and_a_figures_labels_is_still_a_column(tmp_path):
    """The Yosys manual's application notes (pages 272-276): the right column opens with a
    program listing whose line numbers are words of their own, under a diagram's one-word
    labels. Counted by segments, that column was mostly single words, "not prose", and the
    left column, broken by a figure, was not justified enough to vouch for the pair: the page
    was read across both columns line by line (and came out as an HTML table)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(595, 842))
    pdf.add_page()
    tail = "tells how selections narrow the set of cells shown in the diagram".split()
    left = [f"Left line {i} " + " ".join(tail[:4 + i % 7]) for i in range(24)]  # set ragged, not justified
    right = [f"Right line {i} tells how the stack of selections is combined" for i in range(12)]
    pdf.set_font("Helvetica", size=9)
    for i, text in enumerate(left):
        pdf.text(41, 100 + 11 * i, text)
    for i, label in enumerate(["A", "$2", "Y", "B", "$add", "sum", "a", "b", "c", "$1", "Y", "prod",
                               "$mul", "A", "B", "$3"]):  # a diagram's labels, at the top of the column
        pdf.text(330 + 50 * (i % 4) + 7 * (i // 4), 104 + 12 * (i // 4), label)  # scattered, not a table's grid
    pdf.set_font("Courier", size=8)
    for i in range(12):  # a listing: each line number apart from its code
        pdf.text(309, 160 + 11 * i, str(i + 1))
        pdf.text(333, 160 + 11 * i, f"assign y{i} = a{i};")
    pdf.set_font("Helvetica", size=9)
    for i, text in enumerate(right):
        pdf.text(304, 300 + 11 * i + 5, text)
    path = tmp_path / "app-note.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    assert not [table for table in markdown.split("<table>")[1:] if "line" in table.split("</table>")[0]]
    positions = [markdown.index(line) for line in left + right]
    assert positions == sorted(positions)  # the left column, then the right


def test_a_full_width_title_and_abstract_come_before_the_columns(tmp_path):
    from tests.documents import LEFT_COLUMN, RIGHT_COLUMN, two_column_pdf

    markdown = markdown_of(two_column_pdf(tmp_path / "two.pdf"))
    assert markdown.startswith("# Rivers and Coasts Compared")
    starts = [markdown.index(text.split()[0] + " " + text.split()[1]) for text in LEFT_COLUMN + RIGHT_COLUMN]
    assert starts == sorted(starts)


@pytest.mark.parametrize("path", TWO_COLUMN, ids=lambda p: p.name)
def test_real_two_column_papers_keep_every_word_in_reading_order(path):
    """Word recall >= 0.99 on every page of the real papers (tests/real_documents: pdfTeX,
    REVTeX, acmart, MNRAS), and reading order >= 0.95 over each paper's sentence pairs, the
    typesetter's order as reference (a float placed mid-column reorders a pair or two)."""
    with DocumentSource(path, text_words="styled") as source:
        pages = [source.render_page(n) for n in range(1, source.source.page_count + 1)]
    in_order = pairs = 0
    for page in pages:
        assert why_unusable(page) is None, page.page
        markdown = read_text_layer(page).markdown
        assert word_recall(page.text_words.text, markdown) >= 0.99, page.page
        order, judged = reading_order(page.text_layer, markdown)
        in_order, pairs = in_order + order * judged, pairs + judged
    assert pairs >= 40 and in_order / pairs >= 0.95, (in_order, pairs)


# -- headings, paragraphs, lists, tables, code -------------------------------------------------

def test_headings_come_from_the_fonts_and_body_text_does_not(tmp_path):
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.text(72, 90, "Annual Water Report")
    pdf.set_font("Helvetica", "B", 13)
    pdf.text(72, 130, "1 Methods of Sampling")
    pdf.set_font("Helvetica", size=10)
    for i in range(6):
        pdf.text(72, 150 + 12 * i, sentence(i))
    pdf.set_font("Helvetica", "B", 10)
    pdf.text(72, 240, "1.1 Stations")
    pdf.set_font("Helvetica", size=10)
    for i in range(4):
        pdf.text(72, 256 + 12 * i, sentence(10 + i))
    path = tmp_path / "headings.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings == ["# Annual Water Report", "## 1 Methods of Sampling", "#### 1.1 Stations"]


def test_the_lines_of_a_paragraph_are_joined_and_paragraphs_kept_apart(tmp_path):
    from tests.documents import one_column_pdf

    markdown = markdown_of(one_column_pdf(tmp_path / "one.pdf"))
    paragraphs = markdown.split("\n\n")
    assert paragraphs[0] == "# Quarterly Report on Water Quality 1"
    assert paragraphs[1].startswith("The monitoring network sampled") and paragraphs[1].endswith("rains of April.")
    assert paragraphs[2].startswith("Section 1 notes") and len(paragraphs) == 3


def test_a_word_broken_at_a_line_end_is_mended():
    """TUGboat's page 1 breaks "Se-bastian" across two lines (PDFium marks the hyphen as soft)."""
    page = styled_page(REAL / "paper-two-column-1.pdf")
    assert "Se-\nbastian" in page.text_words.text
    assert "Sebastian Rahtz" in read_text_layer(page).markdown


def test_bullets_and_numbers_become_list_items(tmp_path):
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.text(72, 90, sentence(1))
    for i, mark in enumerate(["\u00b7", "-", "1.", "2."]):  # Helvetica in fpdf has no U+2022
        pdf.text(80, 120 + 14 * i, mark)
        pdf.text(92, 120 + 14 * i, f"Item {i} about the river")
    path = tmp_path / "list.pdf"
    pdf.output(str(path))
    items = [line for line in markdown_of(path).splitlines() if line[:2] in ("- ", "1.", "2.")]
    assert items == ["- Item 0 about the river", "- Item 1 about the river",
                     "1. Item 2 about the river", "2. Item 3 about the river"]


def test_rows_in_columns_become_an_html_table(tmp_path):
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    rows = [("Station", "Nitrate", "Oxygen"), ("North", "2.1", "9.4"), ("Delta", "3.7", "8.8"), ("Basin", "1.9", "10.2")]
    for i, row in enumerate(rows):
        for x, cell in zip((72, 220, 360), row):
            pdf.text(x, 100 + 14 * i, cell)
    path = tmp_path / "table.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    # the first row is the header, as LightOnOCR writes it
    assert "<table><tr><th>Station</th><th>Nitrate</th><th>Oxygen</th></tr><tr><td>North</td><td>2.1</td>" in markdown
    assert markdown.count("<tr>") == 4


def test_a_long_tables_pieces_each_repeat_its_header_row(tmp_path):
    """A table read from the layer and cut to fit chunks says in every piece what its columns
    are (found on apssamp.pdf's Table IV: rows of numbers cut off from their column names)."""
    from fpdf import FPDF

    from lightocr_ingest.chunking.chunker import PageText, chunk_pages

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    rows = [("Element", "Radius", "Charge")] + [(f"E{i}", f"{i / 7:.3f}", f"{i * 3}") for i in range(40)]
    for i, row in enumerate(rows):
        for x, cell in zip((72, 220, 360), row):
            pdf.text(x, 60 + 16 * i, cell)
    path = tmp_path / "long-table.pdf"
    pdf.output(str(path))
    chunks = chunk_pages([PageText(1, markdown_of(path))], max_tokens=120, regions=False)
    tables = [c for c in chunks if "<table>" in c.text]
    assert len(tables) > 2
    assert all(c.text.startswith("<table><tr><th>Element</th><th>Radius</th><th>Charge</th></tr>") for c in tables)
    assert sum(c.text.count("<td>E") for c in tables) == 40  # every row once


def test_real_tables_come_out_as_tables_with_their_cells():
    """manual-tables.pdf page 3: Table 5.1, Verilog operators and their cell types."""
    markdown = markdown_of(REAL / "manual-tables.pdf", 3)
    assert "<tr><td>Y = ~A</td><td>$not</td></tr>" in markdown


def test_fixed_pitch_lines_become_a_code_block(tmp_path):
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.text(72, 90, sentence(2))
    pdf.set_font("Courier", size=10)
    for i, line in enumerate(["module top(input a);", "  assign y = a;", "endmodule"]):
        pdf.text(72 + (12 if line.startswith(" ") else 0), 120 + 12 * i, line.strip())
    path = tmp_path / "code.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    assert "```\nmodule top(input a);\n  assign y = a;\nendmodule\n```" in markdown


def test_a_numbered_bold_heading_with_a_name_in_another_face_is_a_heading():
    """paper-two-column-1.pdf (ltubguid) page 1: "4 Class options: The ltugboat class" is set
    bold but for the class's name; it was read as text, so the class options below it went
    under section 3 in every chunk's heading path."""
    markdown = markdown_of(REAL / "paper-two-column-1.pdf", 1)
    assert "\n#### 4 Class options: The ltugboat class\n" in markdown
    assert "\n#### 3 The general structure of a paper\n" in markdown


def test_text_set_larger_than_a_page_of_small_print_is_no_heading():
    """paper-two-column-3.pdf (acmart) page 5: references at 7 pt are most of the page, so its
    text at 9 pt is "larger than the body"; each paragraph's first line and a one-line
    acknowledgement were read as headings, and the chunks below took them as their path."""
    markdown = markdown_of(REAL / "paper-two-column-3.pdf", 5)
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings == ["# 16 MULTI-LANGUAGE PAPERS", "# 17 SIGCHI EXTENDED ABSTRACTS", "# ACKNOWLEDGMENTS",
                        "# REFERENCES"]
    assert "Papers may be written in languages other than English or include titles" in markdown
    assert "To Robert, for the bagels and explaining CMYK and color spaces." in markdown


def test_the_authors_names_under_a_title_are_no_heading():
    """A byline is set large under the title ("Keith T. Smith1?†"): as a heading, it stood in the
    heading path of every chunk of the paper ("Monthly Notices ... > Keith T. Smith > 4 CLASS
    OPTIONS")."""
    mnras = markdown_of(REAL / "paper-two-column-4.pdf", 1)
    assert "\n# Monthly Notices of the Royal Astronomical Society: LATEX guide for authors\n" in mnras
    assert "\nKeith T. Smith" in mnras and "# Keith" not in mnras
    sandwich = markdown_of(REAL / "paper-one-column-tables.pdf", 1)
    assert "\nAchim Zeileis Susanne Köll Nathaniel Graham" in sandwich and "# Achim" not in sandwich
    assert "# Various Versatile Variances: An Object-Oriented Implementation of Clustered Covariances in R" in sandwich


@pytest.mark.parametrize("heading", ["Frequently Asked Questions", "Questions and Answers", "2 Related Work"])
def test_a_short_title_cased_heading_under_a_title_stays_a_heading(tmp_path, heading):
    """What tells a byline from a heading under a title: four names, or an initial or a
    footnote mark on a name; capitalised words joined by "and", or after a section number,
    are a heading."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    for y, size, text in ((80, 24, "Field Station Handbook"), (120, 12, heading),
                          (150, 10, sentence(3, 12)), (162, 10, sentence(4, 12)), (174, 10, sentence(5, 12))):
        pdf.set_font("Helvetica", size=size)
        pdf.text(72, y, text)
    path = tmp_path / "faq.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    assert markdown.startswith(f"# Field Station Handbook\n\n## {heading}\n")


def test_a_table_of_contents_entries_are_not_headings(tmp_path):
    """The Yosys manual's contents list its chapters bold with their page at the right margin:
    entries, not headings (each would start a chunk of one line that names a section)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.text(72, 80, sentence(3))
    for i, (title, page) in enumerate([("1 Introduction", "15"), ("2 Basic Principles", "17"), ("3 Approach", "28")]):
        pdf.set_font("Helvetica", "B", size=10)
        pdf.text(72, 120 + 30 * i, title)
        pdf.text(520, 120 + 30 * i, page)
        pdf.set_font("Helvetica", size=10)
        pdf.text(84, 134 + 30 * i, f"{i + 1}.1 Section of chapter {i + 1} . . . . . . {i + 2}")
    path = tmp_path / "contents.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    assert "2 Basic Principles" in markdown and "#" not in markdown


def test_a_listings_short_numbered_line_is_no_heading(tmp_path):
    """The Yosys manual's help texts: a listing line "18 cd" (its number in the text face, the
    code in fixed pitch, both larger than the body) was a level-2 heading."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.text(72, 80, sentence(4))
    pdf.text(72, 94, sentence(5))
    for i, code in enumerate(["cd <modname>", "select -module", "cd"]):
        pdf.set_font("Helvetica", size=12)
        pdf.text(72, 130 + 15 * i, str(16 + i))
        pdf.set_font("Courier", size=12)
        pdf.text(92, 130 + 15 * i, code)
    path = tmp_path / "listing.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    assert "18 cd" in markdown and "#" not in markdown


def test_a_run_in_heading_and_a_bold_author_line_stay_text(tmp_path):
    """The numbered bold rule is for headings that set a name in another face: a numbered
    paragraph that opens with a bold run-in heading, and bold initials, stay text."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.text(72, 80, sentence(6))
    for y, parts in ((120, [("B", "2.1. Basic notions."), ("", "Let X be")]),
                     (160, [("B", "J. Smith, A. Jones"), ("", "1,2"), ("B", "and K. Lee")])):
        x = 72
        for style, text in parts:
            pdf.set_font("Helvetica", style, size=10)
            pdf.text(x, y, text)
            x += pdf.get_string_width(text) + 3
    path = tmp_path / "run-in.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    assert "2.1. Basic notions. Let X be" in markdown and "J. Smith, A. Jones 1,2 and K. Lee" in markdown
    assert "#" not in markdown


def test_a_number_a_listing_prints_stays_in_the_listing(tmp_path):
    """A line of a listing holding only a number set in the listing's font, indented (a
    continued expression), is the listing's, not a page number."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Courier", size=10)
    for i, (indent, line) in enumerate([(0, "x = ("), (4, "1"), (0, "+ 2)")]):
        pdf.text(72 + indent * 6, 120 + 12 * i, line)
    path = tmp_path / "listing.pdf"
    pdf.output(str(path))
    assert "```\nx = (\n    1\n+ 2)\n```" in markdown_of(path)


def test_a_listings_words_are_spaced_as_drawn():
    """manual-tables.pdf page 2 (Yosys manual, page 26): PDFium puts a space between glyphs of
    a fixed-pitch listing that sit a little apart ("assign_stmt :"); in fixed pitch a space is
    a character wide, so the listing reads as printed (this made the manual's command
    reference, "- expect - return <int >", read worse than RapidOCR's)."""
    markdown = markdown_of(REAL / "manual-tables.pdf", 2)
    assert "1 assign_stmt: TOK_ASSIGN TOK_IDENTIFIER TOK_EQ expr TOK_SEMICOLON;\n" \
           "2 expr: TOK_IDENTIFIER | TOK_NUMBER | expr TOK_PLUS expr;" in markdown


def test_a_page_number_below_a_numbered_listing_stays_out_of_it(tmp_path):
    """A listing's line-number-only lines continue it (at its left); the page number at the
    right margin under it does not (it is furniture, and left out with the page's furniture)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Courier", size=10)
    for i, line in enumerate(["1 exec [options] -- [command]", "2", "3 Execute a command in the shell."]):
        pdf.text(72, 120 + 12 * i, line)
    pdf.set_font("Helvetica", size=10)  # a page number is set in the text face
    pdf.text(520, 160, "117")
    path = tmp_path / "listing.pdf"
    pdf.output(str(path))
    markdown = markdown_of(path)
    assert "```\n1 exec [options] -- [command]\n2\n3 Execute a command in the shell.\n```" in markdown
    assert markdown.endswith("```\n\n117")


def test_text_that_looks_like_markdown_stays_text(tmp_path):
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.text(72, 90, "# of samples taken at each station in the spring")
    pdf.text(72, 130, "2024. was a dry year along the whole river basin")
    path = tmp_path / "syntax.pdf"
    pdf.output(str(path))
    assert markdown_of(path).split("\n\n") == ["\\# of samples taken at each station in the spring",
                                               "\\2024. was a dry year along the whole river basin"]


# -- which pages are read from the layer ----------------------------------------------------------

def scan_pdf(tmp_path, invisible_text: str | None = None, stamp: str | None = None) -> Path:
    from fpdf import FPDF
    from fpdf.enums import TextMode
    from PIL import Image, ImageDraw

    image = Image.new("L", (850, 1100), 255)
    draw = ImageDraw.Draw(image)
    for i in range(30):
        draw.text((60, 60 + 30 * i), sentence(i), fill=0)
    image.save(tmp_path / "scan.png")
    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.image(str(tmp_path / "scan.png"), x=0, y=0, w=612, h=792)
    pdf.set_font("Helvetica", size=9)
    if invisible_text:
        pdf.text_mode = TextMode.INVISIBLE
        for i in range(30):
            pdf.text(43, 50 + 21.6 * i, invisible_text)
        pdf.text_mode = TextMode.FILL
    if stamp:
        pdf.text(400, 780, stamp)
    path = tmp_path / "scan.pdf"
    pdf.output(str(path))
    return path


def test_a_scan_without_a_layer_goes_to_the_cpu_ocr(tmp_path):
    page = styled_page(scan_pdf(tmp_path))
    assert why_unusable(page) == "no text layer" and page.png  # rendered, for RapidOCR


def test_a_page_read_from_its_layer_is_not_rendered_unless_it_must_be_turned(tmp_path):
    from tests.documents import one_column_pdf

    page = styled_page(one_column_pdf(tmp_path / "one.pdf"))
    assert page.png == b"" and (page.image_width, page.image_height) == (1089, 1540)  # A4 as it would be rendered
    with DocumentSource(tmp_path / "one.pdf", text_words=True) as source:  # for vLLM: rendered as always
        assert source.render_page(1).png


def test_an_invisible_ocr_layer_over_a_scan_is_not_read(tmp_path):
    page = styled_page(scan_pdf(tmp_path, invisible_text="garbled ocr text of a scanned page"))
    assert "invisible" in why_unusable(page)


def test_a_table_of_contents_is_read_from_the_layer_and_a_page_number_alone_is_not(tmp_path):
    """Dot leaders are not the symbols of a font without a Unicode map; a page whose layer holds
    only its number may show its text as a picture or as outlines: RapidOCR reads its image."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.set_font("Helvetica", size=10)
    pdf.add_page()
    for i in range(30):
        pdf.text(72, 80 + 14 * i, f"{i + 1} Chapter {i + 1} " + ". " * 40 + f"{10 * i + 3}")
    pdf.add_page()
    pdf.text(300, 760, "17")
    path = tmp_path / "contents.pdf"
    pdf.output(str(path))
    assert why_unusable(styled_page(path, 1)) is None
    number_only = styled_page(path, 2)
    assert why_unusable(number_only) == "too little text in the layer" and number_only.png


def test_a_page_lying_sideways_is_read_from_its_image_upright(tmp_path):
    """The layout reads lines as they run across the page: a page whose text runs up it is
    rendered, turned upright, and read by RapidOCR."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(595, 842))
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    with pdf.rotation(90, x=297, y=421):
        for row in range(20):
            pdf.text(80, 250 + 16 * row, sentence(row))
    path = tmp_path / "sideways.pdf"
    pdf.output(str(path))
    page = styled_page(path)
    assert page.rotation == 90 and page.png and why_unusable(page) == "the page is turned 90 degrees to be read"


def test_a_font_size_scaled_by_the_text_matrix_is_taken_from_the_box():
    """"1 Tf" with a 10x text matrix: PDFium says 1 pt; the words' boxes say 10. Read at 1 pt,
    every word space would be a column gap."""
    from lightocr_ingest.ocr.text_lines import words_of

    text = " ".join(["river"] * 8)
    boxes = np.asarray([[72 + 30 * i, 100, 97 + 30 * i, 112] for i in range(8)], np.float32)
    layer = PageWords("text_layer", text, boxes, np.tile([[1, 400, 0]], (8, 1)).astype(np.float32))
    assert {round(w.size) for w in words_of(layer)} == {10}
    assert lines_markdown(page_lines(layer, 612)) == text


def test_a_visible_stamp_on_a_scan_does_not_stand_for_the_page(tmp_path):
    page = styled_page(scan_pdf(tmp_path, stamp="Received 2024-03-01 by the records office, Bates 000123"))
    assert page.image_share > 0.95 and why_unusable(page).startswith("a scan")


def test_a_layer_of_unmapped_glyphs_is_not_read():
    text = "\ue001\ue002\ue003 \ue004\ue005 \ue006\ue007\ue008 " * 10
    words = PageWords("text_layer", text.strip(), np.tile([[72, 72, 100, 84]], (30, 1)).astype(np.float32),
                      np.tile([[10, 400, 0]], (30, 1)).astype(np.float32))
    assert "unreadable" in why_unusable(_page_with(words))


def _page_with(words: PageWords):
    from lightocr_ingest.records import PageImage, SourceFile

    return PageImage(SourceFile("x.pdf", "x.pdf", "0" * 64, 1, "pdf"), 1, "1", 612, 792, 612, 792, b"", "0",
                     text_layer=words.text, text_words=words, image_share=0.0)


def test_the_reader_reads_born_digital_pages_from_the_layer_and_says_so(tmp_path):
    """Through the reader with the CPU engine: the page's metadata names the engine, and the
    Markdown has the layer's heading (RapidOCR would give plain paragraphs)."""
    from lightocr_ingest import LightOnOCRReader
    from tests.documents import one_column_pdf

    reader = LightOnOCRReader(ocr_engine="cpu")
    documents = reader.load_data(one_column_pdf(tmp_path / "one.pdf", pages=2))
    assert [d.metadata["ocr_engine"] for d in documents] == [TEXT_LAYER_ENGINE] * 2
    assert documents[1].text.startswith("# Quarterly Report on Water Quality 2")


def test_a_layout_that_fails_falls_back_to_the_cpu_ocr(tmp_path, monkeypatch, caplog):
    from lightocr_ingest.ocr import resilient
    from lightocr_ingest.ocr.cpu import CpuEngine
    from lightocr_ingest.records import OcrResult
    from tests.documents import one_column_pdf

    def broken(page):
        raise IndexError("list index out of range")

    class FakeCpu(CpuEngine):
        async def ocr(self, page):
            return OcrResult(markdown="read by the image", engine="cpu", model="rapidocr")

    monkeypatch.setattr(resilient, "read_text_layer", broken)
    engine = resilient.ResilientEngine(FakeCpu(), text_layer_first=True)
    with DocumentSource(one_column_pdf(tmp_path / "one.pdf"), text_words="styled", detect_rotation=False) as source:
        page = source.render_page(1)
    assert page.png == b""  # its layer stands for it: not rendered
    result = asyncio.run(engine.ocr(page))  # no image to read: the layer's plain text, said
    assert result.status == "fallback_text_layer" and "Quarterly Report on Water Quality" in result.markdown
    assert "one.pdf, page 1: using the PDF's text layer as it is (text layer not laid out (IndexError" in caplog.text
    rendered = replace(page, png=b"png bytes")  # a page that was rendered (the classifier turned it): RapidOCR
    result = asyncio.run(engine.ocr(rendered))
    assert (result.engine, result.markdown) == ("cpu", "read by the image")
    assert "one.pdf, page 1: text layer not laid out (IndexError: list index out of range); reading the page " \
           "image instead" in caplog.text


# -- no word lost, whatever the layout (property) ----------------------------------------------

@st.composite
def layouts(draw):
    """Random pages: lines in one or two columns, some with wide gaps (table-like), sizes and
    weights that make headings, fixed-pitch lines, bullets, numbers and broken words."""
    alphabet = st.sampled_from(list(LOREM) + ["1.", "2)", "-", "\u2022", "#", "*", "x-", "A.", "III.", "3.14", "(a)"])
    texts, boxes, styles = [], [], []
    columns = draw(st.sampled_from([1, 2]))
    width = 612 / columns - 40
    y = {c: 60.0 for c in range(columns)}
    for _ in range(draw(st.integers(1, 40))):
        column = draw(st.integers(0, columns - 1))
        size = draw(st.sampled_from([8.0, 10.0, 10.0, 10.0, 12.0, 16.0]))
        weight = draw(st.sampled_from([400, 400, 700]))
        flags = draw(st.sampled_from([0, 0, 0, FIXED_PITCH]))
        x = 36 + column * (612 / columns) + draw(st.sampled_from([0, 0, 12, 40]))
        line = []
        for word in draw(st.lists(alphabet, min_size=1, max_size=12)):
            w = len(word) * size * 0.5
            if x + w > 36 + (column + 1) * width:
                break
            line.append((word, (x, y[column], x + w, y[column] + size * 1.2)))
            x += w + size * draw(st.sampled_from([0.3, 0.3, 0.3, 1.5, 4.0]))
        if not line:
            continue
        for number, (word, box) in enumerate(line):
            last = number == len(line) - 1
            hyphen = last and word.endswith("-") and draw(st.booleans())
            texts.append((word, "\n" if last else " "))
            boxes.append(box)
            styles.append((size, weight, flags | (SOFT_HYPHEN if hyphen else 0)))
        y[column] += size * draw(st.sampled_from([1.2, 1.3, 2.5]))
    event(f"{columns} column(s)")
    text = "".join(word + gap for word, gap in texts).rstrip("\n")
    return PageWords("text_layer", text, np.asarray(boxes, np.float32).reshape(-1, 4),
                     np.asarray(styles, np.float32).reshape(-1, 3))


def lost_words(words: PageWords, markdown: str) -> list[str]:
    """Layer words missing from the Markdown. A word broken at a hyphen may come out mended
    with the word that follows it in reading order (not always the next in the layer's
    order), and a bullet glyph may come out as the Markdown list mark."""
    have = Counter(plain_words(markdown))
    layer = words.text.split()
    hyphens = (words.styles[:, 2].astype(int) & SOFT_HYPHEN) != 0
    suffixes: Counter = Counter()  # second halves of mended words, still to be matched
    list_marks = sum(line.startswith("- ") for line in markdown.split("\n"))  # bullets they may stand for
    mended_at = set()
    for i, word in enumerate(layer):  # first the broken words: their second half may come before them
        mended = [m for m in have if have[m] and hyphens[i] and len(m) > len(word) - 1
                  and m.startswith(word[:-1]) and m != word]
        if mended:
            have[mended[0]] -= 1
            suffixes[mended[0][len(word) - 1:]] += 1
            mended_at.add(i)
    lost = []
    for i, word in enumerate(layer):
        if i in mended_at:
            continue
        if have[word] > 0:
            have[word] -= 1
        elif suffixes[word] > 0:
            suffixes[word] -= 1
        elif word in ("-", "\u2022", "*") and list_marks > 0:
            list_marks -= 1
        else:
            lost.append(word)
    return lost


@settings(max_examples=300, deadline=None)
@given(layouts())
def test_no_word_of_the_layer_is_lost_whatever_the_layout(words):
    markdown = lines_markdown(page_lines(words, 612))
    for kind in ("<table>", "```", "\n- ", "\n#"):
        if kind in "\n" + markdown:
            event(f"made {kind.strip()}")
    assert lost_words(words, markdown) == []


def test_the_text_layer_can_be_switched_off_and_never_applies_with_a_model_server():
    """``ocr.text_layer: false`` (reader ``text_layer=False``): RapidOCR reads every page; with a
    model server the text layer is only ever a fallback."""
    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.ocr.engine import EngineSettings, create_engine
    from lightocr_ingest.pipeline import parse_config
    from lightocr_ingest.pipeline.build import make_reader

    async def first(settings):
        engine = create_engine(settings)
        try:
            return engine.text_layer_first
        finally:
            await engine.aclose()

    assert asyncio.run(first(EngineSettings(kind="cpu", cache_dir=None))) is True
    assert asyncio.run(first(EngineSettings(kind="cpu", cache_dir=None, text_layer=False))) is False
    off = make_reader(parse_config({"ocr": {"engine": "cpu", "text_layer": False, "cache_dir": None}}))
    assert off.engine_settings().text_layer is False
    assert LightOnOCRReader(ocr_engine="cpu").engine_settings().text_layer is True


def test_a_model_server_reads_every_page_itself(tmp_path):
    """With vLLM the text-layer reader is not used: born-digital pages go to the model."""
    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.testing import FakeVLLMServer
    from tests.documents import one_column_pdf

    with FakeVLLMServer(responder=lambda request: "# From the model\n\nThe model read this page.") as server:
        reader = LightOnOCRReader(ocr_engine="vllm", ocr_url=server.url)
        (document,) = reader.load_data(one_column_pdf(tmp_path / "one.pdf"))
    assert document.metadata["ocr_engine"] == "vllm" and document.text.startswith("# From the model")


def test_the_run_report_counts_pages_by_what_read_them(tmp_path):
    """A folder of a born-digital PDF and a scan: the report says which engine read how many
    pages, and each stored chunk says it too."""
    from lightocr_ingest.pipeline import Ingestor, parse_config
    from lightocr_ingest.store import make_client
    from tests.documents import as_scan, one_column_pdf

    folder = tmp_path / "in"
    folder.mkdir()
    one_column_pdf(folder / "typeset.pdf", pages=2)
    as_scan(one_column_pdf(tmp_path / "printed.pdf"), folder / "scanned.pdf", dpi=100)
    for leftover in folder.glob("*.png"):
        leftover.unlink()
    config = parse_config({"ocr": {"engine": "cpu", "cache_dir": None},
                           "qdrant": {"path": str(tmp_path / "qdrant"), "collection": "mixed"}})
    ingestor = Ingestor(config)
    try:
        report = ingestor.run([str(folder)])
    finally:
        ingestor.close()
    assert report.totals()["pages_by_engine"] == {"cpu": 1, TEXT_LAYER_ENGINE: 2}
    assert report.totals()["ocr_requests"] == 1  # the scan's; a layer read sends none
    client = make_client(str(tmp_path / "qdrant"))
    try:
        points, _ = client.scroll("mixed", limit=100, with_payload=True)
    finally:
        client.close()
    engines = {(p.payload["file_name"], p.payload["ocr_engine"]) for p in points}
    assert engines == {("typeset.pdf", TEXT_LAYER_ENGINE), ("scanned.pdf", "cpu")}
    # regions from the same words the Markdown was made of
    assert {p.payload["bbox_source"] for p in points if p.payload["file_name"] == "typeset.pdf"} == {"text_layer"}


def test_a_scan_wrapped_in_a_form_xobject_is_still_a_scan(tmp_path):
    """Some tools draw the scanned image inside a form XObject (``/Fm1 Do``), with a stamp on
    top: the image under the form counts, so RapidOCR reads the page."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    source = pdfium.PdfDocument(str(scan_pdf(tmp_path)))
    wrapped = pdfium.PdfDocument.new()
    page = wrapped.new_page(612, 792)
    xobject = raw.FPDF_NewXObjectFromPage(wrapped.raw, source.raw, 0)
    raw.FPDFPage_InsertObject(page.raw, raw.FPDF_NewFormObjectFromXObject(xobject))
    stamp = raw.FPDFPageObj_CreateTextObj(wrapped.raw, raw.FPDFText_LoadStandardFont(wrapped.raw, b"Helvetica"), 9.0)
    text = "Received 2024-03-01 by the records office, Bates 000123\0".encode("utf-16-le")
    raw.FPDFText_SetText(stamp, ctypes.cast(ctypes.c_char_p(text), ctypes.POINTER(raw.FPDF_WCHAR)))
    raw.FPDFPageObj_Transform(stamp, 1, 0, 0, 1, 400, 20)
    raw.FPDFPage_InsertObject(page.raw, stamp)
    raw.FPDFPage_GenerateContent(page.raw)
    raw.FPDF_CloseXObject(xobject)
    wrapped.save(str(tmp_path / "wrapped.pdf"))
    for document in (wrapped, source):
        document.close()
    page = styled_page(tmp_path / "wrapped.pdf")
    assert "Bates 000123" in page.text_layer and page.image_share > 0.95
    assert why_unusable(page).startswith("a scan") and page.png
