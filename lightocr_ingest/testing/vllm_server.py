"""A loopback server that speaks vLLM's OpenAI wire protocol like ``vllm serve LightOnOCR``.

It serves ``GET /v1/models`` and ``POST /v1/chat/completions``, checks that every request has
the shape LightOnOCR expects (one user message holding only a PNG data URL, the model card's
sampling), records what it received and what it answered, and replies with LightOnOCR-2-style
Markdown: headings, HTML tables, ``$$`` math, figure references with boxes, a page footer.
Given a LightOnOCR-3 name it answers as generation 3 does (``generation3``): pages up to
2048 px for the Qwen-based checkpoints, grounding answers to the ``grounding`` prompt, and a
thinking preamble when a Qwen-based checkpoint is asked without ``enable_thinking: false``.

With a ``FaultPlan`` it also misbehaves the ways a real server does under load: it drops
connections, answers 500 and 429 (with ``Retry-After``), stalls past the client's timeout,
loops until ``max_tokens``, stops with ``finish_reason: length``, answers nothing, and
restarts mid-run. Faults are drawn from a hash of (seed, image, how many times that image was
asked for), so a run is reproducible and two runs over the same pages see the same faults.

Run it by hand to try the vLLM path without a GPU (``--model`` picks the generation it speaks)::

    python -m lightocr_ingest.testing.vllm_server --port 8000 [--model lightonai/LightOnOCR-3-0.8B] [--fault-rate 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from PIL import Image

from .generation3 import (THINKING, expected_sampling, grounded_page, request_mode, served_generation,
                          thinking_disabled)

DATA_URL_PREFIX = "data:image/png;base64,"


@dataclass
class RecordedRequest:
    image_sha256: str  # sha256 of the PNG bytes received
    image_size: tuple[int, int]
    body: dict  # the request without the image data
    answer: str = ""
    violations: list[str] = field(default_factory=list)
    mode: str = "plain"  # "grounding" when the request carried the grounding prompt (generation 3)
    thinking_disabled: bool = False  # chat_template_kwargs.enable_thinking was false


def lightonocr_style_page(seed: str, *, with_boxes: bool = True) -> str:
    """A deterministic page of LightOnOCR-2-style Markdown, different for each seed."""
    digest = hashlib.sha256(seed.encode()).hexdigest()
    number = int(digest[:4], 16) % 90 + 10
    box = f"{int(digest[4:6], 16) % 100 + 100},{int(digest[6:8], 16) % 100 + 500},812,790" if with_boxes else ""
    return (
        f"Journal of Tests, vol. {number}\n\n"
        f"# {number} Results on page {digest[:8]}\n\n"
        f"## {number}.1 Ablations\n\n"
        f"We minimise the loss $\\mathcal{{L}}(\\theta)$ over {number} runs \\$x_{number}\\$ and pay \\$5 per run.\n\n"
        "$$\n\\mathcal{L}(\\theta) = -\\sum_{i} \\log p_\\theta(y_i \\mid x_i)\n$$\n\n"
        "<table><thead><tr><th>Model</th><th>Score</th></tr></thead>"
        f"<tbody><tr><td rowspan=\"2\">A</td><td>{number}.2</td></tr><tr><td>{number}.9</td></tr></tbody></table>\n\n"
        f"![image](image_1.png){box}\n\n"
        f"Page id {digest[:12]}\n\n"
        f"{number % 7 + 1}"
    )


Responder = Callable[[RecordedRequest], "str | tuple[str, str]"]  # markdown, or (markdown, finish_reason)

FAULT_KINDS = ("drop", "http_500", "http_429", "stall", "loop", "length", "empty")


@dataclass
class FaultPlan:
    """Which requests go wrong, and how.

    ``rate`` of the requests get one of ``kinds``; no image gets more than ``max_in_a_row``
    faults in a row, so a client that retries enough always gets the true page in the end
    (which is what lets a test demand exactly the points of a fault-free run).
    """

    rate: float = 0.2
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    max_in_a_row: int = 3
    stall_s: float = 3.0  # longer than the client's request timeout in the tests
    retry_after_s: float = 0.05  # what a 429 asks the client to wait
    restart_after: int | None = None  # restart once, after this many requests
    restart_down_s: float = 0.5

    def pick(self, image_sha256: str, nth: int, in_a_row: int) -> str | None:
        if in_a_row >= self.max_in_a_row:
            return None
        digest = hashlib.sha256(f"{self.seed}:{image_sha256}:{nth}".encode()).digest()
        if int.from_bytes(digest[:4], "big") / 2 ** 32 >= self.rate:
            return None
        return self.kinds[digest[4] % len(self.kinds)]


def looping(markdown: str, unit: str = "| 0.00 | 0.00 | 0.00 |\n", repeats: int = 300) -> str:
    """A page that starts well and falls into a loop, as a model does until max_tokens."""
    return markdown[: len(markdown) // 2] + "\n\n" + unit * repeats


class FakeVLLMServer:
    """Start with ``with FakeVLLMServer() as server:``; ``server.url`` is the ``/v1`` base URL.

    The served ``model`` name sets the generation, as LightOn's client reads it: the longest
    side allowed (``longest_side=None``: 1540 px, 2048 for a Qwen-based LightOnOCR-3), top_p,
    and for generation 3 the grounding prompt (answered by ``grounding_responder``) and, for a
    Qwen-based one asked without ``enable_thinking: false``, a thinking preamble
    (``thinking_preamble=False``: a server started with the flag as its default).
    """

    def __init__(self, model: str = "lightonai/LightOnOCR-2-1B", *, responder: Responder | None = None,
                 expect_sampling: dict | None = None, longest_side: int | None = None, latency_s: float = 0.0,
                 api_key: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultPlan | None = None, temperatures: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8),
                 grounding_responder: Responder | None = None, thinking_preamble: bool = True):
        self.model = model
        self.generation, model_side, self.qwen_based = served_generation(model)
        self.responder = responder or (lambda r: lightonocr_style_page(r.image_sha256, with_boxes="bbox" in model))
        self.grounding_responder = grounding_responder or (lambda r: grounded_page(r.image_sha256))
        self.thinking_preamble = thinking_preamble  # what a Qwen chat template does unless told not to
        self.expect_sampling = expected_sampling(self.generation) if expect_sampling is None else expect_sampling
        self.temperatures = temperatures  # the model card's 0.2, and the ladder's rungs after a loop
        self.faults = faults
        self.faults_injected: dict[str, int] = {}
        self.restarts = 0
        self._asked: dict[str, int] = {}  # image -> requests for it
        self._in_a_row: dict[str, int] = {}  # image -> faults in a row
        self.longest_side = model_side if longest_side is None else longest_side
        self.latency_s = latency_s
        self.api_key = api_key
        self.host, self.port = host, port
        self.requests: list[RecordedRequest] = []
        # Tests that need pages held in flight: a request for which ``hold`` is true when it
        # arrives is answered only once ``released`` is set (events, not timing).
        self.hold: Callable[[RecordedRequest], bool] | None = None
        self.released = threading.Event()
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self.connections: set = set()  # client (host, port) of every connection a request came on
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def violations(self) -> list[str]:
        return [v for request in self.requests for v in request.violations]

    # --- protocol ---------------------------------------------------------------------
    def check(self, body: dict) -> tuple[RecordedRequest, list[str]]:
        problems: list[str] = []
        image_sha, size, mode = "", (0, 0), "plain"
        if body.get("model") != self.model:
            problems.append(f"model is {body.get('model')!r}, server serves {self.model!r}")
        messages = body.get("messages")
        if not isinstance(messages, list) or len(messages) != 1:
            problems.append(f"expected exactly one message, got {messages!r:.80}")
        else:
            message = messages[0]
            if message.get("role") != "user":
                problems.append(f"message role is {message.get('role')!r}, expected 'user'")
            mode, content = request_mode(message.get("content"), self.generation)  # "grounding": image only left
            if not isinstance(content, list) or len(content) != 1 or content[0].get("type") != "image_url":
                problems.append("content must be exactly one image_url part and no text"
                                + (" (or the image and the text 'grounding')" if self.generation == 3 else ""))
            else:
                url = content[0].get("image_url", {}).get("url", "")
                if not url.startswith(DATA_URL_PREFIX):
                    problems.append("image is not a PNG data URL")
                else:
                    png = base64.b64decode(url[len(DATA_URL_PREFIX):])
                    image_sha = hashlib.sha256(png).hexdigest()
                    try:
                        image = Image.open(io.BytesIO(png))
                        if image.format != "PNG":
                            problems.append(f"image data is {image.format}, not PNG")
                        size = image.size
                        if max(size) > self.longest_side:
                            problems.append(f"image {size} exceeds the {self.longest_side} px longest side")
                        if image.mode not in ("RGB", "L"):  # vLLM converts both to the same RGB pixels
                            problems.append(f"image mode is {image.mode}, expected RGB or L")
                    except Exception as exc:
                        problems.append(f"image does not decode: {exc}")
        for key, expected in self.expect_sampling.items():
            if body.get(key) != expected:
                problems.append(f"{key} is {body.get(key)!r}, expected {expected!r}")
        if "temperature" not in self.expect_sampling and body.get("temperature") not in self.temperatures:
            problems.append(f"temperature is {body.get('temperature')!r}, expected one of {self.temperatures}")
        stripped = {k: v for k, v in body.items() if k != "messages"}
        if self.generation < 3 and "chat_template_kwargs" in body:
            problems.append("chat_template_kwargs sent to a generation-1/2 model (its requests must stay as they were)")
        recorded = RecordedRequest(image_sha, size, stripped, violations=problems,
                                   mode=mode, thinking_disabled=thinking_disabled(body))
        return recorded, problems

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"message": "Unauthorized"}}, status=401)
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm", "max_model_len": 16384}]})

    def _authorised(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _chat(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"message": "Unauthorized"}}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        recorded, problems = self.check(body)
        with self._lock:
            self.requests.append(recorded)
            self.connections.add(request.transport.get_extra_info("peername") if request.transport else None)
            self.in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        try:
            if problems:
                return web.json_response({"error": {"message": "; ".join(problems)}}, status=400)
            fault = self._pick_fault(recorded.image_sha256)
            if fault == "drop":
                request.transport.close()  # the client sees the connection reset mid-request
                return web.Response(status=500)
            if fault == "http_500":
                return web.json_response({"error": {"message": "injected: EngineCore died"}}, status=500)
            if fault == "http_429":
                return web.json_response({"error": {"message": "injected: too many requests"}}, status=429,
                                         headers={"Retry-After": f"{self.faults.retry_after_s:g}"})
            if self.hold is not None and self.hold(recorded):
                while not self.released.is_set():
                    await asyncio.sleep(0.01)
            if fault == "stall":
                await asyncio.sleep(self.faults.stall_s)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            answer = (self.grounding_responder if recorded.mode == "grounding" else self.responder)(recorded)
            markdown, finish = answer if isinstance(answer, tuple) else (answer, "stop")
            if self.qwen_based and self.thinking_preamble and not recorded.thinking_disabled:
                markdown = THINKING + markdown  # the chat template thinks unless told not to
            if fault == "loop":
                markdown, finish = looping(markdown), "length"
            elif fault == "length":
                markdown, finish = markdown[: len(markdown) // 2], "length"
            elif fault == "empty":
                markdown, finish = "", "stop"
            recorded.answer = markdown
            tokens = max(1, len(markdown) // 3)
            return web.json_response({
                "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": markdown},
                             "finish_reason": finish}],
                "usage": {"prompt_tokens": 2200, "completion_tokens": tokens, "total_tokens": 2200 + tokens},
            })
        finally:
            with self._lock:
                self.in_flight -= 1

    def _pick_fault(self, image: str) -> str | None:
        if self.faults is None:
            return None
        with self._lock:
            nth = self._asked.get(image, 0)
            self._asked[image] = nth + 1
            fault = self.faults.pick(image, nth, self._in_a_row.get(image, 0))
            self._in_a_row[image] = self._in_a_row.get(image, 0) + 1 if fault else 0
            if fault:
                self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            total = sum(self._asked.values())
        if self.faults.restart_after is not None and total == self.faults.restart_after:
            asyncio.get_running_loop().create_task(self._restart(self.faults.restart_down_s))
        return fault

    async def _restart(self, down_s: float) -> None:
        """Go away (every connection dropped, nothing listening) for ``down_s``, then come back."""
        self.restarts += 1
        await self._runner.cleanup()
        await asyncio.sleep(down_s)
        await self._listen()

    # --- lifecycle --------------------------------------------------------------------
    async def _listen(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=0.1, reuse_address=True)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]

    def start(self) -> "FakeVLLMServer":
        ready = threading.Event()

        async def serve() -> None:
            await self._listen()
            ready.set()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            stalled = asyncio.all_tasks(self._loop)  # handlers still sleeping in an injected stall
            for task in stalled:
                task.cancel()
            if stalled:
                self._loop.run_until_complete(asyncio.wait(stalled))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-vllm", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake vLLM server did not start within 10 s")
        return self

    def restart(self, down_s: float = 0.5) -> None:
        """Restart now, from any thread: in-flight requests are dropped, then it is down for ``down_s``."""
        asyncio.run_coroutine_threadsafe(self._restart(down_s), self._loop).result(30)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> "FakeVLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="lightonai/LightOnOCR-2-1B-bbox")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that go wrong")
    args = parser.parse_args()
    faults = FaultPlan(rate=args.fault_rate) if args.fault_rate else None
    server = FakeVLLMServer(args.model, port=args.port, latency_s=args.latency, faults=faults).start()
    print(f"fake LightOnOCR server on {server.url} (model {server.model}: generation {server.generation}, "
          f"{server.longest_side} px); Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
