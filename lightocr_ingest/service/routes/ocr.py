"""``POST /v1/ocr``: one uploaded file read page by page, answered whole or as NDJSON.

Heavy work never runs on the event loop: opening and rendering the file, the CPU engine and
chunking run in threads, requests to vLLM are async. The upload is saved and checked against
the request's limits first; then it waits for its turn (room for its pixels, an OCR slot:
``slots.py``) within a stated bound, and holds it and its upload until it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, File, Form, Request, UploadFile

from ...errors import InputError, OCRServerError
from ...metadata import ChunkMetadata, PageMetadata
from ...pages import DocumentSource
from ..errors import ServiceError, envelope, from_input_error, overloaded
from ..slots import Ticket, retry_after
from ..state import Service, ServiceDep
from ..uploads import UploadCost, check_upload, save_upload

router = APIRouter(prefix="/v1")  # the API key is checked by the middleware, before the body is read


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
    folder = Path(tempfile.mkdtemp(dir=service.upload_root))
    source = admission = None
    try:
        # The upload is saved and checked first: what it costs (pages, pixels) decides its admission.
        path = await save_upload(file, folder, "upload", service.settings.max_upload_bytes,
                                 service.settings.max_upload_mb)
        source, cost = await asyncio.to_thread(_open_checked, service, path, name, pages)
        admission = admitted(service, cost, images)
        ticket = await admission.__aenter__()
    except BaseException:
        if source is not None:
            source.close()
        await asyncio.to_thread(shutil.rmtree, folder, True)
        raise
    if stream:
        return _ocr_stream(service, path, source, folder, admission, ticket, name, pages, images, chunks, html,
                           request.state.request_id)
    try:
        return await _ocr_file(service, path, source, ticket, name, pages, images, chunks, html)
    finally:
        source.close()
        await asyncio.to_thread(shutil.rmtree, folder, True)
        await admission.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def admitted(service: Service, cost: UploadCost, images: bool) -> AsyncIterator[Ticket]:
    """An OCR request's turn: room for its pixels in the decode budget (twice with ``images``: the
    page is rendered again for the answer while the next is read), then a slot within the wait
    bound; 429 / 503 with Retry-After when there is none (``slots.py``)."""
    pixels = cost.peak_pixels * (2 if images else 1)
    if not service.pixels.try_take(pixels):
        wait = retry_after(service.workload.seconds_until_one_ends())
        raise overloaded(wait, f"decoding: {service.pixels.used / 1e6:.0f} of "
                               f"{service.settings.max_decode_megapixels:g} megapixels in flight")
    try:
        async with service.ocr_slots.hold(cost.pages) as ticket:
            yield ticket
    finally:
        await service.pixels.give_back(pixels)


def _ocr_stream(service: Service, path: Path, source: DocumentSource, folder: Path, admission, ticket: Ticket,
                name: str, pages: str | None, images: bool, chunks: bool, html: bool, request_id: str):
    """/v1/ocr as NDJSON. Everything that can be refused (the queue, the upload, the file) was
    refused before the first line, with the usual status; the turn and the upload are held
    until the last line is sent or the client goes."""
    from fastapi.responses import StreamingResponse

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for event in _ocr_events(service, path, source, ticket, name, pages, images, chunks, html):
                yield (json.dumps(event) + "\n").encode()
        except ServiceError as exc:
            yield (json.dumps(envelope(exc.code, exc.message, exc.suggestion, request_id)) + "\n").encode()
        finally:
            source.close()
            await asyncio.to_thread(shutil.rmtree, folder, True)
            await admission.__aexit__(None, None, None)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _open_checked(service: Service, path: Path, name: str, pages: str | None) -> tuple[DocumentSource, UploadCost]:
    """The upload opened (once) and what reading it costs, or the API error that says why it
    cannot be read or is over a limit."""
    try:
        source = DocumentSource(path, password=None)
    except InputError as exc:
        raise from_input_error(exc, name) from None
    try:
        source.page_numbers(pages)
    except InputError as exc:
        source.close()
        raise ServiceError(422, "invalid_request", f"{name}: {exc.cause}",
                           "pages is a selection such as 1-3,7 within the file's pages") from None
    try:
        return source, check_upload(path, name, service.settings, pages, source=source)
    except BaseException:
        source.close()
        raise


async def _ocr_events(service: Service, path: Path, source: DocumentSource, ticket: Ticket, name: str,
                      pages: str | None, images: bool, chunks: bool, html: bool) -> AsyncIterator[dict]:
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
            ticket.page_done()
            run = document.ocr
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
