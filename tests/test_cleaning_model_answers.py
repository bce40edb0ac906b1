"""OCR post-processing: escaped math delimiters, figure boxes, model profiles."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightocr_ingest.ocr import clean_markdown, extract_figures, fix_escaped_dollars, profile_for
from lightocr_ingest.ocr.postprocess import looks_like_math, strip_thinking
from lightocr_ingest.ocr.profiles import resolve_mode


@pytest.mark.parametrize("before, after", [
    (r"We set \$x\$ to zero.", "We set $x$ to zero."),
    (r"The loss \$\mathcal{L}(\theta)\$ falls.", r"The loss $\mathcal{L}(\theta)$ falls."),
    (r"so \$E = mc^2\$ holds", "so $E = mc^2$ holds"),
    (r"index \$x_{i}\$ and \$y_i\$", "index $x_{i}$ and $y_i$"),
    (r"mixed $a^2\$ end", "mixed $a^2$ end"),
    ("\\$\\$\n\\int_0^1 f(x)\\,dx\n\\$\\$", "$$\n\\int_0^1 f(x)\\,dx\n$$"),
])
def test_escaped_math_is_repaired(before, after):
    assert fix_escaped_dollars(before) == after


@pytest.mark.parametrize("text", [
    r"It costs \$5 and \$10 with tax.",
    r"Prices: \$1,200\$ per unit",
    r"Between \$5 and 10\$ dollars",
    r"Total \$20, i.e. twice \$10 spent",
    "Already fine: $x^2$ and $$y$$",
    "```\necho \\$HOME \\$PATH\n```",
    r"a lone \$ sign",
])
def test_prices_prose_and_code_are_left_alone(text):
    assert fix_escaped_dollars(text) == text


def test_repairs_next_to_a_price_on_one_line():
    assert fix_escaped_dollars(r"Pay \$20 now, then set \$x\$ to 1.") == r"Pay \$20 now, then set $x$ to 1."


@given(st.text(alphabet=st.characters(blacklist_characters="$\\"), max_size=200))
def test_text_without_dollars_is_untouched(text):
    assert fix_escaped_dollars(text) == text


@pytest.mark.parametrize("body, expected", [
    ("x", True), ("x_1", True), (r"\alpha", True), ("a + b", True), ("f(x)", True),
    ("5", False), ("1,200", False), ("5 and 10", False), (" x", False), ("", False),
    ("hello world", False), ("{x", False), (r"\text{net income} = r", True),
])
def test_looks_like_math(body, expected):
    assert looks_like_math(body) is expected


def test_figure_boxes_are_parsed_scaled_and_stripped():
    markdown = "Intro\n\n![image](image_1.png)102,540,897,811\n\n![chart](image_2.png) 900 , 100, 100 ,50\n\nEnd"
    clean, figures = extract_figures(markdown, image_width=1000, image_height=2000, figure_boxes=True)
    assert clean == "Intro\n\n![image](image_1.png)\n\n![chart](image_2.png)\n\nEnd"
    assert [f.ref for f in figures] == ["image_1.png", "image_2.png"]
    assert figures[0].box == (102.0, 1080.0, 897.0, 1622.0)
    assert figures[1].box == (100.0, 100.0, 900.0, 200.0)  # reordered corners


def test_figure_without_box_and_out_of_range_box():
    clean, figures = extract_figures("![image](image_1.png)\n![image](image_2.png)0,0,1200,1000",
                                     image_width=500, image_height=500, figure_boxes=True)
    assert clean == "![image](image_1.png)\n![image](image_2.png)"
    assert figures[0].box is None
    assert figures[1].box == (0.0, 0.0, 500.0, 500.0)  # clamped to the page


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000),
       st.integers(1, 3000), st.integers(1, 3000))
def test_figure_boxes_always_lie_inside_the_image(x0, y0, x1, y1, width, height):
    _, (figure,) = extract_figures(f"![image](image_1.png){x0},{y0},{x1},{y1}", width, height,
                                   figure_boxes=True)
    bx0, by0, bx1, by1 = figure.box
    assert 0 <= bx0 <= bx1 <= width and 0 <= by0 <= by1 <= height


@pytest.mark.parametrize("name, family, longest_side, top_p, boxes, grounding, thinking_off, assumed", [
    ("lightonai/LightOnOCR-1B-1025", "lightonocr-1", 1540, 0.9, False, False, False, False),
    ("lightonai/LightOnOCR-2-1B", "lightonocr-2", 1540, 0.9, False, False, False, False),
    ("lightonai/LightOnOCR-2-1B-base", "lightonocr-2", 1540, 0.9, False, False, False, False),
    ("lightonai/LightOnOCR-2-1B-bbox", "lightonocr-2-bbox", 1540, 0.9, True, False, False, False),
    ("lightonai/LightOnOCR-2-1B-bbox-soup", "lightonocr-2-bbox", 1540, 0.9, True, False, False, False),
    ("lightonai/LightOnOCR-3-1B", "lightonocr-3-1b", 1540, 1.0, False, True, True, False),
    ("lightonai/LightOnOCR-3-0.8B", "lightonocr-3-0.8b", 2048, 1.0, False, True, True, False),
    ("lightonai/LightOnOCR-3-4B", "lightonocr-3-4b", 2048, 1.0, False, True, True, False),
    # a custom --served-model-name: generation 3 at 2048 px as LightOn's client takes it, said once...
    ("my-ocr", "lightonocr-3-4b", 2048, 1.0, False, True, True, True),
    ("my-OCR-BBOX", "lightonocr-2-bbox", 1540, 0.9, True, False, False, True),  # ...unless it says bbox
])
def test_model_profiles_follow_the_served_name(name, family, longest_side, top_p, boxes, grounding, thinking_off,
                                               assumed):
    profile = profile_for(name)
    assert (profile.family, profile.longest_side, profile.top_p) == (family, longest_side, top_p)
    assert (profile.figure_boxes, profile.grounding, profile.thinking_off, profile.assumed) == \
        (boxes, grounding, thinking_off, assumed)
    assert (profile.temperature, profile.max_tokens) == (0.2, 4096)
    # generations 1 and 2 are sent exactly what they were; generation 3 is told not to think
    assert profile.chat_template_kwargs() == ({"chat_template_kwargs": {"enable_thinking": False}}
                                              if thinking_off else {})


def test_a_named_family_overrides_the_name():
    profile = profile_for("my-ocr", "lightonocr-2")
    assert (profile.family, profile.longest_side, profile.grounding, profile.assumed) == \
        ("lightonocr-2", 1540, False, False)
    assert profile_for("ocr", "lightonocr-3-1b").longest_side == 1540


def test_grounding_is_refused_for_a_model_without_it_with_the_models_that_have_it():
    with pytest.raises(ValueError, match="LightOnOCR-3"):
        resolve_mode(profile_for("lightonai/LightOnOCR-2-1B"), "grounding")
    assert resolve_mode(profile_for("lightonai/LightOnOCR-2-1B"), "auto") == "plain"
    assert resolve_mode(profile_for("lightonai/LightOnOCR-3-1B"), "auto") == "grounding"
    assert resolve_mode(profile_for("lightonai/LightOnOCR-3-1B"), "plain") == "plain"


@pytest.mark.parametrize("answer, kept, removed", [
    ("<think>\nThe user wants the page.\n</think>\n\n# Title\n\nText", "# Title\n\nText", True),
    ("  <think>a</think>Text", "Text", True),
    ("<think>\nthinking until max_tokens", "", True),  # never closed: nothing of the page came
    ("# Chat templates\n\nA preamble ends with </think> and", None, False),  # page text stays
    ("Text <think>not at the start</think>", None, False),
])
def test_a_thinking_preamble_is_cut_only_at_the_start(answer, kept, removed):
    assert strip_thinking(answer) == ((answer if kept is None else kept), removed)


# One answer, as a -bbox checkpoint writes it. From any other model, which writes no boxes,
# the digits after the reference can only be page text (figures printed under the image).
ANSWER = "Sales by region\n\n![image](image_1.png)102,540,897,811\n\nEnd"


@pytest.mark.parametrize("name", ["lightonai/LightOnOCR-2-1B-bbox", "lightonai/LightOnOCR-2-1B-bbox-soup",
                                  "ocr-bbox"])
def test_a_bbox_model_gets_its_figure_boxes(name):
    clean, (figure,) = clean_markdown(ANSWER, 1000, 2000, figure_boxes=profile_for(name).figure_boxes)
    assert clean == "Sales by region\n\n![image](image_1.png)\n\nEnd"
    assert figure.ref == "image_1.png" and figure.box == (102.0, 1080.0, 897.0, 1622.0)


@pytest.mark.parametrize("name", ["lightonai/LightOnOCR-2-1B", "lightonai/LightOnOCR-1B-1025", "my-ocr"])
def test_other_models_keep_digits_after_a_reference_as_text(name):
    clean, (figure,) = clean_markdown(ANSWER, 1000, 2000, figure_boxes=profile_for(name).figure_boxes)
    assert clean == ANSWER
    assert figure.ref == "image_1.png" and figure.box is None


def test_without_boxes_every_reference_is_still_a_figure():
    markdown = "![image](image_1.png) 12, 13, 14, 15 apples\n![chart](image_2.png)\n![](x.png)3"
    clean, figures = extract_figures(markdown, 100, 100, figure_boxes=False)
    assert clean == markdown
    assert [(f.ref, f.box) for f in figures] == [("image_1.png", None), ("image_2.png", None), ("x.png", None)]
