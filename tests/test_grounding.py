"""LightOnOCR-3's grounding answers read into page Markdown and blocks, as the model writes
them, and never at the cost of a character of page text."""

from __future__ import annotations

import re

from hypothesis import event, given, settings
from hypothesis import strategies as st

from lightocr_ingest.ocr.grounding import MARKER, has_markers, parse_grounding, to_image_pixels

EXAMPLE = """![image](309,90,691,516) Model architecture diagram showing NaViT, Projection, Embedding
![caption](400,555,591,566) Figure 1: Model architecture.
![title](113,608,263,623) ## 2.2 LightOnOCR-1
![text](112,640,882,698) The first version of LightOnOCR [13], established the core architecture.
![page_number](491,935,505,950) 3"""


def test_the_model_cards_example_gives_five_blocks_and_clean_markdown():
    markdown, blocks = parse_grounding(EXAMPLE)
    assert [b.label for b in blocks] == ["image", "caption", "title", "text", "page_number"]
    assert blocks[2].box == (113, 608, 263, 623) and blocks[2].text == "## 2.2 LightOnOCR-1"
    assert "\n## 2.2 LightOnOCR-1\n" in markdown and "![" not in markdown
    assert all(markdown[b.start:b.end] == b.text for b in blocks)
    assert not any(b.continues for b in blocks)


def test_what_the_model_really_writes():
    answer = ("Stray words before any marker\n"
              "![text]( 112 , 640,882 ,698 ) spaced numbers\n"
              "![table](100,100,900,400)\n<table>\n<tr><td>a</td></tr>\n<tr><td>b</td></tr>\n</table>\n"
              "![list](100,410,900,500)\n- one\n- two\n"
              "![sidebar_note](1,2,3,4) a label never seen\n"
              "![TEXT+](100,510,900,600) continues the paragraph\n"
              "![text](1,2,3) three numbers is text ![image](image_1.png) and so is this\n"
              "  ![formula](10,20,30,40) $$x$$")
    markdown, blocks = parse_grounding(answer)
    assert markdown.startswith("Stray words before any marker\n\n")
    assert [b.label for b in blocks] == ["text", "table", "list", "sidebar_note", "text", "formula"]
    assert blocks[0].box == (112, 640, 882, 698) and blocks[0].text == "spaced numbers"
    assert blocks[1].text == "<table>\n<tr><td>a</td></tr>\n<tr><td>b</td></tr>\n</table>"  # whole, newlines kept
    assert blocks[2].text == "- one\n- two"
    assert blocks[4].continues and blocks[4].label == "text"
    assert "![text](1,2,3) three numbers is text ![image](image_1.png) and so is this" in blocks[4].text
    assert blocks[5].text == "$$x$$"


def test_an_answer_without_markers_is_plain_markdown():
    assert parse_grounding("  # Title\n\nText\n") == ("# Title\n\nText", ())
    assert not has_markers("![image](image_1.png)102,540,897,811") and has_markers(EXAMPLE)


def test_boxes_are_ordered_clamped_and_scaled_to_the_image():
    _, (block,) = parse_grounding("![text](900,700,100,1200) upside down")
    assert block.box == (100, 700, 900, 1000)
    assert to_image_pixels(block.box, 2048, 1024) == (204.8, 716.8, 1843.2, 1024.0)


def test_a_long_answer_of_near_markers_is_read_in_one_pass():
    answer = "![text](1,2,3" * 20000 + "\n![text](1,2,3,4) end"
    markdown, blocks = parse_grounding(answer)
    assert len(blocks) == 1 and markdown.endswith("end")


LABEL = st.sampled_from(["title", "section", "text", "table", "page_number", "image", "sidebar_note", "Text"])
SPACE = st.sampled_from(["", " ", "  "])
NUMBER = st.one_of(st.integers(0, 1200).map(str), st.floats(0, 1000, allow_nan=False).map(lambda f: f"{f:.1f}"))


@st.composite
def marker(draw) -> str:
    label, plus = draw(LABEL), draw(st.sampled_from(["", "+"]))
    numbers = [draw(SPACE) + draw(NUMBER) + draw(SPACE) for _ in range(4)]
    if "+" in plus:
        event("continuation")
    if label not in ("title", "section", "text", "table", "page_number", "image"):
        event("label not in the model card's list")
    if any(n != n.strip() for n in numbers):
        event("spaces in the box")
    return draw(st.sampled_from(["", " "])) + f"![{label}{plus}](" + ",".join(numbers) + ")"


MALFORMED = st.sampled_from(["![image](image_1.png)", "![text](1,2,3)", "![](1,2,3,4)", "![text] (1,2,3,4)",
                             "![text](1,2,3,4", "x ![text](1,2,3,4)", "![te xt](1,2,3,4)"])
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n", exclude_categories=("Cs",)),
               max_size=30)


@st.composite
def answer(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["marker", "marker+text", "marker alone", "malformed", "text", "blank"]))
        if kind == "marker+text":
            lines.append(draw(marker()) + " " + draw(TEXT))
        elif kind in ("marker", "marker alone"):
            lines.append(draw(marker()))
        elif kind == "malformed":
            lines.append(draw(MALFORMED) + draw(TEXT))
            event("malformed marker")
        elif kind == "text":
            lines.append(draw(TEXT))
        else:
            lines.append("")
    return "\n".join(lines)


def non_space(text: str) -> str:
    return "".join(c for c in text if not c.isspace())


@settings(max_examples=300, deadline=None)
@given(answer())
def test_no_character_but_well_formed_markers_is_lost(text):
    markdown, blocks = parse_grounding(text)
    markers = list(MARKER.finditer(text))
    assert len(blocks) == len(markers)
    assert non_space(markdown) == non_space(MARKER.sub("", text))  # every other character, in order
    assert all(markdown[b.start:b.end] == b.text for b in blocks)
    assert all(0 <= v <= 1000 for b in blocks for v in b.box)
    assert "![" not in markdown or re.search(r"!\[", MARKER.sub("", text))
    if markers and text[:markers[0].start()].strip():
        event("text before the first marker")
    if any(not b.text for b in blocks):
        event("empty block")
    if re.search(r"\)[ \t]*\n", text) and markers:
        event("text on the line after the marker")
