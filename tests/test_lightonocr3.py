"""LightOnOCR-3 as a user meets it: each generation gets its page size, sampling and request
shape from the served name; generation 3 is asked for grounding, and every chunk then takes its
boxes, labels and furniture from the model."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from lightocr_ingest.cli import main
from lightocr_ingest.pipeline import Ingestor, parse_config
from lightocr_ingest.reader import LightOnOCRReader
from lightocr_ingest.service import ServiceSettings, create_app
from lightocr_ingest.testing import FakeVLLMServer
from lightocr_ingest.testing.generation3 import THINKING

from .conftest import pipeline_config

REPORT_HEAD = "Journal of Tests"  # the running head of the test server's grounded pages


def ingest(server, path, qdrant, collection: str, **chunking):
    """``ingest`` of one file through ``server`` (no OCR cache): the run report and the payloads stored."""
    config = pipeline_config(qdrant, collection, url=server.url, ocr={"cache_dir": None},
                             **({"chunking": chunking} if chunking else {}))
    ingestor = Ingestor(config)
    try:
        report = ingestor.run([str(path)])
        points, _ = ingestor.client.scroll(collection, limit=200, with_payload=True)
    finally:
        ingestor.close()
    return report, [p.payload for p in points]


@pytest.mark.parametrize("model, side, grounding", [
    ("lightonai/LightOnOCR-2-1B", 1540, False),
    ("lightonai/LightOnOCR-3-1B", 1540, True),
    ("lightonai/LightOnOCR-3-0.8B", 2048, True),
    ("lightonai/LightOnOCR-3-4B", 2048, True),
])
def test_each_generation_gets_its_page_size_and_request(pdf_dir, model, side, grounding):
    with FakeVLLMServer(model) as server:
        documents = LightOnOCRReader(ocr_engine="vllm", ocr_url=server.url).load_data(pdf_dir / "report.pdf")
    assert server.violations == []  # image only (or with "grounding"), the card's sampling, no flag to gen 2
    assert {max(r.image_size) for r in server.requests} == {side}
    assert {r.mode for r in server.requests} == {"grounding" if grounding else "plain"}
    assert all(r.thinking_disabled == grounding for r in server.requests)  # every generation-3 request
    assert all("<think>" not in d.text and "![" not in d.text.split("\n")[0] for d in documents)
    assert bool(documents[0].grounded_blocks()) is grounding


def test_a_custom_name_is_said_once_and_can_be_told_its_family(pdf_dir, caplog):
    caplog.set_level(logging.WARNING, logger="lightocr_ingest")
    with FakeVLLMServer("ocr") as server:  # a Qwen-based LightOnOCR-3 under --served-model-name ocr
        LightOnOCRReader(ocr_engine="vllm", ocr_url=server.url).load_data(pdf_dir / "report.pdf")
    said = [r.getMessage() for r in caplog.records if "not a LightOnOCR name" in r.getMessage()]
    assert len(said) == 1 and "lightonocr-3-4b" in said[0] and "--model-family" in said[0]
    assert {max(r.image_size) for r in server.requests} == {2048}
    with FakeVLLMServer("ocr", longest_side=2048) as server:
        LightOnOCRReader(ocr_engine="vllm", ocr_url=server.url, model_family="lightonocr-3-1b",
                         pages="1").load_data(pdf_dir / "report.pdf")
    assert {max(r.image_size) for r in server.requests} == {1540} and server.requests[0].mode == "grounding"


def test_a_thinking_preamble_that_still_arrives_is_cut_and_counted(pdf_dir, tmp_path):
    # A server whose chat template ignores the request's flag: every answer starts by thinking.
    with FakeVLLMServer("lightonai/LightOnOCR-3-4B",
                        grounding_responder=lambda r: THINKING + "![text](100,100,900,200) The page text.") as server:
        report, payloads = ingest(server, pdf_dir / "report.pdf", tmp_path / "q", "think")
    assert report.totals()["pages_thinking_removed"] == 3
    texts = [json.loads(p["_node_content"])["text"] for p in payloads]
    assert texts and all("think" not in t and "The user sent" not in t for t in texts)


def test_grounding_is_refused_for_a_model_without_it(pdf_dir):
    with FakeVLLMServer("lightonai/LightOnOCR-2-1B") as server:
        reader = LightOnOCRReader(ocr_engine="vllm", ocr_url=server.url, ocr_mode="grounding")
        with pytest.raises(Exception, match="only LightOnOCR-3"):
            reader.load_data(pdf_dir / "report.pdf")
    assert server.requests == []


def test_plain_and_grounded_answers_are_cached_apart(pdf_dir, tmp_path):
    with FakeVLLMServer("lightonai/LightOnOCR-3-1B") as server:
        for mode in ("plain", "grounding", "plain"):
            LightOnOCRReader(ocr_engine="vllm", ocr_url=server.url, ocr_mode=mode, pages="1",
                             cache_dir=str(tmp_path / "cache")).load_data(pdf_dir / "report.pdf")
    assert [r.mode for r in server.requests] == ["plain", "grounding"]  # the third read came from the cache


def test_ingest_takes_boxes_labels_and_furniture_from_the_model(pdf_dir, tmp_path):
    with FakeVLLMServer("lightonai/LightOnOCR-3-4B") as server:
        report, payloads = ingest(server, pdf_dir / "report.pdf", tmp_path / "q", "grounded", chunk_size=128)
    assert report.ok and report.totals()["chunks_by_bbox_source"] == {"model": len(payloads)}
    texts = [json.loads(p["_node_content"])["text"] for p in payloads]
    assert not any(REPORT_HEAD in t for t in texts)  # the running head: furniture by its label...
    assert all(REPORT_HEAD in p["page_furniture"] for p in payloads)  # ...kept in the page's metadata
    labels = {block["label"] for p in payloads for block in p["blocks"]}
    assert {"title", "section", "text", "table", "formula", "image", "caption", "footnote"} <= labels
    assert not labels & {"header", "footer", "page_number"}
    for payload in payloads:
        assert [r["bbox"] for r in payload["regions"]] == [b["bbox"] for b in payload["blocks"]]
        assert set(payload["block_types"]) == {b["label"] for b in payload["blocks"]}
    # the printed page number became the label of pages whose PDF has none
    assert {p["page_label"] for p in payloads if len(p["pages"]) == 1} <= {str(n) for n in range(1, 8)}
    # a caption stays with its table, a continued paragraph is one
    assert any("<table>" in t and "Scores by model" in t for t in texts)
    assert any("so that differences between runs come from the setting alone" in t for t in texts)
    figures = [f for p in payloads for f in p["figures"]]
    assert figures and all(f["ref"] == "image_1" and f["bbox"] for f in figures)


def test_ocr_prints_clean_markdown_and_writes_blocks_as_lightons_client_does(pdf_dir, tmp_path, capsys):
    with FakeVLLMServer("lightonai/LightOnOCR-3-1B") as server:
        code = main(["ocr", str(pdf_dir / "report.pdf"), "--ocr-url", server.url, "--pages", "2",
                     "--blocks", str(tmp_path / "blocks")])
    assert code == 0
    out = capsys.readouterr().out
    assert "## " in out and "![" not in out
    page = json.loads((tmp_path / "blocks" / "page-002.json").read_text())
    assert set(page) == {"page", "width", "height", "coordinates", "blocks"} and page["page"] == 2
    assert page["blocks"][0] == {"label": "header", "bbox": page["blocks"][0]["bbox"], "text": REPORT_HEAD,
                                 "continues": False}
    assert any(b["continues"] for b in page["blocks"])
    assert all(len(b["bbox"]) == 4 and all(0 <= v <= 1000 for v in b["bbox"]) for b in page["blocks"])


def test_the_service_returns_each_pages_blocks_and_chunk_labels(pdf_dir, tmp_path):
    with FakeVLLMServer("lightonai/LightOnOCR-3-4B") as server:
        config = parse_config({"ocr": {"engine": "vllm", "url": server.url, "cache_dir": None},
                               "qdrant": {"path": str(tmp_path / "q"), "collection": "svc"}})
        with TestClient(create_app(ServiceSettings(config=config))) as client:
            response = client.post("/v1/ocr", data={"chunks": "true"},
                                   files={"file": ("report.pdf", (pdf_dir / "report.pdf").read_bytes())})
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(page["blocks"] and "![" not in page["markdown"] for page in body["pages"])
    assert {b["label"] for b in body["pages"][0]["blocks"]} >= {"header", "title", "table", "page_number"}
    assert body["chunks"] and all(c["bbox_source"] == "model" and c["blocks"] for c in body["chunks"])


def test_query_json_hits_carry_their_blocks_labels_and_boxes(pdf_dir, tmp_path, capsys):
    common = ["--qdrant-path", str(tmp_path / "q"), "--collection", "grounded"]
    with FakeVLLMServer("lightonai/LightOnOCR-3-4B") as server:
        assert main(["ingest", str(pdf_dir / "report.pdf"), "--ocr-url", server.url, "--ocr-engine", "vllm",
                     *common]) == 0
        capsys.readouterr()
        assert main(["query", "nitrate by month", "-k", "3", "--json", *common]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(hits) == 3
    for hit in hits:
        assert hit["bbox_source"] == "model" and hit["blocks"]
        assert [b["bbox"] for b in hit["blocks"]] == [r["bbox"] for r in hit["regions"]]
        assert set(hit["block_types"]) == {b["label"] for b in hit["blocks"]}
