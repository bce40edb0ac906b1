"""Whole runs under faults: 200 pages at a 20% fault rate, a kill -9 mid-run, a resumed run.

Each run is compared with an uninterrupted, fault-free run of the same corpus: the same point
ids holding the same texts, checked in Qdrant itself, and every page accounted for in the
report.
"""

import collections
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from lightocr_ingest.pipeline import Ingestor, parse_config
from lightocr_ingest.store import make_client
from lightocr_ingest.testing import FAULT_KINDS, FakeVLLMServer, FaultPlan

from .conftest import pipeline_config
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
    return pipeline_config(work / "qdrant", "corpus", url=server_url, as_dict=True, input={"paths": [str(folder)]},
                           ocr={"backoff_base_s": 0.05, "request_timeout_s": 1.0, "max_retries": 8,
                                "cache_dir": str(work / "ocr-cache"), **ocr},
                           chunking={"chunk_size": 128, "tokenizer": "estimate"})


def stored(qdrant_path, field: str | None = None) -> dict[str, str]:
    """Point id -> chunk text (or a payload field), read straight from the embedded store's folder."""
    client = make_client(str(qdrant_path))
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
    """The reference: a fault-free run from start to end, every page answered by the model at the
    first request. Its request timeout is long, so nothing in it depends on the machine's load
    (the faulty runs' 1 s is shorter than a stall on purpose), and a reference that went wrong
    says so here, not later as points the compared runs seem to have too many or too few of."""
    work = tmp_path_factory.mktemp("reference")
    with FakeVLLMServer(responder=short_page) as server:
        ingestor = Ingestor(parse_config(config_data(server.url, corpus, work, request_timeout_s=30.0)))
        report = ingestor.run()
        ingestor.close()
        requests = len(server.requests)
    assert report.ok and report.totals()["pages_seen"] == FILES * PAGES_PER_FILE
    by_status = report.totals()["pages_by_status"]
    assert by_status["ok"] == FILES * PAGES_PER_FILE, f"the reference run was not clean: {by_status}"
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


def points_written(shard) -> bool:
    """Whether points were committed to an embedded store's shard, seen without opening it (the
    running ``ingest`` holds the folder): Edge appends every update to its write-ahead log, whose
    segment files are sparse, so the disk blocks they hold grow past the header page (4 kB each)
    with the first batch. A fact of the files, where a pause after the collection appeared only
    guessed."""
    log = shard / "wal"
    if not log.is_dir():
        return False
    return any(f.stat().st_blocks * 512 > 4096 for f in log.glob("open-*"))


def hear_ctrl_c() -> None:
    """In the child before it starts: Ctrl-C does what it does in a terminal. A suite started in
    the background by a shell (``pytest &``, a CI runner's nohup) inherits SIGINT ignored, and a
    Python started with it ignored never turns it into KeyboardInterrupt: the run would go on to
    its end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill -9", "Ctrl-C"])
def test_a_run_killed_mid_way_resumes_to_exactly_the_points_of_an_uninterrupted_run(corpus, uninterrupted,
                                                                                      tmp_path, how):
    config_path = tmp_path / "pipeline.yaml"
    with FakeVLLMServer(responder=short_page, faults=fault_plan()) as server:
        config_path.write_text(yaml.safe_dump(config_data(server.url, corpus, tmp_path)))
        run = subprocess.Popen([sys.executable, "-m", "lightocr_ingest.cli", "ingest", "--config", str(config_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
                               preexec_fn=hear_ctrl_c)
        try:
            give_up = time.monotonic() + 240
            shard = tmp_path / "qdrant" / "edge" / "corpus"  # the embedded store's shard of the collection
            # OCR runs ahead of storing: wait until pages are both read and stored (points in the log).
            while (len({r.image_sha256 for r in server.requests}) < 110 or not points_written(shard)) \
                    and run.poll() is None:
                assert time.monotonic() < give_up, "the killed run never got going"
                time.sleep(0.05)
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
        data["chunking"]["embed_headings"] = "none"
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


class CountingEngine:
    """An engine that answers every page with ``markdown`` and counts the pages it read."""

    name, model = "vllm-like", "m"

    def __init__(self, markdown: str):
        self.markdown, self.calls = markdown, 0

    async def start(self):
        pass

    async def ocr(self, page):
        from lightocr_ingest.records import OcrResult

        self.calls += 1
        return OcrResult(markdown=self.markdown, engine=self.name, model=self.model)

    async def aclose(self):
        pass


def test_a_twin_page_arriving_while_the_answer_is_cached_is_not_sent_again(tmp_path):
    """The race behind a flaky run: the first copy's answer was taken out of the in-flight
    table before the cache held it, so a twin that missed the cache meanwhile sent it again."""
    import asyncio
    import threading

    from PIL import Image

    from lightocr_ingest.ocr.cache import OcrCache
    from lightocr_ingest.ocr.resilient import ResilientEngine
    from lightocr_ingest.pages import iter_file_pages

    Image.new("L", (40, 30), 200).save(tmp_path / "page.png")
    page = next(iter_file_pages(tmp_path / "page.png"))

    writing, twin_looked = threading.Event(), threading.Event()

    class SlowCache(OcrCache):
        """A slow disk, told by events: the write waits until the twin has looked (and missed)."""

        def get(self, key):
            hit = super().get(key)
            if writing.is_set():
                twin_looked.set()
            return hit

        def put(self, key, result):
            writing.set()
            looked_before_the_write.append(twin_looked.wait(60))
            super().put(key, result)

    async def run():
        engine = ResilientEngine(counting, cache=SlowCache(tmp_path / "cache"), fallbacks=())
        first = asyncio.create_task(engine.ocr(page))
        # the first copy is answered and its answer is being written
        assert await asyncio.to_thread(writing.wait, 60), "the first copy's answer was never written"
        twin = await engine.ocr(page)
        await first
        await engine.aclose()
        return twin

    counting = CountingEngine("text")
    looked_before_the_write: list[bool] = []
    twin = asyncio.run(run())
    assert looked_before_the_write == [True]  # the race was run: the twin missed the cache mid-write
    assert counting.calls == 1
    assert twin.markdown == "text" and twin.cached


def _cached_tags(cache_folder) -> set[str]:
    """The pages whose answers the OCR cache holds, by the tag ``short_page`` writes into them."""
    import re
    import sqlite3

    database = cache_folder / "ocr-cache.sqlite"
    if not database.exists():
        return set()
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT result FROM ocr").fetchall()
    return {tag for (result,) in rows for tag in re.findall(r"Section ([0-9a-f]{10})", json.loads(result)["markdown"])}


@pytest.mark.slow
def test_kill_9_at_random_moments_never_sends_a_cached_page_again_and_ends_with_the_uninterrupted_points(tmp_path):
    """A real ``ingest`` process, killed three times at random moments of its OCR, then run to
    the end: no page whose answer was in the cache at a kill is sent again, no page is sent
    more often than once plus the kills it was in flight at, and the collection ends as an
    uninterrupted run leaves it."""
    import random

    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    folder = tmp_path / "docs"
    folder.mkdir()
    # Files of several pages: a file is stored only once its last page is read, so a kill finds
    # answered pages that only the OCR cache holds (a one-page file is stored at once).
    for i in range(3):
        one_column_pdf(folder / f"report-{i}.pdf", pages=6, title=f"Report {i}")
    # Other bytes, the same pages: each page of it is a twin of one of report-0's, read once.
    (folder / "report-0-copy.pdf").write_bytes((folder / "report-0.pdf").read_bytes() + b"\n% a copy\n")
    pages = 3 * 6  # distinct page images
    reference = tmp_path / "reference"
    with FakeVLLMServer(responder=short_page) as server:
        ingestor = Ingestor(parse_config(config_data(server.url, folder, reference)))
        assert ingestor.run().ok
        ingestor.close()
    expected = stored(reference / "qdrant")

    work = tmp_path / "work"
    config_path = tmp_path / "pipeline.yaml"
    in_flight_at_kills: list[set[str]] = []
    with FakeVLLMServer(responder=short_page, latency_s=0.2) as server:
        # Two pages in flight: the kills land among answered, in-flight and unsent pages.
        config_path.write_text(yaml.safe_dump(config_data(server.url, folder, work, max_in_flight=2)))
        command = [sys.executable, "-m", "lightocr_ingest.cli", "ingest", "--config", str(config_path)]
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
        for kill in range(3):
            before = len(server.requests)
            cached_before = _cached_tags(work / "ocr-cache")
            left = pages - len(cached_before)
            if left < 3:
                break  # nothing much left to interrupt
            moment = chance.randint(1, max(1, left // 3))  # answers this run gets before its kill
            run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   cwd=tmp_path, env=environment)
            try:
                give_up = time.monotonic() + 120
                while sum(1 for r in server.requests[before:] if r.answer) < moment and run.poll() is None:
                    assert time.monotonic() < give_up, "the run never got going"
                    time.sleep(0.005)
                time.sleep(chance.uniform(0, 0.2))  # anywhere in the next answer's round trip
                assert run.poll() is None, f"run {kill + 1} ended before its kill (seed {seed})"
                run.send_signal(signal.SIGKILL)
                run.communicate(timeout=60)
            finally:
                run.kill()
            sent = {r.image_sha256[:10] for r in server.requests[before:]}
            assert not sent & cached_before, f"pages cached before run {kill + 1} were sent again (seed {seed})"
            in_flight_at_kills.append(sent - _cached_tags(work / "ocr-cache"))
        before = len(server.requests)
        cached_before = _cached_tags(work / "ocr-cache")
        finished = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300)
        assert finished.returncode == 0, finished.stderr
        assert not {r.image_sha256[:10] for r in server.requests[before:]} & cached_before, f"seed {seed}"
        sent_per_page = collections.Counter(r.image_sha256[:10] for r in server.requests)
    assert len(sent_per_page) == pages and in_flight_at_kills  # at least one kill landed
    for page, times in sent_per_page.items():
        assert times <= 1 + sum(page in in_flight for in_flight in in_flight_at_kills), (page, times, seed)
    assert stored(work / "qdrant") == expected  # no duplicate, no gap, the same texts


def test_a_twin_whose_reader_ended_without_handing_over_looks_in_the_cache_before_sending(tmp_path):
    """The reader of a page can be cancelled after its answer reached the cache; a twin waiting
    on it then finds that answer on disk instead of sending the page again."""
    import asyncio

    from PIL import Image

    from lightocr_ingest.ocr.resilient import ResilientEngine
    from lightocr_ingest.pages import iter_file_pages
    from lightocr_ingest.records import OcrResult

    Image.new("L", (40, 30), 200).save(tmp_path / "page.png")
    page = next(iter_file_pages(tmp_path / "page.png"))
    answer = OcrResult(markdown="text", engine="vllm-like", model="m", cached=True)

    class Cache:  # holds nothing at the twin's first look, the reader's answer afterwards
        looks = 0

        def get(self, key):
            Cache.looks += 1
            return None if Cache.looks == 1 else answer

        def close(self):
            pass

    async def run():
        engine = ResilientEngine(counting, cache=Cache(), fallbacks=())
        key = engine.key(page)
        reader = asyncio.get_running_loop().create_future()
        engine._in_flight[key] = reader  # another file's copy of the page is being read
        twin = asyncio.create_task(engine.ocr(page))
        while Cache.looks == 0:
            await asyncio.sleep(0.01)
        reader.cancel()  # that reader was cancelled after keeping its answer
        del engine._in_flight[key]
        return await twin

    counting = CountingEngine("read again")
    result = asyncio.run(run())
    assert counting.calls == 0 and result.markdown == "text"
