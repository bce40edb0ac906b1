"""Choose and build the OCR engine: vLLM when a server answers, else the embedded CPU engine.

``auto`` probes ``GET /v1/models`` once per server URL (the answer is remembered for a minute so a
directory of 1,000 files does not probe 1,000 times) and says loudly which engine it chose.
``vllm`` never falls back to another engine for the whole run: a missing server is an error
that says how to start one, after waiting up to ``wait_for_server_s`` for it to come up.
Either way the engine is wrapped in ``ResilientEngine`` (cache, ladder, per-page fallbacks).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Literal

from ..errors import OCRServerError
from ..notices import warn_once
from .cache import CACHE_DIR_ENV, OcrCache, resolve_cache_dir
from .cpu import CpuEngine
from .resilient import FALLBACKS, RETRY_TEMPERATURES, ResilientEngine
from .retry import RetryPolicy
from .servers import VLLM_HINT, VLLM_SERVE, api_key_from_env, choose_model, probe_models, split_urls
from .vllm import DEFAULT_URL, MAX_IN_FLIGHT, REQUEST_TIMEOUT_S, VLLMEngine

EngineKind = Literal["auto", "vllm", "cpu"]
PROBE_MEMORY_S = 60.0  # re-probe after this long: a server started mid-session gets picked up
PROBE_TIMEOUT_S = 3.0
PROBE_INTERVAL_S = 2.0  # between probes while waiting for a server that is still loading its model

_probe_cache: dict[str, tuple[float, str, str | None, str | None]] = {}  # url -> (when, kind, model, why not)


@dataclass(frozen=True)
class EngineSettings:
    kind: EngineKind = "auto"
    url: str | tuple[str, ...] = DEFAULT_URL  # one server, or several to balance pages across
    model: str | None = None
    api_key: str | None = None
    max_in_flight: int = MAX_IN_FLIGHT
    request_timeout_s: float = REQUEST_TIMEOUT_S
    max_retries: int = RetryPolicy.max_retries
    backoff_base_s: float = RetryPolicy.backoff_base_s
    page_deadline_s: float = RetryPolicy.page_deadline_s
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    model_family: str = "auto"  # ocr.model_family: the profile of a custom served name
    mode: str = "auto"  # ocr.mode: plain, grounding, or grounding where the model has it
    retry_temperatures: tuple[float, ...] = RETRY_TEMPERATURES
    fallbacks: tuple[str, ...] = FALLBACKS
    cache_dir: str | None = None  # OCR cache folder ("auto": the user's cache folder); None: no cache
    wait_for_server_s: float = 0.0  # engine "vllm": how long to wait for the server to answer at start
    text_layer: bool = True  # the CPU engine reads born-digital pages from their text layer


def _probe_until(url: str, api_key: str | None, wait_s: float) -> list[str]:
    """Probe ``url`` until it answers or ``wait_s`` has passed; then raise the last error."""
    give_up = time.monotonic() + wait_s
    while True:
        try:
            return probe_models(url, api_key, PROBE_TIMEOUT_S)
        except OCRServerError:
            if time.monotonic() + PROBE_INTERVAL_S > give_up:
                raise
            time.sleep(PROBE_INTERVAL_S)


def resolve(settings: EngineSettings) -> tuple[str, str | None, list[str]]:
    """Return ``("vllm", model, urls that answered)`` or ``("cpu", None, [])``, probing when needed."""
    if settings.kind == "cpu":
        return "cpu", None, []
    urls = split_urls(settings.url)
    api_key = settings.api_key or api_key_from_env()
    if settings.kind == "vllm":
        served_by: dict[str, list[str]] = {}
        errors: list[str] = []
        for url in urls:
            try:
                served_by[url] = _probe_until(url, api_key, settings.wait_for_server_s if not served_by else 0.0)
            except OCRServerError as exc:
                errors.append(str(exc))
        if not served_by:
            waited = f" (waited {settings.wait_for_server_s:g} s)" if settings.wait_for_server_s else ""
            raise OCRServerError(f"{'; '.join(errors)}{waited}; {VLLM_HINT} (or use --ocr-engine cpu, or raise "
                                 f"wait_for_server_s while vLLM loads)")
        for error in errors:
            warn_once(f"lightocr-ingest: left out of this run: {error}")
        model = settings.model or choose_model(next(iter(served_by.values())))
        serving = [url for url, served in served_by.items() if model in served]
        if not serving:
            url, served = next(iter(served_by.items()))
            raise OCRServerError(f"{url} serves {', '.join(served) or 'no model'}, not {settings.model!r}; "
                                 f"fix the model name or leave it unset to use what the server serves")
        for url in served_by.keys() - set(serving):
            warn_once(f"lightocr-ingest: left out of this run: {url} does not serve {model}")
        return "vllm", model, serving
    answered: list[str] = []
    model = settings.model
    unanswered: list[str] = []  # why each server that did not answer did not
    for url in urls:
        cached = _probe_cache.get(url)
        if not (cached and time.monotonic() - cached[0] < PROBE_MEMORY_S):
            try:
                served_model = settings.model or choose_model(probe_models(url, api_key, PROBE_TIMEOUT_S))
                cached = (time.monotonic(), "vllm", served_model, None)
            except OCRServerError as exc:
                cached = (time.monotonic(), "cpu", None, str(exc))
            _probe_cache[url] = cached
        if cached[1] == "vllm":
            answered.append(url)
            model = model or cached[2]
        else:
            unanswered.append(cached[3])
    if answered:
        # Said once per process: a service builds an engine per request, a run per batch.
        warn_once(f"lightocr-ingest: OCR engine: vLLM at {', '.join(answered)}, model {model}"
                  + (f" (left out: {'; '.join(unanswered)})" if unanswered else ""),
                  key=f"vllm-engine-chosen {answered} {model}")
        return "vllm", model, answered
    warn_once(f"lightocr-ingest: OCR engine: CPU (born-digital pages from their text layer; scans by RapidOCR: "
              f"slow, plain paragraphs, no tables or math), since "
              f"{'; '.join(unanswered)}.\nFor LightOnOCR-2-1B on a GPU: {VLLM_SERVE}, then --ocr-url "
              f"http://HOST:8000/v1 (or --ocr-engine cpu to choose the CPU engine and silence this).",
              key=f"cpu-engine-chosen {urls}")
    return "cpu", None, []


def create_engine(settings: EngineSettings) -> ResilientEngine:
    """Build the engine the settings call for; must run inside the event loop that will use it."""
    kind, model, urls = resolve(settings)
    if kind == "cpu":
        primary = CpuEngine()
    else:
        primary = VLLMEngine(
            urls, model=model, api_key=settings.api_key, max_in_flight=settings.max_in_flight,
            request_timeout_s=settings.request_timeout_s, max_tokens=settings.max_tokens,
            temperature=settings.temperature, top_p=settings.top_p,
            model_family=settings.model_family, mode=settings.mode,
            retry=RetryPolicy(max_retries=settings.max_retries, backoff_base_s=settings.backoff_base_s,
                              page_deadline_s=settings.page_deadline_s))
    return ResilientEngine(primary, cache=open_cache(settings.cache_dir),
                           retry_temperatures=settings.retry_temperatures, fallbacks=settings.fallbacks,
                           cpu_engine_factory=CpuEngine, text_layer_first=kind == "cpu" and settings.text_layer)


def open_cache(setting: str | None) -> OcrCache | None:
    """The OCR cache a setting names, or None: no cache asked for, or its folder cannot be
    written (said once: the run goes on, and pages are read as if nothing were cached)."""
    folder = resolve_cache_dir(setting)
    if folder is None:
        return None
    try:
        return OcrCache(folder)
    except (OSError, sqlite3.Error) as exc:
        warn_once(f"lightocr-ingest: no OCR cache this run: {folder} cannot be written ({exc}); set ocr.cache_dir "
                  f"(or {CACHE_DIR_ENV}) to a writable folder, or null to silence this")
        return None
