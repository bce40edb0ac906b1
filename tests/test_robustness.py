"""No page lost: every fault the test server injects, the ladder, the fallbacks, the cache."""

import socket
import threading
import time

import pytest
from fpdf import FPDF
from PIL import Image

from lightocr_ingest import LightOnOCRReader
from lightocr_ingest.errors import OCRServerError
from lightocr_ingest.pages import iter_file_pages
from lightocr_ingest.testing import FAULT_KINDS, FakeVLLMServer, FaultPlan

QUICK = {"ocr_engine": "vllm", "backoff_base_s": 0.01, "request_timeout_s": 0.5}


def read(server, path, **options):
    return LightOnOCRReader(ocr_url=server.url, **{**QUICK, **options}).load_data(path)


def clean_answer(path, page):
    with FakeVLLMServer() as server:
        return read(server, path, pages=str(page))[0].text


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_is_retried_until_the_true_page_comes_back(kind, pdf_dir):
    plan = FaultPlan(rate=1.0, kinds=(kind,), max_in_a_row=2, stall_s=1.5)
    with FakeVLLMServer(faults=plan) as server:
        [document] = read(server, pdf_dir / "report.pdf", pages="1")
    assert server.violations == []
    assert server.faults_injected == {kind: 2}
    assert document.ocr.status == "retried" and document.ocr.attempts == 3
    assert document.metadata["ocr_status"] == "ok"  # the same page: its hash does not depend on the retry
    assert document.text == clean_answer(pdf_dir / "report.pdf", 1)
    temperatures = [request.body["temperature"] for request in server.requests]
    if kind in ("loop", "length", "empty"):  # the answer was bad: climb the ladder
        assert temperatures == [0.2, 0.4, 0.6]
    else:  # the transport failed: ask again the same way
        assert temperatures == [0.2, 0.2, 0.2]


def test_retry_after_is_honoured(pdf_dir):
    plan = FaultPlan(rate=1.0, kinds=("http_429",), max_in_a_row=2, retry_after_s=0.6)
    with FakeVLLMServer(faults=plan) as server:
        started = time.monotonic()
        [document] = read(server, pdf_dir / "report.pdf", pages="1")
        waited = time.monotonic() - started
    assert document.ocr.status == "retried"
    assert waited >= 2 * 0.6  # two waits of the server's Retry-After, not the 0.01 s backoff


def test_a_page_that_always_loops_climbs_the_whole_ladder_and_keeps_the_best_attempt_trimmed(pdf_dir):
    plan = FaultPlan(rate=1.0, kinds=("loop",), max_in_a_row=99)
    with FakeVLLMServer(faults=plan) as server:
        [document] = read(server, pdf_dir / "report.pdf", pages="1")
    assert [r.body["temperature"] for r in server.requests] == [0.2, 0.4, 0.6, 0.8]
    meta = document.metadata
    assert document.ocr.status == "retried" and document.ocr.attempts == 4
    assert "repetition loop" in meta["ocr_warning"]
    assert document.text.count("| 0.00 | 0.00 | 0.00 |") == 1  # 300 copies in the answer, one kept
    true_page = clean_answer(pdf_dir / "report.pdf", 1)
    assert document.text.split("\n")[0] == true_page.split("\n")[0]


def test_a_server_that_keeps_failing_falls_back_to_the_pdf_text_layer(pdf_dir):
    plan = FaultPlan(rate=1.0, kinds=("http_500",), max_in_a_row=99)
    with FakeVLLMServer(faults=plan) as server:
        [document] = read(server, pdf_dir / "report.pdf", pages="2", max_retries=2)
    meta = document.metadata
    assert meta["ocr_status"] == "fallback_text_layer" and document.ocr.attempts == 3
    assert "HTTP 500" in meta["ocr_error"]
    assert "Quarterly Report on Water Quality 2" in document.text
    assert "phosphate rose after the heavy rains" in document.text


def page_image(pdf_dir, tmp_path, page=1):
    """A scan: the PDF page as a PNG, so there is no text layer to fall back on."""
    rendered = next(p for p in iter_file_pages(pdf_dir / "report.pdf", pages=str(page)))
    path = tmp_path / f"scan-{page}.png"
    path.write_bytes(rendered.png)
    return path


def test_a_scan_without_text_layer_falls_back_to_the_cpu_engine(pdf_dir, tmp_path):
    plan = FaultPlan(rate=1.0, kinds=("drop",), max_in_a_row=99)
    with FakeVLLMServer(faults=plan) as server:
        [document] = read(server, page_image(pdf_dir, tmp_path), max_retries=1)
    meta = document.metadata
    assert meta["ocr_status"] == "fallback_cpu" and meta["ocr_engine"] == "cpu" and document.ocr.attempts == 2
    assert "connection failed" in meta["ocr_error"]
    assert "monitoring network" in document.text


def test_with_every_fallback_off_the_page_is_failed_and_says_why(pdf_dir, tmp_path):
    plan = FaultPlan(rate=1.0, kinds=("empty",), max_in_a_row=99)
    with FakeVLLMServer(faults=plan) as server:
        [document] = read(server, page_image(pdf_dir, tmp_path), fallbacks=())
    meta = document.metadata
    assert meta["ocr_status"] == "failed" and document.text == ""
    assert meta["ocr_error"].count("empty answer") == 4


def test_the_page_deadline_bounds_a_server_that_stalls(pdf_dir):
    plan = FaultPlan(rate=1.0, kinds=("stall",), max_in_a_row=99, stall_s=60)
    with FakeVLLMServer(faults=plan) as server:
        [document] = read(server, pdf_dir / "report.pdf", pages="1", max_retries=50, page_deadline_s=1.5)
    meta = document.metadata
    assert meta["ocr_status"] == "fallback_text_layer"
    assert "deadline of 1.5 s passed" in meta["ocr_error"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_down_at_start_is_a_clear_error_after_a_bounded_wait(pdf_dir):
    reader = LightOnOCRReader(ocr_engine="vllm", ocr_url=f"http://127.0.0.1:{free_port()}/v1", wait_for_server_s=1)
    with pytest.raises(OCRServerError) as info:
        reader.load_data(pdf_dir / "report.pdf")
    message = str(info.value)
    assert "no OCR server answered" in message and "waited 1 s" in message and "vllm serve" in message


def test_waiting_for_a_server_that_is_still_loading(pdf_dir):
    port = free_port()
    server = FakeVLLMServer(port=port)
    starting = threading.Timer(1.0, server.start)
    starting.start()
    try:
        reader = LightOnOCRReader(ocr_engine="vllm", ocr_url=f"http://127.0.0.1:{port}/v1", wait_for_server_s=20)
        documents = reader.load_data(pdf_dir / "report.pdf")
    finally:
        starting.join()  # stopped only once its start has returned (a join, not a pause)
        server.stop()
    assert [d.metadata["ocr_status"] for d in documents] == ["ok"] * 3


def test_a_server_restart_mid_read_loses_nothing(pdf_dir):
    plan = FaultPlan(rate=0.0, restart_after=2, restart_down_s=0.5)
    with FakeVLLMServer(faults=plan, latency_s=0.3) as server:
        documents = read(server, pdf_dir / "report.pdf", max_in_flight=3, backoff_base_s=0.2)
    assert server.restarts == 1
    assert [d.ocr.status for d in documents].count("retried") >= 1
    assert all(d.ocr.status in ("ok", "retried") and d.metadata["ocr_status"] == "ok" for d in documents)
    assert [d.text for d in documents] == [clean_answer(pdf_dir / "report.pdf", p) for p in (1, 2, 3)]


def test_an_empty_answer_for_a_blank_page_is_right_the_first_time(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (1000, 1400), "white").save(path)
    with FakeVLLMServer(responder=lambda request: "") as server:
        [document] = read(server, path)
    assert document.metadata["ocr_status"] == "ok" and len(server.requests) == 1 and document.text == ""


# --- the OCR cache ------------------------------------------------------------------------
def test_cached_pages_are_never_sent_again_unless_sampling_changes(pdf_dir, tmp_path):
    cache = tmp_path / "cache"
    with FakeVLLMServer() as server:
        first = read(server, pdf_dir / "report.pdf", cache_dir=str(cache))
        assert len(server.requests) == 3
        second = read(server, pdf_dir / "report.pdf", cache_dir=str(cache))
        assert len(server.requests) == 3
        assert [d.text for d in second] == [d.text for d in first]
        assert [d.layout.figures for d in second] == [d.layout.figures for d in first]
        assert all(d.ocr.cached for d in second) and not any(d.ocr.cached for d in first)
    with FakeVLLMServer(expect_sampling={"top_p": 0.9, "max_tokens": 2048}) as server:
        read(server, pdf_dir / "report.pdf", cache_dir=str(cache), max_tokens=2048)
        assert len(server.requests) == 3  # other sampling, other answers: read again


def twin_pdfs(folder):
    """Two files with different bytes (titles) whose pages look exactly the same."""
    paths = []
    for name in ("a", "b"):
        pdf = FPDF(format="A4")
        pdf.set_title(f"copy {name}")
        for number in (1, 2):
            pdf.add_page()
            pdf.set_font("Helvetica", size=14)
            pdf.cell(0, 10, f"Shared cover sheet, page {number}")
        pdf.output(str(folder / f"{name}.pdf"))
        paths.append(folder / f"{name}.pdf")
    return paths


def test_the_same_page_in_several_files_is_read_once(tmp_path):
    a, b = twin_pdfs(tmp_path)
    assert a.read_bytes() != b.read_bytes()
    with FakeVLLMServer(latency_s=0.3) as server:  # slow enough that both files are in flight together
        documents = LightOnOCRReader(ocr_url=server.url, **QUICK).load_data([a, b])
    assert len(documents) == 4 and len(server.requests) == 2
    assert [d.text for d in documents[:2]] == [d.text for d in documents[2:]]
    assert [d.ocr.cached for d in documents] == [False, False, True, True]


def test_a_request_that_times_out_says_so(pdf_dir, tmp_path):
    """The transport reports a dropped connection as a connect timeout too (the test above: it
    must say "connection failed"); a server that does not answer in time must say "timed out"."""
    plan = FaultPlan(rate=1.0, kinds=("stall",), max_in_a_row=99, stall_s=3.0)
    with FakeVLLMServer(faults=plan) as server:
        [stalled] = read(server, page_image(pdf_dir, tmp_path), max_retries=0, request_timeout_s=0.5, fallbacks=())
    assert stalled.metadata["ocr_status"] == "failed" and "last: request timed out" in stalled.metadata["ocr_error"]


def _chained(error: BaseException, *causes: BaseException) -> BaseException:
    """``error`` raised from the first cause, raised from the next, and so on (as transports chain them)."""
    for outer, inner in zip((error, *causes), causes):
        outer.__cause__ = inner
    return error


def test_describe_tells_a_timeout_from_a_broken_connection_by_the_first_cause():
    import asyncio

    import httpx
    import openai

    from lightocr_ingest.ocr.retry import describe

    # A real request: openai 3 reads it when the error is built (``request=None`` fails there)
    request = httpx.Request("POST", "http://127.0.0.1:8000/v1/chat/completions")
    # aiohttp's adapter: a dropped connection comes as a connect timeout, caused by the real error
    dropped = _chained(openai.APITimeoutError(request=request), OSError("ConnectTimeout"), ConnectionResetError())
    read_timeout = _chained(openai.APITimeoutError(request=request), OSError("ReadTimeout"), asyncio.TimeoutError())
    socket_timeout = _chained(openai.APITimeoutError(request=request), type("SocketTimeoutError", (OSError,), {})())
    refused = _chained(openai.APIConnectionError(request=request), ConnectionRefusedError())
    assert describe(dropped) == "connection failed (ConnectionResetError)"
    assert describe(read_timeout) == "request timed out"
    assert describe(socket_timeout) == "request timed out"
    assert describe(openai.APITimeoutError(request=request)) == "request timed out"  # no cause: take its word
    assert describe(refused) == "connection failed (ConnectionRefusedError)"
