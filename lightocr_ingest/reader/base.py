"""``LightOnOCRReader``: PDFs and page images in, one LlamaIndex ``Document`` per page out.

Each page is rendered (``pages``), read by LightOnOCR on vLLM or by the embedded CPU engine
(``ocr``), and wrapped in a Document whose id depends only on the file's bytes and the page
number, so re-reading the same file gives the same ids. Pages of all the files being read
share one window of requests in flight, which is what keeps a vLLM server busy.

The parts live beside it: ``render_ahead`` (files rendered ahead of the window), ``engines``
(one engine per event loop), ``locate`` (``regions="locate"``) and ``documents`` (a page and
its OCR result as a Document with ``metadata.PageMetadata``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from llama_index.core.readers.base import BasePydanticReader
from llama_index.core.schema import Document
from pydantic import Field, PrivateAttr, SecretStr

from .._async import iterate_in_thread
from ..defaults import REGIONS_MODES
from ..errors import InputError
from ..ocr import DEFAULT_URL, MAX_IN_FLIGHT, EngineSettings, ocr_in_order
from ..ocr.resilient import FALLBACKS, RETRY_TEMPERATURES
from ..ocr.retry import RetryPolicy
from ..ocr.profiles import ModelFamily, OcrMode
from ..ocr.vllm import REQUEST_TIMEOUT_S
from ..pages import DocumentSource
from ..pages.orientation import ensure_classifier
from ..records import OcrResult, PageImage
from .documents import failed_page_document, page_document
from .engines import EngineShare
from .locate import locate_if_needed, located, read_by_the_model
from .render_ahead import PathLike, Rendering, rendered_pages

log = logging.getLogger("lightocr_ingest")

LOCATE_AHEAD = 64  # read pages waiting for the detector (regions="locate"): the detector takes seconds a
#                    page, OCR a fraction of one, so this bounds the pages held meanwhile


async def _prepend(first, rest: AsyncIterator) -> AsyncIterator:
    """``first``, then the items of ``rest``."""
    yield first
    async for item in rest:
        yield item


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
    model_family: ModelFamily = Field(default="auto", description=(
        "The LightOnOCR checkpoint family of the served model: auto tells it by the name (as LightOn's client does); "
        "name it for a custom --served-model-name. Sets the page size, sampling and request shape."))
    ocr_mode: OcrMode = Field(default="auto", description=(
        "auto: grounding where the model has it (LightOnOCR-3: every layout block with its box and label), plain "
        "Markdown elsewhere; plain; grounding (an error for a model without it)."))
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
    text_layer: bool = Field(default=True, description=(
        "CPU engine: read born-digital pages from their own text layer (milliseconds a page, columns in order, "
        "headings; metadata ocr_engine 'pdf-text-layer'); False: RapidOCR reads every page from its image. "
        "No effect with a model server."))
    detect_rotation: bool = Field(default=True, description=(
        "Turn pages that lie sideways or upside down upright before OCR: born-digital pages by their text layer, "
        "scans and images by an embedded classifier (about 6 core-ms an upright scan, 13 over all angles). "
        "Metadata 'rotation' says the turn."))

    _engines: EngineShare = PrivateAttr(default_factory=EngineShare)  # one engine per event loop

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
        self.__pydantic_private__ = {"_engines": EngineShare()}

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
            model_family=self.model_family,
            mode=self.ocr_mode,
            retry_temperatures=tuple(self.retry_temperatures),
            fallbacks=tuple(self.fallbacks),
            cache_dir=self.cache_dir,
            wait_for_server_s=self.wait_for_server_s,
            text_layer=self.text_layer,
        )

    def lease_engine(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The engine of the running event loop, shared by every concurrent read on it
        (``engines.EngineShare``): ``async with reader.lease_engine() as engine``."""
        return self._engines.lease(self.engine_settings)

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
            async with self.lease_engine() as engine:
                streaming = True  # from here on the file is the renderer's to close
                async for document in self._stream_with(engine, _prepend(first, sources), extra_info, fs,
                                                        on_file_error):
                    yield document
        except BaseException:
            if not streaming and isinstance(first, DocumentSource):  # no engine: the opened file is let go here
                await asyncio.to_thread(first.close)
            raise

    async def _stream_with(self, engine, sources, extra_info, fs, on_file_error) -> AsyncIterator[Document]:
        rendering = Rendering(longest_side=engine.longest_side, text_words=self._text_words(engine),
                              detect_rotation=self.detect_rotation, pages=self.pages,
                              password=self.password.get_secret_value() if self.password else None, fs=fs)
        async for document in self._read_pages(engine, rendered_pages(sources, rendering, on_file_error),
                                               extra_info):
            yield document

    async def astream_pages(self, pages: AsyncIterator[PageImage | InputError],
                            extra_info: dict | None = None) -> AsyncIterator[Document]:
        """OCR pages rendered elsewhere (the Ray runner renders them in CPU tasks): one Document
        per item, in the order given, an ``InputError`` (a page that could not be rendered)
        giving a failed page's Document."""
        async with self.lease_engine() as engine:
            async for document in self._read_pages(engine, pages, extra_info):
                yield document

    async def rendering_size(self) -> tuple[int, bool | str]:
        """The longest side pages are rendered at for this reader's engine (its model's
        profile), and what of the text layer's words each page should carry."""
        async with self.lease_engine() as engine:
            return engine.longest_side, self._text_words(engine)

    def _text_words(self, engine) -> bool | str:
        """The text layer's words for regions; "styled" (with their fonts) for the CPU engine,
        which reads born-digital pages from them."""
        return "styled" if getattr(engine, "reads_text_layer", False) else self.regions != "off"

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
                    yield self._to_document(head, head_result, extra_info, await located(head, task))
            while waiting:
                head, head_result, task = waiting.popleft()
                yield self._to_document(head, head_result, extra_info, await located(head, task))
        finally:
            for _, _, task in waiting:
                if task is not None:
                    task.cancel()

    def _to_document(self, item: PageImage | InputError, result: OcrResult | BaseException | None,
                     extra_info: dict | None, found: tuple | None = None) -> Document:
        if isinstance(item, InputError):
            return failed_page_document(item, extra_info)
        return page_document(item, result, extra_info, self.regions, found)

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


def _log_file_error(error: InputError) -> None:
    log.error("%s", error)
