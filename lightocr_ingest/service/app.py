"""The FastAPI app: OCR, ingestion jobs, search, health, metrics and the web page.

``create_app`` only assembles: the shared ``Service`` (``state.py``), the middleware
(``limits.py``, ``middleware.py``), the error handlers (``handlers.py``) and the routers
(``routes/``). Heavy work never runs on the event loop: rendering, the CPU engine, chunking and
Qdrant run in threads, requests to vLLM are async. A bounded number of OCR requests are worked
on at once (``concurrency``) and a bounded number wait (``queue_size``); beyond that the answer
is 429 with ``Retry-After``, so a burst is told when to come back instead of piling up
connections (``slots.py``).
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI

from .._version import __version__
from .handlers import install_error_handlers
from .limits import BodyLimit
from .middleware import request_id_and_metrics
from .routes import documents, health, ingest, ocr, search, web
from .settings import ServiceSettings
from .state import Service


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    service = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    # docs_url/redoc_url off: FastAPI's pages load Swagger UI from a CDN; routes/web.py serves it
    # from the package.
    app = FastAPI(title="lightocr-ingest", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="OCR (LightOnOCR-2-1B via vLLM, or the embedded CPU engine), ingestion into Qdrant "
                              "and search. Errors are `{\"error\": {\"code\", \"message\", \"suggestion\", "
                              "\"request_id\"}}`; every response carries `X-Request-ID`.")
    app.state.service = service
    install_error_handlers(app)

    # Outermost first: CORS, then request ids, metrics and the API key, then the body limit (its
    # 413 gets the request id and is counted like any answer).
    app.add_middleware(BodyLimit, limit_bytes=settings.max_upload_bytes, limit_mb=settings.max_upload_mb,
                       idle_s=settings.body_idle_s, in_flight_bytes=int(settings.max_uploads_in_flight_mb * 2**20))
    app.middleware("http")(request_id_and_metrics)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After", "Location"])

    # Open routes: the web page, health, metrics.
    app.include_router(web.router)
    web.mount_static(app)
    app.include_router(health.router)
    # /v1: the API key is checked by the middleware, before the body is read. Each router has the
    # prefix itself: a prefix given to include_router would not be in the route's path that the
    # latency metric is labelled with.
    for area in (ocr, ingest, search, documents):
        app.include_router(area.router)
    return app
