"""No page lost: the OCR engine every reader uses, around vLLM (or the CPU engine).

For each page, in order:
0. **Text layer first** (the embedded CPU engine only, ``text_layer_first``): a born-digital
   page whose text layer stands for the page is read from it (``text_layer``), in milliseconds.
1. **Cache.** An answer already on disk for these pixels, model and sampling is used as is.
   The same page image met twice in one run (in flight in two files) is read once.
2. **Transport.** ``VLLMEngine.complete`` retries connection errors, timeouts, 429 and 5xx
   with backoff, within the page's deadline.
3. **Runaway output.** An answer that loops, runs out of tokens or is empty is asked for
   again at a higher temperature (the ladder, 0.2 -> 0.4 -> 0.6 -> 0.8 by default): a loop is
   a sampling accident, and a little more randomness usually steps out of it. When every
   rung fails, the attempt that kept most of the page is used, its loop trimmed.
4. **Fallbacks.** No usable answer at all: the PDF's own text layer when it has one, else the
   CPU engine, else the page is recorded as failed, with the reason.

Every result says which of these happened (``status``) and how many requests it took.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from ..defaults import FALLBACKS, RETRY_TEMPERATURES
from ..notices import warn_once
from ..records import OcrResult, PageImage
from .cache import CACHEABLE, OcrCache, cache_key
from .postprocess import text_layer_markdown
from .retry import PageClock
from .runaway import Verdict, best_of, content_chars, judge
from .text_layer import TEXT_LAYER_ENGINE, read_text_layer, why_unusable
from .vllm import RequestsFailed, VLLMEngine

log = logging.getLogger("lightocr_ingest")

MIN_TEXT_LAYER_CHARS = 20  # word characters; fewer is a scan's stray OCR layer or a lone page number
BLANK_DARK_SHARE = 0.0005  # pages with fewer dark pixels than this are blank: an empty answer is right


def is_blank(png: bytes) -> bool:
    """True for a page with (almost) no ink: separator sheets, the backs of scanned pages."""
    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L").reduce(4))
    return float((gray < 160).mean()) < BLANK_DARK_SHARE


class ResilientEngine:
    """The ``Engine`` the reader uses: cache, dedup, ladder and fallbacks around a primary engine."""

    def __init__(self, primary, *, cache: OcrCache | None = None,
                 retry_temperatures: Sequence[float] = RETRY_TEMPERATURES,
                 fallbacks: Sequence[str] = FALLBACKS, cpu_engine_factory=None, text_layer_first: bool = False):
        unknown = set(fallbacks) - set(FALLBACKS)
        if unknown:
            raise ValueError(f"unknown fallback(s) {sorted(unknown)}; allowed: {list(FALLBACKS)}")
        self.primary = primary
        self.cache = cache
        self.retry_temperatures = tuple(retry_temperatures)
        self.fallbacks = tuple(fallbacks)
        self._cpu_factory = cpu_engine_factory
        self.text_layer_first = text_layer_first
        self._cpu = None
        self._in_flight: dict[str, asyncio.Future] = {}

    # --- the Engine protocol ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self.primary.name

    @property
    def model(self) -> str | None:
        return self.primary.model

    @property
    def longest_side(self) -> int:
        return self.primary.longest_side

    @property
    def reads_text_layer(self) -> bool:
        """Pages should come with their text layer's words and fonts (``text_words="styled"``)."""
        return self.text_layer_first

    @property
    def window(self) -> int:
        """Pages the primary engine takes at once (0 when it does not say)."""
        return getattr(self.primary, "window", 0)

    async def start(self) -> None:
        await self.primary.start()

    async def aclose(self) -> None:
        await self.primary.aclose()
        if self._cpu is not None:
            await self._cpu.aclose()
        if self.cache is not None:
            self.cache.close()

    async def ocr(self, page: PageImage) -> OcrResult:
        """Never raises for a page's own trouble: the result's ``status`` says what happened."""
        # A page that was not rendered (its layer stands for it) is read from its layer whatever
        # engine this is (a Ray actor may have found a server the driver did not): it has no image.
        # (The source renders no page whose layer it found unusable: no second judgement then.)
        if not page.png or (self.text_layer_first and why_unusable(page) is None):
            try:
                return await asyncio.to_thread(read_text_layer, page)
            except Exception as exc:  # a layout this module cannot make sense of: the page is still read
                why = f"text layer not laid out ({type(exc).__name__}: {exc})"
                if not page.png:  # no image to read: its plain text, in PDFium's order
                    log.warning("%s, page %d: using the PDF's text layer as it is (%s)", page.source.path,
                                page.page, why)
                    return _plain_text_layer(page, 0, why)
                log.warning("%s, page %d: %s; reading the page image instead", page.source.path, page.page, why)
        key = self.key(page)
        while True:
            if self.cache is not None:  # again after a twin that ended without an answer: it may have kept one
                hit = await asyncio.to_thread(self.cache.get, key)
                if hit is not None:
                    return hit
            twin = self._in_flight.get(key)
            if twin is None:
                break
            await asyncio.wait([twin])  # the same image is being read for another file: wait for it
            if not twin.cancelled() and twin.exception() is None:
                return replace(twin.result(), cached=True, latency_s=0.0)
        future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            try:
                result = await self._read(page)
            except BaseException as exc:
                future.cancel()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                result = self._failed(page, 0, f"{type(exc).__name__}: {exc}")
            # On disk before anyone sees it (twins, then the pipeline): a run killed at any
            # moment after this finds the answer, and the model never reads the page again.
            await self._keep(key, page, result)
            if not future.done():
                future.set_result(result)
        finally:
            if not future.done():  # cancelled while keeping the answer: twins read the page themselves
                future.cancel()
            # Cleared only once the cache holds the answer: a twin that missed the cache while
            # it was being written still finds the answer here, instead of sending the page again.
            del self._in_flight[key]
        return result

    async def _keep(self, key: str, page: PageImage, result: OcrResult) -> None:
        """The model's answer into the cache; a cache that fails to write costs only this."""
        if self.cache is None or result.status not in CACHEABLE:
            return
        try:
            await asyncio.to_thread(self.cache.put, key, result)
        except Exception as exc:  # a full disk, a cache closed by a cancelled run: the answer still counts
            warn_once(f"{page.source.path}, page {page.page}: the OCR answer could not be cached "
                      f"({type(exc).__name__}: {exc}); pages whose answers are not cached are read again by a "
                      f"re-run (said once)", key="ocr-cache-write")

    def key(self, page: PageImage) -> str:
        sampling = self.primary.request_identity() if isinstance(self.primary, VLLMEngine) else {}
        return cache_key(page.pixels_sha256, self.primary.name, self.primary.model or "", sampling)

    # --- one page ----------------------------------------------------------------------
    async def _read(self, page: PageImage) -> OcrResult:
        if not isinstance(self.primary, VLLMEngine):
            try:
                return await self.primary.ocr(page)
            except Exception as exc:  # the CPU engine on a page it cannot read
                return await self._fall_back(page, 0, f"{self.primary.name} engine: {type(exc).__name__}: {exc}",
                                             allow_cpu=False)
        return await self._ladder(page)

    def _temperatures(self) -> list[float | None]:
        first = self.primary.sampling()["temperature"]
        return [None] + [t for t in self.retry_temperatures if t > first]

    async def _ladder(self, page: PageImage) -> OcrResult:
        engine: VLLMEngine = self.primary
        clock = PageClock(engine.retry.page_deadline_s)
        requests = 0
        attempts: list[tuple[Verdict, object]] = []
        problems: list[str] = []
        for temperature in self._temperatures():
            try:
                completion = await engine.complete(page, temperature, clock)
            except RequestsFailed as exc:
                requests += exc.requests
                problems.append(str(exc))
                break
            requests += completion.requests
            verdict = judge(completion.content, completion.finish_reason)
            if verdict.problem == "empty" and await asyncio.to_thread(is_blank, page.png):
                verdict = Verdict(None, "")
            if verdict.problem is None:
                status = "ok" if requests == 1 else "retried"
                return engine.to_result(page, completion, verdict.text, status=status, attempts=requests)
            attempts.append((verdict, completion))
            problems.append(_describe_problem(verdict, completion))
        best = best_of([verdict for verdict, _ in attempts])
        why = "; ".join(problems)
        if best is not None:
            completion = next(c for v, c in attempts if v is best)
            warning = f"kept the best of {len(attempts)} imperfect answers ({why})"
            log.warning("%s, page %d: %s", page.source.path, page.page, warning)
            return engine.to_result(page, completion, best.text, status="retried", attempts=requests, warning=warning)
        return await self._fall_back(page, requests, why or "no answer")

    async def _fall_back(self, page: PageImage, requests: int, why: str, allow_cpu: bool = True) -> OcrResult:
        if "text_layer" in self.fallbacks and page.text_layer and content_chars(page.text_layer) >= MIN_TEXT_LAYER_CHARS:
            log.warning("%s, page %d: using the PDF's text layer (%s)", page.source.path, page.page, why)
            return _plain_text_layer(page, requests, why)
        if "cpu" in self.fallbacks and allow_cpu and self._cpu_factory is not None:
            try:
                if self._cpu is None:
                    self._cpu = self._cpu_factory()
                    await self._cpu.start()
                result = await self._cpu.ocr(page)
                log.warning("%s, page %d: read by the CPU engine (%s)", page.source.path, page.page, why)
                return replace(result, attempts=requests, status="fallback_cpu", error=why)
            except Exception as exc:
                why = f"{why}; CPU engine: {type(exc).__name__}: {exc}"
        return self._failed(page, requests, why)

    def _failed(self, page: PageImage, requests: int, why: str) -> OcrResult:
        log.error("%s, page %d: OCR failed: %s", page.source.path, page.page, why)
        return OcrResult(markdown="", engine=self.name, model=self.model or "", attempts=requests,
                         status="failed", error=why)


def _plain_text_layer(page: PageImage, requests: int, why: str) -> OcrResult:
    """The page's text layer as PDFium orders it, when nothing better could read the page."""
    return OcrResult(markdown=text_layer_markdown(page.text_layer or ""), engine=TEXT_LAYER_ENGINE, model="pdfium",
                     finish_reason=None, attempts=requests, status="fallback_text_layer", error=why)


def _describe_problem(verdict: Verdict, completion) -> str:
    at = f"at temperature {completion.temperature:g}"
    if verdict.problem == "loop":
        r = verdict.repetition
        return f"repetition loop {at} ({r.chars} chars repeating a {r.period}-char unit)"
    if verdict.problem == "length":
        return f"output cut at max_tokens {at}"
    return f"empty answer {at}"
