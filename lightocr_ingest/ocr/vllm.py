"""OCR through vLLM's OpenAI-compatible API, with the official ``openai`` async client.

The request is exactly what LightOnOCR expects: one user message holding only the page image
as a PNG data URL, no system prompt and no text prompt (the model tends to repeat a prompt).
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
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import openai

from ..cpu_cost import stage_cpu
from ..defaults import DEFAULT_URL, MAX_IN_FLIGHT, REQUEST_TIMEOUT_S  # noqa: F401 - re-exported
from ..errors import OCRServerError
from ..notices import warn_once
from ..records import OcrResult, PageImage
from .postprocess import clean_markdown
from .profiles import ModelProfile, profile_for
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
API_KEY_ENV = ("LIGHTONOCR_API_KEY", "VLLM_API_KEY")  # never OPENAI_API_KEY: not meant for this server
VLLM_SERVE = (  # the README's command, flags and all (a test holds the two together)
    "vllm serve lightonai/LightOnOCR-2-1B --limit-mm-per-prompt '{\"image\": 1}' --mm-processor-cache-gb 0 "
    "--no-enable-prefix-caching --max-model-len 16384 --max-num-seqs 256"
)
VLLM_HINT = f"start one with: {VLLM_SERVE}"


def normalize_base_url(url: str) -> str:
    """Accept ``host:port``, ``http://host:port`` or ``.../v1``; return the ``/v1`` base."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if not url.endswith("/v1"):
        url += "/v1"
    return url


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """One or more server URLs (a list, or comma-separated) as normalised ``/v1`` bases, no repeats."""
    items = urls.split(",") if isinstance(urls, str) else [part for url in urls for part in url.split(",")]
    normalised = [normalize_base_url(item) for item in items if item.strip()]
    if not normalised:
        raise OCRServerError("no OCR server URL given; pass --ocr-url http://HOST:8000/v1")
    return list(dict.fromkeys(normalised))


def api_key_from_env() -> str | None:
    for name in API_KEY_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


def probe_models(base_url: str, api_key: str | None = None, timeout_s: float = 3.0) -> list[str]:
    """GET /v1/models synchronously; return the served model ids or raise OCRServerError."""
    url = normalize_base_url(base_url) + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise OCRServerError(f"no OCR server answered at {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code == 401:
        raise OCRServerError(f"{url} refused the API key (HTTP 401): set LIGHTONOCR_API_KEY or api_key")
    if response.status_code != 200:
        raise OCRServerError(f"{url} answered HTTP {response.status_code}; is this a vLLM server?")
    try:
        return [model["id"] for model in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise OCRServerError(f"{url} did not answer with an OpenAI model list; is this a vLLM server?") from None


def choose_model(served: list[str]) -> str:
    """Pick the LightOnOCR model among those a server serves."""
    if not served:
        raise OCRServerError("the server serves no model; start vLLM with a LightOnOCR model")
    for model in served:
        if "lightonocr" in model.lower():
            return model
    warn_once(f"none of the served models ({', '.join(served)}) is named LightOnOCR; using {served[0]} (name it "
              f"with --model to choose another)")
    return served[0]


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
                 max_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None):
        self.base_urls = split_urls(base_url)
        self.base_url = self.base_urls[0] if len(self.base_urls) == 1 else ", ".join(self.base_urls)
        self.model = model
        self.profile: ModelProfile | None = profile_for(model) if model else None
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

    @property
    def longest_side(self) -> int:
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
        self.model = choose_model(served)
        self.profile = profile_for(self.model)

    def sampling(self, temperature: float | None = None) -> dict:
        """max_tokens, temperature and top_p as sent: the settings the answer depends on."""
        profile = self.profile or profile_for(self.model or "")
        if temperature is None:
            temperature = profile.temperature if self.temperature is None else self.temperature
        return {"max_tokens": self.max_tokens or profile.max_tokens, "temperature": temperature,
                "top_p": profile.top_p if self.top_p is None else self.top_p}

    def request_body(self, page: PageImage, temperature: float | None = None) -> dict:
        """The chat-completions request for one page (public for tests and debugging)."""
        image_url = "data:image/png;base64," + base64.b64encode(page.png).decode("ascii")
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}}]}],
            **self.sampling(temperature),
        }

    def request_bytes(self, page: PageImage, sampling: dict) -> bytes:
        """``request_body`` as the JSON bytes sent, built around the image: base64 needs no JSON
        escaping, so the ~300 kB of a page's image are copied once instead of being escaped
        into a string and encoded again (2.3 -> 0.6 core-ms a page on the event loop)."""
        parts = json.dumps({
            "model": self.model,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _IMAGE_MARKER}}]}],
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
            return Completion(content=content, finish_reason=finish_reason, output_tokens=output_tokens,
                              latency_s=latency, requests=requests, temperature=sampling["temperature"])
        why = describe(failure) if failure is not None else "no request sent"
        if clock.remaining() <= 0 or retry < self.retry.max_retries:
            raise RequestsFailed(f"page deadline of {clock.seconds:g} s passed after {requests} request(s); "
                                 f"last: {why}", requests)
        raise RequestsFailed(f"{requests} request(s) to {self.base_url} failed; last: {why}", requests)

    def to_result(self, page: PageImage, completion: Completion, content: str | None = None, *,
                  status: str = "ok", attempts: int | None = None, warning: str | None = None) -> OcrResult:
        """Post-process an answer (``content`` overrides it, e.g. with a loop trimmed) into a result.

        Figure boxes are parsed only when the model's profile says it writes them (-bbox).
        """
        profile = self.profile or profile_for(self.model or "")
        with stage_cpu("postprocess"):
            markdown, figures = clean_markdown(completion.content if content is None else content,
                                               page.image_width, page.image_height,
                                               figure_boxes=profile.figure_boxes)
        return OcrResult(
            markdown=markdown,
            engine=self.name,
            model=self.model or "",
            figures=tuple(figures),
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
