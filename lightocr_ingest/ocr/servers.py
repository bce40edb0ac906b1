"""The vLLM servers a run talks to: their URLs, the API key, which models they serve, and the
command that starts one (said in every error that needs a server).

Synchronous and small, so that the engine's choice (``engine.resolve``), the service's
``/readyz`` and the Ray driver ask a server the same way, with the same key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import httpx

from ..errors import OCRServerError
from ..notices import warn_once

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
