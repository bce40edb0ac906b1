"""Liveness, readiness and metrics: open routes, for load balancers and Prometheus.

``/readyz`` asks the OCR backend the way the OCR client does, with ``probe_models`` and the
configured API key (``ocr.api_key``, else ``LIGHTONOCR_API_KEY`` / ``VLLM_API_KEY``), so a
server the client could not use is not reported ready; and it asks Qdrant for its collections.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import OCRServerError
from ..handlers import error_response
from ..state import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", summary="The OCR backend and Qdrant are reachable")
async def readyz(request: Request, service: ServiceDep):
    problems = []
    ocr = await ocr_readiness(service.config.ocr)
    if ocr.startswith("unreachable"):
        problems.append(f"OCR: {ocr}")
    try:
        await asyncio.to_thread(service.client.get_collections)
        qdrant = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        qdrant = f"unreachable: {type(exc).__name__}"
        problems.append(f"Qdrant: {qdrant}")
    if problems:
        return error_response(request, 503, "not_ready", "; ".join(problems),
                              "start the OCR server and Qdrant, or check --ocr-url / --qdrant-url")
    return {"status": "ready", "ocr": ocr, "qdrant": qdrant, "limits": service.limits()}


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(service: ServiceDep):
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def ocr_readiness(ocr) -> str:
    """'cpu engine', 'ok (URL)' or 'unreachable: ...' for the configured OCR backend (``config.ocr``)."""
    if ocr.engine == "cpu":
        return "cpu engine"
    from ...ocr.engine import PROBE_TIMEOUT_S
    from ...ocr.servers import api_key_from_env, probe_models, split_urls

    urls = split_urls(ocr.url) if ocr.url else []
    if not urls:
        return "cpu engine" if ocr.engine == "auto" else "unreachable: no ocr.url"
    api_key = ocr.api_key.get_secret_value() if ocr.api_key else api_key_from_env()  # as the OCR client's

    async def why_down(url: str) -> str | None:
        try:
            await asyncio.to_thread(probe_models, url, api_key, PROBE_TIMEOUT_S)
        except OCRServerError as exc:  # it names the URL and says why (refused, no answer, not vLLM)
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - unreachable is unreachable
            return f"{url} ({type(exc).__name__})"
        return None

    down = [why for why in await asyncio.gather(*(why_down(url) for url in urls)) if why]
    if down and (ocr.engine == "vllm" or len(down) == len(urls)):
        return "unreachable: " + ", ".join(down) if ocr.engine == "vllm" else f"cpu engine (vLLM down: {', '.join(down)})"
    return "ok (" + ", ".join(urls) + ")"
