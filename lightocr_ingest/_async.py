"""Run an async generator from synchronous code, inside or outside a running event loop.

``load_data`` must work in Jupyter, where a loop is already running and ``asyncio.run`` is
refused. The generator therefore always runs on its own loop in a worker thread, and items
cross over through a small bounded queue, which also keeps the producer from racing ahead.

The caller waits in short polls rather than one long block: Python runs a Ctrl-C handler
only between waits, and a caller stopped early (Ctrl-C, ``break``) cancels the generator on
its loop, so its ``finally`` blocks run and work already handed to threads completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_HANDOFF = 4  # items buffered between the loop thread and the caller
_POLL_S = 0.1
_STOP_WAIT_S = 60  # for a cancelled run to finish what it handed to threads (an upsert in progress)


def iterate_in_thread(make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Iterate the async iterator that ``make()`` returns, from sync code; exceptions propagate."""
    handoff: queue.Queue = queue.Queue(maxsize=_HANDOFF)
    stopped = threading.Event()

    def put(message: tuple) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    running: dict = {}

    async def pump() -> None:
        running["loop"], running["task"] = asyncio.get_running_loop(), asyncio.current_task()
        if stopped.is_set():
            return
        iterator = make()
        try:
            async for item in iterator:
                if not put(("item", item)):
                    return
        except asyncio.CancelledError:
            return  # the caller stopped: nobody is left to hand anything to
        except BaseException as exc:  # handed to the caller, who re-raises it
            put(("error", exc))
            return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        put(("done", None))

    thread = threading.Thread(target=lambda: asyncio.run(pump()), name="lightocr-async", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = handoff.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stopped.set()
        if thread.is_alive() and "task" in running:
            try:
                running["loop"].call_soon_threadsafe(running["task"].cancel)
            except RuntimeError:
                pass  # the loop already finished
        thread.join(timeout=_STOP_WAIT_S)


async def hand_on(queue_: asyncio.Queue, consumer: asyncio.Task, item) -> None:
    """Put ``item`` on the queue a task consumes; fail at once if that task has died rather than
    wait forever for room."""
    if not queue_.full():
        queue_.put_nowait(item)
        return
    await unless_stopped(queue_.put(item), consumer, "the store stage")


async def stop_tasks(*tasks: asyncio.Task) -> None:
    """Cancel the tasks still running and wait for them to end."""
    for task in tasks:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def unless_stopped(operation, worker: asyncio.Task, what: str):
    """Await ``operation`` (a queue's put or get) unless ``worker``, the task at the other end of
    the queue, stops first: then raise what stopped it, rather than wait forever."""
    pending = asyncio.ensure_future(operation)
    await asyncio.wait({pending, worker}, return_when=asyncio.FIRST_COMPLETED)
    if pending.done():
        return pending.result()
    pending.cancel()
    worker.result()  # raises what stopped it
    raise RuntimeError(f"{what} ended before the run did")
