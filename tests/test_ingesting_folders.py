"""End to end, no network: files -> OCR (vLLM-protocol server, or CPU) -> chunks -> MiniLM -> Qdrant."""

import json
from pathlib import Path

import pytest
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex

from lightocr_ingest import ConfigError
from lightocr_ingest.cli import main
from lightocr_ingest.pages import iter_file_pages
from lightocr_ingest.pipeline import Ingestor, build_pipeline, load_config, make_reader, parse_config
from lightocr_ingest.retrieval import search
from lightocr_ingest.pipeline.config import json_schema
from lightocr_ingest.testing import FakeVLLMServer

from .conftest import pipeline_config
from .documents import one_column_pdf

TOPICS = {
    ("report.pdf", 1): "# Volcanoes\n\nBasaltic lava flows from shield volcanoes on Hawaii erupt gently.",
    ("report.pdf", 2): "# Penguins\n\nEmperor penguins breed on Antarctic sea ice during the polar winter.",
    ("report.pdf", 3): "# Taxation\n\nValue added tax is collected at each stage of the supply chain.",
    ("columns.pdf", 1): "# Railways\n\nHigh speed trains run on dedicated tracks between large cities.",
}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def topic_server(pdf_dir):
    """A vLLM-protocol server that answers each page with its own topic (matched by the PNG bytes)."""
    by_image = {}
    for name in ("report.pdf", "columns.pdf"):
        for page in iter_file_pages(pdf_dir / name):
            import hashlib

            by_image[hashlib.sha256(page.png).hexdigest()] = TOPICS[(name, page.page)]
    with FakeVLLMServer(responder=lambda request: by_image[request.image_sha256]) as server:
        yield server
    assert server.violations == []


def make_config(tmp_path, server_url, **chunking):
    return pipeline_config(tmp_path / "qdrant", "test", url=server_url, chunking={"chunk_size": 128, **chunking})


def stored_points(ingestor):
    points, _ = ingestor.client.scroll(ingestor.collection, limit=1000, with_payload=True)
    return points


def test_ingest_then_query_finds_the_right_file_and_page(topic_server, pdf_dir, tmp_path):
    ingestor = Ingestor(make_config(tmp_path, topic_server.url))
    report = ingestor.run([str(pdf_dir / "report.pdf"), str(pdf_dir / "columns.pdf")])
    totals = report.totals()
    assert report.ok and totals["pages_seen"] == 4 == totals["pages_ingested"] and totals["pages_failed"] == 0
    assert totals["points_after"] == totals["chunks"] == 4
    hits = search(ingestor.vector_store, ingestor.embed_model, "where do emperor penguins breed?", k=2)
    assert (hits[0].file_name, hits[0].page, hits[0].header_path) == ("report.pdf", 2, "Penguins")
    assert "Antarctic sea ice" in hits[0].text
    payload = [p.payload for p in stored_points(ingestor) if p.payload["page"] == 3][0]
    for key in ("file_name", "file_path", "page", "pages", "header_path", "block_types", "bbox", "ocr_engine",
                "ocr_model", "file_sha256"):
        assert key in payload, key
    ingestor.close()


def test_second_run_changes_nothing_and_does_no_ocr(topic_server, pdf_dir, tmp_path):
    config = make_config(tmp_path, topic_server.url)
    first = Ingestor(config)
    first.run([str(pdf_dir)])
    ids = sorted(p.id for p in stored_points(first))
    requests = len(topic_server.requests)
    second = first.run([str(pdf_dir)])
    assert sorted(p.id for p in stored_points(first)) == ids
    assert second.totals()["files_skipped"] == 2 and len(topic_server.requests) == requests
    # Different chunk settings re-ingest (same ids would be wrong: the chunks differ) without duplicates.
    first.close()
    rechunked = Ingestor(make_config(tmp_path, topic_server.url, embed_headings="none"))
    report = rechunked.run([str(pdf_dir)])
    assert report.totals()["files_skipped"] == 0
    assert len(stored_points(rechunked)) == len(ids)
    rechunked.close()


def test_new_chunk_settings_replace_the_old_chunks_of_an_unchanged_file(vllm_server, pdf_dir, tmp_path):
    def run(chunk_size):
        ingestor = Ingestor(parse_config({"ocr": {"engine": "vllm", "url": vllm_server.url},
                                          "chunking": {"chunk_size": chunk_size, "tokenizer": "estimate"},
                                          "qdrant": {"path": str(tmp_path / "q")}}))
        report = ingestor.run([str(pdf_dir / "report.pdf")])
        points = stored_points(ingestor)
        ingestor.close()
        return report, points

    first, _ = run(512)
    second, points = run(48)
    assert second.totals()["chunks"] > first.totals()["chunks"]  # the new setting cuts differently
    assert len(points) == second.totals()["chunks"]  # and none of the old chunks is left beside them


def test_changed_file_has_its_stale_points_replaced(vllm_server, tmp_path):
    path = one_column_pdf(tmp_path / "contract.pdf", pages=3, title="Version one")
    config = parse_config({"ocr": {"engine": "vllm", "url": vllm_server.url},
                           "qdrant": {"path": str(tmp_path / "q"), "collection": "c"}})
    ingestor = Ingestor(config)
    ingestor.run([str(path)])
    old = {p.payload["file_sha256"] for p in stored_points(ingestor)}
    one_column_pdf(path, pages=2, title="Version two")  # same path, new content, fewer pages
    ingestor.run([str(path)])
    points = stored_points(ingestor)
    assert {p.payload["file_sha256"] for p in points} != old and len({p.payload["file_sha256"] for p in points}) == 1
    assert sorted({p.payload["page"] for p in points}) == [1, 2]
    ingestor.close()


def test_bad_files_are_reported_and_the_rest_ingested(vllm_server, pdf_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.pdf").write_bytes((pdf_dir / "report.pdf").read_bytes())
    (folder / "empty.pdf").write_bytes(b"")
    config = parse_config({"ocr": {"engine": "vllm", "url": vllm_server.url},
                           "qdrant": {"path": str(tmp_path / "q")}})
    ingestor = Ingestor(config)
    report = ingestor.run([str(folder), str(tmp_path / "missing.pdf")])
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["good.pdf"].status == "ok" and len(by_name["good.pdf"].pages) == 3
    assert by_name["empty.pdf"].status == "failed" and "file is empty" in by_name["empty.pdf"].error
    assert by_name["missing.pdf"].status == "failed" and not report.ok
    ingestor.close()


def test_cpu_engine_end_to_end_on_the_shipped_samples(tmp_path):
    config = parse_config({"input": {"paths": [str(REPO / "samples")]}, "ocr": {"engine": "cpu"},
                           "qdrant": {"path": str(tmp_path / "q"), "collection": "samples"}})
    ingestor = Ingestor(config)
    report = ingestor.run()
    assert report.ok and report.totals()["pages_seen"] == 10  # 4 sample files
    hits = search(ingestor.vector_store, ingestor.embed_model, "coastal wetlands absorb storm surges", k=1)
    assert hits[0].file_name == "rivers-and-coasts.pdf" and hits[0].page == 1
    ingestor.close()


def test_simple_directory_reader_and_ingestion_pipeline(topic_server, pdf_dir, tmp_path):
    config = make_config(tmp_path, topic_server.url)
    reader = make_reader(config)
    documents = SimpleDirectoryReader(str(pdf_dir), file_extractor={".pdf": reader}).load_data()
    pipeline = build_pipeline(config)
    nodes = pipeline.run(documents=documents)
    assert len(nodes) == 4
    store = pipeline.vector_store
    index = VectorStoreIndex.from_vector_store(store, embed_model=pipeline.transformations[-1])
    (hit,) = index.as_retriever(similarity_top_k=1).retrieve("value added tax")
    assert hit.node.metadata["file_name"] == "report.pdf" and hit.node.metadata["page"] == 3
    store.client.close()


# --- configs --------------------------------------------------------------------------------
def test_shipped_configs_validate(monkeypatch):
    assert load_config(REPO / "pipelines/local.yaml").ocr.engine == "auto"
    monkeypatch.setenv("LIGHTONOCR_URL", "http://gpu:8000/v1")
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    config = load_config(REPO / "pipelines/vllm.yaml")
    assert config.ocr.url == "http://gpu:8000/v1" and config.qdrant.url == "http://qdrant:6333"


def test_schema_file_is_current():
    assert json.loads((REPO / "pipelines/schema.json").read_text()) == json_schema()


@pytest.mark.parametrize("data, message", [
    ({"ocr": {"engin": "cpu"}}, "ocr.engin: unknown key"),
    ({"ocr": {"engine": "gpu"}}, "ocr.engine: Input should be 'auto', 'vllm' or 'cpu' (got 'gpu')"),
    ({"chunking": {"chunk_size": "big"}}, "chunking.chunk_size: Input should be a valid integer"),
    ({"chunking": {"chunk_size": 4}}, "chunking.chunk_size: Input should be greater than or equal to 16 (got 4)"),
    ({"qdrant": {"url": "${NO_SUCH_VAR_FOR_TESTS}"}}, "qdrant.url: environment variable NO_SUCH_VAR_FOR_TESTS is not set"),
    ([1, 2], "top level must be a mapping"),
])
def test_bad_configs_name_the_field_and_the_fix(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data, "my.yaml")
    assert str(info.value).startswith("my.yaml: ") and message in str(info.value)


def test_env_default_and_no_code_execution(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("qdrant:\n  collection: ${COLL:-fallback}\n"
                    "ocr:\n  model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("qdrant:\n  collection: ${COLL:-fallback}\n")
    assert load_config(path).qdrant.collection == "fallback"
    monkeypatch.setenv("COLL", "mine")
    assert load_config(path).qdrant.collection == "mine"


# --- CLI ------------------------------------------------------------------------------------
def test_cli_ingest_report_and_query_json(topic_server, pdf_dir, tmp_path, capsys):
    qdrant = str(tmp_path / "q")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 junk")
    code = main(["ingest", str(pdf_dir), str(bad), "--qdrant-path", qdrant, "--ocr-url", topic_server.url,
                 "--ocr-engine", "vllm", "--collection", "cli", "--report", str(tmp_path / "run.json")])
    err = capsys.readouterr().err
    assert code == 1 and "re-run only them" in err and str(bad) in err
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["totals"]["pages_seen"] == report["totals"]["pages_ingested"] + report["totals"]["pages_failed"] == 4
    assert {Path(f["path"]).name: f["status"] for f in report["files"]}["bad.pdf"] == "failed"
    assert main(["query", "high speed trains", "--qdrant-path", qdrant, "--collection", "cli", "-k", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    assert {"score", "file_name", "page", "header_path", "text", "bbox"} <= set(lines[0])
    assert (lines[0]["file_name"], lines[0]["page"]) == ("columns.pdf", 1)


def test_cli_query_on_an_empty_collection_says_what_to_do(tmp_path, capsys):
    assert main(["query", "anything", "--qdrant-path", str(tmp_path / "none")]) == 1
    assert "run `lightocr-ingest ingest PATH` first" in capsys.readouterr().err


def test_a_file_is_searchable_while_the_next_one_is_still_being_read(tmp_path):
    """A file is stored once its last page is read (it is chunked whole), not at the end of the run."""
    import hashlib
    import threading

    from lightocr_ingest.store import count_points
    from lightocr_ingest.testing import FakeVLLMServer, lightonocr_style_page

    first = one_column_pdf(tmp_path / "a-first.pdf", pages=3, title="First file")
    second = one_column_pdf(tmp_path / "b-second.pdf", pages=6, title="Second file")
    second_pages = {hashlib.sha256(p.png).hexdigest() for p in iter_file_pages(second)}
    first_file_stored = threading.Event()

    def responder(request):
        # The second file's pages are answered only once something is stored, so the test sees
        # whether storing happens while pages are still being read, whatever the timing.
        if request.image_sha256 in second_pages:
            first_file_stored.wait(30)
        return lightonocr_style_page(request.image_sha256)

    with FakeVLLMServer(responder=responder) as server:
        ingestor = Ingestor(parse_config({"ocr": {"engine": "vllm", "url": server.url, "cache_dir": None},
                                          "qdrant": {"path": str(tmp_path / "q")}}))
        store = ingestor.vector_store

        class SignallingStore:
            def add(self, nodes, **kwargs):
                ids = store.add(nodes, **kwargs)
                first_file_stored.set()
                return ids

        ingestor.vector_store = SignallingStore()
        points_seen_mid_run = []

        def on_page(file_report, page_report):
            if file_report.path == str(second) and page_report.page == 1:
                points_seen_mid_run.append(count_points(ingestor.client, ingestor.collection))

        report = ingestor.run([str(first), str(second)], on_page=on_page)
    assert report.ok and report.totals()["pages_seen"] == 9
    # The first file's chunks were upserted while the second file was still being read.
    assert 0 < points_seen_mid_run[0] < report.points_after
    # Heading paths carry across pages: only what comes before the first heading of a file has none.
    assert all(p.payload["header_path"] for p in stored_points(ingestor) if p.payload["page"] > 1)
    ingestor.close()


def test_an_embedding_model_that_cannot_load_fails_the_run_before_any_ocr(pdf_dir, tmp_path):
    """GPU time is not spent on pages that could never be stored."""
    with FakeVLLMServer() as server:
        config = parse_config({"ocr": {"engine": "vllm", "url": server.url},
                               "embedding": {"model": str(tmp_path / "no-such-model")},
                               "qdrant": {"path": str(tmp_path / "qdrant"), "collection": "test"}})
        ingestor = Ingestor(config)
        with pytest.raises(Exception, match="no-such-model"):
            ingestor.run([str(pdf_dir / "report.pdf")])
        ingestor.close()
        assert server.requests == []


def test_a_run_killed_without_closing_its_store_keeps_every_point_it_stored(topic_server, pdf_dir, tmp_path):
    """The embedded store writes each batch to its shard's write-ahead log before answering: a
    process that dies without closing (no flush) leaves every point and completion mark readable,
    and the folder's lock dies with it."""
    import subprocess
    import sys

    from lightocr_ingest.store import make_client, stored_versions

    config = make_config(tmp_path, topic_server.url)
    ingestor = Ingestor(config)
    first = ingestor.run([str(pdf_dir / "report.pdf")])
    ingestor.close()

    # A second file stored by a process that dies without closing anything.
    script = (f"import json, os\nfrom lightocr_ingest.pipeline import Ingestor, parse_config\n"
              f"config = parse_config({config.model_dump(mode='json')!r})\n"
              f"ingestor = Ingestor(config)  # kept: a client dropped would close (and flush)\n"
              f"report = ingestor.run([{str(pdf_dir / 'columns.pdf')!r}])\n"
              f"print(json.dumps({{'chunks': report.totals()['chunks'], 'sha256': report.files[0].sha256}}), "
              f"flush=True)\nos._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    second = json.loads(done.stdout.strip().splitlines()[-1])
    assert second["chunks"] > 0

    client = make_client(path=str(tmp_path / "qdrant"))
    try:
        assert client.count("test", exact=True).count == first.totals()["chunks"] + second["chunks"]
        versions = stored_versions(client, "test", [f.sha256 for f in first.files] + [second["sha256"]],
                                   ingestor.fingerprint)
        assert len(versions) == 2 and all(v.complete for v in versions.values())
    finally:
        client.close()
