"""Keep many pages in flight while handing results on in page order.

The engine's own semaphore bounds requests in flight; this module bounds how far ahead of the
slowest unfinished page the renderer may run (``lookahead``). Results come out in input order
because a file's pages are handed on file by file (the pipeline knows a file is complete at
its last page, and chunks it whole), and the bounded look-ahead keeps memory flat whatever
the file count or page count.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from ..errors import InputError
from ..records import OcrResult, PageImage


class Engine(Protocol):
    name: str
    model: str | None

    async def start(self) -> None: ...

    async def ocr(self, page: PageImage) -> OcrResult: ...

    async def aclose(self) -> None: ...


async def ocr_in_order(
    pages: AsyncIterator[PageImage | InputError],
    engine: Engine,
    lookahead: int,
) -> AsyncIterator[tuple[PageImage | InputError, OcrResult | BaseException | None]]:
    """Yield ``(page, result)`` in the order of ``pages``.

    ``result`` is the engine's answer, or the exception it raised for that page (a failed
    page never stops the others), or ``None`` when the item is a render error passed through.
    """
    pending: deque[tuple[PageImage | InputError, asyncio.Task | None]] = deque()

    async def settle(task: asyncio.Task | None) -> OcrResult | BaseException | None:
        if task is None:
            return None
        try:
            return await task
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one page's failure is that page's result
            return exc

    try:
        async for item in pages:
            task = asyncio.create_task(engine.ocr(item)) if isinstance(item, PageImage) else None
            pending.append((item, task))
            # Hand on whatever is finished at the head; block only when the look-ahead is full.
            while pending and (len(pending) > lookahead or pending[0][1] is None or pending[0][1].done()):
                head, head_task = pending.popleft()
                yield head, await settle(head_task)
        while pending:
            head, head_task = pending.popleft()
            yield head, await settle(head_task)
    finally:
        for _, task in pending:
            if task is not None:
                task.cancel()
