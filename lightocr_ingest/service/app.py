"""The FastAPI app: OCR, ingestion jobs, search, health, metrics and the web page.

Heavy work never runs on the event loop: rendering, the CPU engine, chunking and Qdrant run in
threads, requests to vLLM are async. A bounded number of OCR requests are worked on at once
(``concurrency``) and a bounded number wait (``queue_size``); beyond that the answer is 429 with
``Retry-After``, so a burst is told when to come back instead of piling up connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import ConfigError, InputError, OCRServerError
from ..pages import DocumentSource
from ..pages.render import IMAGE_SUFFIXES, PDF_SUFFIXES, SUPPORTED_SUFFIXES, sniff
from .errors import ServiceError, envelope, from_input_error, overloaded
from .jobs import Job, JobFile, JobRunner, known_names, new_job_id
from .metrics import Metrics
from .settings import ServiceSettings

log = logging.getLogger("lightocr_ingest")

STATIC = Path(__file__).parent / "static"
UPLOAD_CHUNK = 1 << 20  # bytes read from an upload at a time
COLLECTION_NAME = r"^[A-Za-z0-9_\-]+$"
KNOWN_METHODS = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")  # a caller's own X-Request-ID is kept when it looks like one
_SNIFFED_SUFFIX = {"a PDF": ".pdf", "a PNG image": ".png", "a JPEG image": ".jpg", "a TIFF image": ".tif",
                   "a GIF image": ".gif", "a BMP image": ".bmp", "a WebP image": ".webp"}


class QueryRequest(BaseModel):
    text: str = Field(min_length=1, max_length=4000, examples=["How often are the sondes calibrated?"])
    k: int = Field(default=5, ge=1, le=100)
    collection: str | None = Field(default=None, pattern=COLLECTION_NAME, max_length=64)
    mode: Literal["dense", "hybrid"] | None = Field(default=None, description="default: the config's retrieval.mode")


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit_mb: float):
        super().__init__(413, f"the upload is over the limit of {limit_mb:g} MB")


class BodyLimit:
    """Refuse a request body over the limit while it streams in, not after: by its
    Content-Length before reading anything, else by counting what arrives. Past the limit the
    app is told the client left (so it stops reading), and its answer is replaced by a 413."""

    def __init__(self, app, limit_bytes: int, limit_mb: float):
        self.app, self.limit, self.limit_mb = app, limit_bytes, limit_mb

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, headers, send)
        seen, over, started = 0, False, False

        async def counting_receive():
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if over and not started:
                return  # the app's answer to a "disconnect": ours replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(scope, headers, send)

    async def _refuse(self, scope, headers: dict, send) -> None:
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = (scope.get("state") or {}).get("request_id") or (given if REQUEST_ID.match(given) else
                                                                      uuid.uuid4().hex)
        body = json.dumps(envelope("too_large", f"the upload is over the limit of {self.limit_mb:g} MB",
                                   "split the file, or start the service with a larger --max-upload-mb",
                                   request_id)).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class Service:
    """What the routes share: the reader, the Qdrant client, the ingestors, the job runner, limits."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.config = settings.config
        self.metrics = Metrics()
        self.client = None
        self.reader = None
        self.ingestors: dict = {}
        self._ingestors_lock = threading.Lock()
        self.runner: JobRunner | None = None
        self.upload_root = Path(tempfile.mkdtemp(prefix="lightocr-uploads-"))
        self.ocr_slots = asyncio.Semaphore(settings.concurrency)
        self.ocr_waiting = 0
        self.ocr_seconds: deque[float] = deque(maxlen=50)  # recent OCR request times: what Retry-After says

    async def start(self) -> None:
        from ..pipeline.run import make_reader
        from ..store import SerialisedClient, is_local, make_client

        q = self.config.qdrant
        client = await asyncio.to_thread(make_client, q.path, q.url, q.api_key.get_secret_value() if q.api_key else None)
        # Queries and the job thread share it: local mode must see one call at a time.
        self.client = SerialisedClient(client) if is_local(client) else client
        self.reader = make_reader(self.config)
        self.runner = JobRunner(self.ingestor_for, self.metrics, self.settings.max_jobs_queued)
        self.runner.start()

    async def stop(self) -> None:
        finished = await self.runner.stop() if self.runner is not None else True
        if not finished:
            return  # a job's thread still uses the client and its uploads; the process ending ends it
        if self.client is not None:
            self.client.close()
        shutil.rmtree(self.upload_root, ignore_errors=True)

    def config_for(self, collection: str | None):
        """The pipeline config for a collection. A job reads its uploads only: the config's own
        ``input.paths`` (a server folder) are not the service's to read."""
        collection = collection or self.config.qdrant.collection
        return self.config.model_copy(update={
            "qdrant": self.config.qdrant.model_copy(update={"collection": collection}),
            "input": self.config.input.model_copy(update={"paths": []})})

    def ingestor_for(self, collection: str):
        from ..pipeline.run import Ingestor

        with self._ingestors_lock:  # requests and the job thread ask at once
            if collection not in self.ingestors:
                self.ingestors[collection] = Ingestor(self.config_for(collection), client=self.client)
            return self.ingestors[collection]

    def retry_after_s(self) -> int:
        typical = statistics.median(self.ocr_seconds) if self.ocr_seconds else 5.0
        return max(1, round(typical * (self.ocr_waiting + 1) / self.settings.concurrency))

    @contextlib.asynccontextmanager
    async def ocr_slot(self) -> AsyncIterator[None]:
        if self.ocr_slots.locked() and self.ocr_waiting >= self.settings.queue_size:
            raise overloaded(self.retry_after_s(), "OCR")
        self.ocr_waiting += 1
        self.metrics.ocr_queue.set(self.ocr_waiting)
        try:
            await self.ocr_slots.acquire()
        finally:
            self.ocr_waiting -= 1
            self.metrics.ocr_queue.set(self.ocr_waiting)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ocr_slots.release()
            self.ocr_seconds.append(time.perf_counter() - started)


def upload_suffix(upload: UploadFile, head: bytes) -> str:
    """The suffix to save an upload under: from its name when supported, else from its content.
    The name itself is never used as a path."""
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    found = _SNIFFED_SUFFIX.get(sniff(head) or "")
    if found:
        return found
    raise ServiceError(415, "unsupported_type",
                       f"{upload.filename or 'the upload'}: unsupported file type "
                       f"{suffix or '(no extension)'}{', ' + sniff(head) if sniff(head) else ''}",
                       "upload a PDF or an image (" + ", ".join(sorted(PDF_SUFFIXES | IMAGE_SUFFIXES)) + ")")


async def save_upload(upload: UploadFile, folder: Path, stem: str, limit: int, limit_mb: float) -> Path:
    head = await upload.read(UPLOAD_CHUNK)
    if not head:
        raise ServiceError(400, "empty_file", f"{upload.filename or 'the upload'}: the upload is empty",
                           "upload the file again")
    path = folder / f"{stem}{upload_suffix(upload, head)}"
    size = 0
    with open(path, "wb") as out:
        while head:
            size += len(head)
            if size > limit:
                raise _TooLarge(limit_mb)
            out.write(head)
            head = await upload.read(UPLOAD_CHUNK)
    return path


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

    app = FastAPI(title="lightocr-ingest", version=__version__, lifespan=lifespan,
                  description="OCR (LightOnOCR-2-1B via vLLM, or the embedded CPU engine), ingestion into Qdrant "
                              "and search. Errors are `{\"error\": {\"code\", \"message\", \"suggestion\", "
                              "\"request_id\"}}`; every response carries `X-Request-ID`.")
    app.state.service = service

    # --- request ids, latency, errors ---------------------------------------------------
    async def request_id_and_metrics(request: Request, call_next):
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        service.metrics.in_flight.inc()
        started = time.perf_counter()
        status = 500
        try:
            if request.url.path.startswith("/v1/") and not authorised(request):
                # Before the body is read: an unauthorised client cannot make the service take an upload.
                response = _error(request, 401, "unauthorized", "missing or wrong API key",
                                  "send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                                  {"WWW-Authenticate": "Bearer"})
            else:
                response = await call_next(request)
            status = response.status_code
        except Exception:  # noqa: BLE001 - a fault of ours: traceback in the log, request id to the caller
            log.exception("request %s failed", request.state.request_id)
            response = _error(request, 500, "internal", "internal error",
                              "try again; if it persists, report the request id")
        finally:
            service.metrics.in_flight.dec()
            route = request.scope.get("route")
            # Label values from the app's own routes and methods only: a caller must not mint series.
            label = getattr(route, "path", None) or "unmatched"
            method = request.method if request.method in KNOWN_METHODS else "other"
            service.metrics.latency.labels(method, label, str(status)).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    def _error(request: Request, status: int, code: str, message: str, suggestion: str,
               headers: dict | None = None) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        return JSONResponse(envelope(code, message, suggestion, request_id), status_code=status,
                            headers={**(headers or {}), "X-Request-ID": request_id})

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return _error(request, exc.status, exc.code, exc.message, exc.suggestion, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("loc", [None, None])[-1] == "file" and e.get("type") == "missing" for e in errors):
            return _error(request, 422, "missing_file", "no file in the request",
                          "send the file as multipart form data in a field named 'file'")
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in errors)
        return _error(request, 422, "invalid_request", f"invalid request: {where}",
                      "see /docs for the request's fields")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if isinstance(exc, _TooLarge):
            return _error(request, 413, "too_large", exc.detail,
                          f"split the file, or start the service with a larger --max-upload-mb")
        if exc.status_code == 404:
            return _error(request, 404, "not_found", f"no such route: {request.url.path}", "see /docs")
        if exc.status_code == 405:
            return _error(request, 405, "method_not_allowed", f"{request.method} is not allowed here", "see /docs")
        if exc.status_code == 400:  # a body that cannot be parsed (broken multipart, bad JSON)
            return _error(request, 422, "invalid_request", str(exc.detail), "see /docs for the request's fields")
        return _error(request, exc.status_code, "http_error", str(exc.detail), "see /docs")

    # Outermost first: CORS, then request ids, metrics and the API key, then the body limit (its
    # 413 gets the request id and is counted like any answer).
    app.add_middleware(BodyLimit, limit_bytes=settings.max_upload_bytes, limit_mb=settings.max_upload_mb)
    app.middleware("http")(request_id_and_metrics)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After", "Location"])

    # --- auth -----------------------------------------------------------------------------
    def authorised(request: Request) -> bool:
        if settings.api_key is None:
            return True
        expected = settings.api_key.get_secret_value()
        given = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        return bool(given) and secrets.compare_digest(given.encode(), expected.encode())

    # --- open routes ----------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The OCR backend and Qdrant are reachable")
    async def readyz(request: Request):
        problems = []
        ocr = await _ocr_ready(settings)
        if ocr.startswith("unreachable"):
            problems.append(f"OCR: {ocr}")
        try:
            await asyncio.to_thread(service.client.get_collections)
            qdrant = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            qdrant = f"unreachable: {type(exc).__name__}"
            problems.append(f"Qdrant: {qdrant}")
        if problems:
            return _error(request, 503, "not_ready", "; ".join(problems),
                          "start the OCR server and Qdrant, or check --ocr-url / --qdrant-url")
        return {"status": "ready", "ocr": ocr, "qdrant": qdrant}

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- /v1 --------------------------------------------------------------------------------
    from fastapi import APIRouter

    v1 = APIRouter(prefix="/v1")  # the API key is checked by the middleware, before the body is read

    @v1.post("/ocr", tags=["ocr"], summary="OCR one file: each page's Markdown and metadata")
    async def ocr(request: Request, file: UploadFile = File(..., description="a PDF or an image"),
                  pages: str | None = Form(None, description="page selection, e.g. 1-3,7", examples=["1-3"]),
                  images: bool = Form(False, description="also return each page's image (PNG data URL)"),
                  chunks: bool = Form(False, description="also return the file's chunks with their regions"),
                  html: bool = Form(False, description="also return each page as HTML (tables, MathML)"),
                  stream: bool = Form(False, description=(
                      "answer as NDJSON, a line per event as it happens: {\"file\": {...}}, then {\"page\": {...}} "
                      "for each page as it is read, then {\"chunks\": [...]}; an error after the first line "
                      "comes as a line {\"error\": {...}}. One upload, progress page by page."))):
        name = file.filename or "upload"
        if stream:
            return await _ocr_stream(service, file, name, pages, images, chunks, html, request.state.request_id)
        async with service.ocr_slot():
            folder = Path(tempfile.mkdtemp(dir=service.upload_root))
            try:
                path = await save_upload(file, folder, "upload", settings.max_upload_bytes, settings.max_upload_mb)
                return await _ocr_file(service, path, name, pages, images, chunks, html)
            finally:
                await asyncio.to_thread(shutil.rmtree, folder, True)

    @v1.post("/ingest", tags=["ingest"], status_code=202, summary="Queue files for ingestion; poll the job")
    async def ingest(file: list[UploadFile] = File(..., description="one or more PDFs or images"),
                     collection: str | None = Form(None, pattern=COLLECTION_NAME, max_length=64)):
        collection = collection or settings.config.qdrant.collection
        if service.runner.queue.full():  # before taking the uploads in
            raise overloaded(30, "ingest jobs")
        folder = Path(tempfile.mkdtemp(dir=service.upload_root))
        try:
            files = []
            for index, (upload, known_as) in enumerate(zip(file, known_names([u.filename or "" for u in file]))):
                path = await save_upload(upload, folder, f"{index:05d}", settings.max_upload_bytes,
                                         settings.max_upload_mb)
                await asyncio.to_thread(_check_page_count, path, upload.filename or known_as, settings.max_pages)
                files.append(JobFile(file_name=upload.filename or path.name, path=str(path), known_as=known_as))
            job = Job(job_id=new_job_id(), collection=collection, folder=folder, files=files)
            try:
                await asyncio.to_thread(service.ingestor_for, collection)  # a mode mismatch fails now, not later
                service.runner.submit(job)
            except asyncio.QueueFull:
                raise overloaded(30, "ingest jobs") from None
        except ConfigError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise ServiceError(422, "invalid_request", str(exc), "see the message") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse({"job_id": job.job_id, "status": job.status}, status_code=202,
                            headers={"Location": f"/v1/jobs/{job.job_id}"})

    @v1.get("/jobs/{job_id}", tags=["ingest"], summary="A job's status, pages and problems")
    async def job_status(job_id: str):
        job = service.runner.jobs.get(job_id)
        if job is None:
            raise ServiceError(404, "not_found", f"no job {job_id!r}",
                               "use the job_id that POST /v1/ingest answered; finished jobs are kept for a while")
        return job.to_dict()

    @v1.post("/query", tags=["search"], summary="The chunks that best answer a question")
    async def query(body: QueryRequest):
        from ..retrieval.query import build_retriever, to_hit

        config = service.config_for(body.collection)

        def search():
            # No Ingestor here: it checks the collection for writing, and a search needs only the
            # embedding model (loaded once a process, shared with the ingestors).
            with build_retriever(config, body.k, body.mode, client=service.client) as retriever:
                return [to_hit(result) for result in retriever.retrieve(body.text)]

        try:
            hits = await asyncio.to_thread(search)
        except ConfigError as exc:
            if "empty or missing" in str(exc):
                raise ServiceError(404, "not_found", f"collection '{config.qdrant.collection}' is empty or missing",
                                   "ingest files into it first (POST /v1/ingest)") from None
            raise ServiceError(422, "invalid_request", str(exc), "see the message") from None
        return {"hits": [{"score": h.score, "text": h.text, "file_name": h.file_name, "file_sha256": h.file_sha256,
                          "page": h.page, "pages": h.pages, "header_path": h.header_path, "regions": h.regions,
                          "bbox": h.bbox}
                         for h in hits]}

    app.include_router(v1)
    return app


def _check_page_count(path: Path, name: str, max_pages: int) -> None:
    """413 for a file over the page limit; a file that cannot be opened is the job's to report."""
    try:
        with DocumentSource(path) as source:
            pages = source.source.page_count
    except InputError:
        return
    if pages > max_pages:
        raise ServiceError(413, "too_many_pages", f"{name}: {pages} pages, over the limit of {max_pages}",
                           "split the file, or start the service with a larger --max-pages")


async def _ocr_ready(settings: ServiceSettings) -> str:
    """'cpu engine', 'ok (URL)' or 'unreachable: ...' for the configured OCR backend."""
    ocr = settings.config.ocr
    if ocr.engine == "cpu":
        return "cpu engine"
    import httpx

    from ..ocr.vllm import split_urls

    urls = split_urls(ocr.url) if ocr.url else []
    if not urls:
        return "cpu engine" if ocr.engine == "auto" else "unreachable: no ocr.url"
    down = []
    async with httpx.AsyncClient(timeout=3.0) as client:
        for url in urls:
            try:
                (await client.get(url + "/models")).raise_for_status()
            except Exception as exc:  # noqa: BLE001 - unreachable is unreachable
                down.append(f"{url} ({type(exc).__name__})")
    if down and (ocr.engine == "vllm" or len(down) == len(urls)):
        return "unreachable: " + ", ".join(down) if ocr.engine == "vllm" else f"cpu engine (vLLM down: {', '.join(down)})"
    return "ok (" + ", ".join(urls) + ")"


async def _ocr_stream(service: Service, upload: UploadFile, name: str, pages: str | None, images: bool,
                      chunks: bool, html: bool, request_id: str):
    """/v1/ocr as NDJSON. Everything that can be refused (the queue, the upload, the file) is
    refused before the first line, with the usual status; the slot and the upload are held
    until the last line is sent or the client goes."""
    from fastapi.responses import StreamingResponse

    slot = service.ocr_slot()
    await slot.__aenter__()
    folder = Path(tempfile.mkdtemp(dir=service.upload_root))
    try:
        path = await save_upload(upload, folder, "upload", service.settings.max_upload_bytes,
                                 service.settings.max_upload_mb)
        source = await asyncio.to_thread(_open_checked, service, path, name, pages)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, folder, True)
        await slot.__aexit__(None, None, None)
        raise

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for event in _ocr_events(service, path, source, name, pages, images, chunks, html):
                yield (json.dumps(event) + "\n").encode()
        except ServiceError as exc:
            yield (json.dumps(envelope(exc.code, exc.message, exc.suggestion, request_id)) + "\n").encode()
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            await slot.__aexit__(None, None, None)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _open_checked(service: Service, path: Path, name: str, pages: str | None) -> DocumentSource:
    """The upload opened (once), or the API error that says why it cannot be read."""
    settings = service.settings
    try:
        source = DocumentSource(path, password=None)
    except InputError as exc:
        raise from_input_error(exc, name) from None
    try:
        numbers = source.page_numbers(pages)
    except InputError as exc:
        source.close()
        raise ServiceError(422, "invalid_request", f"{name}: {exc.cause}",
                           "pages is a selection such as 1-3,7 within the file's pages") from None
    if source.source.page_count > settings.max_pages and len(numbers) > settings.max_pages:
        source.close()
        raise ServiceError(413, "too_many_pages",
                           f"{name}: {source.source.page_count} pages, over the limit of {settings.max_pages}",
                           "send a page selection (pages=1-100), split the file, or raise --max-pages")
    return source


async def _ocr_events(service: Service, path: Path, source: DocumentSource, name: str, pages: str | None,
                      images: bool, chunks: bool, html: bool) -> AsyncIterator[dict]:
    """``{"file": ...}``, then ``{"page": ...}`` for each page as it is read, then ``{"chunks": [...]}``
    (the file's chunks, cut over all its pages read) when asked. Closes ``source``."""
    reader = service.reader if pages is None else service.reader.model_copy(update={"pages": pages})

    async def one() -> AsyncIterator[DocumentSource]:
        yield source

    yield {"file": {"file_name": name, "file_sha256": source.source.sha256, "page_count": source.source.page_count}}
    documents = []
    # The reader does not keep the PNG it sent: the web page's images are rendered again, from a
    # second handle opened once (the reader renders from the first meanwhile).
    images_from = await asyncio.to_thread(DocumentSource, path, detect_rotation=reader.detect_rotation) \
        if images else None
    try:
        async for document in reader.astream_sources(one()):
            documents.append(document)
            run = document.ocr
            service.metrics.page(run.status, document.metadata.get("ocr_engine"), run.cached)
            yield {"page": await asyncio.to_thread(_page_entry, document, name, images_from, html)}
    except InputError as exc:
        raise from_input_error(exc, name) from None
    except OCRServerError as exc:
        raise ServiceError(503, "ocr_unavailable", f"the OCR server cannot be used: {exc}",
                           "retry later; check the vLLM server (GET /readyz says what is down)",
                           {"Retry-After": "30"}) from None
    finally:
        source.close()
        if images_from is not None:
            images_from.close()
    if chunks:
        yield {"chunks": await asyncio.to_thread(_chunks, service, documents)}


async def _ocr_file(service: Service, path: Path, name: str, pages: str | None, images: bool, chunks: bool,
                    html: bool) -> dict:
    source = await asyncio.to_thread(_open_checked, service, path, name, pages)
    answer: dict = {"pages": []}
    async for event in _ocr_events(service, path, source, name, pages, images, chunks, html):
        if "file" in event:
            answer.update(event["file"])
        elif "page" in event:
            answer["pages"].append(event["page"])
        else:
            answer["chunks"] = event["chunks"]
    return answer


def _page_entry(document, name: str, images_from: DocumentSource | None, html: bool) -> dict:
    """One page of /v1/ocr's answer (rendering its image and HTML is CPU work: run it off the loop)."""
    import base64

    metadata = {k: v for k, v in document.metadata.items() if k != "file_path"}  # the upload's temp path
    metadata["file_name"] = name
    entry = {"page": metadata.get("page"), "markdown": document.text, "metadata": metadata}
    if images_from is not None and metadata.get("page"):
        with contextlib.suppress(InputError):  # a page that cannot be rendered is shown without its image
            png = images_from.render_page(metadata["page"]).png
            entry["image"] = "data:image/png;base64," + base64.b64encode(png).decode()
    if html:
        from .page_html import page_html

        entry["html"] = page_html(document.text)
    return entry


def _chunks(service: Service, documents) -> list[dict]:
    parser = service.ingestor_for(service.config.qdrant.collection).parser
    readable = [d for d in documents if d.metadata.get("ocr_status") != "failed"]
    return [{"text": node.get_content(), "page": node.metadata.get("page"), "pages": node.metadata.get("pages"),
             "header_path": node.metadata.get("header_path", ""), "regions": node.metadata.get("regions", []),
             "bbox": node.metadata.get("bbox")} for node in parser.chunk_file(readable)] if readable else []
