"""Chunks of pages the model grounded (LightOnOCR-3): the model's labels decide furniture,
joins and what is never cut, and its boxes are the chunks' regions."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from lightocr_ingest.chunking.chunker import PageText, chunk_pages
from lightocr_ingest.chunking.grounded import cut_box
from lightocr_ingest.ocr.grounding import parse_grounding
from lightocr_ingest.records import LayoutBlock, PageLayout

PAGE_W, PAGE_H = 600.0, 800.0  # page points; the model's 0-1000 boxes scale onto them


def grounded_page(number: int, blocks: list[tuple[str, tuple[int, int, int, int], str]]) -> PageText:
    """A page as the reader hands it on: the Markdown and blocks of a grounding answer."""
    answer = "\n".join(f"![{label}]({x0},{y0},{x1},{y1}) {text}" for label, (x0, y0, x1, y1), text in blocks)
    markdown, parsed = parse_grounding(answer)
    placed = tuple(LayoutBlock(b.label, (b.box[0] * PAGE_W / 1000, b.box[1] * PAGE_H / 1000,
                                         b.box[2] * PAGE_W / 1000, b.box[3] * PAGE_H / 1000),
                               b.start, b.end, b.continues) for b in parsed)
    return PageText(page=number, markdown=markdown, layout=PageLayout(blocks=placed))


def characters(text: str) -> Counter:
    """Non-space characters: a long word may be cut between two chunks, never lost."""
    return Counter(c for c in text if not c.isspace())


def test_header_footer_and_page_number_blocks_stay_out_of_chunks_without_repetition():
    page = grounded_page(1, [("header", (100, 20, 900, 40), "Journal of Tests, vol. 7"),
                             ("section", (100, 80, 500, 100), "## 1 Results"),
                             ("text", (100, 110, 900, 300), "Nitrate fell by a third after the upgrade."),
                             ("footer", (100, 950, 900, 965), "Confidential draft"),
                             ("page_number", (490, 970, 510, 985), "17")])
    chunks = chunk_pages([page], max_tokens=256)
    text = " ".join(c.text for c in chunks)
    assert "Nitrate fell" in text and "Results" in text
    assert "Journal of Tests" not in text and "Confidential" not in text and "17" not in text


def test_a_plain_page_keeps_the_repetition_rule_and_a_lone_header_stays():
    plain = PageText(page=1, markdown="Journal of Tests, vol. 7\n\n## 1 Results\n\nNitrate fell.\n\n17")
    chunks = chunk_pages([plain], max_tokens=256)
    assert "Journal of Tests" in chunks[0].text  # one page: nothing repeats, nothing is furniture
    assert chunks[0].bbox_source == "none" and chunks[0].blocks == ()


def test_regions_are_the_model_boxes_with_labels_and_block_types():
    page = grounded_page(1, [("section", (100, 80, 500, 100), "## 2 Method"),
                             ("text", (100, 110, 900, 300), "We sampled every station weekly."),
                             ("formula", (300, 320, 700, 360), "$$x = y + z$$")])
    (chunk,) = chunk_pages([page], max_tokens=256)
    assert chunk.bbox_source == "model"
    assert [(b.label, b.bbox) for b in chunk.blocks] == [
        ("section", (60.0, 64.0, 300.0, 80.0)), ("text", (60.0, 88.0, 540.0, 240.0)),
        ("formula", (180.0, 256.0, 420.0, 288.0))]
    assert [r.bbox for r in chunk.regions] == [b.bbox for b in chunk.blocks]
    assert chunk.block_types == ("section", "text", "formula")


def test_a_block_cut_between_two_chunks_gives_each_its_part_of_the_box():
    sentences = " ".join(f"Sentence number {i} says something about the river basin." for i in range(40))
    page = grounded_page(1, [("text", (100, 100, 900, 900), sentences)])
    chunks = chunk_pages([page], max_tokens=64)
    assert len(chunks) > 2
    boxes = [chunk.regions[0].bbox for chunk in chunks]
    x0, y0, x1, y1 = 60.0, 80.0, 540.0, 720.0
    assert all((b[0], b[2]) == (x0, x1) for b in boxes)  # full width
    assert boxes[0][1] == y0 and boxes[-1][3] == pytest.approx(y1, abs=1.0)
    for above, below in zip(boxes, boxes[1:]):  # they tile the block top to bottom
        assert above[3] <= below[1] + 0.01 and below[1] - above[3] < 2.0


def test_cut_box_is_the_share_of_characters():
    block = LayoutBlock("text", (0.0, 100.0, 50.0, 200.0), start=10, end=110)
    assert cut_box(block, 10, 110) == block.box
    assert cut_box(block, 60, 110) == (0.0, 150.0, 50.0, 200.0)
    assert cut_box(block, 0, 35) == (0.0, 100.0, 50.0, 125.0)


def test_a_continued_paragraph_joins_across_a_page_break():
    first = grounded_page(1, [("section", (100, 80, 500, 100), "## 3 Flow"),
                              ("text", (100, 800, 900, 950), "The flood wave reached the lower"),
                              ("page_number", (490, 970, 510, 985), "4")])
    second = grounded_page(2, [("header", (100, 20, 900, 40), "Annual report"),
                               ("text+", (100, 60, 900, 120), "station two days later."),
                               ("text", (100, 140, 900, 300), "A new paragraph.")])
    chunks = chunk_pages([first, second], max_tokens=256)
    (chunk,) = [c for c in chunks if "flood" in c.text]
    assert "The flood wave reached the lower station two days later." in chunk.text
    assert chunk.pages == (1, 2) and {r.page for r in chunk.regions} == {1, 2}
    assert "Annual report" not in chunk.text and "\n\n4\n\n" not in chunk.text


def test_a_caption_stays_with_its_table_before_or_after_it():
    filler = " ".join(["Prose about sediment and flow."] * 14)
    table = "<table><tr><th>Site</th><th>mg/l</th></tr><tr><td>A</td><td>3.1</td></tr></table>"
    after = grounded_page(1, [("text", (100, 50, 900, 400), filler), ("table", (100, 420, 900, 600), table),
                              ("caption", (100, 610, 900, 630), "Table 1: Nitrate by site.")])
    before = grounded_page(1, [("text", (100, 50, 900, 400), filler),
                               ("caption", (100, 410, 900, 430), "Table 1: Nitrate by site."),
                               ("table", (100, 440, 900, 600), table)])
    for page in (after, before):
        chunks = chunk_pages([page], max_tokens=110)
        (with_table,) = [c for c in chunks if "<table>" in c.text]
        assert "Table 1: Nitrate by site." in with_table.text
        assert sum("Table 1" in c.text for c in chunks) == 1


def test_formula_and_code_blocks_are_never_cut():
    code = "\n".join(f"for station in stations_{i}: measure(station, depth={i})" for i in range(60))
    page = grounded_page(1, [("code", (100, 100, 900, 900), code)])
    chunks = chunk_pages([page], max_tokens=64)
    (chunk,) = [c for c in chunks if "stations_0" in c.text]
    assert "stations_59" in chunk.text and chunk.oversize


def test_an_image_blocks_description_is_text_and_its_box_a_figure():
    page = grounded_page(1, [("image", (300, 90, 700, 500), "Map of the river basin with six stations"),
                             ("caption", (350, 510, 650, 530), "Figure 2: Stations.")])
    (chunk,) = chunk_pages([page], max_tokens=256)
    assert "Map of the river basin" in chunk.text
    assert [(f.ref, f.page) for f in chunk.figures] == [("image_1", 1)]


LABELS = ["title", "section", "text", "text+", "list", "caption", "footnote", "aside_text", "header", "footer",
          "page_number", "table", "chart", "formula", "code", "image", "sidebar_note"]
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789$<>|-", min_size=1, max_size=9)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(LABELS), st.lists(WORD, min_size=1, max_size=30),
                                   st.integers(0, 900)), min_size=1, max_size=8), min_size=1, max_size=3),
       st.sampled_from([24, 64, 512]))
# A running header between the pieces of an HTML table that a blank line split (or after a table
# never closed) was joined into the table and kept: found by this property.
@example([[("text", ["<table"], 0), ("header", ["0"], 0)]], 24)
@example([[("table", ["<table><tr><td>a"], 0), ("header", ["Page", "3"], 100),
           ("text", ["b</td></tr></table>"], 200)]], 512)
def test_no_text_is_lost_but_the_furniture_the_model_labelled(pages_spec, budget):
    """Every character of every block but header, footer and page-number blocks reaches a
    chunk, once (a table header a chunk repeats aside); furniture reaches none."""
    pages, expected, furniture = [], Counter(), []
    for number, spec in enumerate(pages_spec, 1):
        blocks = []
        for label, block_words, top in spec:
            text = " ".join(block_words)
            if label in ("title", "section"):
                text = "## " + text
            blocks.append((label, (50, top, 950, min(1000, top + 60)), text))
            if label in ("header", "footer", "page_number"):
                furniture.append(text)
            else:
                expected.update(characters(text))
            event(f"label {label.rstrip('+')}{' (continues)' if label.endswith('+') else ''}")
        pages.append(grounded_page(number, blocks))
    chunks = chunk_pages(pages, max_tokens=budget)
    got = Counter()
    for chunk in chunks:
        got.update(characters(chunk.text))
        got.subtract(characters(" ".join(chunk.carried)))
        assert chunk.bbox_source == "model"
    event(f"chunks: {'one' if len(chunks) == 1 else 'several'}")
    assert +got == expected, (got - expected, expected - got)
    # a furniture block's text (when no kept block has the same) reaches no chunk
    kept_text = "\n".join(c.text for c in chunks)
    for text in furniture:
        if len(text) > 3 and characters(text) - expected:
            assert text not in kept_text
