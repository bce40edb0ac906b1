"""OCR through vLLM's OpenAI-compatible API, with the official ``openai`` async client.

The request is exactly what LightOnOCR expects: one user message holding the page image as a PNG
data URL, no system prompt; no text prompt for generations 1 and 2 (they repeat prompts), and
for LightOnOCR-3 in grounding mode the one word ``grounding`` (``profiles``: what each model
family is sent; ``grounding``: how its answer is read).
Throughput comes from concurrency: vLLM batches the requests it has in flight, so the client
keeps many pages in flight at once (``max_in_flight`` per server) and shares that window across
files. Given several servers (a list, or ``"http://a:8000/v1,http://b:8000/v1"``), each page
goes to the one with the fewest pages in flight, so a slower GPU simply gets fewer pages.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import openai

from ..cpu_cost import stage_cpu
from ..defaults import DEFAULT_URL, MAX_IN_FLIGHT, REQUEST_TIMEOUT_S  # noqa: F401 - re-exported
from ..errors import OCRServerError
from ..records import Figure, LayoutBlock, OcrResult, OcrStatus, PageImage
from .servers import VLLM_HINT, api_key_from_env, choose_model, split_urls
from .grounding import GROUNDING_PROMPT, parse_grounding, to_image_pixels
from .postprocess import clean_markdown, fix_escaped_dollars, strip_thinking
from .profiles import ModelProfile, profile_for, resolve_mode, say_assumed
from .retry import PageClock, RetryPolicy, describe, is_retryable, retry_after_of

log = logging.getLogger("lightocr_ingest")

CONNECT_TIMEOUT_S = 10.0
# Connections in one client's pool: httpx looks at every connection of a pool for each request it
# sends and each response it closes, so one pool of 256 cost about 1 ms of the event loop's CPU a
# request; a window wider than this is spread over several clients of the same server. (Measured
# with httpx's own transport, still the fallback; over aiohttp's, one pool or eight cost the same.)
CONNECTIONS_PER_POOL = 32
_IMAGE_MARKER = f"\x00{uuid.uuid4().hex}\x00"  # where request_bytes puts the image: no real value holds it
_IMAGE_MARKER_JSON = json.dumps(_IMAGE_MARKER)
def parse_completion(answer: str) -> tuple[str, str | None, int | None]:
    """``(content, finish_reason, completion_tokens)`` of a chat-completion answer; ValueError
    when it is not one."""
    try:
        data = json.loads(answer)
        choice = (data.get("choices") or [None])[0] or {}
        content = (choice.get("message") or {}).get("content") or ""
        return content, choice.get("finish_reason"), (data.get("usage") or {}).get("completion_tokens")
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"answered with something that is not a chat completion: {answer[:200]!r}") from None


class RequestsFailed(OCRServerError):
    """Every request for a page failed (retries spent, deadline passed, or not retryable)."""

    def __init__(self, message: str, requests: int):
        super().__init__(message)
        self.requests = requests


@dataclass(frozen=True)
class Completion:
    """The model's raw answer for one page, before any judging or clean-up."""

    content: str
    finish_reason: str | None
    output_tokens: int | None
    latency_s: float  # of the request that answered
    requests: int  # sent for this answer, retries included
    temperature: float
    thinking_removed: bool = False  # a thinking preamble was cut off ``content``


@dataclass
class _Server:
    """One vLLM server: its clients, its window of requests in flight, and how many pages it holds."""

    url: str
    clients: list[openai.AsyncOpenAI]  # each with its own pool of at most CONNECTIONS_PER_POOL connections
    window: asyncio.Semaphore
    assigned: int = 0  # pages sent or waiting for its window: what load balancing compares
    in_flight: list[int] = field(init=False)  # requests out, per client

    def __post_init__(self) -> None:
        self.in_flight = [0] * len(self.clients)

    def least_busy(self) -> int:
        """The index of the client with the fewest requests out."""
        return min(range(len(self.clients)), key=self.in_flight.__getitem__)


def _http_client(**options):
    """openai's aiohttp client; its httpx one where aiohttp's adapter cannot load (the same
    requests and errors, at 1.6 core-ms a request instead of 1.1)."""
    try:
        return openai.DefaultAioHttpClient(**options)
    except RuntimeError as exc:  # "To use the aiohttp client you must have installed the package with the `aiohttp` extra"
        log.debug("aiohttp client unavailable (%s): using httpx's", exc)
        return openai.DefaultAsyncHttpxClient(**options)


class VLLMEngine:
    """Async OCR client for one or more vLLM servers. Create it inside the event loop that uses it."""

    name = "vllm"

    def __init__(self, base_url: str | Sequence[str] = DEFAULT_URL, *, model: str | None = None,
                 api_key: str | None = None, max_in_flight: int = MAX_IN_FLIGHT,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, retry: RetryPolicy = RetryPolicy(),
                 max_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
                 model_family: str = "auto", mode: str = "auto"):
        self.base_urls = split_urls(base_url)
        self.base_url = self.base_urls[0] if len(self.base_urls) == 1 else ", ".join(self.base_urls)
        self.model_family, self.mode_asked = model_family, mode
        self.model = model
        self.profile: ModelProfile | None = None
        self.mode = "plain"  # what pages are asked for: "plain" Markdown or "grounding" (blocks with boxes)
        if model:
            self._use_model(model)
        self.max_tokens, self.temperature, self.top_p = max_tokens, temperature, top_p
        self.max_in_flight = max_in_flight
        self.request_timeout_s = request_timeout_s
        self.retry = retry
        key = api_key or api_key_from_env() or "EMPTY"  # vLLM without --api-key ignores it
        pools = max(1, math.ceil(max_in_flight / CONNECTIONS_PER_POOL))
        per_pool = math.ceil(max_in_flight / pools)
        tls = httpx.create_ssl_context()  # one for all: each client loading the CA bundle took ~25 ms

        def client(url: str) -> openai.AsyncOpenAI:
            return openai.AsyncOpenAI(
                base_url=url, api_key=key, timeout=httpx.Timeout(request_timeout_s, connect=CONNECT_TIMEOUT_S),
                max_retries=0,  # retries are ours (complete()): counted per page, bounded by the page deadline
                # aiohttp under the openai client: its C parser and connection pool take 1.1 core-ms
                # of the event loop a request where httpx's own transport took 1.6 (512 scans, 256 in
                # flight). One kept-alive connection per page in flight.
                http_client=_http_client(verify=tls, limits=httpx.Limits(
                    max_connections=per_pool + 2, max_keepalive_connections=per_pool)))

        self._servers = [_Server(url, [client(url) for _ in range(pools)], asyncio.Semaphore(max_in_flight))
                         for url in self.base_urls]
        self._client = self._servers[0].clients[0]  # for GET /v1/models

    def _pick(self, avoid: _Server | None = None) -> _Server:
        """The server with the fewest pages; after a failure, another one when there is one."""
        candidates = [s for s in self._servers if s is not avoid] or self._servers
        return min(candidates, key=lambda server: server.assigned)

    @property
    def window(self) -> int:
        """Pages in flight at once across all servers: what the reader must keep ready."""
        return self.max_in_flight * len(self._servers)

    def _use_model(self, model: str) -> None:
        """The served model's profile and the mode it is asked in; said once when guessed."""
        self.model = model
        self.profile = profile_for(model, self.model_family)
        say_assumed(self.profile)
        try:
            self.mode = resolve_mode(self.profile, self.mode_asked)
        except ValueError as exc:
            raise OCRServerError(str(exc)) from None

    @property
    def _profile(self) -> ModelProfile:
        return self.profile or profile_for(self.model or "", self.model_family)

    @property
    def longest_side(self) -> int:
        """The page size the model was trained on: it drives rendering, the request and regions."""
        return self.profile.longest_side if self.profile else 1540

    async def start(self) -> None:
        """Discover the served model when none was given."""
        if self.model:
            return
        try:
            served = [model.id async for model in self._client.models.list()]
        except openai.APIError as exc:
            why = describe(exc) if isinstance(exc, openai.APIConnectionError) else exc  # the transport's real cause
            raise OCRServerError(f"cannot list models at {self.base_url}/models: {why}; {VLLM_HINT}") from None
        self._use_model(choose_model(served))

    def sampling(self, temperature: float | None = None) -> dict:
        """max_tokens, temperature and top_p as sent (and, to generation 3, thinking off): the
        settings the answer depends on."""
        profile = self._profile
        if temperature is None:
            temperature = profile.temperature if self.temperature is None else self.temperature
        return {"max_tokens": self.max_tokens or profile.max_tokens, "temperature": temperature,
                "top_p": profile.top_p if self.top_p is None else self.top_p, **profile.chat_template_kwargs()}

    def request_identity(self) -> dict:
        """What an answer depends on besides the pixels and the model: the OCR cache's key. The
        same as ``sampling()`` in plain mode, so answers cached before grounding existed still count."""
        return {**self.sampling(), "mode": "grounding"} if self.mode == "grounding" else self.sampling()

    def _content(self, image_url: str) -> list[dict]:
        parts = [{"type": "image_url", "image_url": {"url": image_url}}]
        if self.mode == "grounding":
            parts.append({"type": "text", "text": GROUNDING_PROMPT})
        return parts

    def request_body(self, page: PageImage, temperature: float | None = None) -> dict:
        """The chat-completions request for one page (public for tests and debugging)."""
        image_url = "data:image/png;base64," + base64.b64encode(page.png).decode("ascii")
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": self._content(image_url)}],
            **self.sampling(temperature),
        }

    def request_bytes(self, page: PageImage, sampling: dict) -> bytes:
        """``request_body`` as the JSON bytes sent, built around the image: base64 needs no JSON
        escaping, so the ~300 kB of a page's image are copied once instead of being escaped
        into a string and encoded again (2.3 -> 0.6 core-ms a page on the event loop)."""
        parts = json.dumps({
            "model": self.model,
            "messages": [{"role": "user", "content": self._content(_IMAGE_MARKER)}],
            **sampling,
        }).split(_IMAGE_MARKER_JSON)
        if len(parts) != 2:  # the marker also came from elsewhere (a model so named): the plain way
            return json.dumps(self.request_body(page, sampling["temperature"])).encode()
        head, tail = parts
        return b"".join((head.encode(), b'"data:image/png;base64,', base64.b64encode(page.png), b'"', tail.encode()))

    async def complete(self, page: PageImage, temperature: float | None = None,
                       clock: PageClock | None = None) -> Completion:
        """Send one page until the server answers, retrying what a retry can fix.

        Raises ``RequestsFailed`` when the retries are spent, the page's deadline has passed,
        or the server refuses the request outright (4xx other than 408/409/429).
        A page holds a slot of the in-flight window only while its request is out, never while
        it waits to retry, so one failing page does not slow the others.
        """
        if self.model is None:
            await self.start()
        sampling = self.sampling(temperature)
        body: bytes | None = None  # built once a slot is free: pages waiting for one hold only their PNG
        clock = clock or PageClock(self.retry.page_deadline_s)
        requests, failure, failed_on = 0, None, None
        for retry in range(self.retry.max_retries + 1):
            if failure is not None:
                wait = self.retry.delay(retry - 1, retry_after_of(failure))
                if wait >= clock.remaining():
                    break
                await asyncio.sleep(wait)
            server = self._pick(avoid=failed_on)
            server.assigned += 1
            try:
                async with server.window:
                    clock.start()
                    remaining = clock.remaining()
                    if remaining <= 0:
                        break
                    if body is None:
                        with stage_cpu("encode"):
                            body = self.request_bytes(page, sampling)
                    requests += 1
                    started = time.perf_counter()
                    try:
                        # The client's plain POST: the same auth, errors and timeouts as
                        # chat.completions.create, without validating the request against the
                        # API's schema and building models of the answer (1 ms a page).
                        pool = server.least_busy()
                        server.in_flight[pool] += 1
                        try:
                            answer = await server.clients[pool].post(
                                "/chat/completions", cast_to=str, content=body, options={"timeout": httpx.Timeout(
                                    min(self.request_timeout_s, remaining), connect=CONNECT_TIMEOUT_S)})
                        finally:
                            server.in_flight[pool] -= 1
                    except openai.APIError as exc:
                        if not is_retryable(exc):
                            raise RequestsFailed(f"{server.url} refused the page: {describe(exc)}: "
                                                 f"{getattr(exc, 'message', exc)}", requests) from None
                        failure, failed_on = exc, server
                        continue
                    latency = time.perf_counter() - started
            finally:
                server.assigned -= 1
            try:
                content, finish_reason, output_tokens = parse_completion(answer)
            except ValueError as exc:
                raise RequestsFailed(f"{server.url} {exc}; is this a vLLM server?", requests) from None
            # Cut before anything judges or keeps the answer: thinking is never page text.
            content, thought = strip_thinking(content)
            return Completion(content=content, finish_reason=finish_reason, output_tokens=output_tokens,
                              latency_s=latency, requests=requests, temperature=sampling["temperature"],
                              thinking_removed=thought)
        why = describe(failure) if failure is not None else "no request sent"
        if clock.remaining() <= 0 or retry < self.retry.max_retries:
            raise RequestsFailed(f"page deadline of {clock.seconds:g} s passed after {requests} request(s); "
                                 f"last: {why}", requests)
        raise RequestsFailed(f"{requests} request(s) to {self.base_url} failed; last: {why}", requests)

    def to_result(self, page: PageImage, completion: Completion, content: str | None = None, *,
                  status: OcrStatus = "ok", attempts: int | None = None, warning: str | None = None) -> OcrResult:
        """Post-process an answer (``content`` overrides it, e.g. with a loop trimmed) into a result.

        Figure boxes are parsed only when the model's profile says it writes them (-bbox); a
        grounded answer (markers present) becomes the page Markdown and its blocks.
        """
        text = completion.content if content is None else content
        blocks: tuple[LayoutBlock, ...] = ()
        with stage_cpu("postprocess"):
            if self.mode == "grounding":
                markdown, grounded = parse_grounding(fix_escaped_dollars(text.replace("\r\n", "\n")))
                blocks = tuple(LayoutBlock(b.label, to_image_pixels(b.box, page.image_width, page.image_height),
                                           b.start, b.end, b.continues) for b in grounded)
                # an image block's text is the model's description (searchable); its box is a figure's
                figures = [Figure(f"image_{n}", block.box)
                           for n, block in enumerate((b for b in blocks if b.label == "image"), 1)]
            else:
                markdown, figures = clean_markdown(text, page.image_width, page.image_height,
                                                   figure_boxes=self._profile.figure_boxes)
        return OcrResult(
            markdown=markdown,
            engine=self.name,
            model=self.model or "",
            figures=tuple(figures),
            blocks=blocks,
            thinking_removed=completion.thinking_removed,
            finish_reason=completion.finish_reason,
            output_tokens=completion.output_tokens,
            latency_s=completion.latency_s,
            attempts=completion.requests if attempts is None else attempts,
            status=status,
            warning=warning,
        )

    async def ocr(self, page: PageImage) -> OcrResult:
        """One page as the model answers it, transport retries included; no judging of the answer.

        ``ResilientEngine`` adds loop detection, the temperature ladder, fallbacks and the cache.
        """
        completion = await self.complete(page)
        return self.to_result(page, completion, status="ok" if completion.requests == 1 else "retried")

    async def aclose(self) -> None:
        closing = [client.close() for server in self._servers for client in server.clients]
        for failed in await asyncio.gather(*closing, return_exceptions=True):  # one failing leaves none open
            if isinstance(failed, BaseException):
                log.debug("closing an OCR client: %s", failed)
