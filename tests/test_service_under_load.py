"""The service under load, over real loopback HTTP: a burst is told when to come back (429 and
Retry-After), never dropped, and memory stays bounded over a long run."""

import asyncio
import io
import time

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed: pip install 'lightocr-ingest[service]'")
import httpx  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from lightocr_ingest.pipeline.memory import peak_rss_mb  # noqa: E402
from lightocr_ingest.service import create_app  # noqa: E402
from lightocr_ingest.testing import FakeVLLMServer  # noqa: E402

from .conftest import service_settings  # noqa: E402
from .test_http_service import running_server  # noqa: E402

pytestmark = pytest.mark.slow  # hundreds of requests against a running service


def page_png(n: int) -> bytes:
    image = Image.new("L", (600, 800), 255)
    ImageDraw.Draw(image).text((50, 60 + n % 40 * 15), f"Delivery note number {n}", fill=0)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


async def upload_until_served(client: httpx.AsyncClient, n: int, waits: list) -> httpx.Response:
    """What a well-behaved client does: on 429, wait as long as Retry-After says, then retry."""
    while True:
        response = await client.post("/v1/ocr", files={"file": (f"note-{n}.png", page_png(n), "image/png")})
        if response.status_code != 429:
            return response
        waits.append(float(response.headers["Retry-After"]))
        await asyncio.sleep(float(response.headers["Retry-After"]))


def test_48_concurrent_uploads_against_a_slow_gpu_all_end_in_200(tmp_path):
    with FakeVLLMServer(latency_s=0.5) as slow:
        app = create_app(service_settings(tmp_path, slow.url, concurrency=2, queue_size=4))
        with running_server(app) as base:
            async def burst():
                waits: list = []
                async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                    responses = await asyncio.gather(*(upload_until_served(client, n, waits) for n in range(48)))
                    health = (await client.get("/healthz")).status_code, (await client.get("/readyz")).status_code
                    metrics = (await client.get("/metrics")).text
                return responses, waits, health, metrics

            responses, waits, health, metrics = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 48
    assert sorted(r.json()["file_name"] for r in responses) == sorted(f"note-{n}.png" for n in range(48))
    assert waits and all(wait >= 1 for wait in waits)  # the burst was over the limit and was told when to retry
    assert len(slow.requests) == 48  # each page sent to the GPU once: nothing lost, nothing twice
    assert health == (200, 200)
    assert "lightocr_ocr_queue_depth 0.0" in metrics and "lightocr_requests_in_flight 1.0" in metrics


def test_a_few_hundred_requests_keep_memory_bounded(tmp_path):
    with FakeVLLMServer() as fast:
        with running_server(create_app(service_settings(tmp_path, fast.url))) as base:
            def round_of(client: httpx.Client, start: int, count: int) -> list[int]:
                codes = []
                for n in range(start, start + count):
                    if n % 10 == 0:  # bad input among the good, as in real traffic
                        codes.append(client.post("/v1/ocr", files={"file": ("bad.pdf", b"%PDF-1.7 broken")}).status_code)
                    else:
                        codes.append(client.post("/v1/ocr", files={"file": (f"p{n}.png", page_png(n))}).status_code)
                return codes

            with httpx.Client(base_url=base, timeout=60) as client:
                warm = round_of(client, 0, 60)
                before = current_rss_mb()
                started = time.monotonic()
                soak = round_of(client, 60, 300)
                after = current_rss_mb()
    assert set(warm) == set(soak) == {200, 422}
    assert soak.count(422) == 30
    # Bounded: 300 more requests (about 30 MB of uploads and answers) leave the process within 40 MB.
    assert after - before < 40, f"RSS grew {after - before:.0f} MB over 300 requests ({time.monotonic() - started:.0f} s)"
