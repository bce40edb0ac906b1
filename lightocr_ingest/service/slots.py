"""Admission: how much work the service takes on, and how long it tells a client to wait.

The engine is shared by OCR requests and the running ingest job, so what is ahead of a new
request is the pages they still have to read (``Workload``), and how long those take is
measured, not assumed (``PageMeter``: the time between pages while the engine is busy, which is
one over its throughput, whatever runs in parallel inside it). From the two:

- an OCR request is admitted when a slot is free, or when its wait for one (the seconds of work
  ahead) is within ``max_queue_wait_s`` and the queue has room; else 429 at once, with a
  ``Retry-After`` from the work ahead and the clients already told to come back before it;
- an admitted request that still has no slot after ``max_queue_wait_s`` gets 503 with
  ``Retry-After``: no request waits silently past the bound;
- decoded pixels are budgeted across requests and the job (``PixelBudget``): each holds its
  largest page's pixels while it is read, and a request that would go over gets 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from .errors import ServiceError, overloaded

MEASURED_PAGES = 50  # recent pages the time a page is the median of
MAX_RETRY_AFTER_S = 600  # the longest Retry-After: further ahead than that, nothing is known
MAX_TOLD = 1000  # clients told to come back that are counted ahead of later ones
# Before anything is measured: a RapidOCR page on two cores takes 2-6 s (a text-layer page
# milliseconds); a vLLM server with LightOnOCR reads several pages a second.
DEFAULT_SECONDS_A_PAGE = {"cpu": 5.0, "vllm": 0.5}


class PageMeter:
    """Seconds a page, measured while the engine is busy: the time since the previous page ended
    (or since work began, for the first), the median of the last ``MEASURED_PAGES``."""

    def __init__(self, default_s: float, clock: Callable[[], float] = time.monotonic):
        self.default_s = default_s
        self._clock = clock  # a test's own clock makes its samples exact
        self._lock = threading.Lock()  # pages end in the job's thread and on the event loop
        self._samples: deque[float] = deque(maxlen=MEASURED_PAGES)
        self._active = 0
        self._since: float | None = None  # when the last page ended, or work began after a pause
        self._first_seen = False

    def work_began(self) -> None:
        with self._lock:
            if self._active == 0:
                self._since = self._clock()  # an idle pause is not the engine's time
            self._active += 1

    def work_ended(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)

    def page_done(self, measured: bool = True) -> None:
        """A page ended; ``measured=False`` for one the engine did not read (an OCR cache hit):
        the clock moves on, no sample is taken."""
        now = self._clock()
        with self._lock:
            if self._since is not None and measured:
                if self._first_seen:
                    self._samples.append(now - self._since)
                self._first_seen = True  # the process's first page also loaded the engine's models: not a sample
            self._since = now

    def seconds_a_page(self) -> float:
        with self._lock:
            return statistics.median(self._samples) if self._samples else self.default_s


class Ticket:
    """One OCR request's or the running job's pages in the ``Workload``: counted down as read."""

    def __init__(self, workload: "Workload", pages: int, job: bool):
        self.workload, self.remaining, self.job = workload, pages, job

    def page_done(self, cached: bool = False) -> None:
        with self.workload._lock:
            if self.remaining > 0:
                self.remaining -= 1
        self.workload.meter.page_done(measured=not cached)


class Workload:
    """The pages still to read by everything admitted (OCR requests, waiting or worked on, and
    the running job), and what they will take at the measured rate.

    The OCR requests and the job share the engine: while a job runs, an OCR request's pages
    alternate with the job's, so they go at half the engine's rate (and the job's likewise)."""

    def __init__(self, meter: PageMeter):
        self.meter = meter
        self._lock = threading.Lock()
        self._tickets: set[Ticket] = set()

    @contextlib.contextmanager
    def admitted(self, pages: int, job: bool = False):
        ticket = Ticket(self, pages, job)
        with self._lock:
            self._tickets.add(ticket)
        self.meter.work_began()
        try:
            yield ticket
        finally:
            self.meter.work_ended()
            with self._lock:
                self._tickets.discard(ticket)

    def pages_ahead(self) -> int:
        """Pages the OCR requests admitted still have to read (the job's are not ahead of them)."""
        with self._lock:
            return sum(t.remaining for t in self._tickets if not t.job)

    def _job_running(self) -> bool:
        return any(t.job for t in self._tickets)

    def seconds_ahead(self) -> float:
        """Until the OCR requests admitted are read: their pages, at the engine's rate shared with
        the job when one runs."""
        with self._lock:
            pages = sum(t.remaining for t in self._tickets if not t.job)
            sharing = 2 if self._job_running() else 1
        return pages * sharing * self.meter.seconds_a_page()

    def seconds_until_one_ends(self, working: set[Ticket] | None = None) -> float:
        """Until the first of ``working`` (default: the OCR requests admitted) is done: the engine
        is shared, so the one with the fewest pages ends after that many rounds of all of them
        (and of the job)."""
        with self._lock:
            candidates = working if working is not None else {t for t in self._tickets if not t.job}
            tickets = [t for t in candidates if t in self._tickets]
            if not tickets:
                return 0.0
            rounds = len(tickets) + (1 if self._job_running() else 0)
            return min(t.remaining for t in tickets) * rounds * self.meter.seconds_a_page()

    def seconds_until_the_job_ends(self) -> float:
        """Until the running job is done (a place in the job queue frees then), sharing the engine
        with the OCR requests being read."""
        with self._lock:
            job = [t.remaining for t in self._tickets if t.job]
            sharing = 2 if any(not t.job for t in self._tickets) else 1
        return (job[0] if job else 0) * sharing * self.meter.seconds_a_page()


def retry_after(seconds: float) -> int:
    """Retry-After in whole seconds, never under 1."""
    return max(1, math.ceil(seconds))


class OcrSlots:
    """``async with slots.hold(pages) as ticket:`` around an OCR request's reading: waits for a
    slot within the bound, or raises the 429 / 503 with Retry-After."""

    def __init__(self, concurrency: int, queue_size: int, max_wait_s: float, workload: Workload, queue_gauge):
        self.concurrency, self.queue_size, self.max_wait_s = concurrency, queue_size, max_wait_s
        self.workload = workload
        self.queue_gauge = queue_gauge  # lightocr_ocr_queue_depth
        self.semaphore = asyncio.Semaphore(concurrency)
        self.waiting = 0
        self._working: set[Ticket] = set()
        self._told: deque[tuple[float, int]] = deque()  # (when, pages) of clients told to come back, in order
        self._told_pages = 0

    def refusal(self, pages: int = 1) -> ServiceError | None:
        """The 429 for a request of ``pages`` arriving now, or None when it may wait for a slot.

        The clients already told to come back are ahead of it (their pages, until the time they
        were given): a burst refused at once is told to come back one after another, each when
        it would be admitted, and a newcomer does not overtake them."""
        if not self.semaphore.locked():
            return None
        now = time.monotonic()
        while self._told and self._told[0][0] <= now:  # told times only grow: the due ones are first
            self._told_pages -= self._told.popleft()[1]
        told_s = self._told_pages * self.workload.meter.seconds_a_page()
        if self.waiting >= self.queue_size:  # a place frees when a request being worked on ends
            wait = self.workload.seconds_until_one_ends(self._working) + told_s
        else:
            ahead = self.workload.seconds_ahead() + told_s
            if ahead <= self.max_wait_s:
                return None
            wait = ahead - self.max_wait_s  # back when the work ahead is within the bound
        wait = min(max(wait, self._told[-1][0] - now if self._told else 0.0), MAX_RETRY_AFTER_S)
        if len(self._told) < MAX_TOLD:  # past it (a flood that ignores Retry-After) no more is promised
            self._told.append((now + retry_after(wait), pages))
            self._told_pages += pages
        return overloaded(retry_after(wait), "OCR")

    @contextlib.asynccontextmanager
    async def hold(self, pages: int) -> AsyncIterator[Ticket]:
        refused = self.refusal(pages)
        if refused is not None:
            raise refused
        with self.workload.admitted(pages) as ticket:
            self.waiting += 1
            self.queue_gauge.set(self.waiting)
            try:
                await asyncio.wait_for(self.semaphore.acquire(), self.max_wait_s)
            except TimeoutError:
                raise ServiceError(
                    503, "overloaded", f"OCR: no turn within {self.max_wait_s:g} s (the work ahead took longer "
                                       "than measured)",
                    f"retry after {retry_after(self.workload.seconds_ahead())} s (Retry-After)",
                    {"Retry-After": str(retry_after(self.workload.seconds_ahead()))}) from None
            finally:
                self.waiting -= 1
                self.queue_gauge.set(self.waiting)
            self._working.add(ticket)
            try:
                yield ticket
            finally:
                self._working.discard(ticket)
                self.semaphore.release()


class PixelBudget:
    """Decoded pixels in flight, all requests and the job together. Used on the event loop only."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._freed = asyncio.Condition()

    def try_take(self, pixels: int) -> bool:
        if self.used + pixels > self.limit and self.used > 0:
            return False
        self.used += pixels
        return True

    async def take(self, pixels: int) -> None:
        """Wait for room (the job runner: its job waits in its queue anyway)."""
        async with self._freed:
            await self._freed.wait_for(lambda: self.try_take(pixels))

    async def give_back(self, pixels: int) -> None:
        async with self._freed:
            self.used = max(0, self.used - pixels)
            self._freed.notify_all()
