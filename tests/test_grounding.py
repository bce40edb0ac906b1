"""LightOnOCR-3's grounding answers read into page Markdown and blocks, as the model writes
them, and never at the cost of a character of page text."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from lightocr_ingest.ocr.grounding import (FURNITURE_LABELS, KNOWN_LABELS, has_markers,
                                           parse_grounding, to_image_pixels)

EXAMPLE = """![image](309,90,691,516) Model architecture diagram showing NaViT, Projection, Embedding, ...
![caption](400,555,591,566) Figure 1: Model architecture.
![title](113,608,263,623) ## 2.2 LightOnOCR-1
![text](112,640,882,698) The first version of LightOnOCR [13], established the core architecture ...
![page_number](491,935,505,950) 3"""


def test_the_model_cards_example_gives_five_blocks_and_clean_markdown():
    markdown, blocks = parse_grounding(EXAMPLE)
    assert [b.label for b in blocks] == ["image", "caption", "title", "text", "page_number"]
    assert [b.box for b in blocks] == [(309, 90, 691, 516), (400, 555, 591, 566), (113, 608, 263, 623),
                                       (112, 640, 882, 698), (491, 935, 505, 950)]
    assert [b.text for b in blocks] == [
        "Model architecture diagram showing NaViT, Projection, Embedding, ...", "Figure 1: Model architecture.",
        "## 2.2 LightOnOCR-1", "The first version of LightOnOCR [13], established the core architecture ...", "3"]
    assert "## 2.2 LightOnOCR-1" in markdown.split("\n")  # a heading line of its own
    assert "![" not in markdown and markdown.endswith("\n\n3")
    assert all(markdown[b.start:b.end] == b.text for b in blocks)
    assert not any(b.continues for b in blocks)


def test_the_label_sets():
    from lightocr_ingest.chunking.grounded import FIGURE_LABELS, KEEP_WHOLE_LABELS

    assert len(KNOWN_LABELS) == 15
    assert FURNITURE_LABELS | KEEP_WHOLE_LABELS | FIGURE_LABELS <= KNOWN_LABELS  # the chunker's labels are the model's


def test_spaces_around_numbers_and_commas():
    _, (block,) = parse_grounding("![text]( 112 , 640,882 ,698 ) spaced\tnumbers")
    assert block.box == (112, 640, 882, 698) and block.text == "spaced\tnumbers"


def test_text_on_the_line_after_a_marker_alone():
    markdown, (title, text) = parse_grounding("  ![title](1,2,3,4)\n# Results\n![text](1,5,3,9)\n\nWe won.\n")
    assert (title.text, text.text) == ("# Results", "We won.") and markdown == "# Results\n\nWe won."


def test_tables_and_lists_stay_whole_with_their_newlines():
    table = "<table>\n<tr><td>a</td><td>$x$</td></tr>\n\n<tr><td>b</td><td>[1]</td></tr>\n</table>"
    items = "- one\n  - one (a)\n- two"
    markdown, blocks = parse_grounding(f"![table](100,100,900,400)\n{table}\n![list](100,410,900,500) {items}\n")
    assert [b.text for b in blocks] == [table, items]
    assert markdown == f"{table}\n\n{items}"


def test_an_unknown_label_is_kept_and_a_plus_marks_a_continuation():
    _, (note, cont) = parse_grounding("![sidebar_note](1,2,3,4) aside\n![TEXT+](5,6,7,8) flows on")
    assert (note.label, note.continues) == ("sidebar_note", False)
    assert (cont.label, cont.continues, cont.text) == ("text", True, "flows on")


def test_malformed_markers_stay_in_the_text_character_for_character():
    malformed = ("![text](1,2,3) three numbers ![image](image_1.png)\n![](1,2,3,4)\n"
                 "![text](1,\n2,3,4) split over lines\nsee ![text](1,2,3,4) mid-line\r\n![text +](1,2,3,4)")
    markdown, (block,) = parse_grounding(f"![text](10,20,30,40) {malformed}")
    assert block.text == malformed and markdown == malformed


def test_text_before_the_first_marker_is_a_piece_of_its_own():
    markdown, (block,) = parse_grounding("\n Stray words\n![text](1,2,3,4) body")
    assert markdown == "Stray words\n\nbody" and (block.start, block.end) == (13, 17)


def test_an_answer_without_markers_is_itself_stripped():
    assert parse_grounding("  # Title\n\nText ![image](image_1.png)\n") == ("# Title\n\nText ![image](image_1.png)", ())
    assert not has_markers("![image](image_1.png)102,540,897,811\nx ![text](1,2,3,4)") and has_markers(EXAMPLE)


def test_empty_blocks_sit_where_the_next_piece_starts():
    markdown, blocks = parse_grounding("![image](1,2,3,4)\n![text](1,2,3,4) Hello\n![chart](1,2,3,4)\n"
                                       "![text](1,2,3,4) Bye\n![page_number](1,2,3,4)  \n")
    assert markdown == "Hello\n\nBye"
    assert [(b.start, b.end) for b in blocks] == [(0, 0), (0, 5), (7, 7), (7, 10), (10, 10)]


def test_boxes_are_ordered_clamped_and_scaled_to_the_image():
    _, (block,) = parse_grounding("![text](900.5,700,-20,1200) upside down")
    assert block.box == (0, 700, 900.5, 1000)
    assert to_image_pixels((100, 700, 900, 1000), 2048, 1024) == (204.8, 716.8, 1843.2, 1024.0)


def test_a_long_answer_of_near_markers_is_read_in_one_pass():
    near = ["![text](1,2,3", "![text]( 1 , 2 , 3 ,", "![" * 500, " " * 2000 + "![text](", "![text](" + "1" * 3000,
            "![" + "a" * 3000 + "+]", "![text](1, " + " " * 3000 + "x", "![text](1,2,3,4 ,)x"]
    lines = [near[i % len(near)] for i in range(1200)]
    lines[::100] = ["![text](1,2,3,4) kept"] * len(lines[::100])
    answer = "\n".join(lines)
    assert len(answer) > 200_000
    markdown, blocks = parse_grounding(answer)
    assert len(blocks) == 12 and all(b.text.startswith("kept\n") for b in blocks)
    assert non_space(markdown) == non_space(answer).replace("![text](1,2,3,4)", "")


# The property: answers built from pieces whose nature the test knows, so the expected Markdown
# and blocks come from the pieces, not from the parser's own regex.
LABEL = st.sampled_from(sorted(KNOWN_LABELS) + ["sidebar_note", "Text", "_x9"])
SPACE = st.sampled_from(["", "", " ", "  ", "\t"])
NUMBER = st.one_of(st.integers(-50, 1500).map(str), st.decimals(0, 1100, places=1).map(str))
MALFORMED = st.sampled_from([
    "![image](image_1.png)", "![text](1,2,3)", "![](1,2,3,4)", "![text] (1,2,3,4)", "![text](1,2,3,4 tail",
    "x ![text](1,2,3,4)", "![te xt](1,2,3,4)", "![text](1,2,3,4,5)", "![text](1;2;3;4)", "![text](.5,2,3,4)",
    "![9text](1,2,3,4)", "![text +](1,2,3,4)", "![text](1,\n2,3,4)", "![text](١,٢,٣,٤)", "!\\[text](1,2,3,4)"])
FRAGMENT = st.sampled_from(["$x^2$", "$$", "<table>", "<tr><td>1</td></tr>", "</table>", "!", "[", "(", ")",
                            "![", "](", "- item", "## Heading", " ", "\r", "\u00a0", "é", "漢字"])
TEXT = st.lists(st.one_of(st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), max_size=8),
                          FRAGMENT), max_size=5).map("".join).filter(lambda s: not s.lstrip(" \t").startswith("!["))


@st.composite
def marker(draw) -> tuple[str, tuple[str, tuple[float, ...], bool]]:
    """A well-formed marker, and the label, box and continuation it must give."""
    label, plus = draw(LABEL), draw(st.booleans())
    numbers = [draw(NUMBER) for _ in range(4)]
    spaced = [draw(SPACE) + n + draw(SPACE) for n in numbers]
    if plus:
        event("continuation")
    if label.lower() not in KNOWN_LABELS:
        event("unknown label")
    if spaced != numbers:
        event("spaces in box")
    if any(not 0 <= float(n) <= 1000 for n in numbers):
        event("box out of range")
    x0, y0, x1, y1 = (min(1000.0, max(0.0, float(n))) for n in numbers)
    text = draw(st.sampled_from(["", " ", "\t"])) + f"![{label}{'+' if plus else ''}](" + ",".join(spaced) + ")"
    return text, (label.lower(), (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), plus)


@st.composite
def answer(draw) -> tuple[str, str, list]:
    """An answer, its text without markers, and the (label, box, continues) of each marker."""
    lines, kept, expected = [], [], []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["marker+text", "marker alone", "malformed", "text", "blank"]))
        if kind.startswith("marker"):
            written, block = draw(marker())
            if not expected and non_space("".join(kept)):
                event("text before first marker")
            tail = draw(SPACE) + draw(TEXT) if kind == "marker+text" else draw(SPACE)
            if kind == "marker alone":
                event("marker alone on its line")
            lines.append(written + tail)
            kept.append(tail)
            expected.append(block)
        else:
            line = {"malformed": lambda: draw(MALFORMED) + draw(TEXT), "text": lambda: draw(TEXT),
                    "blank": lambda: draw(SPACE)}[kind]()
            if kind == "malformed":
                event("malformed marker")
            lines.append(line)
            kept.append(line)
    return "\n".join(lines), "\n".join(kept), expected


def non_space(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(answer())
def test_no_character_but_well_formed_markers_is_lost(generated):
    text, without_markers, expected = generated
    markdown, blocks = parse_grounding(text)
    assert non_space(markdown) == non_space(without_markers)  # every other character, in order
    assert [(b.label, b.box, b.continues) for b in blocks] == expected
    assert all(markdown[b.start:b.end] == b.text == b.text.strip() for b in blocks)
    assert [b.start for b in blocks] == sorted(b.start for b in blocks)
    assert has_markers(text) == bool(expected)
    if any(not b.text for b in blocks):
        event("empty block")
    if any("\n" in b.text for b in blocks):
        event("block over several lines")
