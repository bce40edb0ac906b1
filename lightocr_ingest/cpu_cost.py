"""CPU time spent in each stage of the pipeline, so that a user can size a host.

Each stage wraps its synchronous work in ``with stage_cpu("render"):``. What is counted is the
calling thread's CPU time (``time.thread_time_ns``), so work that other threads do meanwhile
is not charged to it, and a stage's cost is the same whether it runs alone or under load.
Time that a native library spends in its own threads (torch's pool while embedding) is not
seen by the calling thread; measure such stages on their own (the benchmark does).

The ledger is process-wide and costs about a microsecond a call; a run reads it before and
after (``snapshot``) and reports the difference.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The stages a run reports. Embedding is not among them: torch does it in its own threads,
# which the calling thread's clock does not see (it is in the run's "process" total).
STAGES = ("open", "render", "words", "orient", "encode", "requests", "layout", "postprocess", "reread", "locate",
          "chunking", "upsert")


@dataclass
class CpuSnapshot:
    """Nanoseconds of CPU by stage, and by thread (to tell what the event loop did besides)."""

    by_stage: dict[str, int] = field(default_factory=dict)
    by_thread: dict[int, int] = field(default_factory=dict)

    def minus(self, earlier: "CpuSnapshot") -> "CpuSnapshot":
        return CpuSnapshot({k: v - earlier.by_stage.get(k, 0) for k, v in self.by_stage.items()},
                           {k: v - earlier.by_thread.get(k, 0) for k, v in self.by_thread.items()})


class CpuLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = CpuSnapshot()

    def add(self, stage: str, nanoseconds: int) -> None:
        thread = threading.get_ident()
        with self._lock:
            self._now.by_stage[stage] = self._now.by_stage.get(stage, 0) + nanoseconds
            self._now.by_thread[thread] = self._now.by_thread.get(thread, 0) + nanoseconds

    def snapshot(self) -> CpuSnapshot:
        with self._lock:
            return CpuSnapshot(dict(self._now.by_stage), dict(self._now.by_thread))


LEDGER = CpuLedger()
_NESTED = threading.local()  # CPU of stages run inside the current one, per thread


@contextmanager
def stage_cpu(stage: str) -> Iterator[None]:
    """Charge the block's CPU to ``stage``; a stage inside another is charged to itself only
    (the text layer's words are read inside rendering, and reported apart)."""
    started = time.thread_time_ns()
    outer_nested = getattr(_NESTED, "ns", 0)
    _NESTED.ns = 0
    try:
        yield
    finally:
        spent = time.thread_time_ns() - started
        LEDGER.add(stage, spent - _NESTED.ns)
        _NESTED.ns = outer_nested + spent
