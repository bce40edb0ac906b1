"""The test server speaks LightOnOCR-3 when its name is a generation-3 checkpoint: grounding
answers to the ``grounding`` prompt, 2048 px pages and a thinking preamble for the Qwen-based
ones, top_p 1.0; generations 1 and 2 keep today's checks. Requests are posted raw (httpx), so
each shape is exactly the one under test."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import httpx
import pytest
from PIL import Image

from lightocr_ingest.pages import DocumentSource
from lightocr_ingest.testing import FakeVLLMServer
from lightocr_ingest.testing.generation3 import grounded_answer_from_words, served_generation

QWEN = "lightonai/LightOnOCR-3-0.8B"
PIXTRAL3 = "lightonai/LightOnOCR-3-1B"
GEN2 = "lightonai/LightOnOCR-2-1B"
REAL_DOCUMENTS = Path(__file__).parent / "real_documents"
# A marker as LIGHTONOCR.md describes it: label (``+`` for a continuation), four integers in
# 0-1000 with spaces allowed around them, then the block's text on the same line or the next.
MARKER = re.compile(r"^!\[([a-z_]+)(\+?)\]\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)(.*)$")
DEFAULT_LABELS = {"header", "title", "section", "text", "text+", "table", "formula", "image", "caption",
                  "footnote", "page_number"}


def png_url(width: int, height: int, shade: int = 255) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (shade, shade, shade)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def post(server: FakeVLLMServer, *, text: str | None = None, size=(1089, 1540), shade: int = 255,
         top_p: float | None = None, thinking: bool | None = None) -> httpx.Response:
    """One chat request as a client sends it: the image, perhaps one text part, the sampling of
    the server's generation, and ``enable_thinking`` when ``thinking`` is given."""
    content = [{"type": "image_url", "image_url": {"url": png_url(*size, shade)}}]
    if text is not None:
        content.append({"type": "text", "text": text})
    body = {"model": server.model, "messages": [{"role": "user", "content": content}], "max_tokens": 4096,
            "temperature": 0.2, "top_p": top_p if top_p is not None else server.expect_sampling["top_p"]}
    if thinking is not None:
        body["chat_template_kwargs"] = {"enable_thinking": thinking}
    return httpx.post(f"{server.url}/chat/completions", json=body, timeout=30)


def answer(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def markers(text: str) -> list[tuple[str, tuple[int, int, int, int], str]]:
    """Every marker line of an answer as (label with its "+", box, text on the marker's line)."""
    found = []
    for line in text.split("\n"):
        match = MARKER.match(line)
        if match:
            found.append((match[1] + match[2], tuple(int(v) for v in match.groups()[2:6]), match[7].strip()))
    return found


@pytest.mark.parametrize("model, expected", [
    ("lightonai/LightOnOCR-1B-1025", (1, 1540, False)),
    ("lightonai/LightOnOCR-2-1B", (2, 1540, False)),
    ("lightonai/LightOnOCR-2-1B-bbox", (2, 1540, False)),
    ("lightonai/LightOnOCR-3-1B", (3, 1540, False)),
    ("LightOnOCR-3-0.8B", (3, 2048, True)),
    ("lightonai/LightOnOCR-3-4B", (3, 2048, True)),
    ("ocr", (3, 2048, True)),  # a custom --served-model-name: LightOn's client assumes generation 3
    ("scanner-ocr-bbox", (2, 1540, False)),  # ...but only LightOnOCR-2's checkpoints are named -bbox
])
def test_the_served_name_gives_generation_page_size_and_family(model, expected):
    assert served_generation(model) == expected


def test_a_grounding_prompt_gets_well_formed_blocks_of_every_kind():
    with FakeVLLMServer(PIXTRAL3) as server:
        first = answer(post(server, text="grounding"))
        again = answer(post(server, text="grounding"))
        other = answer(post(server, text="grounding", shade=200))
    assert server.violations == [] and [r.mode for r in server.requests] == ["grounding"] * 3
    assert first == again and first != other  # deterministic for an image, different between images
    lines = first.split("\n")
    assert MARKER.match(lines[0]) and MARKER.match(lines[-1])
    blocks = markers(first)
    assert {label for label, _, _ in blocks} == DEFAULT_LABELS
    for _, (x0, y0, x1, y1), _ in blocks:
        assert 0 <= x0 < x1 <= 1000 and 0 <= y0 < y1 <= 1000
    # reading order: each column (left edge before or after the middle) goes top to bottom
    for column in (lambda x: x < 500, lambda x: x >= 500):
        tops = [box[1] for _, box, _ in blocks if column(box[0])]
        assert tops == sorted(tops)
    assert blocks[0][0] == "header" and blocks[-1][0] == "page_number" and blocks[-1][2].isdigit()
    assert [b[2] for b in blocks if b[0] == "header"] == ["Journal of Tests"] == \
        [b[2] for b in markers(other) if b[0] == "header"]  # the running head is every page's
    texts = dict((label, text) for label, _, text in reversed(blocks))  # each label's first block
    assert texts["title"].startswith("# ") and texts["section"].startswith("## ")
    assert re.search(r"\$\$.+\$\$", first) and first.count("<tr>") >= 3
    assert any(not text for _, _, text in blocks)  # some blocks' text starts on the next line
    assert re.search(r"\(\s+\d+|\d+\s+,", first)  # and some boxes have spaces around numbers and commas
    labels = [label for label, _, _ in blocks]
    assert labels[labels.index("text") + 1] == "text+" and labels[labels.index("image") + 1] == "caption"


def test_a_plain_request_to_generation_3_gets_markdown_without_markers():
    with FakeVLLMServer(PIXTRAL3) as server:
        text = answer(post(server))
    assert server.violations == [] and server.requests[0].mode == "plain"
    assert markers(text) == [] and text.startswith("Journal of Tests") and "<table>" in text


@pytest.mark.parametrize("prompt", [None, "grounding"])
def test_a_qwen_checkpoint_thinks_unless_told_not_to(prompt):
    with FakeVLLMServer(QWEN) as server:
        unasked = answer(post(server, text=prompt))
        off = answer(post(server, text=prompt, thinking=False))
        on = answer(post(server, text=prompt, thinking=True))
    assert server.violations == []
    assert [r.thinking_disabled for r in server.requests] == [False, True, False]
    for thought in (unasked, on):
        assert re.match(r"<think>\nThe user wants .+\n</think>\n\n", thought, re.S)
        assert thought.split("</think>\n\n", 1)[1] == off  # the normal answer follows
    assert "<think>" not in off
    with FakeVLLMServer(QWEN, thinking_preamble=False) as server:  # served with the flag as its default
        assert "<think>" not in answer(post(server, text=prompt))


def test_lightonocr_3_1b_never_thinks():
    with FakeVLLMServer(PIXTRAL3) as server:
        answers = [answer(post(server, text=prompt)) for prompt in (None, "grounding")]
    assert server.violations == [] and not any("<think>" in a for a in answers)


@pytest.mark.parametrize("model, text", [
    (GEN2, "grounding"),  # generations 1 and 2 were never trained on a prompt: they repeat it
    ("lightonai/LightOnOCR-1B-1025", "grounding"),
    (QWEN, "Transcribe this page."),  # generation 3 knows one prompt only
    (PIXTRAL3, "Grounding"),
])
def test_any_other_text_part_is_refused(model, text):
    with FakeVLLMServer(model) as server:
        response = post(server, text=text)
    assert response.status_code == 400 and "no text" in response.json()["error"]["message"]
    assert len(server.violations) == 1


@pytest.mark.parametrize("model, accepted", [(QWEN, True), ("ocr", True), (PIXTRAL3, False), (GEN2, False)])
def test_2048_px_pages_are_for_the_qwen_checkpoints_only(model, accepted):
    with FakeVLLMServer(model) as server:
        response = post(server, size=(1448, 2048), thinking=False if server.generation == 3 else None)
    assert (response.status_code == 200) is accepted
    if not accepted:
        assert "exceeds the 1540 px longest side" in response.json()["error"]["message"]
    with FakeVLLMServer(model, longest_side=1000) as server:  # an explicit side overrides the name's
        assert "exceeds the 1000 px" in post(server).json()["error"]["message"]


@pytest.mark.parametrize("model, wrong_top_p", [(QWEN, 0.9), (PIXTRAL3, 0.9), (GEN2, 1.0)])
def test_each_generation_expects_its_own_top_p(model, wrong_top_p):
    with FakeVLLMServer(model) as server:
        assert post(server).status_code == 200
        refused = post(server, top_p=wrong_top_p)
    assert refused.status_code == 400 and "top_p" in refused.json()["error"]["message"]


@pytest.mark.parametrize("name, page", [("paper-two-column-1.pdf", 1), ("manual-tables.pdf", 1)])
def test_blocks_from_a_real_text_layer_hold_the_words_they_list(name, page):
    with DocumentSource(REAL_DOCUMENTS / name, text_words=True) as document:
        (image,) = list(document.iter_pages(str(page)))
    words = image.text_words
    tokens = words.text.split()
    blocks = markers(grounded_answer_from_words(words, image))
    assert sum(len(text.split()) for _, _, text in blocks) == len(tokens)  # every word, once, in order
    at = 0
    for _, (x0, y0, x1, y1), text in blocks:
        count = len(text.split())
        assert text.split() == tokens[at:at + count]
        # 0-1000 of the image back to page points (the image is the page scaled)
        sx, sy = image.page_width / 1000, image.page_height / 1000
        for wx0, wy0, wx1, wy1 in words.boxes[at:at + count]:
            assert x0 * sx - 0.01 <= wx0 and wx1 <= x1 * sx + 0.01
            assert y0 * sy - 0.01 <= wy0 and wy1 <= y1 * sy + 0.01
        at += count
    assert len(blocks) > 5 and all(0 <= v <= 1000 for _, box, _ in blocks for v in box)
    if name.startswith("paper-two-column"):  # both columns hold several paragraphs each
        lefts = [box for label, box, _ in blocks if label == "text" and box[2] < 500]
        rights = [box for label, box, _ in blocks if label == "text" and box[0] > 500]
        assert len(lefts) >= 3 and len(rights) >= 3
    else:  # the manual's page number, alone at the bottom
        assert blocks[-1][0] == "page_number" and blocks[-1][2] == "25" and blocks[-1][1][1] >= 900
