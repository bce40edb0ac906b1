"""A burst against the service: N one-page OCR uploads at once, as the hostile-load probe sent.

Starts ``lightocr-ingest serve`` (the CPU engine, no OCR cache, a fresh collection folder, the API
key from the environment) as a separate process, reads one page to load the models, then sends ``--requests``
one-page scans at once and records each answer: its status, its Retry-After, and how long it
took to come. With ``--retry`` every refused client then waits what Retry-After said and sends
again, once: the share admitted at that retry says whether Retry-After was honest.

    .venv/bin/python benchmarks/service_burst.py --requests 30 --retry --json .bench/burst.json

What it reports: answers by status, the slowest answer (no request should wait past
``max_queue_wait_s`` plus its own page without an answer), the Retry-After values given, the
share of retries admitted, and the server's peak RSS (VmHWM). Run from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFilter

KEY = "burst-benchmark-key"


RUN = os.urandom(3).hex()  # in every page's text: no page of one run is another run's (nor cached)


def scan(n: int) -> bytes:
    """A one-page scan-like PNG (no text layer: RapidOCR reads it), different for each request."""
    image = Image.new("L", (1240, 1754), 250)
    draw = ImageDraw.Draw(image)
    for line in range(28):
        draw.text((90, 120 + line * 52), f"Delivery note {RUN}-{n}-{line}: 24 pallets of roof tiles, "
                                          f"signed at the gate at {8 + line % 10}:{line * 2 % 60:02d}", fill=20)
    image = image.filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))


async def one(client: httpx.AsyncClient, n: int, started: float) -> dict:
    response = await client.post("/v1/ocr", files={"file": (f"note-{n}.png", scan(n), "image/png")})
    return {"n": n, "status": response.status_code, "seconds": time.monotonic() - started,
            "retry_after": int(response.headers["Retry-After"]) if "Retry-After" in response.headers else None}


async def burst(base: str, count: int, retry: bool) -> tuple[list[dict], list[dict]]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, timeout=600, headers=headers) as client:
        started = time.monotonic()
        answers = await asyncio.gather(*(one(client, n, started) for n in range(count)))
        retries: list[dict] = []
        if retry:
            async def again(answer: dict) -> dict:
                await asyncio.sleep(max(0.0, answer["retry_after"] - (time.monotonic() - started - answer["seconds"])))
                sent = time.monotonic()
                result = await one(client, answer["n"], sent)
                return {**result, "waited": answer["retry_after"]}
            retries = await asyncio.gather(*(again(a) for a in answers if a["retry_after"] is not None))
    return list(answers), list(retries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30, help="one-page uploads sent at once (default 30)")
    parser.add_argument("--retry", action="store_true", help="refused clients retry once after Retry-After")
    parser.add_argument("--serve-args", default="--max-upload-mb 5 --max-pages 20",
                        help="more flags for serve (default: the probe's '--max-upload-mb 5 --max-pages 20')")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="burst-"))
    port = free_port()
    config = folder / "burst.yaml"  # the OCR cache off: every page is read
    config.write_text("ocr:\n  engine: cpu\n  cache_dir: null\n")
    command = [sys.executable, "-m", "lightocr_ingest.cli", "serve", "--config", str(config), "--qdrant-path",
               str(folder / "qdrant"), "--port", str(port), *args.serve_args.split()]
    environment = {**os.environ, "LIGHTOCR_SERVICE_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("serve did not start: " + server.stderr.read().decode()[-2000:])
            time.sleep(0.5)
        warm = httpx.post(base + "/v1/ocr", files={"file": ("warm.png", scan(-1), "image/png")},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
        assert warm.status_code == 200, warm.text
        answers, retries = asyncio.run(burst(base, args.requests, args.retry))
        rss = peak_rss_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)

    by_status: dict[int, int] = {}
    for answer in answers:
        by_status[answer["status"]] = by_status.get(answer["status"], 0) + 1
    served = [a["seconds"] for a in answers if a["status"] == 200]
    refused = [a for a in answers if a["status"] != 200]
    figures = {
        "requests": args.requests, "by_status": by_status,
        "slowest_answer_s": round(max(a["seconds"] for a in answers), 1),
        "slowest_refusal_s": round(max((a["seconds"] for a in refused), default=0.0), 2),
        "served_s": [round(s, 1) for s in sorted(served)],
        "retry_after_s": sorted(a["retry_after"] for a in refused if a["retry_after"] is not None),
        "retries_admitted": sum(r["status"] == 200 for r in retries), "retries": len(retries),
        "slowest_retry_answer_s": round(max((r["seconds"] for r in retries), default=0.0), 1),
        "server_peak_rss_mb": round(rss),
        "serve_args": args.serve_args,
    }
    print(f"{args.requests} one-page uploads at once (CPU engine, serve {args.serve_args}):")
    print(f"  answers by status: {by_status}")
    print(f"  slowest answer: {figures['slowest_answer_s']} s; refusals within {figures['slowest_refusal_s']} s")
    if served:
        print(f"  served after (s): {figures['served_s']} (median {statistics.median(served):.1f})")
    print(f"  Retry-After given (s): {figures['retry_after_s']}")
    if retries:
        print(f"  retried once after Retry-After: {figures['retries_admitted']} of {len(retries)} admitted "
              f"(slowest answer to a retry {figures['slowest_retry_answer_s']} s after it was sent)")
    print(f"  server peak RSS: {figures['server_peak_rss_mb']} MB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
