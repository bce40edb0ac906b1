"""Files opened and rendered ahead of the OCR window, a few at once, in threads.

Up to ``RENDER_AHEAD_FILES`` files render at once in threads (PDFium's lock serialises only
the rasterising; decoding, resizing and PNG encoding run in parallel), each at most
``RENDER_AHEAD_PAGES`` pages ahead: a folder of single-page scans renders on every core while
the model reads, and memory stays bounded. Pages come out file by file, in page order.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..pages import DocumentSource
from ..records import PageImage

log = logging.getLogger("lightocr_ingest")

RENDER_AHEAD_FILES = max(2, min(4, os.cpu_count() or 1))  # files rendering at once, one thread each
RENDER_AHEAD_PAGES = 8  # rendered pages a file may hold ahead of the OCR window (~300 kB of PNG each)

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Rendering:
    """How a reader renders pages: its engine's page size and the reader's settings."""

    longest_side: int
    text_words: bool | str  # keep the text layer's words with their boxes (regions); "styled": fonts too
    detect_rotation: bool
    pages: str | None  # the page selection, e.g. "1-3,7"
    password: str | None = field(default=None, repr=False)  # the PDFs' password: not for logs
    fs: Any = None  # an fsspec filesystem (SimpleDirectoryReader's)


@dataclass(frozen=True)
class _FileFailed:
    error: InputError


_END = object()  # a file's last page has been rendered


async def _render_file(item: PathLike | DocumentSource, rendering: Rendering, pages_out: asyncio.Queue) -> None:
    """Open one file (unless opened already) and render its selected pages onto ``pages_out``,
    then ``_END``. An opened ``DocumentSource`` is rendered with these settings and closed
    after its last page."""
    try:
        if isinstance(item, DocumentSource):
            source = item
            source.set_rendering(longest_side=rendering.longest_side, text_words=rendering.text_words,
                                 detect_rotation=rendering.detect_rotation)
        else:
            source = await asyncio.to_thread(
                DocumentSource, str(item), password=rendering.password, fs=rendering.fs,
                longest_side=rendering.longest_side, text_words=rendering.text_words,
                detect_rotation=rendering.detect_rotation)
        path = source.path
        numbers = source.page_numbers(rendering.pages)
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
        log.info("%s: no page selected by %r", path, rendering.pages)


async def rendered_pages(sources: AsyncIterator[PathLike | DocumentSource], rendering: Rendering,
                         on_file_error: Callable[[InputError], None] | None) -> AsyncIterator[PageImage | InputError]:
    """Every file's pages in order, with the next files opened and rendered meanwhile. A page
    that cannot be rendered comes as its ``InputError``; a file that cannot be opened goes to
    ``on_file_error`` (or is raised, without one)."""
    running: deque[tuple[asyncio.Queue, asyncio.Task]] = deque()

    async def start_next() -> None:
        item = await anext(sources, None)
        if item is not None:
            pages_out: asyncio.Queue = asyncio.Queue(maxsize=RENDER_AHEAD_PAGES)
            running.append((pages_out, asyncio.create_task(_render_file(item, rendering, pages_out))))

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
