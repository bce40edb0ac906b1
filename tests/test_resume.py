"""Whole runs under faults: 200 pages at a 20% fault rate, a kill -9 mid-run, a resumed run.

Each run is compared with an uninterrupted, fault-free run of the same corpus: the same point
ids holding the same texts, checked in Qdrant itself, and every page accounted for in the
report.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from qdrant_client import QdrantClient

from lightocr_ingest.pipeline import Ingestor, parse_config
from lightocr_ingest.testing import FAULT_KINDS, FakeVLLMServer, FaultPlan

from .documents import one_column_pdf

FILES, PAGES_PER_FILE = 10, 20  # 200 pages: enough for every fault kind many times over


def short_page(request) -> str:
    """A small page per image, so the test spends its time on faults rather than on embedding."""
    tag = request.image_sha256[:10]
    return f"# Section {tag}\n\nMeasurements {tag} were taken at station {int(tag, 16) % 97} during the campaign."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(FILES):
        one_column_pdf(folder / f"doc-{i:02d}.pdf", pages=PAGES_PER_FILE, title=f"Annual report {i}")
    return folder


def config_data(server_url, folder, work, **ocr):
    return {
        "input": {"paths": [str(folder)]},
        "ocr": {"engine": "vllm", "url": server_url, "backoff_base_s": 0.05, "request_timeout_s": 1.0,
                "max_retries": 8, "cache_dir": str(work / "ocr-cache"), **ocr},
        "chunking": {"chunk_size": 128, "tokenizer": "estimate"},
        "qdrant": {"path": str(work / "qdrant"), "collection": "corpus"},
    }


def stored(qdrant_path, field: str | None = None) -> dict[str, str]:
    """Point id -> chunk text (or a payload field), read straight from the local Qdrant folder."""
    client = QdrantClient(path=str(qdrant_path))
    try:
        points, offset = [], None
        while True:
            batch, offset = client.scroll("corpus", limit=512, offset=offset, with_payload=True)
            points.extend(batch)
            if offset is None:
                break
    finally:
        client.close()
    if field:
        return {str(p.id): p.payload[field] for p in points}
    return {str(p.id): json.loads(p.payload["_node_content"])["text"] for p in points}


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory):
    """The reference: a fault-free run from start to end."""
    work = tmp_path_factory.mktemp("reference")
    with FakeVLLMServer(responder=short_page) as server:
        ingestor = Ingestor(parse_config(config_data(server.url, corpus, work)))
        report = ingestor.run()
        ingestor.close()
        requests = len(server.requests)
    assert report.ok and report.totals()["pages_seen"] == FILES * PAGES_PER_FILE
    return {"points": stored(work / "qdrant"), "work": work, "requests": requests, "report": report}


def fault_plan(**overrides) -> FaultPlan:
    return FaultPlan(rate=0.2, stall_s=2.0, **overrides)


def test_no_page_is_lost_at_a_20_percent_fault_rate_with_a_restart(corpus, uninterrupted, tmp_path):
    with FakeVLLMServer(responder=short_page, faults=fault_plan(restart_after=150)) as server:
        ingestor = Ingestor(parse_config(config_data(server.url, corpus, tmp_path)))
        report = ingestor.run()
        ingestor.close()
    assert server.violations == []
    faults = sum(server.faults_injected.values())
    assert set(server.faults_injected) == set(FAULT_KINDS) and server.restarts == 1
    assert faults / len(server.requests) >= 0.15  # the plan's 20%, less what max_in_a_row spared
    totals = report.totals()
    assert totals["pages_seen"] == FILES * PAGES_PER_FILE == totals["pages_ingested"] + totals["pages_failed"]
    assert totals["pages_failed"] == 0 and report.ok
    assert totals["pages_by_status"]["retried"] > 0
    assert totals["pages_by_status"]["ok"] + totals["pages_by_status"]["retried"] == FILES * PAGES_PER_FILE
    assert totals["points_after"] == len(uninterrupted["points"])
    assert stored(tmp_path / "qdrant") == uninterrupted["points"]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill -9", "Ctrl-C"])
def test_a_run_killed_mid_way_resumes_to_exactly_the_points_of_an_uninterrupted_run(corpus, uninterrupted,
                                                                                      tmp_path, how):
    config_path = tmp_path / "pipeline.yaml"
    with FakeVLLMServer(responder=short_page, faults=fault_plan()) as server:
        config_path.write_text(yaml.safe_dump(config_data(server.url, corpus, tmp_path)))
        run = subprocess.Popen([sys.executable, "-m", "lightocr_ingest.cli", "ingest", "--config", str(config_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
        try:
            give_up = time.monotonic() + 240
            storage = tmp_path / "qdrant" / "collection" / "corpus" / "storage.sqlite"  # Qdrant local mode's file
            # OCR runs ahead of storing: wait until pages are both read and stored.
            while (len({r.image_sha256 for r in server.requests}) < 110 or not storage.exists()) \
                    and run.poll() is None:
                assert time.monotonic() < give_up, "the killed run never got going"
                time.sleep(0.05)
            time.sleep(0.3)  # past the first upsert, which creates that file
            assert run.poll() is None, "the run finished before it could be killed"
            run.send_signal(how)
            _, err = run.communicate(timeout=60)  # Ctrl-C must stop it promptly, not at the end of the run
        finally:
            run.kill()
        if how == signal.SIGINT:
            assert run.returncode == 130 and "Run the same command again" in err
        partial = stored(tmp_path / "qdrant")
        partial_paths = stored(tmp_path / "qdrant", "file_path")
        assert 0 < len(partial) < len(uninterrupted["points"])  # it was killed mid-way, with work stored

        ingestor = Ingestor(parse_config(config_data(server.url, corpus, tmp_path)))
        report = ingestor.run()
        ingestor.close()

    assert stored(tmp_path / "qdrant") == uninterrupted["points"]  # no duplicate, no gap, same texts
    totals = report.totals()
    assert report.ok and totals["pages_failed"] == 0
    assert totals["files_resumed"] + totals["files_skipped"] >= 1
    # Work already done was not redone: chunks already stored were not embedded again, and pages
    # of unfinished files that the killed run had read came from the OCR cache.
    skipped = {f.path for f in report.files if f.status == "skipped"}
    left_unfinished = sum(path not in skipped for path in partial_paths.values())
    assert sum(f.chunks_already_stored for f in report.files) == left_unfinished
    assert totals["pages_seen"] + PAGES_PER_FILE * totals["files_skipped"] == FILES * PAGES_PER_FILE
    assert totals["pages_from_cache"] > 0


def test_new_chunk_settings_re_ingest_without_a_single_ocr_request(corpus, uninterrupted):
    work = uninterrupted["work"]
    with FakeVLLMServer(responder=short_page) as server:
        data = config_data(server.url, corpus, work)
        data["chunking"]["chunk_size"] = 64
        data["chunking"]["embed_header_path"] = False
        ingestor = Ingestor(parse_config(data))
        report = ingestor.run()
        ingestor.close()
    assert server.requests == []
    totals = report.totals()
    assert report.ok and totals["files_skipped"] == 0  # new settings: every file is ingested again
    assert totals["pages_from_cache"] == totals["pages_seen"] == FILES * PAGES_PER_FILE
    assert totals["ocr_requests"] == 0


def test_identical_pages_across_files_are_sent_once(tmp_path):
    # Copies, not three generated files: fpdf2 stamps the creation time, which may tick between them.
    data = one_column_pdf(tmp_path / "a.pdf", pages=2, title="Standard terms").read_bytes()
    (tmp_path / "b.pdf").write_bytes(data + b"\n% trailing comment\n")  # other bytes, the same pages
    (tmp_path / "c.pdf").write_bytes(data)  # byte-identical to a.pdf
    with FakeVLLMServer(responder=short_page) as server:
        data = config_data(server.url, tmp_path, tmp_path / "work")
        data["input"]["paths"] = [str(tmp_path / n) for n in ("a.pdf", "b.pdf", "c.pdf")]
        ingestor = Ingestor(parse_config(data))
        report = ingestor.run()
        ingestor.close()
    images = [r.image_sha256 for r in server.requests]
    assert len(images) == len(set(images)) == 2
    by_name = {os.path.basename(f.path): f for f in report.files}
    assert by_name["b.pdf"].status == "ok" and all(p.cached for p in by_name["b.pdf"].pages)
    assert by_name["c.pdf"].status == "skipped"  # same bytes as a.pdf: the same points
    assert by_name["c.pdf"].duplicate_of == str(tmp_path / "a.pdf")
    assert hashlib.sha256((tmp_path / "a.pdf").read_bytes()).hexdigest() == by_name["c.pdf"].sha256


def test_a_file_killed_between_its_last_chunks_and_its_completion_mark_is_completed_without_ocr_or_embedding(
        tmp_path, monkeypatch):
    from lightocr_ingest.store import COMPLETE_KEY

    path = one_column_pdf(tmp_path / "exact.pdf", pages=6)
    with FakeVLLMServer(responder=short_page) as server:
        data = config_data(server.url, tmp_path, tmp_path / "work")
        data["input"]["paths"] = [str(path)]
        ingestor = Ingestor(parse_config(data))
        first = ingestor.run()
        ingestor.client.delete_payload("corpus", keys=[COMPLETE_KEY], points=[p.id for p in ingestor.client.scroll(
            "corpus", limit=100)[0]])  # as if killed right before the completion mark
        requests = len(server.requests)
        embedded = []
        original = type(ingestor.embed_model).get_text_embedding_batch
        monkeypatch.setattr(type(ingestor.embed_model), "get_text_embedding_batch",
                            lambda model, texts, **kw: embedded.extend(texts) or original(model, texts, **kw))
        resumed = ingestor.run()
        again = ingestor.run()
        ingestor.close()
    assert len(server.requests) == requests  # every page came from the OCR cache
    assert embedded == []  # every chunk was already stored: found by id, not embedded again
    (file,) = resumed.files
    assert file.status == "ok" and file.chunks == file.chunks_already_stored == first.files[0].chunks > 0
    assert all(p.cached for p in file.pages)
    assert again.files[0].status == "skipped"


def test_a_twin_page_arriving_while_the_answer_is_cached_is_not_sent_again(tmp_path):
    """The race behind a flaky run: the first copy's answer was taken out of the in-flight
    table before the cache held it, so a twin that missed the cache meanwhile sent it again."""
    import asyncio
    import time as clock

    from PIL import Image

    from lightocr_ingest.ocr.cache import OcrCache
    from lightocr_ingest.ocr.resilient import ResilientEngine
    from lightocr_ingest.pages import iter_file_pages
    from lightocr_ingest.records import OcrResult

    Image.new("L", (40, 30), 200).save(tmp_path / "page.png")
    page = next(iter_file_pages(tmp_path / "page.png"))

    class SlowCache(OcrCache):
        def put(self, key, result):
            clock.sleep(0.3)  # a slow disk: the twin's lookup lands before the write
            super().put(key, result)

    class CountingEngine:
        name, model, calls = "vllm-like", "m", 0

        async def start(self):
            pass

        async def ocr(self, page):
            CountingEngine.calls += 1
            return OcrResult(markdown="text", engine=self.name, model=self.model)

        async def aclose(self):
            pass

    async def run():
        engine = ResilientEngine(CountingEngine(), cache=SlowCache(tmp_path / "cache"), fallbacks=())
        first = asyncio.create_task(engine.ocr(page))
        await asyncio.sleep(0.1)  # the first copy is answered and its answer is being written
        twin = await engine.ocr(page)
        await first
        await engine.aclose()
        return twin

    twin = asyncio.run(run())
    assert CountingEngine.calls == 1
    assert twin.markdown == "text" and twin.cached
