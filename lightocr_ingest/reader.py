"""``LightOnOCRReader``: PDFs and page images in, one LlamaIndex ``Document`` per page out.

Each page is rendered (``pages``), read by LightOnOCR on vLLM or by the embedded CPU engine
(``ocr``), and wrapped in a Document whose id depends only on the file's bytes and the page
number, so re-reading the same file gives the same ids. Pages of all the files being read
share one window of requests in flight, which is what keeps a vLLM server busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from llama_index.core.readers.base import BasePydanticReader
from llama_index.core.schema import Document
from pydantic import Field, PrivateAttr, SecretStr

from ._async import iterate_in_thread
from .errors import InputError
from .ocr import DEFAULT_URL, MAX_IN_FLIGHT, EngineSettings, create_engine, ocr_in_order
from .ocr.vllm import REQUEST_TIMEOUT_S
from .ocr.resilient import FALLBACKS, RETRY_TEMPERATURES
from .chunking.regions import align
from .cpu_cost import stage_cpu
from .defaults import REGIONS_MODES
from .documents import PageDocument
from .ocr.cache import OcrCache, cache_key
from .ocr.retry import RetryPolicy
from .pages import DocumentSource
from .pages.orientation import ensure_classifier
from .records import OcrResult, OcrRun, PageImage, PageLayout, PageWords, PlacedFigure

log = logging.getLogger("lightocr_ingest")

ID_NAMESPACE = uuid.UUID("6f1c8a52-3d0e-4c55-9a57-6c1d0b8e2f41")  # fixed forever: ids must not change
EMBED_METADATA_KEYS = ("file_name",)  # the only page keys that help an embedding model
LLM_METADATA_KEYS = ("file_name", "page_label")  # what an LLM needs to cite a page
RENDER_AHEAD_FILES = max(2, min(4, os.cpu_count() or 1))  # files rendering at once, one thread each
RENDER_AHEAD_PAGES = 8  # rendered pages a file may hold ahead of the OCR window (~300 kB of PNG each)
LOCATE_AHEAD = 64  # read pages waiting for the detector (regions="locate"): the detector takes seconds a
#                    page, OCR a fraction of one, so this bounds the pages held meanwhile


async def _prepend(first, rest: AsyncIterator) -> AsyncIterator:
    """``first``, then the items of ``rest``."""
    yield first
    async for item in rest:
        yield item


def page_document_id(file_sha256: str, page: int) -> str:
    """The id of a page's Document: same file bytes and page number, same id."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{file_sha256}:{page}"))


PathLike = str | os.PathLike


@dataclass
class _SharedEngine:
    lock: asyncio.Lock
    engine: Any = None
    users: int = 0


class LightOnOCRReader(BasePydanticReader):
    """Read PDFs and images with LightOnOCR-2-1B (vLLM) or the embedded CPU engine.

    Works on its own (``load_data("paper.pdf")``) and as a ``file_extractor`` of
    ``SimpleDirectoryReader``. All fields are plain config, so the reader pickles (for
    ``num_workers``) and serialises; connections are made per event loop when reading.
    """

    is_remote: bool = False
    ocr_engine: Literal["auto", "vllm", "cpu"] = Field(
        default="auto", description="auto: vLLM when one answers at ocr_url, else CPU; vllm: never fall back.")
    ocr_url: str | list[str] = Field(
        default_factory=lambda: os.environ.get("LIGHTONOCR_URL", DEFAULT_URL),
        description="OpenAI-compatible base URL of the vLLM server (env LIGHTONOCR_URL), or several (a list or "
                    "comma-separated): pages go to the server with the fewest in flight.")
    model: str | None = Field(default=None, description="Served model name; discovered from /v1/models when unset.")
    api_key: SecretStr | None = Field(default=None, description="API key; default from LIGHTONOCR_API_KEY or VLLM_API_KEY.")
    max_in_flight: int = Field(default=MAX_IN_FLIGHT, ge=1,
                               description="Pages in flight at once per server, across all files.")
    max_tokens: int | None = Field(default=None, ge=1, description="Output cap per page; default from the model profile (4096).")
    temperature: float | None = Field(default=None, ge=0.0, description="Default from the model profile (0.2).")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="Default from the model profile (0.9).")
    request_timeout_s: float = Field(default=REQUEST_TIMEOUT_S, gt=0, description="Timeout of one OCR request.")
    max_retries: int = Field(default=RetryPolicy.max_retries, ge=0,
                             description="Retries of a failed request (connection, timeout, 429, 5xx), with backoff.")
    backoff_base_s: float = Field(default=RetryPolicy.backoff_base_s, gt=0,
                                  description="First wait before a retry; doubles each time (with jitter), up to 30 s.")
    page_deadline_s: float = Field(default=RetryPolicy.page_deadline_s, gt=0,
                                   description="All requests for one page, waits included; then the fallbacks.")
    retry_temperatures: tuple[float, ...] = Field(
        default=RETRY_TEMPERATURES, description="Temperatures of the new tries after a looping, cut or empty answer.")
    fallbacks: tuple[Literal["text_layer", "cpu"], ...] = Field(
        default=FALLBACKS, description="When the model gives nothing usable: the PDF text layer, then the CPU engine.")
    cache_dir: str | None = Field(default=None, description=(
        "OCR cache folder: pages read once are never sent again; 'auto': the user's cache folder, as ingest uses."))
    wait_for_server_s: float = Field(default=0.0, ge=0,
                                     description="ocr_engine='vllm': wait this long for the server to come up.")
    pages: str | None = Field(default=None, description="Page selection such as '1-3,7' (1-based); all when unset.")
    password: SecretStr | None = Field(default=None, description="Password of encrypted PDFs.")
    regions: Literal["auto", "locate", "off"] = Field(default="auto", description=REGIONS_MODES)
    detect_rotation: bool = Field(default=True, description=(
        "Turn pages that lie sideways or upside down upright before OCR: born-digital pages by their text layer, "
        "scans and images by an embedded classifier (about 6 core-ms an upright scan, 13 over all angles). "
        "Metadata 'rotation' says the turn."))

    _shared: dict = PrivateAttr(default_factory=dict)  # event loop -> _SharedEngine
    _shared_guard: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "LightOnOCRReader"

    # --- pickling: connections belong to one process and one loop ---------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["__pydantic_private__"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.__pydantic_private__ = {"_shared": {}, "_shared_guard": threading.Lock()}

    # --- engine -----------------------------------------------------------------------
    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            kind=self.ocr_engine,
            url=self.ocr_url if isinstance(self.ocr_url, str) else tuple(self.ocr_url),
            model=self.model,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            max_in_flight=self.max_in_flight,
            request_timeout_s=self.request_timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            page_deadline_s=self.page_deadline_s,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            retry_temperatures=tuple(self.retry_temperatures),
            fallbacks=tuple(self.fallbacks),
            cache_dir=self.cache_dir,
            wait_for_server_s=self.wait_for_server_s,
        )

    @contextlib.asynccontextmanager
    async def _lease_engine(self) -> AsyncIterator[Any]:
        """One engine per event loop, shared by every concurrent read on it, closed after the last.

        Sharing is what makes pages of different files use one window of requests in flight.
        """
        loop = asyncio.get_running_loop()
        with self._shared_guard:
            shared = self._shared.setdefault(loop, _SharedEngine(asyncio.Lock()))
        async with shared.lock:
            if shared.engine is None:
                engine = await asyncio.to_thread(create_engine, self.engine_settings())
                await engine.start()
                shared.engine = engine
            shared.users += 1
        try:
            yield shared.engine
        finally:
            async with shared.lock:
                shared.users -= 1
                if shared.users == 0:
                    engine, shared.engine = shared.engine, None
                    with self._shared_guard:
                        self._shared.pop(loop, None)
                    await engine.aclose()

    # --- reading ----------------------------------------------------------------------
    async def astream(
        self,
        file_path: PathLike | Sequence[PathLike],
        extra_info: dict | None = None,
        fs: Any | None = None,
        on_file_error: Callable[[InputError], None] | None = None,
    ) -> AsyncIterator[Document]:
        """Yield one Document per page, file by file and in page order, as pages finish.

        A file that cannot be opened raises ``InputError``, or goes to ``on_file_error`` and
        the other files go on. A page that fails is a Document with ``ocr_status="failed"``.
        """
        paths = [file_path] if isinstance(file_path, (str, os.PathLike)) else list(file_path)

        async def each_path() -> AsyncIterator[PathLike]:
            for path in paths:
                yield path

        async for document in self.astream_sources(each_path(), extra_info, fs, on_file_error):
            yield document

    async def astream_sources(
        self,
        sources: AsyncIterator[PathLike | DocumentSource],
        extra_info: dict | None = None,
        fs: Any | None = None,
        on_file_error: Callable[[InputError], None] | None = None,
    ) -> AsyncIterator[Document]:
        """``astream`` over files named, or already opened, as they come (the pipeline opens
        files ahead: a file's hash, page count and pages then come from one read). An opened
        ``DocumentSource`` is rendered with this reader's settings and closed after its last page.
        No source at all (a re-run with every file stored) starts no engine and says nothing of OCR."""
        first = await anext(sources, None)
        if first is None:
            return
        streaming = False
        try:
            if self.detect_rotation:
                await asyncio.to_thread(ensure_classifier)  # a missing model stops here, with the fix
            async with self._lease_engine() as engine:
                streaming = True  # from here on the file is the renderer's to close
                async for document in self._stream_with(engine, _prepend(first, sources), extra_info, fs,
                                                        on_file_error):
                    yield document
        except BaseException:
            if not streaming and isinstance(first, DocumentSource):  # no engine: the opened file is let go here
                await asyncio.to_thread(first.close)
            raise

    async def _stream_with(self, engine, sources, extra_info, fs, on_file_error) -> AsyncIterator[Document]:
        password = self.password.get_secret_value() if self.password else None

        async def render_file(item: PathLike | DocumentSource, pages_out: asyncio.Queue) -> None:
            """Open one file (unless opened already) and render its selected pages onto
            ``pages_out``, then ``_END``."""
            try:
                if isinstance(item, DocumentSource):
                    source = item
                    source.set_rendering(longest_side=engine.longest_side, text_words=self.regions != "off",
                                         detect_rotation=self.detect_rotation)
                else:
                    source = await asyncio.to_thread(
                        DocumentSource, str(item), password=password, fs=fs, longest_side=engine.longest_side,
                        text_words=self.regions != "off", detect_rotation=self.detect_rotation)
                path = source.path
                numbers = source.page_numbers(self.pages)
            except InputError as exc:
                if isinstance(item, DocumentSource):
                    await asyncio.to_thread(item.close)
                await pages_out.put(_FileFailed(exc))
                return
            closed = False

            def render(number: int, last: bool) -> PageImage | InputError:
                nonlocal closed
                try:
                    return source.page_or_error(number)
                finally:
                    if last:  # closed in the last page's own trip to a thread: one trip a page
                        source.close()
                        closed = True

            try:
                for index, number in enumerate(numbers):
                    await pages_out.put(await asyncio.to_thread(render, number, index == len(numbers) - 1))
            finally:
                if not closed:
                    await asyncio.to_thread(source.close)
                await pages_out.put(_END)
            if not numbers:
                log.info("%s: no page selected by %r", path, self.pages)

        async def rendered_pages() -> AsyncIterator[PageImage | InputError]:
            """Every file's pages in order, with the next files opened and rendered meanwhile.

            Up to ``RENDER_AHEAD_FILES`` files render at once in threads (PDFium's lock
            serialises only the rasterising; decoding, resizing and PNG encoding run in
            parallel), each at most ``RENDER_AHEAD_PAGES`` pages ahead: a folder of
            single-page scans renders on every core and memory stays bounded.
            """
            running: deque[tuple[asyncio.Queue, asyncio.Task]] = deque()

            async def start_next() -> None:
                item = await anext(sources, None)
                if item is not None:
                    pages_out: asyncio.Queue = asyncio.Queue(maxsize=RENDER_AHEAD_PAGES)
                    running.append((pages_out, asyncio.create_task(render_file(item, pages_out))))

            for _ in range(RENDER_AHEAD_FILES):
                await start_next()
            try:
                while running:
                    pages_out, task = running[0]
                    while (item := await pages_out.get()) is not _END:
                        if isinstance(item, _FileFailed):
                            if on_file_error is None:
                                raise item.error
                            on_file_error(item.error)
                            break
                        yield item
                    await task
                    running.popleft()
                    await start_next()
            finally:
                for _, task in running:
                    task.cancel()

        async for document in self._read_pages(engine, rendered_pages(), extra_info):
            yield document

    async def astream_pages(self, pages: AsyncIterator[PageImage | InputError],
                            extra_info: dict | None = None) -> AsyncIterator[Document]:
        """OCR pages rendered elsewhere (the Ray runner renders them in CPU tasks): one Document
        per item, in the order given, an ``InputError`` (a page that could not be rendered)
        giving a failed page's Document."""
        async with self._lease_engine() as engine:
            async for document in self._read_pages(engine, pages, extra_info):
                yield document

    async def rendering_size(self) -> int:
        """The longest side pages are rendered at for this reader's engine (its model's profile)."""
        async with self._lease_engine() as engine:
            return engine.longest_side

    async def _read_pages(self, engine, pages: AsyncIterator[PageImage | InputError],
                          extra_info: dict | None) -> AsyncIterator[Document]:
        # Look ahead twice the window (all servers' together): enough to keep it full while the
        # head page finishes.
        window = max(self.max_in_flight, engine.window)
        # Pages to locate (``regions="locate"``) are located in a thread while OCR goes on, and
        # yielded in order; at most LOCATE_AHEAD wait, so a slow detector bounds memory.
        waiting: deque[tuple[PageImage | InputError, Any, asyncio.Task | None]] = deque()
        try:
            async for item, result in ocr_in_order(pages, engine, lookahead=2 * window):
                locating = None
                if self.regions == "locate" and isinstance(item, PageImage) and isinstance(result, OcrResult) \
                        and read_by_the_model(result):
                    locating = asyncio.create_task(asyncio.to_thread(
                        locate_if_needed, item, result, getattr(engine, "cache", None)))
                waiting.append((item, result, locating))
                while waiting and (waiting[0][2] is None or waiting[0][2].done() or len(waiting) > LOCATE_AHEAD):
                    head, head_result, task = waiting.popleft()
                    yield self._to_document(head, head_result, extra_info, await _located(head, task))
            while waiting:
                head, head_result, task = waiting.popleft()
                yield self._to_document(head, head_result, extra_info, await _located(head, task))
        finally:
            for _, _, task in waiting:
                if task is not None:
                    task.cancel()

    def _to_document(self, item: PageImage | InputError, result: OcrResult | BaseException | None,
                     extra_info: dict | None, located: tuple[PageWords, float] | None = None) -> Document:
        if isinstance(item, InputError):
            log.error("%s", item)
            return failed_page_document(item, extra_info)
        page = item
        metadata: dict[str, Any] = dict(extra_info or {})
        metadata.update(
            file_name=page.source.name,
            file_path=page.source.path,
            file_sha256=page.source.sha256,
            page=page.page,
            page_label=page.label,
            page_count=page.source.page_count,
            page_width=page.page_width,
            page_height=page.page_height,
            image_width=page.image_width,
            image_height=page.image_height,
            rotation=page.rotation,
            rotation_confidence=page.rotation_confidence,
        )
        if not isinstance(result, OcrResult):  # an engine that raised (ResilientEngine never does)
            result = OcrResult(markdown="", engine="", model="", attempts=0, status="failed",
                               error=f"{type(result).__name__}: {result}")
        text = result.markdown
        # A page the model read after a transient error is the same page: "retried" is a fact of
        # this run (document.ocr.status), kept out of the metadata that the page's hash covers.
        metadata.update(ocr_engine=result.engine, ocr_model=result.model,
                        ocr_status="ok" if result.status == "retried" else result.status)
        if result.error:
            metadata["ocr_error"] = result.error
        if result.warning:
            metadata["ocr_warning"] = result.warning
        ocr_lines = None  # page.text_words is None already when regions are off
        if located is not None:
            ocr_lines = located[0]
        elif result.text_boxes and self.regions != "off":
            ocr_lines = page.lines_in_points(result.text_boxes, "ocr_lines")
        layout = PageLayout(
            figures=tuple(PlacedFigure(f.ref, page.to_page_points(f.box) if f.box else None) for f in result.figures),
            text_layer=page.text_words, ocr_lines=ocr_lines, locate_s=located[1] if located else 0.0)
        return PageDocument(
            id_=page_document_id(page.source.sha256, page.page),
            text=text,
            metadata=metadata,
            excluded_embed_metadata_keys=[k for k in metadata if k not in EMBED_METADATA_KEYS],
            excluded_llm_metadata_keys=[k for k in metadata if k not in LLM_METADATA_KEYS],
            layout=layout,
            ocr=OcrRun(status=result.status, attempts=result.attempts, latency_s=round(result.latency_s, 3),
                       cached=result.cached,
                       finish_reason=result.finish_reason, output_tokens=result.output_tokens),
        )

    async def _collect(self, file_path, extra_info, fs, on_file_error=None) -> list[Document]:
        documents = []
        stream = self.astream(file_path, extra_info=extra_info, fs=fs, on_file_error=on_file_error)
        async for document in stream:
            documents.append(document)
        return documents

    async def aload_data(self, file_path: PathLike | Sequence[PathLike], extra_info: dict | None = None,
                         fs: Any | None = None) -> list[Document]:
        """Read pages concurrently on the caller's loop; concurrent calls share one window."""
        return await self._collect(file_path, extra_info, fs, on_file_error=_log_file_error
                                   if not isinstance(file_path, (str, os.PathLike)) else None)

    def lazy_load_data(self, file_path: PathLike | Sequence[PathLike], extra_info: dict | None = None,
                       fs: Any | None = None) -> Iterator[Document]:
        """Yield Documents as pages finish; works inside a running event loop (Jupyter)."""
        on_error = None if isinstance(file_path, (str, os.PathLike)) else _log_file_error
        yield from iterate_in_thread(
            lambda: self.astream(file_path, extra_info=extra_info, fs=fs, on_file_error=on_error))

    def load_data(self, file_path: PathLike | Sequence[PathLike], extra_info: dict | None = None,
                  fs: Any | None = None) -> list[Document]:
        return list(self.lazy_load_data(file_path, extra_info=extra_info, fs=fs))


@dataclass(frozen=True)
class _FileFailed:
    error: InputError


_END = object()  # a file's last page has been rendered


def _log_file_error(error: InputError) -> None:
    log.error("%s", error)


def failed_page_document(error: InputError, extra_info: dict | None = None) -> PageDocument:
    """A placeholder Document for a page that could not be rendered, so it is never lost."""
    name = Path(error.file).name
    metadata = dict(extra_info or {})
    metadata.update(file_name=name, file_path=error.file, page=error.page, page_label=str(error.page),
                    ocr_status="failed", ocr_error=error.cause, ocr_engine=None, ocr_model=None)
    return PageDocument(id_=str(uuid.uuid5(ID_NAMESPACE, f"failed:{error.file}:{error.page}")), text="",
                        metadata=metadata, excluded_embed_metadata_keys=list(metadata),
                        excluded_llm_metadata_keys=list(metadata), ocr=OcrRun(status="failed", attempts=0))


def read_by_the_model(result: OcrResult) -> bool:
    """Text that came without lines to place it: the model's (the CPU engine gives its lines)."""
    return result.status != "failed" and bool(result.markdown.strip()) and not result.text_boxes


def needs_locating(page: PageImage, result: OcrResult) -> bool:
    """A page read by the model with neither lines of the CPU engine nor a text layer that
    matches its Markdown (a scan, or a scan whose OCR layer is wrong: the chunker's own test)."""
    if not read_by_the_model(result):
        return False
    if page.text_words is None or not len(page.text_words):
        return True
    return not align(result.markdown, page.text_words).trusted


def locate_if_needed(page: PageImage, result: OcrResult, cache: OcrCache | None) -> tuple[PageWords, float] | None:
    """``locate_lines`` for a page that ``needs_locating`` (both take CPU: run in a thread)."""
    return locate_lines(page, cache) if needs_locating(page, result) else None


async def _located(page: PageImage, task: asyncio.Task | None) -> tuple[PageWords, float] | None:
    """What locating found, or None: a detector that fails costs the page its regions, never its text."""
    if task is None:
        return None
    try:
        return await task
    except Exception as exc:  # onnxruntime and image decoding raise many types
        log.warning("%s, page %d: could not locate its lines (%s: %s); its chunks get no regions",
                    page.source.path, page.page, type(exc).__name__, exc)
        return None


def locate_lines(page: PageImage, cache: OcrCache | None = None) -> tuple[PageWords, float]:
    """Read the page with the embedded detector and recogniser, to place the model's text on it.

    Returns the located words (page points) and the CPU seconds it took (0 when the OCR cache
    had the page's lines: locating takes seconds, so a re-run does not locate again).
    """
    from .ocr.cpu import CPU_MODEL, recognise_lines

    key = cache_key(page.pixels_sha256, "locate", CPU_MODEL, {})
    try:
        hit = cache.get(key) if cache is not None else None
    except Exception:  # a cache closed by a cancelled run: locate again
        hit = None
    if hit is not None:
        return page.lines_in_points(hit.text_boxes, "located"), 0.0
    started = time.process_time()
    with stage_cpu("locate"):
        lines = tuple(recognise_lines(page.png))
    if cache is not None:
        with contextlib.suppress(Exception):  # a cache closed by a cancelled run: nothing to keep it in
            cache.put(key, OcrResult(markdown="", engine="locate", model=CPU_MODEL, text_boxes=lines))
    return page.lines_in_points(lines, "located"), time.process_time() - started
