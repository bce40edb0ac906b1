"""Provenance: each chunk's regions cover its own text on the page (real PDFs), and nothing else.

The real documents are in tests/real_documents (two-column papers, a one-column paper, a
manual; SOURCES.md says where each comes from). Quality is judged by the PDF text layer's own
word boxes: coverage (share of a chunk's words whose centre is inside its regions) and
leakage (other chunks' words inside them, per own word).
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightocr_ingest.chunking import PageText, chunk_pages, region_quality
from lightocr_ingest.pages.alignment import align, markdown_tokens
from lightocr_ingest.ocr.cpu import recognise_lines
from lightocr_ingest.ocr.layout import lines_to_paragraphs, paragraphs_to_markdown
from lightocr_ingest.ocr.postprocess import text_layer_markdown
from lightocr_ingest.pages import DocumentSource
from lightocr_ingest.retrieval import Outline, page_with_boxes
from lightocr_ingest.records import PageLayout, PageWords, Region

REAL = Path(__file__).resolve().parent / "real_documents"
# (file, page): two-column pages of three papers, a one-column paper, a manual with tables,
# and a landscape table page whose PDF page is rotated.
REAL_PAGES = [("paper-two-column-1.pdf", 2), ("paper-two-column-2.pdf", 3), ("paper-two-column-3.pdf", 2),
              ("paper-one-column-tables.pdf", 2), ("manual-tables.pdf", 1), ("paper-two-column-4.pdf", 3)]


def rendered(name: str, page: int):
    with DocumentSource(REAL / name, text_words=True) as source:
        return source.render_page(page)


def judged(page, markdown: str, layout: PageLayout, max_tokens: int = 128):
    chunks = chunk_pages([PageText(page.page, markdown, layout)], max_tokens=max_tokens, drop_page_furniture=False)
    on_page = [(c.index, "\n".join(markdown[s:e] for _, s, e in c.spans), list(c.regions)) for c in chunks]
    return chunks, region_quality(page.page, on_page, page.text_words)


def text_layer_chunks(page, max_tokens: int = 128):
    """The page's own text as its Markdown, chunked and placed by its text layer."""
    markdown = text_layer_markdown(page.text_layer)
    return markdown, chunk_pages([PageText(page.page, markdown, PageLayout(text_layer=page.text_words))],
                                 max_tokens=max_tokens, drop_page_furniture=False)


@pytest.fixture(scope="module")
def cpu_read():
    """Each real page read by the embedded CPU engine: its lines and its Markdown (a stand-in for
    the model's: other words, another reading order, OCR errors)."""
    out = {}
    for name, number in REAL_PAGES[:4]:
        page = rendered(name, number)
        lines = recognise_lines(page.png)
        out[(name, number)] = (page, lines, paragraphs_to_markdown(lines_to_paragraphs(lines)))
    return out


def test_real_pages_have_text_layer_words_where_the_ink_is():
    """Word boxes land on printed words, including on a page whose PDF page is rotated 90 degrees."""
    for name, number in REAL_PAGES:
        page = rendered(name, number)
        words = page.text_words
        assert words is not None and len(words) == len(words.text.split()) > 50
        grey = np.asarray(Image.open(__import__("io").BytesIO(page.png)).convert("L"))
        sx, sy = page.image_width / page.page_width, page.image_height / page.page_height
        inked = 0
        for x0, y0, x1, y1 in words.boxes:
            assert 0 <= x0 < x1 <= page.page_width + 1 and 0 <= y0 < y1 <= page.page_height + 1
            cell = grey[int(y0 * sy):int(np.ceil(y1 * sy)), int(x0 * sx):int(np.ceil(x1 * sx))]
            inked += cell.size > 0 and cell.min() < 128
        assert inked / len(words.boxes) > 0.97, f"{name} p.{number}: words off the ink"


@pytest.mark.parametrize("name, number", REAL_PAGES)
def test_text_layer_regions_cover_each_chunk_and_little_else(name, number):
    page = rendered(name, number)
    markdown = text_layer_markdown(page.text_layer)
    chunks, quality = judged(page, markdown, PageLayout(text_layer=page.text_words))
    assert {c.bbox_source for c in chunks} == {"text_layer"}
    assert quality  # (the rotated table page repeats "Header Unit Data": few words occur once)
    assert statistics.median(q.coverage for q in quality) >= 0.9
    assert statistics.median(q.leakage for q in quality) <= 0.1


@pytest.mark.slow
def test_model_like_markdown_is_placed_by_the_text_layer_and_by_the_cpu_engine_lines(cpu_read):
    """Markdown from another reader (other reading order, OCR errors, dehyphenated words) aligns
    with the text layer, and with the engine's own lines when there is no text layer."""
    by_way = {"text_layer": [], "ocr_lines": []}
    for page, lines, markdown in cpu_read.values():
        ocr_lines = page.lines_in_points(tuple(lines), "ocr_lines")
        for way, layout in (("text_layer", PageLayout(text_layer=page.text_words)),
                            ("ocr_lines", PageLayout(ocr_lines=ocr_lines))):
            chunks, quality = judged(page, markdown, layout)
            assert {c.bbox_source for c in chunks if c.regions} == {way}
            by_way[way] += quality
    for way, quality in by_way.items():
        assert statistics.median(q.coverage for q in quality) >= 0.9, way
        assert statistics.median(q.leakage for q in quality) <= 0.1, way


@pytest.mark.slow  # shares the CPU engine reading of every real page (30 s)
def test_located_lines_place_a_scans_markdown(cpu_read):
    """``locate``: the model's text (here the text layer's, as if a model had read the page) placed
    by lines the embedded detector found on the page image."""
    quality = []
    for page, lines, _ in cpu_read.values():
        located = page.lines_in_points(tuple(lines), "located")
        chunks, page_quality = judged(page, text_layer_markdown(page.text_layer), PageLayout(ocr_lines=located))
        assert {c.bbox_source for c in chunks if c.regions} == {"located"}
        quality += page_quality
    assert statistics.median(q.coverage for q in quality) >= 0.8
    assert statistics.median(q.leakage for q in quality) <= 0.2


def test_a_chunk_running_down_one_column_and_up_the_next_gets_two_regions():
    page = rendered("paper-two-column-1.pdf", 2)
    markdown = text_layer_markdown(page.text_layer)
    (chunk,) = chunk_pages([PageText(2, markdown, PageLayout(text_layer=page.text_words))], max_tokens=8192,
                           drop_page_furniture=False)
    lefts = sorted(r.bbox[0] for r in chunk.regions)
    assert len(chunk.regions) >= 2 and lefts[0] < page.page_width / 2 < lefts[-1]
    for region in chunk.regions:  # none spans the gutter: each stays in its column (or is the running head)
        x0, y0, x1, y1 = region.bbox
        assert x1 - x0 < 0.6 * page.page_width or y1 - y0 < 15


def test_a_text_layer_that_does_not_match_the_page_is_not_used():
    """A scan with a bad OCR layer: its words do not match the page's Markdown, so regions come
    from the engine's lines when there are some, else there are none, and bbox_source says so."""
    page = rendered("paper-two-column-1.pdf", 2)
    other = rendered("paper-two-column-2.pdf", 3)
    markdown = text_layer_markdown(page.text_layer)
    assert not align(markdown, other.text_words).trusted and align(markdown, page.text_words).trusted
    chunks = chunk_pages([PageText(2, markdown, PageLayout(text_layer=other.text_words))], drop_page_furniture=False)
    assert all(c.regions == () and c.bbox_source == "none" and c.bbox is None for c in chunks)
    lines = PageWords.from_lines("ocr_lines", [(line, (10.0, 10.0 + 12 * i, 500.0, 20.0 + 12 * i))
                                               for i, line in enumerate(page.text_layer.splitlines())])
    chunks = chunk_pages([PageText(2, markdown, PageLayout(text_layer=other.text_words, ocr_lines=lines))])
    assert {c.bbox_source for c in chunks} == {"ocr_lines"}


def test_hyphenated_line_ends_and_ligatures_still_align():
    """PDFium writes a line-end hyphen as U+FFFE; the model writes the whole word."""
    words = PageWords.from_lines("text_layer", [("The recog-", (0, 0, 100, 10)), ("nition of ﬁne print", (0, 12, 100, 22))])
    alignment = align("The recognition of fine print", words)
    assert alignment.matched_share == 1.0
    halves = alignment.regions(1, [(4, 15)])  # "recognition": the end of one line, the start of the next
    assert len(halves) == 2 and {r.bbox[1] for r in halves} == {0, 12} and {r.bbox[3] for r in halves} == {10, 22}


def test_markup_is_not_taken_for_words():
    tokens, _ = markdown_tokens('<table><tr><td colspan="2">Total</td></tr></table> $\\mathcal{L}$ '
                                '![image](image_1.png) [link](http://x.org/page)')
    assert tokens == ["total", "l", "link"]


def test_the_quality_measure_can_fail():
    """Swapping two chunks' regions must show as lost coverage and high leakage."""
    page = rendered("paper-two-column-1.pdf", 2)
    markdown, chunks = text_layer_chunks(page)
    on_page = [(c.index, "\n".join(markdown[s:e] for _, s, e in c.spans), list(c.regions)) for c in chunks]
    swapped = [(i, text, on_page[(k + 3) % len(on_page)][2]) for k, (i, text, _) in enumerate(on_page)]
    good = region_quality(2, on_page, page.text_words)
    bad = region_quality(2, swapped, page.text_words)
    assert statistics.median(q.coverage for q in good) >= 0.9
    assert statistics.median(q.coverage for q in bad) < 0.2 and statistics.median(q.leakage for q in bad) > 0.5


def test_an_overlay_draws_each_region_around_its_chunks_ink(tmp_path):
    """What the notebook shows: the region's outline on the rendered page, with the chunk's
    printed text inside it and the page's paper outside its edge."""
    page = rendered("paper-two-column-1.pdf", 2)
    markdown, chunks = text_layer_chunks(page)
    chunk = max(chunks, key=lambda c: len(c.text))
    (region,) = [r for r in chunk.regions if r.page == 2][:1]
    plain = np.asarray(page_with_boxes(REAL / "paper-two-column-1.pdf", 2, []).convert("RGB")).astype(int)
    drawn = np.asarray(page_with_boxes(REAL / "paper-two-column-1.pdf", 2, [Outline(region.bbox, "blue")]).convert("RGB"))
    scale = plain.shape[1] / page.page_width
    x0, y0, x1, y1 = (int(round(v * scale)) for v in region.bbox)
    edge = drawn[y0, x0 + 5:x1 - 5]
    assert (edge[:, 2] > 200).mean() > 0.9 and (edge[:, 0] < 60).mean() > 0.9  # the blue outline is drawn there
    inside = plain[y0 + 3:y1 - 3, x0 + 3:x1 - 3].mean(axis=2)
    assert (inside < 100).mean() > 0.05  # the chunk's text is printed inside
    changed = np.abs(drawn.astype(int) - plain).sum(axis=2) > 0
    assert not changed[:max(0, y0 - 20)].any() and not changed[y1 + 20:].any()  # nothing drawn elsewhere


def test_regions_are_in_page_points_with_a_top_left_origin():
    region = Region(3, (10.04, 20.06, 30.0, 40.0))
    assert region.to_payload() == {"page": 3, "bbox": [10.0, 20.1, 30.0, 40.0]}


# --- end to end: what a user sees ---------------------------------------------------------------
def answering_with_text_layers(*names):
    """A vLLM-protocol server that answers each page of these files with Markdown of its own text
    (as a model would transcribe it), so that regions can be checked against the page."""
    import hashlib

    from lightocr_ingest.pages import iter_file_pages
    from lightocr_ingest.testing import FakeVLLMServer

    answers = {}
    for name in names:
        for page in iter_file_pages(REAL / name):
            answers[hashlib.sha256(page.png).hexdigest()] = text_layer_markdown(page.text_layer)
    return FakeVLLMServer(responder=lambda request: answers[request.image_sha256]), answers


def test_query_json_returns_each_hits_regions(tmp_path, capsys):
    import json

    from lightocr_ingest.cli import main

    server, _ = answering_with_text_layers("paper-two-column-1.pdf")
    with server:
        common = ["--qdrant-path", str(tmp_path / "q"), "--collection", "paper"]
        assert main(["ingest", str(REAL / "paper-two-column-1.pdf"), "--ocr-url", server.url, "--ocr-engine", "vllm",
                     *common]) == 0
        err = capsys.readouterr().err
        assert re.search(r"(\d+) chunks \(placed by text_layer \1\)", " ".join(err.split()))
        assert main(["query", "how are appendices numbered?", "-k", "3", "--json", *common]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(hits) == 3
    for hit in hits:
        assert hit["bbox_source"] == "text_layer" and hit["regions"]
        assert {r["page"] for r in hit["regions"]} <= set(hit["pages"])
        first = [r["bbox"] for r in hit["regions"] if r["page"] == hit["page"]]
        assert hit["bbox"] == [min(b[0] for b in first), min(b[1] for b in first),
                               max(b[2] for b in first), max(b[3] for b in first)]


def test_locate_places_a_scan_read_by_the_model(tmp_path):
    """``regions: locate``: a scan has no text layer, the model gives no boxes, so the embedded
    detector finds the lines and the model's Markdown is placed on them."""
    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.chunking import MarkdownBlockNodeParser

    page = rendered("paper-one-column-tables.pdf", 2)
    scan = tmp_path / "scan.png"
    scan.write_bytes(page.png)
    with DocumentSource(scan) as source:
        scan_page = source.render_page(1)
    import hashlib

    from lightocr_ingest.testing import FakeVLLMServer

    answer = text_layer_markdown(page.text_layer)
    with FakeVLLMServer(responder=lambda request: answer) as server:
        auto = LightOnOCRReader(ocr_url=server.url, ocr_engine="vllm").load_data(scan)
        reader = LightOnOCRReader(ocr_url=server.url, ocr_engine="vllm", regions="locate", cache_dir=str(tmp_path / "c"))
        located = reader.load_data(scan)
        again = reader.load_data(scan)  # the located lines come from the OCR cache: not located again
    assert again[0].layout.locate_s == 0 and again[0].layout.ocr_lines.text == located[0].layout.ocr_lines.text
    assert hashlib.sha256(scan_page.png).hexdigest() == server.requests[0].image_sha256
    parser = MarkdownBlockNodeParser(chunk_size=128)
    assert {n.metadata["bbox_source"] for n in parser.get_nodes_from_documents(auto)} == {"none"}
    nodes = parser.get_nodes_from_documents(located)
    assert {n.metadata["bbox_source"] for n in nodes} == {"located"}
    assert located[0].layout.locate_s > 0
    # Judged against the original PDF's words, scaled to the scan's own page size (pixels at 72 dpi).
    sx, sy = scan_page.page_width / page.page_width, scan_page.page_height / page.page_height
    truth = PageWords("text_layer", page.text_words.text, page.text_words.boxes * [sx, sy, sx, sy])
    on_page = [(n.metadata["chunk_index"], n.text, [Region(r["page"], tuple(r["bbox"])) for r in n.metadata["regions"]])
               for n in nodes]
    quality = region_quality(1, on_page, truth)
    assert statistics.median(q.coverage for q in quality) >= 0.8
    assert statistics.median(q.leakage for q in quality) <= 0.2


def test_an_html_table_and_latex_align_with_the_words_the_page_prints():
    """The model writes a table as HTML and a formula as LaTeX; the text layer has the cells'
    words row by row and the formula's symbols. The table's chunk covers the table's rows."""
    rows = [("Model", "Score", "Pages"), ("LightOnOCR", "83.2", "5.71"), ("olmOCR", "78.5", "3.36")]
    lines = [("Results of the benchmark runs", (50, 50, 300, 62))]
    lines += [(" ".join(row), (50, 80 + 14 * i, 300, 92 + 14 * i)) for i, row in enumerate(rows)]
    lines += [("The loss L(θ) = − Σ log p(y|x) is minimised.", (50, 140, 300, 152))]
    words = PageWords.from_lines("text_layer", lines)
    table = "<table><tr>" + "".join(f"<th>{c}</th>" for c in rows[0]) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows[1:]) + "</table>"
    markdown = f"# Results of the benchmark runs\n\n{table}\n\nThe loss $\\mathcal{{L}}(\\theta)$ is minimised."
    chunks = chunk_pages([PageText(1, markdown, PageLayout(text_layer=words))], max_tokens=120, drop_page_furniture=False)
    (holder,) = [c for c in chunks if "<table>" in c.text]
    top, bottom = min(r.bbox[1] for r in holder.regions), max(r.bbox[3] for r in holder.regions)
    assert top <= 80 and bottom >= 108  # every row of the table is inside its regions
    (loss,) = [c for c in chunks if "minimised" in c.text]
    assert any(r.bbox[1] >= 140 for r in loss.regions)


def test_a_running_header_the_model_left_out_does_not_stop_the_alignment():
    page = rendered("paper-two-column-1.pdf", 2)
    lines = page.text_layer.splitlines()
    markdown = text_layer_markdown("\n".join(lines[1:]))  # without the running head
    alignment = align(markdown, page.text_words)
    assert alignment.trusted and alignment.matched_share > 0.9


def test_locate_also_places_a_scan_whose_text_layer_does_not_match():
    """A scan with a wrong OCR layer is located like one without a layer; a page whose layer
    matches, or that the CPU engine read, is not."""
    from dataclasses import replace

    from lightocr_ingest.reader.locate import needs_locating
    from lightocr_ingest.records import OcrResult, TextBox

    page = rendered("paper-two-column-1.pdf", 2)
    other = rendered("paper-two-column-2.pdf", 3)
    answer = OcrResult(markdown=text_layer_markdown(page.text_layer), engine="vllm", model="m")
    assert not needs_locating(page, answer)
    assert needs_locating(replace(page, text_words=other.text_words), answer)
    assert needs_locating(replace(page, text_words=None), answer)
    cpu = replace(answer, engine="cpu", text_boxes=(TextBox("a line", (0, 0, 10, 10)),))
    assert not needs_locating(replace(page, text_words=None), cpu)
    assert not needs_locating(replace(page, text_words=None), replace(answer, status="failed"))


def test_a_detector_that_fails_costs_the_page_its_regions_not_its_text(tmp_path, monkeypatch, caplog):
    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.ocr import cpu
    from lightocr_ingest.testing import FakeVLLMServer

    scan = tmp_path / "scan.png"
    scan.write_bytes(rendered("paper-one-column-tables.pdf", 2).png)

    def broken(png):
        raise RuntimeError("onnxruntime went away")

    monkeypatch.setattr(cpu, "recognise_lines", broken)
    with FakeVLLMServer(responder=lambda request: "# Notes\n\nThe model read this page.") as server:
        (document,) = LightOnOCRReader(ocr_url=server.url, ocr_engine="vllm", regions="locate").load_data(scan)
    assert document.text == "# Notes\n\nThe model read this page." and document.layout.ocr_lines is None
    assert "could not locate its lines" in caplog.text and "scan.png" in caplog.text
