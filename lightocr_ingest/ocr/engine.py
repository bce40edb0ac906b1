"""Choose and build the OCR engine: vLLM when a server answers, else the embedded CPU engine.

``auto`` probes ``GET /v1/models`` once per URL (the answer is remembered for a minute so a
directory of 1,000 files does not probe 1,000 times) and says loudly which engine it chose.
``vllm`` never falls back: a missing server is an error that says how to start one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Literal

from ..errors import OCRServerError
from .cpu import CpuEngine
from .vllm import DEFAULT_URL, MAX_IN_FLIGHT, REQUEST_TIMEOUT_S, VLLM_HINT, VLLMEngine, api_key_from_env, \
    choose_model, normalize_base_url, probe_models

log = logging.getLogger("lightocr_ingest")

EngineKind = Literal["auto", "vllm", "cpu"]
PROBE_MEMORY_S = 60.0  # re-probe after this long: a server started mid-session gets picked up
PROBE_TIMEOUT_S = 3.0

_probe_cache: dict[str, tuple[float, str, str | None]] = {}  # url -> (when, kind, model)


@dataclass(frozen=True)
class EngineSettings:
    kind: EngineKind = "auto"
    url: str = DEFAULT_URL
    model: str | None = None
    api_key: str | None = None
    max_in_flight: int = MAX_IN_FLIGHT
    request_timeout_s: float = REQUEST_TIMEOUT_S
    max_retries: int = 3
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None


def resolve(settings: EngineSettings) -> tuple[str, str | None]:
    """Return ``("vllm", model)`` or ``("cpu", None)`` for the settings, probing when needed."""
    if settings.kind == "cpu":
        return "cpu", None
    url = normalize_base_url(settings.url)
    api_key = settings.api_key or api_key_from_env()
    if settings.kind == "vllm":
        if settings.model:
            return "vllm", settings.model
        try:
            return "vllm", choose_model(probe_models(url, api_key, PROBE_TIMEOUT_S))
        except OCRServerError as exc:
            raise OCRServerError(f"{exc}; {VLLM_HINT} (or use --ocr-engine cpu)") from None
    cached = _probe_cache.get(url)
    if cached and time.monotonic() - cached[0] < PROBE_MEMORY_S:
        return cached[1], settings.model or cached[2]
    try:
        model = settings.model or choose_model(probe_models(url, api_key, PROBE_TIMEOUT_S))
        kind = "vllm"
        log.warning("lightocr-ingest: OCR engine: vLLM at %s, model %s", url, model)
    except OCRServerError as exc:
        kind, model = "cpu", None
        log.warning(
            "lightocr-ingest: OCR engine: CPU (RapidOCR) because %s. The CPU engine is slow and writes "
            "plain paragraphs (no tables, no math). For LightOnOCR-2-1B on a GPU, %s, then pass "
            "--ocr-url http://HOST:8000/v1", exc, VLLM_HINT,
        )
    _probe_cache[url] = (time.monotonic(), kind, model)
    return kind, model


def create_engine(settings: EngineSettings) -> VLLMEngine | CpuEngine:
    """Build the engine the settings call for; must run inside the event loop that will use it."""
    kind, model = resolve(settings)
    if kind == "cpu":
        return CpuEngine()
    options = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("kind", "url", "model")}
    return VLLMEngine(settings.url, model=model, **options)
