"""``POST /v1/ocr``: one uploaded file read page by page, answered whole or as NDJSON.

Heavy work never runs on the event loop: opening and rendering the file, the CPU engine and
chunking run in threads, requests to vLLM are async. The upload is saved and checked against
the request's limits first; then it waits for its turn (an OCR slot within a stated bound, then
room for its pixels: ``slots.py``), holds it while its pages are read, and gives it and its
upload back however the request ends (a client that leaves included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from ...errors import InputError, OCRServerError
from ...metadata import ChunkMetadata, PageMetadata
from ...pages import DocumentSource
from ..errors import ServiceError, envelope, from_input_error, overloaded
from ..slots import Ticket, retry_after
from ..state import Service, ServiceDep
from ..uploads import UploadCost, check_upload, save_upload

log = logging.getLogger("lightocr_ingest")

router = APIRouter(prefix="/v1")  # the API key is checked by the middleware, before the body is read

STREAM_LINES_AHEAD = 8  # NDJSON lines read ahead of the client (a page each; with images, ~0.3 MB each)
SLOW_READER_S = 30.0  # a streaming client that takes no line for this long ends its answer


@router.post("/ocr", tags=["ocr"], summary="OCR one file: each page's Markdown and metadata")
async def ocr(request: Request, service: ServiceDep,
              file: UploadFile = File(..., description="a PDF or an image"),
              pages: str | None = Form(None, description="page selection, e.g. 1-3,7", examples=["1-3"]),
              images: bool = Form(False, description="also return each page's image (PNG data URL)"),
              chunks: bool = Form(False, description="also return the file's chunks with their regions"),
              html: bool = Form(False, description="also return each page as HTML (tables, MathML)"),
              stream: bool = Form(False, description=(
                  "answer as NDJSON, a line per event as it happens: {\"file\": {...}}, then {\"page\": {...}} "
                  "for each page as it is read, then {\"chunks\": [...]}; an error after the first line "
                  "comes as a line {\"error\": {...}}. One upload, progress page by page."))):
    name = file.filename or "upload"
    refused = service.ocr_slots.refusal()  # before the upload is saved and opened, when the answer is known
    if refused is not None:
        raise refused
    folder = Path(tempfile.mkdtemp(dir=service.upload_root))
    turn = None
    try:
        # Saved and checked first: what it costs (pages, pixels) decides its turn. Not held open
        # while it waits: a waiting request holds its upload on disk only.
        path = await save_upload(file, folder, "upload", service.settings.max_upload_bytes,
                                 service.settings.max_upload_mb)
        cost = await asyncio.to_thread(_checked, service, path, name, pages)
        turn = Turn(service, cost, images)
        await turn.take()
        source = await asyncio.to_thread(DocumentSource, path)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if turn is not None:
                await turn.release()
            await asyncio.to_thread(shutil.rmtree, folder, True)
        raise

    async def clean_up() -> None:
        source.close()
        await turn.release()
        await asyncio.to_thread(shutil.rmtree, folder, True)

    if stream:
        return _ocr_stream(service, path, source, turn, clean_up, name, pages, images, chunks, html,
                           request.state.request_id)
    try:
        return await _ocr_file(service, path, source, turn.ticket, name, pages, images, chunks, html)
    finally:
        with anyio.CancelScope(shield=True):  # a client that left cancels the request: this still runs
            await clean_up()


class Turn:
    """An OCR request's turn: a slot within the wait bound (``slots.OcrSlots``), then room for its
    pixels in the decode budget (twice with ``images``: the page is rendered again for the answer
    while the next is read); 429 / 503 with Retry-After when there is none. Released once, as
    soon as its pages are read."""

    def __init__(self, service: Service, cost: UploadCost, images: bool):
        self.service, self.cost = service, cost
        self.pixels = cost.peak_pixels * (2 if images else 1)
        self.ticket: Ticket | None = None
        self._slot = None
        self._released = False

    async def take(self) -> None:
        slot = self.service.ocr_slots.hold(self.cost.pages)
        self.ticket = await slot.__aenter__()  # the 429 / 503 when there is no turn
        if not self.service.pixels.try_take(self.pixels):
            await slot.__aexit__(None, None, None)
            wait = retry_after(self.service.workload.seconds_until_one_ends())
            raise overloaded(wait, f"decoding: {self.service.pixels.used / 1e6:.0f} of "
                                   f"{self.service.settings.max_decode_megapixels:g} megapixels in flight")
        self._slot = slot  # held: a slot and the pixels, until release()

    async def release(self) -> None:
        if self._released or self._slot is None:
            return
        self._released = True
        with anyio.CancelScope(shield=True):
            await self.service.pixels.give_back(self.pixels)
            await self._slot.__aexit__(None, None, None)


class ClientTooSlow(Exception):
    """A streaming client took nothing for ``SLOW_READER_S``: its answer ends there."""


def _only_slow_client(error: BaseException) -> bool:
    if isinstance(error, ClientTooSlow):
        return True
    inner = getattr(error, "exceptions", None)  # an exception group from Starlette's task group
    return bool(inner) and all(_only_slow_client(e) for e in inner)


class _CleanedUpStream(StreamingResponse):
    """A streaming answer whose clean-up runs when it ends however it ends: Starlette cancels the
    body's generator when the client goes, and a ``finally`` in it would stop at its first await.
    A write the client does not take within ``SLOW_READER_S`` ends the answer (and the connection)."""

    def __init__(self, content, clean_up):
        super().__init__(content, media_type="application/x-ndjson")
        self._clean_up = clean_up

    async def __call__(self, scope, receive, send) -> None:
        async def send_in_time(message) -> None:
            try:
                await asyncio.wait_for(send(message), SLOW_READER_S)
            except TimeoutError:
                raise ClientTooSlow from None

        try:
            await super().__call__(scope, receive, send_in_time)
        except Exception as error:  # noqa: BLE001 - a slow client is the client's; anything else is raised
            if not _only_slow_client(error):
                raise
            log.info("a streaming client took nothing for %g s: its answer ended", SLOW_READER_S)
        finally:
            with anyio.CancelScope(shield=True):
                await self._clean_up()


def _line(event: dict) -> bytes:
    return (json.dumps(event) + "\n").encode()


def _ocr_stream(service: Service, path: Path, source: DocumentSource, turn: Turn, clean_up, name: str,
                pages: str | None, images: bool, chunks: bool, html: bool, request_id: str) -> StreamingResponse:
    """/v1/ocr as NDJSON. Everything that can be refused (the queue, the upload, the file) was
    refused before the first line, with the usual status. The pages are read ahead of what the
    client has taken by at most ``STREAM_LINES_AHEAD`` lines, and the turn is given back when the
    last page is read: a client that reads slowly does not hold the engine for longer than
    ``SLOW_READER_S`` in all; past that its answer ends with an error line, the rest unread."""
    lines: asyncio.Queue = asyncio.Queue(maxsize=STREAM_LINES_AHEAD)
    waited = 0.0  # seconds the reading has waited for the client to take lines
    stalled = False

    async def hand_on(line: bytes) -> bool:
        """Queue a line for the client; False once it has kept the reading waiting too long."""
        nonlocal waited
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, SLOW_READER_S - waited)):
                await lines.put(line)
            return True
        except TimeoutError:
            return False
        finally:
            waited += time.monotonic() - started

    async def read_pages() -> None:
        nonlocal stalled
        error = None
        try:
            async for event in _ocr_events(service, path, source, turn.ticket, name, pages, images, chunks, html):
                if not await hand_on(_line(event)):
                    stalled = True
                    break
        except asyncio.CancelledError:  # the client has gone: no more lines, the turn goes back
            await turn.release()
            raise
        except ServiceError as exc:
            error = envelope(exc.code, exc.message, exc.suggestion, request_id)
        except Exception:  # noqa: BLE001 - a fault of ours: an error line, not a silently cut answer
            log.exception("request %s: reading %s failed", request_id, name)
            error = envelope("internal", f"{name}: internal error while reading the file",
                             "try again; if it persists, report the request id", request_id)
        await turn.release()  # every page read (or none can be): the engine is the next request's
        if error is not None and not stalled and not await hand_on(_line(error)):
            stalled = True
        await lines.put(None)  # the client takes lines until this, or goes (and this task is cancelled)

    reader: asyncio.Task | None = None

    async def body() -> AsyncIterator[bytes]:
        nonlocal reader
        reader = asyncio.ensure_future(read_pages())
        while (line := await lines.get()) is not None:
            yield line
        if stalled:
            error = ServiceError(408, "client_too_slow", f"{name}: the answer was not read for {SLOW_READER_S:g} s; "
                                                         "the rest of the file was not read",
                                 "read the stream as it comes, or ask without stream=true")
            yield _line(envelope(error.code, error.message, error.suggestion, request_id))

    async def stop_reading_and_clean_up() -> None:
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait({reader}, timeout=60)  # a page being read ends at its next await
        await clean_up()

    return _CleanedUpStream(body(), stop_reading_and_clean_up)


def _checked(service: Service, path: Path, name: str, pages: str | None) -> UploadCost:
    """What reading the upload costs, or the API error that says why it cannot be read or is over a
    limit. The file is opened to be checked, and closed."""
    try:
        source = DocumentSource(path, password=None)
    except InputError as exc:
        raise from_input_error(exc, name) from None
    with source:
        try:
            source.page_numbers(pages)
        except InputError as exc:
            raise ServiceError(422, "invalid_request", f"{name}: {exc.cause}",
                               "pages is a selection such as 1-3,7 within the file's pages") from None
        return check_upload(path, name, service.settings, pages, source=source)


async def _ocr_events(service: Service, path: Path, source: DocumentSource, ticket: Ticket, name: str,
                      pages: str | None, images: bool, chunks: bool, html: bool) -> AsyncIterator[dict]:
    """``{"file": ...}``, then ``{"page": ...}`` for each page as it is read, then ``{"chunks": [...]}``
    (the file's chunks, cut over all its pages read) when asked. Closes ``source``."""
    reader = service.reader if pages is None else service.reader.model_copy(update={"pages": pages})

    async def one() -> AsyncIterator[DocumentSource]:
        yield source

    yield {"file": {"file_name": name, "file_sha256": source.source.sha256, "page_count": source.source.page_count}}
    documents = []
    images_from = None
    try:
        # The reader does not keep the PNG it sent: the web page's images are rendered again, from
        # a second handle opened once (the reader renders from the first meanwhile).
        if images:
            images_from = await asyncio.to_thread(DocumentSource, path, detect_rotation=reader.detect_rotation)
        async for document in reader.astream_sources(one()):
            documents.append(document)
            run = document.ocr
            ticket.page_done(cached=run.cached)
            service.metrics.page(run.status, PageMetadata.from_metadata(document.metadata).ocr_engine, run.cached)
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


async def _ocr_file(service: Service, path: Path, source: DocumentSource, ticket: Ticket, name: str,
                    pages: str | None, images: bool, chunks: bool, html: bool) -> dict:
    answer: dict = {"pages": []}
    async for event in _ocr_events(service, path, source, ticket, name, pages, images, chunks, html):
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

    page = PageMetadata.from_metadata(document.metadata).page
    metadata = {k: v for k, v in document.metadata.items() if k != "file_path"}  # the upload's temp path
    metadata["file_name"] = name
    entry = {"page": page, "markdown": document.text, "metadata": metadata}
    blocks = document.grounded_blocks()
    if blocks:  # LightOnOCR-3 grounding: each block with its label and box (0-1000 of the page)
        entry["blocks"] = blocks
    if images_from is not None and page:
        with contextlib.suppress(InputError):  # a page that cannot be rendered is shown without its image
            png = images_from.render_page(page).png
            entry["image"] = "data:image/png;base64," + base64.b64encode(png).decode()
    if html:
        from ..page_html import page_html

        entry["html"] = page_html(document.text)
    return entry


def _chunks(service: Service, documents) -> list[dict]:
    parser = service.ingestor_for(service.config.qdrant.collection).parser
    readable = [d for d in documents if PageMetadata.from_metadata(d.metadata).ocr_status != "failed"]
    chunks = parser.chunk_file(readable) if readable else []
    return [_chunk_entry(node.get_content(), ChunkMetadata.from_metadata(node.metadata)) for node in chunks]


def _chunk_entry(text: str, chunk: ChunkMetadata) -> dict:
    """A chunk in /v1/ocr's answer: its text and where it lies."""
    return {"text": text, "page": chunk.page, "pages": list(chunk.pages), "header_path": chunk.header_path,
            "regions": [region.to_payload() for region in chunk.regions],
            "bbox": list(chunk.bbox) if chunk.bbox else None, "bbox_source": chunk.bbox_source,
            "block_types": list(chunk.block_types), **({"blocks": list(chunk.blocks)} if chunk.blocks else {})}
