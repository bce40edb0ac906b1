"""A stand-in for vLLM serving LightOnOCR-2-1B on one GPU, for throughput benchmarks.

It models what decides a GPU's page rate, and how that rate depends on the batch, so that a
benchmark can tell what a client's window is worth. vLLM decodes every running sequence in one
forward pass per step, and for a 1B model a step costs nearly the same for 8 sequences as for
200 (it is bound by reading the weights), so the GPU's total decode rate grows with the batch
and saturates. With ``b`` sequences running (``b <= max_num_seqs``) the GPU decodes::

    peak * b / (b + h)   tokens/s in all, each running sequence getting peak / (b + h)

(``h``, the half batch, is the batch at which half the peak is reached). Requests beyond
``max_num_seqs`` wait in a first-in first-out queue on the server and are admitted as sequences
finish, as vLLM's scheduler does. This is processor sharing, run by one event-driven scheduler
task: at every arrival or completion it advances the running requests by the elapsed time at
the current per-sequence rate, answers those that are done, admits from the queue, and sleeps
until the next completion or arrival. Completions are computed exactly in model time, so a late
timer delays an answer by a few milliseconds but never changes the model's figures.

Each page's answer has ``tokens_min``-``tokens_max`` output tokens (LightOnOCR-2 writes about 500
to 1,500 for a text page), drawn from a hash of the request body. ``peak`` is calibrated so that
a full batch yields ``pages_per_s`` (5.71 by default: LightOn's H100 figure)::

    pages_per_s * mean_tokens = peak * max_num_seqs / (max_num_seqs + h)

so a client that keeps fewer requests in flight gets less: with 64 of 256 slots used, 64/72 of
the peak, 0.92 of the full-batch page rate. Left out: prefill (the page image's prompt),
KV-cache limits and preemption; they matter less than the batch for a short-answer 1B model.

The answer is LightOnOCR-2-style Markdown of that many tokens (headings, paragraphs, HTML
tables, ``$$`` math), so chunking and embedding downstream do realistic work.

It measures itself: ``GET /stats`` reports over the busy window (first request received to the
last answer's completion, or to now while requests are running or queued) the tokens served,
``efficiency`` = tokens served / (peak rate x busy window), the share of the GPU's peak decode
rate that was used (at most ``max_num_seqs / (max_num_seqs + h)``, 0.97 at 256, by
construction; 64/72 = 0.89 with 64 running), ``slot_use`` = mean running sequences /
``max_num_seqs``, and the most requests running and queued at once. ``POST /stats/reset``
starts a new window. ``simulate_client`` runs the same model in virtual time against a perfect
client (one that keeps exactly ``window`` requests outstanding and does no work of its own):
the ceiling a real client's efficiency is compared with.

It is cheap on purpose (no image decoding) because in a benchmark it shares the machine with
the pipeline. Run it in its own process::

    python -m lightocr_ingest.testing.simulated_vllm --port 8001 --pages-per-s 5.71
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import os
import random
import sys
import time
import uuid
import zlib
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from aiohttp import web

from .fake_markdown import markdown_of_length

H100_PAGES_PER_S = 5.71  # LightOn's published LightOnOCR-2-1B rate on one H100 80GB with vLLM
MAX_NUM_SEQS = 256  # vLLM's default --max-num-seqs: sequences decoded in one batch, the rest queue
HALF_BATCH = 8  # batch at which decode reaches half its peak: a 1B model's step is bound by reading weights
TOKENS_PER_PAGE = (500, 1500)  # output tokens of a LightOnOCR-2 text page, low and high


@dataclass(frozen=True)
class ServiceModel:
    """The GPU's decode rate as a function of the batch, and each page's output length."""

    pages_per_s: float = H100_PAGES_PER_S  # reached with a full batch of pages of mean length
    max_num_seqs: int = MAX_NUM_SEQS
    tokens_min: int = TOKENS_PER_PAGE[0]
    tokens_max: int = TOKENS_PER_PAGE[1]
    half_batch: float = HALF_BATCH

    def __post_init__(self):
        if self.pages_per_s <= 0 or self.max_num_seqs < 1 or self.half_batch < 0:
            raise ValueError("pages_per_s must be > 0, max_num_seqs >= 1 and half_batch >= 0")
        if not 1 <= self.tokens_min <= self.tokens_max:
            raise ValueError("tokens: 1 <= min <= max")

    @property
    def mean_tokens(self) -> float:
        return (self.tokens_min + self.tokens_max) / 2

    @property
    def peak_tokens_per_s(self) -> float:
        """The rate an endless batch would approach, set so that a full batch yields ``pages_per_s``."""
        return self.pages_per_s * self.mean_tokens * (self.max_num_seqs + self.half_batch) / self.max_num_seqs

    def aggregate_tokens_per_s(self, running: int) -> float:
        """Tokens/s the GPU decodes in all with ``running`` sequences in the batch."""
        batch = min(running, self.max_num_seqs)
        return self.peak_tokens_per_s * batch / (batch + self.half_batch) if batch > 0 else 0.0

    def tokens_per_s_per_sequence(self, running: int) -> float:
        """Each running sequence's share of the aggregate rate."""
        return self.peak_tokens_per_s / (min(max(running, 1), self.max_num_seqs) + self.half_batch)

    def pages_per_s_at(self, running: int) -> float:
        """Pages/s of pages of mean length with ``running`` sequences in the batch."""
        return self.aggregate_tokens_per_s(running) / self.mean_tokens

    def tokens_for(self, seed: int) -> int:
        return random.Random(seed).randint(self.tokens_min, self.tokens_max)


class Batch:
    """Processor sharing on one GPU, driven by whatever clock the caller passes in.

    The server drives it with ``time.monotonic()``; ``simulate_client`` with virtual time. All
    running sequences decode at the same rate, so one number, ``progress`` (tokens each running
    sequence has decoded since the batch was made), orders them: a sequence admitted at progress
    ``p`` with ``n`` tokens finishes when progress reaches ``p + n``, kept in a heap.
    """

    EPS = 1e-6  # tokens: a sequence this close to its end is done (float rounding)

    def __init__(self, service: ServiceModel, now: float = 0.0):
        self.service = service
        self.clock = now
        self.progress = 0.0
        self.running: dict[Hashable, float] = {}  # request -> progress at which it finishes
        self.waiting: deque[tuple[Hashable, int]] = deque()  # (request, tokens), first in first out
        self._heap: list[tuple[float, int, Hashable]] = []
        self._order = itertools.count()
        self.reset_stats(now)

    def reset_stats(self, now: float) -> None:
        """Start a new busy window at ``now`` (call ``advance(now)`` first)."""
        busy = bool(self.running or self.waiting)
        self.started: float | None = now if busy else None  # the busy window's start
        self.ended: float | None = None  # the last completion in it
        self.requests = self.answered = 0
        self.tokens_served = 0.0  # decoded in the window, running sequences' partial answers included
        self.sequence_s = 0.0  # integral of the running sequences over time
        self.max_active, self.max_waiting = len(self.running), len(self.waiting)
        self.last_arrival: float | None = None  # when the window's latest request came: how fast the client fed it

    def _next_finish(self) -> float | None:
        while self._heap:
            finish, _, key = self._heap[0]
            if self.running.get(key) == finish:
                return finish
            heapq.heappop(self._heap)  # aborted
        return None

    def _decode(self, seconds: float) -> None:
        """Run the batch as it is for ``seconds``."""
        running = len(self.running)
        if running and seconds > 0:
            rate = self.service.tokens_per_s_per_sequence(running)
            self.progress += rate * seconds
            self.tokens_served += rate * running * seconds
            self.sequence_s += running * seconds
        self.clock += seconds

    def _admit(self) -> None:
        while self.waiting and len(self.running) < self.service.max_num_seqs:
            key, tokens = self.waiting.popleft()
            finish = self.progress + tokens
            self.running[key] = finish
            heapq.heappush(self._heap, (finish, next(self._order), key))
        self.max_active = max(self.max_active, len(self.running))

    def next_completion_in(self) -> float | None:
        """Seconds from ``clock`` to the next completion, or None when nothing runs."""
        finish = self._next_finish()
        if finish is None:
            return None
        return max(0.0, finish - self.progress) / self.service.tokens_per_s_per_sequence(len(self.running))

    def advance(self, now: float) -> list[Hashable]:
        """Decode up to ``now``, completing and admitting on the way; return the requests done."""
        done: list[Hashable] = []
        while (step := self.next_completion_in()) is not None and self.clock + step <= now + 1e-12:
            finish = self._next_finish()
            self._decode(step)
            self.progress = max(self.progress, finish)
            while (finish := self._next_finish()) is not None and finish <= self.progress + self.EPS:
                _, _, key = heapq.heappop(self._heap)
                del self.running[key]
                done.append(key)
                self.answered += 1
                self.ended = self.clock
            self._admit()
        if now > self.clock:
            self._decode(now - self.clock)
        return done

    def arrive(self, now: float, key: Hashable, tokens: int) -> list[Hashable]:
        """A request of ``tokens`` output tokens at ``now``; returns the requests done by then."""
        done = self.advance(now)
        self.requests += 1
        self.last_arrival = now
        if self.started is None:
            self.started = now
        self.waiting.append((key, tokens))
        self._admit()
        self.max_waiting = max(self.max_waiting, len(self.waiting))
        return done

    def abort(self, now: float, key: Hashable) -> list[Hashable]:
        """The client went away (vLLM aborts the request): free its slot."""
        done = self.advance(now)
        if self.running.pop(key, None) is None:
            self.waiting = deque(item for item in self.waiting if item[0] != key)
        self._admit()
        return done

    def stats(self) -> dict:
        """The busy window's figures at ``clock`` (call ``advance(now)`` first)."""
        start = self.started
        if start is None:
            end = None
        elif self.running or self.waiting:
            end = self.clock
        else:
            end = max(self.ended if self.ended is not None else start, start)
        window = end - start if start is not None else 0.0
        peak = self.service.peak_tokens_per_s
        return {
            "requests": self.requests, "answered": self.answered, "running": len(self.running),
            "waiting": len(self.waiting), "window_start": start, "window_end": end, "window_s": window,
            "tokens_served": self.tokens_served, "peak_tokens_per_s": peak,
            "efficiency": self.tokens_served / (peak * window) if window > 0 else None,
            "slot_use": self.sequence_s / (self.service.max_num_seqs * window) if window > 0 else None,
            "max_active": self.max_active, "max_waiting": self.max_waiting,
            "last_request_s": self.last_arrival - start if start is not None and self.last_arrival is not None else None,
            "max_num_seqs": self.service.max_num_seqs, "half_batch": self.service.half_batch,
            "capacity_pages_per_s": self.service.pages_per_s,
        }


def simulate_client(service: ServiceModel, tokens: Sequence[int], window: int) -> dict:
    """``stats()`` of a perfect client: ``window`` requests outstanding, a new one the instant one ends.

    Virtual time, so it takes milliseconds: the ceiling for a real client with that window.
    """
    batch = Batch(service)
    pending = iter(enumerate(tokens))
    for key, count in itertools.islice(pending, max(1, window)):
        batch.arrive(0.0, key, count)
    while (step := batch.next_completion_in()) is not None:
        for _ in batch.advance(batch.clock + step):
            following = next(pending, None)
            if following is not None:
                batch.arrive(batch.clock, *following)
    return batch.stats()


class SimulatedVLLM:
    """The aiohttp app; ``serve()`` runs it on a port until the process ends."""

    def __init__(self, model: str = "lightonai/LightOnOCR-2-1B", service: ServiceModel = ServiceModel()):
        self.model = model
        self.service = service
        self.batch = Batch(service, time.monotonic())
        self._wake: asyncio.Event | None = None  # set on every arrival: the scheduler looks again
        self._scheduler: asyncio.Task | None = None
        self.cpu_started = time.process_time()

    def reset(self) -> None:
        self._tick()
        self.batch.reset_stats(self.batch.clock)
        self.cpu_started = time.process_time()

    def _tick(self, done: list | None = None) -> None:
        """Bring the batch to now and answer the requests that are done."""
        for future in (self.batch.advance(time.monotonic()) if done is None else done):
            if not future.done():
                future.set_result(None)
        if self._wake is not None:
            self._wake.set()

    async def _schedule(self) -> None:
        """The one scheduler task: sleep until the next completion or arrival, then tick."""
        while True:
            self._tick()
            self._wake.clear()  # the tick's own wake-up
            delay = self.batch.next_completion_in()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _start(self, app: web.Application) -> None:
        self._wake = asyncio.Event()
        self._scheduler = asyncio.create_task(self._schedule())

    async def _stop(self, app: web.Application) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm", "max_model_len": 16384}]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.read()
        if b'"image_url"' not in body or b"data:image/png;base64," not in body:
            return web.json_response({"error": {"message": "expected one PNG data URL image"}}, status=400)
        seed = zlib.crc32(body)  # the same page (and temperature) gets the same answer
        tokens = self.service.tokens_for(seed)
        answered = asyncio.get_running_loop().create_future()
        self._tick(self.batch.arrive(time.monotonic(), answered, tokens))
        try:
            await answered
        except asyncio.CancelledError:
            self._tick(self.batch.abort(time.monotonic(), answered))
            raise
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": markdown_of_length(seed, tokens)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2200, "completion_tokens": tokens, "total_tokens": 2200 + tokens},
        })

    def stats(self) -> dict:
        """The busy window's figures (``Batch.stats``) and the server's own CPU time."""
        self._tick()
        return dict(self.batch.stats(), server_cpu_s=time.process_time() - self.cpu_started)

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/stats/reset", self._reset)
        return app

    async def serve(self, host: str, port: int) -> None:
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
    parser.add_argument("--pages-per-s", type=float, default=H100_PAGES_PER_S,
                        help="pages/s with a full batch of pages of mean length")
    parser.add_argument("--max-num-seqs", type=int, default=MAX_NUM_SEQS, help="sequences batched at once")
    parser.add_argument("--half-batch", type=float, default=HALF_BATCH,
                        help="batch at which the decode rate is half its peak")
    parser.add_argument("--tokens", type=int, nargs=2, default=TOKENS_PER_PAGE, metavar=("MIN", "MAX"),
                        help="output tokens per page")
    args = parser.parse_args(argv)
    service = ServiceModel(args.pages_per_s, args.max_num_seqs, *args.tokens, half_batch=args.half_batch)
    try:
        asyncio.run(SimulatedVLLM(args.model, service).serve(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
