"""One OCR engine per event loop, shared by every read on it.

Sharing is what makes the pages of different files, read at once (``aload_data`` called
concurrently, the pipeline's stream, the service's requests), use one window of requests in
flight: a vLLM server is kept busy by the window, not by any one file. The engine starts with
its first user and closes after its last.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ..ocr import EngineSettings, create_engine


@dataclass
class _Shared:
    lock: asyncio.Lock
    engine: Any = None
    users: int = 0


class EngineShare:
    """The engines of one reader, by event loop (a reader may be used from several threads)."""

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, _Shared] = {}
        self._guard = threading.Lock()

    @contextlib.asynccontextmanager
    async def lease(self, settings: Callable[[], EngineSettings]) -> AsyncIterator[Any]:
        """The running loop's engine, started (from ``settings()``) by its first user and
        closed after its last."""
        loop = asyncio.get_running_loop()
        with self._guard:
            shared = self._by_loop.setdefault(loop, _Shared(asyncio.Lock()))
        async with shared.lock:
            if shared.engine is None:
                engine = await asyncio.to_thread(create_engine, settings())
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
                    with self._guard:
                        self._by_loop.pop(loop, None)
                    await engine.aclose()
