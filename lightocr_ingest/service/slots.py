"""OCR admission: a bounded number of OCR requests worked on at once, a bounded number waiting.

Each OCR request keeps its pages in flight on the OCR server, so a few already fill a GPU's batch;
more would only queue there while holding connections. So at most ``concurrency`` are worked on
and at most ``queue_size`` wait; beyond that the answer is 429 with ``Retry-After``, computed from
recent OCR request times, so a burst is told when to come back instead of piling up connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator

from .errors import overloaded


class OcrSlots:
    """``async with slots.hold():`` around an OCR request: waits for a slot, or raises the 429."""

    def __init__(self, concurrency: int, queue_size: int, queue_gauge):
        self.concurrency, self.queue_size = concurrency, queue_size
        self.queue_gauge = queue_gauge  # lightocr_ocr_queue_depth
        self.semaphore = asyncio.Semaphore(concurrency)
        self.waiting = 0
        self.seconds: deque[float] = deque(maxlen=50)  # recent OCR request times: what Retry-After says

    def retry_after_s(self) -> int:
        typical = statistics.median(self.seconds) if self.seconds else 5.0
        return max(1, round(typical * (self.waiting + 1) / self.concurrency))

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self.semaphore.locked() and self.waiting >= self.queue_size:
            raise overloaded(self.retry_after_s(), "OCR")
        self.waiting += 1
        self.queue_gauge.set(self.waiting)
        try:
            await self.semaphore.acquire()
        finally:
            self.waiting -= 1
            self.queue_gauge.set(self.waiting)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.semaphore.release()
            self.seconds.append(time.perf_counter() - started)
