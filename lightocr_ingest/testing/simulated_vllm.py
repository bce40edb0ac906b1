"""A stand-in for vLLM serving LightOnOCR-2-1B on one GPU, for throughput benchmarks.

It models what decides a GPU's page rate: vLLM runs up to ``max_num_seqs`` requests as one
batch, every running request decodes at the same per-sequence rate, and requests beyond the
batch wait in a queue. Each page's answer has ``tokens_min``-``tokens_max`` output tokens
(LightOnOCR-2 writes about 500 to 1,500 for a text page), drawn from a hash of the request,
so a page takes ``tokens / per_sequence_rate`` seconds once admitted. The per-sequence rate
is set so that a full batch yields ``pages_per_s`` (5.71 by default: LightOn's H100 figure).

The answer is LightOnOCR-2-style Markdown of that many tokens (headings, paragraphs, HTML
tables, ``$$`` math), so chunking and embedding downstream do realistic work.

It measures itself: ``GET /stats`` gives, for the window from the first request to the last
one received, the share of batch slots that were busy. While a client still has pages to send,
a perfect client keeps every slot busy, so that share is the pipeline's efficiency (achieved
pages/s over the server's capacity). ``POST /stats/reset`` starts a new window.

It is cheap on purpose (no image decoding) because in a benchmark it shares the machine with
the pipeline. Run it in its own process::

    python -m lightocr_ingest.testing.simulated_vllm --port 8001 --pages-per-s 5.71
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
import zlib
from dataclasses import dataclass

from aiohttp import web

H100_PAGES_PER_S = 5.71  # LightOn's published LightOnOCR-2-1B rate on one H100 80GB with vLLM
MAX_NUM_SEQS = 64  # requests vLLM batches at once in this model; also the client's default window
TOKENS_PER_PAGE = (500, 1500)  # output tokens of a LightOnOCR-2 text page, low and high
CHARS_PER_TOKEN = 3.6  # Qwen3 tokenizer on English prose mixed with HTML tables and LaTeX

_WORDS = ("the basin river sediment flood survey station sample nitrate phosphate oxygen turbidity rainfall "
          "treatment plant upgrade model score baseline training loss accuracy table figure section results "
          "contract party clause agreement term notice payment schedule annex report quarter growth rate "
          "index region population census median household income estimate variance sample").split()


@dataclass(frozen=True)
class ServiceModel:
    """How long a page takes: batch size, output length and decode rate."""

    pages_per_s: float = H100_PAGES_PER_S
    max_num_seqs: int = MAX_NUM_SEQS
    tokens_min: int = TOKENS_PER_PAGE[0]
    tokens_max: int = TOKENS_PER_PAGE[1]

    @property
    def mean_tokens(self) -> float:
        return (self.tokens_min + self.tokens_max) / 2

    @property
    def tokens_per_s_per_sequence(self) -> float:
        """Decode rate of one request in a full batch: a full batch then yields ``pages_per_s``."""
        return self.pages_per_s * self.mean_tokens / self.max_num_seqs

    def tokens_for(self, seed: int) -> int:
        return random.Random(seed).randint(self.tokens_min, self.tokens_max)

    def service_s(self, tokens: int) -> float:
        return tokens / self.tokens_per_s_per_sequence


def markdown_of_length(seed: int, tokens: int) -> str:
    """LightOnOCR-2-style Markdown of about ``tokens`` tokens, different for each seed."""
    rng = random.Random(seed)
    target = int(tokens * CHARS_PER_TOKEN)
    parts: list[str] = [f"Report {seed % 997} - page {seed % 211}", f"# {rng.randint(1, 9)} {_title(rng)}"]
    size = sum(len(p) + 2 for p in parts)
    section = 1
    while size < target:
        kind = rng.random()
        if kind < 0.12:
            section += 1
            part = f"## {section}.{rng.randint(1, 9)} {_title(rng)}"
        elif kind < 0.22:
            rows = "".join(f"<tr><td>{_title(rng)}</td><td>{rng.uniform(0, 100):.1f}</td>"
                           f"<td>{rng.uniform(0, 100):.1f}</td></tr>" for _ in range(rng.randint(3, 8)))
            part = f"<table><tr><th>Item</th><th>{_title(rng)}</th><th>Change</th></tr>{rows}</table>"
        elif kind < 0.28:
            part = "$$\n\\hat{y}_i = \\sum_{j=1}^{%d} w_j x_{ij} + b\n$$" % rng.randint(2, 9)
        else:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(40, 110))]
            part = " ".join(words).capitalize() + f" with $x_{rng.randint(1, 9)}$ held fixed."
        parts.append(part)
        size += len(part) + 2
    parts.append(str(seed % 300 + 1))
    return "\n\n".join(parts)


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 4))).capitalize()


class SimulatedVLLM:
    """The aiohttp app; ``serve()`` runs it on a port until the process ends."""

    def __init__(self, model: str = "lightonai/LightOnOCR-2-1B", service: ServiceModel = ServiceModel()):
        self.model = model
        self.service = service
        self._slots: asyncio.Semaphore | None = None
        self.reset()

    def reset(self) -> None:
        self.busy: list[tuple[float, float]] = []  # (admitted, finished) of every answered request
        self.arrivals: list[float] = []
        self.running: dict[int, float] = {}  # request -> admitted, for requests being decoded
        self.max_active = 0
        self.max_waiting = 0
        self.tokens = 0
        self.cpu_started = time.process_time()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm", "max_model_len": 16384}]})

    async def _chat(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        self.arrivals.append(arrived)
        body = await request.read()
        if b'"image_url"' not in body or b"data:image/png;base64," not in body:
            return web.json_response({"error": {"message": "expected one PNG data URL image"}}, status=400)
        seed = zlib.crc32(body)  # the same page (and temperature) gets the same answer
        tokens = self.service.tokens_for(seed)
        waiting = len(self.arrivals) - len(self.busy) - len(self.running)
        self.max_waiting = max(self.max_waiting, waiting)
        async with self._slots:
            admitted = time.monotonic()
            self.running[id(request)] = admitted
            self.max_active = max(self.max_active, len(self.running))
            try:
                await asyncio.sleep(self.service.service_s(tokens))
            finally:
                self.running.pop(id(request), None)
            self.busy.append((admitted, time.monotonic()))
        self.tokens += tokens
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": markdown_of_length(seed, tokens)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2200, "completion_tokens": tokens, "total_tokens": 2200 + tokens},
        })

    def stats(self) -> dict:
        """Slot use over the window from the first request received to the last."""
        start, end = (self.arrivals[0], self.arrivals[-1]) if self.arrivals else (0.0, 0.0)
        busy = sum(max(0.0, min(done, end) - max(admitted, start)) for admitted, done in self.busy)
        busy += sum(max(0.0, end - max(admitted, start)) for admitted in self.running.values())
        window = end - start
        return {
            "requests": len(self.arrivals), "answered": len(self.busy), "window_start": start, "window_end": end,
            "window_s": window, "busy_slot_s": busy, "slots": self.service.max_num_seqs,
            "utilisation": busy / (self.service.max_num_seqs * window) if window > 0 else None,
            "capacity_pages_per_s": self.service.pages_per_s, "max_active": self.max_active,
            "max_waiting": self.max_waiting, "output_tokens": self.tokens,
            "server_cpu_s": time.process_time() - self.cpu_started,
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/stats/reset", self._reset)
        return app

    async def serve(self, host: str, port: int) -> None:
        self._slots = asyncio.Semaphore(self.service.max_num_seqs)
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        print(json.dumps({"url": f"http://{host}:{bound}/v1", "pid": os.getpid()}), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed on stdout as JSON)")
    parser.add_argument("--model", default="lightonai/LightOnOCR-2-1B")
    parser.add_argument("--pages-per-s", type=float, default=H100_PAGES_PER_S, help="capacity with a full batch")
    parser.add_argument("--max-num-seqs", type=int, default=MAX_NUM_SEQS, help="requests batched at once")
    parser.add_argument("--tokens", type=int, nargs=2, default=TOKENS_PER_PAGE, metavar=("MIN", "MAX"),
                        help="output tokens per page")
    args = parser.parse_args(argv)
    service = ServiceModel(args.pages_per_s, args.max_num_seqs, *args.tokens)
    try:
        asyncio.run(SimulatedVLLM(args.model, service).serve(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
