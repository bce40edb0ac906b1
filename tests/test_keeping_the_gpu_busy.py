"""Throughput plumbing: several servers balanced by pages in flight, the simulated GPU, the harness.

Speed itself is measured by ``benchmarks/throughput.py``, never asserted here; these tests check
what the benchmark's figures rest on.
"""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightocr_ingest import LightOnOCRReader
from lightocr_ingest.testing import FakeVLLMServer
from lightocr_ingest.testing.fake_markdown import markdown_of_length
from lightocr_ingest.testing.simulated_vllm import Batch, ServiceModel, SimulatedVLLM, \
    simulate_client

from .documents import one_column_pdf

REPO = Path(__file__).resolve().parents[1]


def wait_until(condition, reading, state) -> None:
    """Waits for ``condition`` while the reader reads (a deadline far beyond any machine's pace)."""
    give_up = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < give_up and not reading.done(), state()
        time.sleep(0.01)


def test_pages_are_spread_over_several_servers_by_pages_in_flight(tmp_path):
    """A slower GPU simply gets fewer pages. Told by events, not by two latencies racing: both
    servers hold their answers until both windows are full (the pages were spread, none waits for
    one server while the other has room), then the fast one answers while the slow one still holds
    its two, and the fast one takes page after page meanwhile."""
    import concurrent.futures

    path = one_column_pdf(tmp_path / "long.pdf", pages=24)
    with FakeVLLMServer() as fast, FakeVLLMServer() as slow:
        fast.hold = slow.hold = lambda request: True
        reader = LightOnOCRReader(ocr_engine="vllm", ocr_url=f"{fast.url},{slow.url}", max_in_flight=2)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            reading = pool.submit(reader.load_data, path)
            try:
                wait_until(lambda: fast.in_flight == slow.in_flight == 2, reading,
                           lambda: f"in flight: {fast.in_flight} fast, {slow.in_flight} slow")
                fast.released.set()  # the fast GPU answers; the slow one still holds its two pages
                wait_until(lambda: len(fast.requests) >= 6, reading,
                           lambda: f"sent: {len(fast.requests)} fast, {len(slow.requests)} slow")
                sent_to_slow_meanwhile = len(slow.requests)
            finally:
                fast.released.set()
                slow.released.set()
            documents = reading.result(timeout=120)
    assert sent_to_slow_meanwhile == 2  # its own window, no more: the others went to the server with room
    assert [d.metadata["page"] for d in documents] == list(range(1, 25))
    assert all(d.metadata["ocr_status"] == "ok" for d in documents)
    assert fast.violations == slow.violations == []
    # Each server got pages, never more than its own window at once, and the faster one got more.
    assert fast.max_in_flight_seen <= 2 and slow.max_in_flight_seen <= 2
    assert len(fast.requests) + len(slow.requests) == 24
    assert len(fast.requests) > len(slow.requests) > 0


def test_the_reader_keeps_every_server_window_full_at_once(tmp_path):
    import concurrent.futures

    path = one_column_pdf(tmp_path / "long.pdf", pages=18)
    with FakeVLLMServer() as a, FakeVLLMServer() as b, FakeVLLMServer() as c:
        servers = (a, b, c)
        for server in servers:  # nothing is answered until all six slots have been seen full at once
            server.hold = lambda request: True
        reader = LightOnOCRReader(ocr_engine="vllm", ocr_url=[a.url, b.url, c.url], max_in_flight=2)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            reading = pool.submit(reader.load_data, path)
            try:
                # 3 servers x 2 each: pages are rendered far enough ahead for all six slots, not just one
                # server's worth (with the answers held, a reader that looked ahead less would stay below 6).
                wait_until(lambda: sum(server.in_flight for server in servers) == 6, reading,
                           lambda: f"in flight: {[server.in_flight for server in servers]}")
            finally:
                for server in servers:
                    server.released.set()
            documents = reading.result(timeout=120)
    assert len(documents) == 18
    assert all(server.max_in_flight_seen == 2 for server in servers)  # each server's window, never more


def test_a_server_that_is_down_is_left_out_and_the_others_serve(tmp_path, caplog):
    path = one_column_pdf(tmp_path / "a.pdf", pages=3)
    with FakeVLLMServer() as alive:
        reader = LightOnOCRReader(ocr_engine="vllm", ocr_url=[alive.url, "http://127.0.0.1:9/v1"])
        documents = reader.load_data(path)
    assert len(alive.requests) == 3 and all(d.metadata["ocr_engine"] == "vllm" for d in documents)
    assert "left out of this run" in caplog.text and "127.0.0.1:9" in caplog.text


def test_simulated_gpu_decode_rate_grows_with_the_batch_and_a_full_batch_gives_the_page_rate():
    service = ServiceModel(pages_per_s=6.0, max_num_seqs=256, tokens_min=500, tokens_max=1500, half_batch=8)
    peak = service.peak_tokens_per_s
    assert peak == pytest.approx(6.0 * 1000 * 264 / 256)  # calibrated on a full batch of mean-length pages
    assert service.aggregate_tokens_per_s(1) == pytest.approx(peak / 9)
    assert service.aggregate_tokens_per_s(8) == pytest.approx(peak / 2)  # h is the half batch
    assert service.aggregate_tokens_per_s(256) == pytest.approx(peak * 256 / 264)
    assert service.aggregate_tokens_per_s(1000) == service.aggregate_tokens_per_s(256)  # the rest queue
    assert service.pages_per_s_at(256) == pytest.approx(6.0)
    assert service.pages_per_s_at(64) == pytest.approx(6.0 * 64 / 72 * 264 / 256)
    # The running sequences share the aggregate rate equally.
    assert service.tokens_per_s_per_sequence(8) * 8 == pytest.approx(service.aggregate_tokens_per_s(8))
    assert 500 <= service.tokens_for(1) <= 1500 and service.tokens_for(7) == service.tokens_for(7)


def test_simulated_batch_shares_the_gpu_and_queues_beyond_max_num_seqs():
    # peak 30 tokens/s, h = 1: one sequence alone decodes at 15 tokens/s, two at 10 each.
    service = ServiceModel(pages_per_s=20 / 15, max_num_seqs=2, tokens_min=10, tokens_max=20, half_batch=1)
    assert service.peak_tokens_per_s == pytest.approx(30)
    batch = Batch(service)
    assert batch.arrive(0.0, "a", 10) == [] and batch.arrive(0.0, "b", 20) == [] and batch.arrive(0.0, "c", 10) == []
    assert batch.max_active == 2 and batch.max_waiting == 1
    # a and b at 10 tokens/s each: a is done at t=1, then c joins b.
    assert batch.advance(0.999) == [] and batch.advance(1.0) == ["a"]
    assert set(batch.running) == {"b", "c"} and not batch.waiting
    # b and c both have 10 tokens left at 10 tokens/s: done together at t=2.
    assert sorted(batch.advance(5.0)) == ["b", "c"]
    stats = batch.stats()
    assert stats["answered"] == stats["requests"] == 3 and stats["window_s"] == pytest.approx(2.0)
    assert stats["tokens_served"] == pytest.approx(40)
    assert stats["efficiency"] == pytest.approx(40 / (30 * 2.0))  # 2 of 3 "halves": b / (b + h) = 2/3
    assert stats["slot_use"] == pytest.approx(1.0)
    assert stats["last_request_s"] == 0.0  # all three came at once


def test_simulated_batch_says_how_long_after_the_first_request_the_last_came():
    """What the benchmark reports as ``fed_s``: how fast a client filled the window."""
    batch = Batch(ServiceModel(pages_per_s=1.0, max_num_seqs=4, tokens_min=100, tokens_max=100, half_batch=1))
    assert batch.stats()["last_request_s"] is None  # nothing sent yet
    batch.arrive(2.0, "a", 100)
    batch.arrive(2.5, "b", 100)
    batch.arrive(7.0, "c", 100)
    assert batch.stats()["last_request_s"] == pytest.approx(5.0)
    batch.reset_stats(7.0)  # a new window while requests still run: none came in it yet
    assert batch.stats()["last_request_s"] is None


def test_benchmark_fed_time_runs_from_the_first_request_to_any_gpu_to_the_last():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import throughput

    servers = [{"window_start": 10.0, "last_request_s": 2.0}, {"window_start": 11.0, "last_request_s": 3.0},
               {"window_start": None, "last_request_s": None}]  # a server that was sent nothing
    assert throughput.fed_s(servers) == pytest.approx(4.0)  # from 10.0 to 14.0, not either server's own 2 or 3
    assert throughput.fed_s(servers[2:]) == 0.0


def test_simulated_perfect_client_with_a_full_window_beats_a_quarter_window():
    service = ServiceModel(pages_per_s=6.0, max_num_seqs=64)
    tokens = [service.tokens_for(seed) for seed in range(400)]
    full, quarter = simulate_client(service, tokens, 64), simulate_client(service, tokens, 16)
    assert full["answered"] == quarter["answered"] == 400
    assert full["max_active"] == 64 and quarter["max_active"] == 16 and full["max_waiting"] == 0
    assert full["tokens_served"] == pytest.approx(sum(tokens)) == quarter["tokens_served"]
    assert quarter["efficiency"] < full["efficiency"] <= 64 / 72
    assert full["efficiency"] > 0.8 and quarter["efficiency"] < 16 / 24
    # More than the GPU batches: the server queues the rest and is no faster than a full batch.
    over = simulate_client(service, tokens, 100)
    assert over["max_active"] == 64 and over["max_waiting"] == 36
    assert over["efficiency"] == pytest.approx(full["efficiency"], abs=0.01)


@pytest.mark.parametrize("tokens", [500, 1000, 1500])
def test_simulated_answer_is_lightonocr_markdown_of_the_drawn_length(tokens):
    markdown = markdown_of_length(42, tokens)
    assert markdown.startswith("Report ") and "\n# " in markdown
    assert tokens * 3.6 <= len(markdown) <= tokens * 3.6 + 1200
    assert markdown == markdown_of_length(42, tokens) != markdown_of_length(43, tokens)


def test_simulated_gpu_batches_at_most_max_num_seqs_and_queues_the_rest():
    # peak ~ 2,000 tokens/s: 12 pages of 100 tokens in about 0.6 s, 4 at a time.
    server = SimulatedVLLM(service=ServiceModel(pages_per_s=16.0, max_num_seqs=4, tokens_min=100, tokens_max=100,
                                                half_batch=1))

    from aiohttp.test_utils import TestClient, TestServer

    async def run():
        async with TestClient(TestServer(server.app())) as client:
            body = {"model": server.model, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}
            before = await (await client.get("/stats")).json()
            answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=dict(body, n=i))
                                             for i in range(12)))
            assert all(a.status == 200 for a in answers)
            payload = await answers[0].json()
            stats = await (await client.get("/stats")).json()
            await client.post("/stats/reset")
            after = await (await client.get("/stats")).json()
        return before, payload, stats, after

    before, payload, stats, after = asyncio.run(asyncio.wait_for(run(), 60))
    assert before["requests"] == 0 and before["efficiency"] is None
    assert payload["usage"]["completion_tokens"] == 100 and payload["choices"][0]["finish_reason"] == "stop"
    assert stats["requests"] == stats["answered"] == 12 and stats["running"] == stats["waiting"] == 0
    assert stats["max_active"] == 4 and stats["max_waiting"] >= 1  # 12 requests, 4 slots: the rest queued
    assert stats["tokens_served"] == pytest.approx(1200)
    # 4 of 5 "halves" at best (b / (b + h)); requests that arrive late (a loaded machine) only lower
    # them, so the bounds are ceilings: how full the batches were is max_active's to say.
    assert 0 < stats["efficiency"] <= 4 / 5 + 1e-9 and 0 < stats["slot_use"] <= 1.0
    assert stats["window_s"] >= 1200 / (stats["peak_tokens_per_s"] * 4 / 5) - 1e-6
    assert after["requests"] == 0 and after["tokens_served"] == 0


@pytest.mark.slow
def test_benchmark_quick_run_reports_every_figure(tmp_path):
    output = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--quick", "--work",
                           str(tmp_path / "work"), "--json", str(output), "--gpus", "1", "2",
                           "--gpu-pages-per-s", "60"],  # a fast simulated GPU: this checks figures, not speed
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    for setting in results["settings"].values():
        summary = setting["summary"]
        assert 0 < summary["efficiency"] <= 1 and summary["cpu_ms_per_page"] > 0
        assert setting["runs"][0]["pages"] == 20  # 12 scans + one 8-page PDF, none lost
        stages = setting["runs"][0]["cpu_ms_per_page"]
        assert all(stages[s] > 0 for s in ("render", "encode", "requests", "chunking", "upsert", "process"))
    two = results["settings"]["2 GPUs x 60 pages/s"]["runs"][0]
    assert len(two["pages_by_server"]) == 2 and min(two["pages_by_server"]) > 0
    assert results["alone"]["embed_chunks_per_s"] > 0 and results["alone"]["upsert_points_per_s"] > 0
    for line in ("efficiency", "CPU per page by stage", "OCR side (all but embedding)", "embedding alone"):
        assert line in done.stdout
