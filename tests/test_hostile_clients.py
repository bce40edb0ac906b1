"""The service against hostile or careless clients, over loopback only, each case bounded in count
and time: what one key holder must not be able to do to the machine.

- Thousands of distinct collection names leave no state behind (memory stays within a bound).
- Limits hold per request, not per file: pages of all files together, files, decoded pixels a
  page (a 400-megapixel PNG of 0.44 MB is refused before anything decodes it) and in flight.
- Back-pressure is honest: the CPU engine admits one OCR request at a time, a request whose wait
  would pass the bound is told at once (429) when to come back, from the pages ahead and the
  measured time a page, and one still waiting at the bound gets a 503, never a silent wait.
- Nothing is left behind: a job running at shutdown stops at its next page and is recorded as
  interrupted, its uploads deleted; job records answer after a restart; what a crash left (uploads,
  running jobs) is cleaned up or marked at the next start.
- Defence in depth on the wire: security headers, /docs from the package, no key in the access
  log, half-sent requests dropped, and errors that say in words what a file is.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed: pip install 'lightocr-ingest[service]'")
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from lightocr_ingest.service import create_app  # noqa: E402
from lightocr_ingest.service.errors import ServiceError  # noqa: E402
from lightocr_ingest.service.slots import OcrSlots, PageMeter, Workload  # noqa: E402
from lightocr_ingest.service.state import INGESTORS_KEPT  # noqa: E402
from lightocr_ingest.testing import FakeVLLMServer  # noqa: E402

from .conftest import service_settings, until, until_async  # noqa: E402
from .documents import one_column_pdf  # noqa: E402
from .test_http_service import error_of  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def png(side: int = 400, text: str = "Delivery note 1234") -> bytes:
    image = Image.new("L", (side, side), 255)
    ImageDraw.Draw(image).text((20, 20), text, fill=0)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def huge_blank_png(width: int, height: int) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` white pixels, compressed row by row (a 20,000 x
    19,999 one is 0.44 MB; the probe's, 76 kB, was compressed harder) and never decoded here."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row, parts = zlib.compressobj(9), b"\x00" + b"\xff" * width, []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------ memory per collection name

def test_thousands_of_distinct_collection_names_leave_no_state_behind(tmp_path):
    """The probe: 20,000 queries for unknown names grew the process by 160 MB for good. Now a name
    that does not exist is resolved and forgotten: 3,000 more names after a warm-up leave the
    process within 15 MB (they cost 8 kB each before: 24 MB), and nothing is kept per name."""
    with TestClient(create_app(service_settings(tmp_path))) as client:
        service = client.app.state.service

        def ask(start: int, count: int) -> set[int]:
            codes = set()
            for n in range(start, start + count):
                codes.add(client.post("/v1/query", json={"text": "x", "collection": f"nope-{n}"}).status_code)
                if n % 10 == 0:
                    codes.add(client.get("/v1/documents", params={"collection": f"nope-{n}"}).status_code)
            return codes

        warm = ask(0, 400)
        before = rss_mb()
        codes = ask(400, 3000)
        grown = rss_mb() - before
        assert warm == codes and 404 in codes and codes <= {404, 200}, codes
        assert grown < 15, f"RSS grew {grown:.1f} MB over 3,000 unknown collection names"
        assert len(service.ingestors) == 0  # searches and listings make no ingestor

        for n in range(INGESTORS_KEPT + 5):  # jobs for many collections: a bounded cache of ingestors
            service.ingestor_for(f"jobs-{n}")
        assert list(service.ingestors) == [f"jobs-{n}" for n in range(5, INGESTORS_KEPT + 5)]


# ------------------------------------------------------------------------ budgets per request

def test_pages_and_files_are_limited_per_request_not_per_file(tmp_path):
    """Three files of two pages each are within a per-file limit of 5 and over the request's: the
    request is refused (413) before a job exists, and its uploads are gone."""
    files = []
    for n in range(3):
        path = one_column_pdf(tmp_path / f"r{n}.pdf", pages=2, title=f"Report {n}")
        files.append(("file", (path.name, path.read_bytes(), "application/pdf")))
    with TestClient(create_app(service_settings(tmp_path, max_pages=5, max_files=3))) as client:
        uploads = client.app.state.service.upload_root
        response = client.post("/v1/ingest", files=files)
        assert response.status_code == 413, response.text
        error = error_of(response)
        assert error["code"] == "too_many_pages" and "6 pages" in error["message"] and "a request" in error["message"]
        assert "--max-pages" in error["suggestion"]

        response = client.post("/v1/ingest", files=files + [("file", ("extra.png", png(), "image/png"))])
        assert response.status_code == 413 and error_of(response)["code"] == "too_many_files"
        assert "4 files" in error_of(response)["message"]

        response = client.post("/v1/ingest", files=files[:2])  # 4 pages: within the request's 5
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("queued", "running"), 300,
              "the job of 4 pages ends")
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "done"
        assert list(uploads.iterdir()) == []  # refused requests and the finished job left nothing


def test_a_small_png_of_400_megapixels_is_refused_before_it_is_decoded(tmp_path):
    bomb = huge_blank_png(20_000, 19_999)
    assert len(bomb) < 500_000
    with TestClient(create_app(service_settings(tmp_path))) as client:
        before = rss_mb()
        for route, data in (("/v1/ocr", {}), ("/v1/ingest", {})):
            response = client.post(route, files={"file": ("poster.png", bomb, "image/png")}, data=data)
            assert response.status_code == 413, response.text
            error = error_of(response)
            assert error["code"] == "too_many_pixels"
            assert error["message"].startswith("poster.png: 400 megapixels") and "limit of 50" in error["message"]
        assert rss_mb() - before < 100  # decoded, it would take 400 MB as grey and 1.2 GB as RGB


def test_the_pixel_budget_in_flight_is_shared_and_answers_429_when_full(tmp_path):
    with TestClient(create_app(service_settings(tmp_path, max_page_megapixels=1, max_decode_megapixels=1))) as client:
        service = client.app.state.service
        assert service.pixels.try_take(900_000)  # a request being read holds 0.9 of the 1 MP
        try:
            response = client.post("/v1/ocr", files={"file": ("scan.png", png(400), "image/png")})
            assert response.status_code == 429, response.text
            assert "megapixels in flight" in error_of(response)["message"]
            assert int(response.headers["Retry-After"]) >= 1
        finally:
            client.portal.call(service.pixels.give_back, 900_000)
        response = client.post("/v1/ocr", files={"file": ("scan.png", png(400), "image/png")})
        assert response.status_code == 200, response.text
        assert service.pixels.used == 0  # given back after the answer


DECODE_BYTES_A_PIXEL = 6  # the most a page's decode holds, per pixel (measured: 16-bit grey, 5.6)


@pytest.mark.parametrize("mode", ["I;16", "RGB", "RGBA", "P"])
def test_the_worst_page_within_the_limit_costs_what_the_docs_say(tmp_path, mode):
    """A page just under 30 megapixels in the most expensive modes is decoded (in a fresh process,
    peak memory from the kernel's high-water mark) within 6 bytes a pixel: the figure the service's
    limits table states. 16-bit grey took 24 bytes a pixel (three float64 copies) before."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("the kernel's peak-memory reset (/proc/self/clear_refs) is not available here")
    side = 5470  # 29.9 MP
    image = Image.new("RGB", (side, side), "white")
    ImageDraw.Draw(image).text((100, 100), "Delivery note", fill="black")
    (image.convert(mode) if mode != "RGB" else image).save(tmp_path / "page.png")
    probe = f"""
import sys
from lightocr_ingest.pages import DocumentSource
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(key))
with DocumentSource({str(tmp_path / 'page.png')!r}) as source:
    before = status('VmRSS')
    open('/proc/self/clear_refs', 'w').write('5')
    page = source.render_page(1)
    print(status('VmHWM') - before, page.image_width if hasattr(page, 'image_width') else 0)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    peak = int(result.stdout.split()[0])
    assert peak < DECODE_BYTES_A_PIXEL * side * side, f"{mode}: {peak / side / side:.1f} bytes a pixel"


# ------------------------------------------------------------------------ honest back-pressure

def run(coroutine):
    return asyncio.run(coroutine)


class Gauge:
    def set(self, value):
        self.value = value


def slots_with(seconds_a_page: float, concurrency: int = 1, queue_size: int = 16, max_wait_s: float = 30.0):
    meter = PageMeter(seconds_a_page)
    return OcrSlots(concurrency, queue_size, max_wait_s, Workload(meter), Gauge())


def test_retry_after_is_the_work_ahead_at_the_measured_rate():
    async def scenario():
        slots = slots_with(seconds_a_page=5.0)
        holding = slots.hold(4)  # one request of 4 pages being read: 20 s of work
        await holding.__aenter__()
        assert slots.refusal() is None  # a request now would wait 20 s: within the 30 s bound
        waiting = asyncio.ensure_future(slots.hold(3).__aenter__())  # it waits, with 3 pages
        await asyncio.sleep(0)
        assert slots.workload.pages_ahead() == 7
        refused = slots.refusal()  # 35 s ahead: past the bound
        assert refused is not None and refused.status == 429
        assert refused.headers["Retry-After"] == str(7 * 5 - 30)  # back when the work ahead is within the bound
        # The next refused is told to come back after the first (whose page is then ahead of it):
        # a burst is spread out, each told when it would be admitted.
        assert slots.refusal(2).headers["Retry-After"] == str(7 * 5 + 1 * 5 - 30)
        assert slots.refusal(1).headers["Retry-After"] == str(7 * 5 + 3 * 5 - 30)
        waiting.cancel()
        await holding.__aexit__(None, None, None)
    run(scenario())


def test_retry_after_follows_the_measured_time_a_page_not_a_constant():
    now = [100.0]
    meter = PageMeter(default_s=5.0, clock=lambda: now[0])
    assert meter.seconds_a_page() == 5.0  # nothing measured yet: the engine's prior
    meter.work_began()
    now[0] += 40.0
    meter.page_done()  # the process's first page (it loaded the models): not a sample
    assert meter.seconds_a_page() == 5.0
    for seconds in (0.5, 0.7, 0.6, 0.9, 0.4):
        now[0] += seconds
        meter.page_done()  # a fast engine
    assert meter.seconds_a_page() == pytest.approx(0.6)  # the median of the pages' times
    now[0] += 0.01
    meter.page_done(measured=False)  # an OCR cache hit: not the engine's time
    assert meter.seconds_a_page() == pytest.approx(0.6)
    meter.work_ended()
    now[0] += 3600.0  # idle: not the engine's time either
    meter.work_began()
    now[0] += 0.6
    meter.page_done()
    assert meter.seconds_a_page() == pytest.approx(0.6)


def test_a_full_queue_is_told_when_a_place_frees():
    async def scenario():
        slots = slots_with(seconds_a_page=2.0, queue_size=1)
        first = slots.hold(3)
        await first.__aenter__()
        second = asyncio.ensure_future(slots.hold(1).__aenter__())
        await asyncio.sleep(0)
        refused = slots.refusal()
        assert refused is not None and refused.status == 429
        assert refused.headers["Retry-After"] == "6"  # the request being read has 3 pages of 2 s
        assert slots.refusal(1).headers["Retry-After"] == "8"  # and after the one told 6 s, with its page
        second.cancel()
        await first.__aexit__(None, None, None)
    run(scenario())


def test_a_request_still_waiting_at_the_bound_gets_503_with_retry_after():
    async def scenario():
        slots = slots_with(seconds_a_page=0.01, max_wait_s=0.2)  # estimated: no wait; in fact the slot is held
        first = slots.hold(1)
        await first.__aenter__()
        with pytest.raises(ServiceError) as caught:
            async with slots.hold(1):
                pass
        await first.__aexit__(None, None, None)
        return caught.value
    error = run(scenario())
    assert error.status == 503 and int(error.headers["Retry-After"]) >= 1
    assert "no turn within 0.2 s" in error.message


def test_a_running_job_is_not_ahead_of_an_ocr_request_but_shares_the_engine_with_it():
    """A 500-page job running and one OCR page being read: a new request waits for that page (read
    at half the engine's rate beside the job), not for the job's 500 pages."""
    async def scenario():
        slots = slots_with(seconds_a_page=3.0)
        with slots.workload.admitted(500, job=True):
            reading = slots.hold(1)
            await reading.__aenter__()
            assert slots.workload.seconds_ahead() == 1 * 2 * 3.0
            assert slots.refusal(1) is None  # 6 s ahead: within the 30 s bound
            assert slots.workload.seconds_until_the_job_ends() == 500 * 2 * 3.0
            await reading.__aexit__(None, None, None)
    run(scenario())


def test_the_cpu_engine_admits_one_ocr_request_at_a_time_whatever_concurrency_says(tmp_path):
    with TestClient(create_app(service_settings(tmp_path, concurrency=8))) as client:
        limits = client.get("/readyz").json()["limits"]
        assert limits["concurrency"] == 1 and limits["engine"] == "cpu"
        assert client.app.state.service.ocr_slots.semaphore._value == 1


def test_a_burst_past_the_requests_read_and_waiting_is_refused_at_once_and_told_when(tmp_path):
    """Two pages being read (the GPU holds them) and three waiting for a turn: the other 15 of a
    burst of 20 are refused at once, 429 with a Retry-After of at least 1 s; once the GPU answers,
    the five admitted get their 200. The GPU answers when the test says so and the five go in one
    after another (events, not timing): sent all at once, which of them are refused depends on
    when each arrives (a loaded machine's run saw waits run out, 503, and no 429). A wait running
    out is ``test_a_request_still_waiting_at_the_bound_gets_503_with_retry_after``'s."""
    import httpx

    from .test_http_service import running_server

    with FakeVLLMServer() as gpu:
        gpu.hold = lambda request: True
        app = create_app(service_settings(tmp_path, gpu.url, concurrency=2, queue_size=3, max_queue_wait_s=120))
        with running_server(app) as base:
            slots = app.state.service.ocr_slots

            async def burst():
                async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                    def send(n):
                        return asyncio.ensure_future(client.post(
                            "/v1/ocr", files={"file": (f"n{n}.png", png(300, f"note {n}"), "image/png")}))

                    def answers(sent):  # an early refusal says why the test stopped
                        return [t.result().text for t in sent if t.done()]

                    admitted = []  # one at a time: two reach the GPU, three wait for a turn
                    for n, (condition, what) in enumerate([
                            (lambda: len(gpu.requests) == 1, "1st at the GPU"),
                            (lambda: len(gpu.requests) == 2, "2nd at the GPU"),
                            (lambda: slots.waiting == 1, "3rd waiting"), (lambda: slots.waiting == 2, "4th waiting"),
                            (lambda: slots.waiting == 3, "5th waiting")]):
                        admitted.append(send(n))
                        await until_async(condition, 60, lambda: f"{what}, answered: {answers(admitted)}")
                    refused = await asyncio.gather(*(send(n) for n in range(5, 20)))
                    gpu.released.set()
                    return await asyncio.gather(*admitted), refused
            admitted, refused = asyncio.run(burst())
    assert [r.status_code for r in admitted] == [200] * 5
    assert [r.status_code for r in refused] == [429] * 15
    for response in refused:
        assert int(response.headers["Retry-After"]) >= 1 and error_of(response)["code"] == "overloaded"


# ------------------------------------------------------------------------ nothing left behind

def test_a_job_running_at_shutdown_is_interrupted_at_its_next_page_and_its_record_survives(tmp_path):
    gate = threading.Event()

    def held_page(request):  # the GPU answers only once the test lets it
        gate.wait(60)
        from lightocr_ingest.testing.vllm_server import lightonocr_style_page
        return lightonocr_style_page(request.image_sha256)

    pdf = one_column_pdf(tmp_path / "long.pdf", pages=6, title="Long report")
    opener_saw: list = []
    with FakeVLLMServer(responder=held_page) as gpu:
        settings = service_settings(tmp_path, gpu.url, shutdown_grace_s=0.2)
        client = TestClient(create_app(settings))
        client.__enter__()
        try:
            service = client.app.state.service
            response = client.post("/v1/ingest", files={"file": ("long.pdf", pdf.read_bytes(), "application/pdf")})
            assert response.status_code == 202
            job_id = response.json()["job_id"]
            until(lambda: len(gpu.requests) >= 1, 120, "the job's first page reaches the GPU")
            uploads = service.upload_root
            assert any(uploads.iterdir())  # the job's uploads, while it runs

            def open_when_told_to_stop():  # the GPU answers once the service has told the job to stop
                opener_saw.append(service.runner._stop.wait(60))
                gate.set()

            opener = threading.Thread(target=open_when_told_to_stop)
            opener.start()
        finally:
            client.__exit__(None, None, None)  # the lifespan's shutdown: SIGTERM under uvicorn
            gate.set()
        opener.join(60)
    assert opener_saw == [True]  # it was stopped (the grace period passed), not left to finish
    assert not uploads.exists()

    with TestClient(create_app(settings)) as restarted:  # job records answer after a restart
        job = restarted.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "interrupted"
        assert any("submit the same files again" in p for p in job["problems"])
        assert job["pages_seen"] < 6


def test_what_a_crash_left_is_cleaned_up_or_marked_at_the_next_start(tmp_path):
    """An instance killed with SIGKILL leaves its uploads and a running job: the next start removes
    the one and marks the other interrupted (the dead instance's lock is free: the kernel let it go)."""
    settings = service_settings(tmp_path)
    state = settings.state_folder
    with TestClient(create_app(settings)):
        pass  # makes the state folder and the job store
    killed = subprocess.run([sys.executable, "-c", f"""
import os
from pathlib import Path
from lightocr_ingest.service.job_store import Instance, JobStore
instance = Instance(Path({str(state)!r}))
uploads = Path({str(state / 'uploads')!r}) / (instance.id + "-abc123")
uploads.mkdir(parents=True)
(uploads / "00000.pdf").write_bytes(b"%PDF-1.7 an upload of a killed service")
JobStore(Path({str(state)!r}), 10, instance).save("killed", 1.0, False, {{"job_id": "killed", "status": "running",
    "collection": "svc", "pages_total": 4, "pages_seen": 1, "pages_ingested": 1, "pages_failed": 0,
    "files": [{{"file_name": "a.pdf", "status": "running", "pages": 1, "error": None}}], "problems": [],
    "created": 1.0}})
print(uploads)
os.kill(os.getpid(), 9)
"""], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    left = Path(killed.stdout.strip())
    assert left.is_dir()
    with TestClient(create_app(settings)) as client:
        assert not left.exists()
        job = client.get("/v1/jobs/killed").json()
        assert job["status"] == "interrupted" and job["files"][0]["status"] == "interrupted"
        assert any("submit the same files again" in p for p in job["problems"])


def test_an_instance_running_beside_keeps_its_uploads_and_jobs(tmp_path):
    """Two services sharing a state folder (two containers, where pids mean nothing to each other):
    the one starting second removes nothing of the one running."""
    state = tmp_path / "shared-state"
    first = TestClient(create_app(service_settings(tmp_path / "a", state_dir=state)))
    first.__enter__()
    try:
        service = first.app.state.service
        (service.upload_root / "00000.png").write_bytes(png())
        service.jobs_store.save("running-beside", 1.0, False, {"job_id": "running-beside", "status": "running",
                                                                "files": [], "problems": []})
        with TestClient(create_app(service_settings(tmp_path / "b", state_dir=state))) as second:
            assert (service.upload_root / "00000.png").exists()
            assert second.get("/v1/jobs/running-beside").json()["status"] == "running"
    finally:
        first.__exit__(None, None, None)


def test_finished_jobs_answer_after_a_restart(tmp_path):
    with TestClient(create_app(service_settings(tmp_path))) as client:
        job_id = client.post("/v1/ingest", files={"file": ("note.png", png(), "image/png")}).json()["job_id"]
        until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("queued", "running"), 300,
              "the job ends")
        finished = client.get(f"/v1/jobs/{job_id}").json()
    with TestClient(create_app(service_settings(tmp_path))) as client:
        assert client.get(f"/v1/jobs/{job_id}").json() == finished
        assert client.get("/v1/jobs/" + "0" * 32).status_code == 404


# ------------------------------------------------------------------------ the wire

def test_every_answer_carries_the_browser_security_headers(tmp_path):
    with TestClient(create_app(service_settings(tmp_path))) as client:
        for path in ("/", "/docs", "/healthz", "/v1/jobs/nope", "/openapi.json", "/static/app.js"):
            headers = client.get(path).headers
            csp = headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
            assert "unsafe" not in csp  # no inline script or style anywhere, /docs included


def test_the_api_docs_page_loads_nothing_from_another_origin(tmp_path):
    import re

    with TestClient(create_app(service_settings(tmp_path))) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text), page.text
        for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text):
            assert client.get("/" + asset).status_code == 200, asset  # all served by the service itself


def test_a_key_in_the_query_string_never_reaches_the_access_log(tmp_path):
    import httpx

    from lightocr_ingest.service.server import server_config

    import uvicorn

    settings = service_settings(tmp_path, api_key="k-header-only")
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    keep = Keep()
    server = uvicorn.Server(server_config(create_app(settings), settings, "127.0.0.1", 0, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, 120, "uvicorn starts")
    logging.getLogger("uvicorn.access").addHandler(keep)
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        response = httpx.get(f"http://127.0.0.1:{port}/v1/jobs/x?api_key=SeCrEt-in-url&Token=t0k&page=2")
        assert response.status_code == 401
    finally:
        server.should_exit = True
        thread.join(30)
        logging.getLogger("uvicorn.access").removeHandler(keep)
    logged = "\n".join(lines)
    assert "/v1/jobs/x?api_key=[redacted]&Token=[redacted]&page=2" in logged, logged
    assert "SeCrEt" not in logged and "t0k" not in logged


@pytest.mark.parametrize("target, expected", [
    ("/v1/ocr", "/v1/ocr"),
    ("/v1/ocr?page=2", "/v1/ocr?page=2"),
    ("/v1/ocr?a=1;api_key=S&b=2", "/v1/ocr?a=1;api_key=[redacted]&b=2"),
    ("/v1/ocr?api_k%65y=S", "/v1/ocr?api_k%65y=[redacted]"),
    ("/x?X-Amz-Signature=S&pwd=S&session=S&access_token", "/x?X-Amz-Signature=[redacted]&pwd=[redacted]"
                                                          "&session=[redacted]&access_token=[redacted]"),
])
def test_secret_query_parameters_are_redacted(target, expected):
    from lightocr_ingest.service.server import redact

    assert redact(target) == expected


def test_half_sent_requests_are_dropped_after_the_header_timeout(tmp_path):
    import uvicorn

    from lightocr_ingest.service.server import server_config

    settings = service_settings(tmp_path, header_timeout_s=0.5)
    server = uvicorn.Server(server_config(create_app(settings), settings, "127.0.0.1", 0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, 120, "uvicorn starts")
    port = server.servers[0].sockets[0].getsockname()[1]
    sockets = []
    try:
        for n in range(20):  # half a request head each, then nothing
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" if n % 2 else b"")
            connection.settimeout(30)
            sockets.append(connection)
        closed = [connection.recv(1) == b"" for connection in sockets]
        assert all(closed), f"{closed.count(False)} of 20 half-sent requests still open"
        with socket.create_connection(("127.0.0.1", port)) as whole:  # a whole request is still served
            whole.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            whole.settimeout(30)
            assert whole.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for connection in sockets:
            connection.close()
        server.should_exit = True
        thread.join(30)


def test_a_zip_named_png_is_refused_in_words(tmp_path):
    archive = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("word/document.xml", "<w:document/>")
    with TestClient(create_app(service_settings(tmp_path))) as client:
        response = client.post("/v1/ocr", files={"file": ("scan.png", archive.getvalue(), "image/png")})
    assert response.status_code == 422
    message = error_of(response)["message"]
    assert message.startswith("scan.png: ") and "ZIP archive" in message and "object at 0x" not in message


def test_a_client_that_leaves_mid_stream_gives_back_its_turn_and_its_upload(tmp_path):
    import httpx

    from .test_http_service import running_server

    pdf = one_column_pdf(tmp_path / "four.pdf", pages=4, title="Four pages")
    with FakeVLLMServer(latency_s=0.5) as slow:
        app = create_app(service_settings(tmp_path, slow.url, concurrency=1))
        service = app.state.service
        with running_server(app) as base:
            with httpx.Client(base_url=base, timeout=60) as client:
                with client.stream("POST", "/v1/ocr", data={"stream": "true"},
                                   files={"file": ("four.pdf", pdf.read_bytes(), "application/pdf")}) as answer:
                    first = next(answer.iter_lines())
                    assert json.loads(first)["file"]["page_count"] == 4
                    assert service.ocr_slots.semaphore.locked()  # its turn, while it reads
                # The client has gone (the connection closed) before the pages were read.
            until(lambda: not service.ocr_slots.semaphore.locked() and service.pixels.used == 0
                  and not any(service.upload_root.iterdir()), 60, "the turn and the upload given back")
            with httpx.Client(base_url=base, timeout=60) as client:  # and the next request is served
                response = client.post("/v1/ocr", files={"file": ("note.png", png(), "image/png")})
                assert response.status_code == 200


def test_a_body_that_stalls_is_refused_with_408(tmp_path):
    import uvicorn

    from lightocr_ingest.service.server import server_config

    settings = service_settings(tmp_path, body_idle_s=0.5)
    server = uvicorn.Server(server_config(create_app(settings), settings, "127.0.0.1", 0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, 120, "uvicorn starts")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                               b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"")
            connection.settimeout(30)
            answer = b""
            while chunk := connection.recv(4096):  # the answer, then the close
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b'"body_stalled"' in answer, answer[:300]
    finally:
        server.should_exit = True
        thread.join(30)


def test_request_bodies_in_flight_are_budgeted_across_requests(tmp_path):
    """One client holding a large body open takes its share of the uploads in flight: another body
    that would pass the budget is refused at once (429, Retry-After), not parsed into memory."""
    import uvicorn

    from lightocr_ingest.service.server import server_config

    settings = service_settings(tmp_path, max_upload_mb=1, max_uploads_in_flight_mb=1)
    server = uvicorn.Server(server_config(create_app(settings), settings, "127.0.0.1", 0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, 120, "uvicorn starts")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port)) as holding:
            holding.sendall(b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                            b"Content-Length: 900000\r\n\r\n--b\r\n")  # 0.86 MB declared, a few bytes sent
            import httpx

            big = png() + b"\0" * 300_000  # 0.3 MB: with the held 0.86 MB, over the 1 MB in flight

            def second() -> httpx.Response:
                return httpx.post(f"http://127.0.0.1:{port}/v1/ocr", timeout=30,
                                  files={"file": ("note.png", big, "image/png")})

            until(lambda: second().status_code == 429, 30, "the second body refused while the first is held")
            response = second()
            assert error_of(response)["code"] == "overloaded" and "MB being received" in error_of(response)["message"]
            assert int(response.headers["Retry-After"]) >= 1
        until(lambda: second().status_code != 429, 60, "the budget given back when the first client goes")
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_flood_that_ignores_retry_after_cannot_push_it_past_its_ceiling():
    from lightocr_ingest.service.slots import MAX_RETRY_AFTER_S, MAX_TOLD

    async def scenario():
        slots = slots_with(seconds_a_page=5.0, queue_size=0)
        held = slots.hold(20)
        await held.__aenter__()
        waits = [int(slots.refusal(1).headers["Retry-After"]) for _ in range(3000)]
        await held.__aexit__(None, None, None)
        return slots, waits
    slots, waits = run(scenario())
    assert waits == sorted(waits) and waits[0] == 100  # the first: the 20 pages being read
    assert max(waits) <= MAX_RETRY_AFTER_S and len(slots._told) <= MAX_TOLD


def test_a_newcomer_does_not_overtake_clients_told_to_come_back():
    async def scenario():
        slots = slots_with(seconds_a_page=4.0)
        reading = slots.hold(8)  # 32 s of work: past the 30 s bound
        await reading.__aenter__()
        first = slots.refusal(1)
        assert first is not None and first.headers["Retry-After"] == "2"
        reading_ticket = next(iter(slots._working))
        with slots.workload._lock:
            reading_ticket.remaining = 7  # a page read: 28 s ahead, within the bound on its own
        refused = slots.refusal(1)  # but the client told to come back first is ahead of it
        # 28 s + the first's page (4 s) is 2 s past the bound: both are back within it in 2 s.
        assert refused is not None and refused.headers["Retry-After"] == "2"
        await reading.__aexit__(None, None, None)
    run(scenario())


def test_a_stream_whose_client_takes_nothing_gives_back_its_turn_and_ends(monkeypatch):
    """The real streaming answer, driven as uvicorn would, with a client that takes the first line
    and then nothing: the reading stops within the slow-reader bound, the turn goes back, the answer
    ends and its clean-up runs (before: the slot was held for as long as the client kept still)."""
    from lightocr_ingest.service.routes import ocr as route

    monkeypatch.setattr(route, "SLOW_READER_S", 0.3)
    monkeypatch.setattr(route, "STREAM_LINES_AHEAD", 1)
    read = []

    async def endless_pages(*args, **kwargs):
        for page in range(1, 10_000):
            read.append(page)
            yield {"page": {"page": page, "markdown": "x" * 100}}
            await asyncio.sleep(0)

    monkeypatch.setattr(route, "_ocr_events", endless_pages)

    class FakeTurn:
        ticket, released = None, 0

        async def release(self):
            self.released += 1

    async def scenario():
        turn, cleaned = FakeTurn(), []

        async def clean_up():
            cleaned.append(True)

        response = route._ocr_stream(None, Path("x"), None, turn, clean_up, "x.pdf", None, False, False, False, "r1")
        sent = []
        never = asyncio.Event()

        async def send(message):
            sent.append(message)
            if message["type"] == "http.response.body" and len(sent) > 2:
                await never.wait()  # the client stops reading: this write never completes

        async def receive():
            await never.wait()
            return {"type": "http.disconnect"}

        scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "POST", "path": "/v1/ocr",
                 "headers": []}
        await asyncio.wait_for(response(scope, receive, send), 30)
        return turn, cleaned
    turn, cleaned = run(scenario())
    assert turn.released == 1 and cleaned == [True]
    assert len(read) < 50  # the reading stopped, not the 10,000 pages
