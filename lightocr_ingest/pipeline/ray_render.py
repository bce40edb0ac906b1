"""The Ray runner's render stage, and the CPU bookkeeping every Ray stage shares.

Render tasks run in worker processes all over a cluster, and each process imports the module
of the function it runs before its first task. This one imports only what rendering needs
(``pages``: not LlamaIndex, Qdrant, the OpenAI client or the pipeline's config, which cost a
process about 2 core-seconds), and its settings arrive as a small dataclass for the same
reason: new render workers start on their first pages at once.
"""

from __future__ import annotations

import pickle
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..cpu_cost import LEDGER, stage_cpu
from ..errors import InputError
from ..pages import DocumentSource

RENDER_PAGES_PER_ROW = 8  # rendered pages per row out of a render task (~150 kB of PNG each): a long
#                           file flows on in small rows, and a single-page scan is one row
CPU_COLUMNS = ("cpu_render", "cpu_ocr", "cpu_chunk", "cpu_embed")  # each stage's CPU, gathered by the driver


@dataclass(frozen=True)
class RenderSettings:
    """What a render task needs of the run's config (the reader's page settings)."""

    longest_side: int
    password: str | None = None
    text_words: bool = True
    detect_rotation: bool = True
    pages: str | None = None


def render_files(batch, settings: RenderSettings):
    """Renders each file of the batch (one open, one read) and yields its pages in rows of up
    to ``RENDER_PAGES_PER_ROW``, as they are rendered: a 1,000-page PDF streams on, never held
    whole. A file that cannot be opened gives one row with its error and no pages; a page that
    cannot be rendered travels as its ``InputError`` (the OCR stage makes it a failed page)."""
    import pandas as pd

    for read, known_as, sha256, already in zip(batch["read"], batch["known_as"], batch["sha256"], batch["already"]):
        def row(items: list, first: int, error: str = "", total: int = -1) -> "pd.DataFrame":
            """``items`` are the file's pages ``first``, ``first`` + 1...; ``total`` (on its last
            row only) how many it has in all."""
            return pd.DataFrame({"read": [read], "known_as": [known_as], "already": [already],
                                 "items": [pickle.dumps(items)], "first": [first], "error": [error],
                                 "total": [total], "cpu_render": [PROCESS_CPU.take()]})

        try:
            with stage_cpu("open"):
                source = DocumentSource(read, password=settings.password, longest_side=settings.longest_side,
                                        text_words=settings.text_words, detect_rotation=settings.detect_rotation)
        except InputError as exc:
            yield row([], 0, str(exc).replace(read, known_as), total=0)
            continue
        with source:
            if sha256 and source.source.sha256 != sha256:
                yield row([], 0, f"{known_as}: changed since it was planned (its bytes differ); run again to read "
                                 "the new version", total=0)
                continue
            rename(source, known_as)
            items: list = []
            sent = 0
            for item in source.iter_pages(settings.pages):
                if len(items) == RENDER_PAGES_PER_ROW:
                    yield row(items, sent)
                    sent += len(items)
                    items = []
                items.append(item)
            yield row(items, sent, total=sent + len(items))


def rename(source: DocumentSource, known_as: str) -> None:
    """Read from an absolute path, known by the path the driver planned it under (as ``Planner`` renames)."""
    if source.path != known_as:
        source.path = known_as
        source.source = replace(source.source, path=known_as, name=Path(known_as).name)


class ProcessCpu:
    """This worker process's CPU by stage (``cpu_cost``) and in all, since it was last taken.

    Each Ray stage adds what its process spent to the rows it hands on, and the driver sums
    them into the report: the report's ``cpu_ms_per_page`` then counts the cluster, not the
    driver alone (a worker's first share includes loading its models)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages, self._process = LEDGER.snapshot(), time.process_time_ns()

    def take(self) -> bytes:
        with self._lock:
            stages, process = LEDGER.snapshot(), time.process_time_ns()
            spent = dict(stages.minus(self._stages).by_stage, process=process - self._process)
            self._stages, self._process = stages, process
        return pickle.dumps({stage: ns for stage, ns in spent.items() if ns})

    def column(self, rows: int) -> list[bytes]:
        """A column for ``rows`` rows: what was spent, on the first (none when there are no rows:
        it is taken with the next)."""
        return [self.take()] + [pickle.dumps({})] * (rows - 1) if rows else []


PROCESS_CPU = ProcessCpu()


def summed(parts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for stage, ns in part.items():
            total[stage] = total.get(stage, 0) + ns
    return total
