"""The OCR stage of the Ray runner: one actor whose single stream of pages keeps the reader's
window of requests full across files and batches, and hands each file on whole."""

from __future__ import annotations

import asyncio
import collections
import pickle
import threading
import time
from dataclasses import dataclass

from ...cpu_cost import LEDGER
from ..build import make_reader, stamp
from ..config import PipelineConfig
from ..plan import settings_fingerprint
from ..report import sum_counts
from .workers import PROCESS_CPU

OCR_IDLE_S = 0.25  # the OCR actor's stream of pages ends when no page was queued for this long


class OcrPages:
    """Reads rendered pages through one stream that outlives batches, and hands files on whole.

    Ray Data calls the actor from up to ``dataset.ocr_calls(config)`` threads at once, each with a few
    rows of rendered pages. Each call queues its pages and waits for them; one ``astream_pages``
    on the actor's event loop reads the queued pages in turn, so the reader's window of requests
    stays full across files and batches, as in the local runner. A stream's Documents come back
    in the order it took the pages (``ocr_in_order``), which says whose each is. A file is handed
    on, its pages in page order, by the call whose pages completed it (its last row says how many
    it has, and every one is back: rows may arrive in any order); the others return nothing. When no page has been queued for ``OCR_IDLE_S``
    the stream ends (the window drains: the run's tail) and the next call starts another.
    """

    def __init__(self, config: PipelineConfig):
        self.reader = make_reader(config)
        self.fingerprint = settings_fingerprint(config)
        self.restarted = _restarted_actor()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="ocr-loop", daemon=True).start()
        self._release: asyncio.Event | None = None
        self._holding = None
        self._queue: asyncio.Queue | None = None  # (page, call, file) to read, on self.loop
        self._files: dict[str, _PendingFile] = {}  # known_as -> its pages so far
        self._accepting = False  # a stream is taking queued pages
        self._streams: set[asyncio.Task] = set()
        self._loop_cpu: int | None = None  # the loop thread's CPU and its timed stages when last asked
        self._loop_staged = 0
        self._requests_ns = 0  # the loop's not yet handed on (calls that hand no file on leave theirs here)

    async def _hold_engine(self, ready: asyncio.Future) -> None:
        """Lease the reader's engine for the actor's life: every batch then shares it."""
        self._release = asyncio.Event()
        try:
            async with self.reader.lease_engine():
                ready.set_result(None)
                await self._release.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def _read(self, rows: list[_Row]) -> tuple[list[_PendingFile], int]:
        if self._loop_cpu is None:
            self._loop_cpu, self._loop_staged = time.thread_time_ns(), LEDGER.snapshot().by_thread.get(
                threading.get_ident(), 0)
        if self._holding is None:
            ready = self.loop.create_future()
            self._holding = asyncio.ensure_future(self._hold_engine(ready))
            try:
                await ready
            except Exception:
                self._holding = None  # the reader raises it again in the stream, as the local runner would
        if self._queue is None:
            self._queue = asyncio.Queue()
        call = _Call(self.loop.create_future())
        for row in rows:
            file = self._files.get(row.known_as)
            if file is None:
                file = self._files[row.known_as] = _PendingFile(row.read, row.known_as, row.already)
            file.render_cpu = sum_counts([file.render_cpu, row.render_cpu])
            file.error = file.error or row.error
            if row.total >= 0:
                file.total = row.total
            for index, item in enumerate(row.items, start=row.first):
                call.waiting += 1
                self._queue.put_nowait((item, call, file, index))
            self._check_done(file, call)
        if call.waiting == 0:
            call.done.set_result(None)
        elif not self._accepting:  # the last stream stopped taking pages (it may still be draining)
            self._accepting = True
            self._streams.add(stream := asyncio.ensure_future(self._stream()))
            stream.add_done_callback(self._streams.discard)
        await call.done
        return call.files, self._requests_cpu(handing_on=bool(call.files))

    def _requests_cpu(self, handing_on: bool) -> int:
        """The event loop's CPU, less the stages timed on it: sending requests and taking answers,
        as the local runner's ``requests``. Kept until a call hands a file on (on the loop)."""
        loop_now = time.thread_time_ns()
        staged_now = LEDGER.snapshot().by_thread.get(threading.get_ident(), 0)
        self._requests_ns += max(0, (loop_now - self._loop_cpu) - (staged_now - self._loop_staged))
        self._loop_cpu, self._loop_staged = loop_now, staged_now
        if not handing_on:
            return 0
        spent, self._requests_ns = self._requests_ns, 0
        return spent

    def _check_done(self, file: _PendingFile, call: _Call) -> None:
        """Hand ``file`` to ``call`` once every one of its pages is back: its last row says how
        many it has, and rows may come in any order (Ray Data runs an actor's tasks out of order)."""
        if 0 <= file.total == len(file.documents) and self._files.get(file.known_as) is file:
            del self._files[file.known_as]
            call.files.append(file)

    async def _stream(self) -> None:
        """One stream over queued pages, until none is queued for ``OCR_IDLE_S``; then it drains
        while a later call may start the next."""
        owners: collections.deque = collections.deque()  # (call, file, index) of each page taken, in order
        taking = True

        async def pages():
            nonlocal taking
            while True:
                try:
                    item, call, file, index = await asyncio.wait_for(self._queue.get(), OCR_IDLE_S)
                except asyncio.TimeoutError:  # not the builtin before Python 3.11
                    if self._queue.empty():  # one thread runs the loop: no page is queued between here and return
                        taking = self._accepting = False
                        return
                    continue
                owners.append((call, file, index))
                yield item

        try:
            # In the order taken (``ocr_in_order``), so ``owners`` says whose each is; a draining
            # stream and the next one run side by side, each with its own.
            async for document in self.reader.astream_pages(pages()):
                if document.ocr.status != "failed":
                    stamp(document, self.fingerprint)
                call, file, index = owners.popleft()
                file.documents[index] = document
                call.waiting -= 1
                self._check_done(file, call)
                if call.waiting == 0 and not call.done.done():
                    call.done.set_result(None)
        except BaseException as exc:
            # The calls waiting on this stream's pages fail with it (their tasks, and so the run,
            # fail; a new run resumes). A draining stream leaves the queue to the stream taking it.
            waiting = [call for call, _, _ in owners]
            if taking:
                self._accepting = False
                while not self._queue.empty():
                    waiting.append(self._queue.get_nowait()[1])
            for call in waiting:
                if not call.done.done():
                    call.done.set_exception(exc)

    def close(self) -> None:
        """Give the engine back and stop the loop (Ray ends the actor's process without it)."""
        async def release():
            if self._release is not None:
                self._release.set()
            if self._holding is not None:
                await asyncio.gather(self._holding, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(release(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def __call__(self, batch):
        import pandas as pd

        if self.restarted:
            # Ray restarts a dead actor and retries the calls it had; the pages of files that
            # earlier calls left here are gone, so those files could never be handed on.
            raise RuntimeError("the OCR actor was restarted after its process died, losing the pages it held; the "
                               "run stops here: run it again to resume (stored files are skipped)")
        rows = [_Row(read, known_as, already, pickle.loads(items), int(first), error, int(total), pickle.loads(cpu))
                for read, known_as, already, items, first, error, total, cpu
                in zip(batch["read"], batch["known_as"], batch["already"], batch["items"], batch["first"],
                       batch["error"], batch["total"], batch["cpu_render"])]
        files, requests_ns = asyncio.run_coroutine_threadsafe(self._read(rows), self.loop).result()
        own = PROCESS_CPU.column(len(files))
        if files:
            own[0] = pickle.dumps(dict(pickle.loads(own[0]), requests=requests_ns))
        return pd.DataFrame({"read": [f.read for f in files], "known_as": [f.known_as for f in files],
                             "already": [f.already for f in files],
                             "pages": [pickle.dumps([f.documents[i] for i in sorted(f.documents)]) for f in files],
                             "error": [f.error for f in files],
                             "cpu_render": [pickle.dumps(f.render_cpu) for f in files], "cpu_ocr": own},
                            columns=["read", "known_as", "already", "pages", "error", "cpu_render", "cpu_ocr"])


@dataclass(frozen=True)
class _Row:
    """A row out of a render task: ``items`` are its file's pages ``first``, ``first`` + 1...;
    ``total`` is the file's page count on its last row, -1 on the others."""

    read: str
    known_as: str
    already: bytes  # the file's stored points, pickled (``StoredPoints``): handed on to the embedder
    items: list
    first: int
    error: str
    total: int
    render_cpu: dict


class _PendingFile:
    """A file whose pages are being read: done when ``total`` is known and every page is back."""

    __slots__ = ("read", "known_as", "already", "total", "documents", "error", "render_cpu")

    def __init__(self, read: str, known_as: str, already: bytes):
        self.read, self.known_as, self.already = read, known_as, already
        self.total, self.error = -1, ""
        self.documents: dict[int, object] = {}  # index in the file -> its Document (a retried row overwrites)
        self.render_cpu: dict[str, int] = {}


class _Call:
    """One call into the OCR actor: its pages still out, and the files it hands on."""

    __slots__ = ("done", "waiting", "files")

    def __init__(self, done: asyncio.Future):
        self.done, self.waiting, self.files = done, 0, []


def _restarted_actor() -> bool:
    try:
        import ray

        return ray.get_runtime_context().was_current_actor_reconstructed
    except Exception:  # not in a Ray actor (the tests call it directly)
        return False
