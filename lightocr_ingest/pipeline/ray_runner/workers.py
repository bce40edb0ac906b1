"""The Ray runner's stages that run in worker processes apart from the OCR actor: rendering,
chunking and embedding (and the CPU bookkeeping every Ray stage shares).

A Ray worker process imports the module of what it runs before its first task, and the actors
of a run start one after another before the first page is rendered (``wait_for_min_actors_s``
in ``driver``). So this module imports only what rendering needs (``pages``, and the
pipeline's config, which imports nothing heavy: not LlamaIndex, Qdrant or the OpenAI client,
about 2 core-seconds a process), and the chunking and embedding actors load their tokenizer
and model in a background thread: the actors are ready at once, and the loading overlaps the
rendering and the OCR of the first pages instead of holding them back (measured on 2 cores:
the first request reached the GPU 13 s into a 73 s run, with the actors importing and loading
one after another).
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import sys
import threading
import time
from dataclasses import dataclass

from ...cpu_cost import LEDGER, stage_cpu
from ...errors import InputError
from ...pages import DocumentSource
from ..config import PipelineConfig
from ..progress import StoredPoints

RENDER_PAGES_PER_ROW = 8  # rendered pages per row out of a render task (~150 kB of PNG each): a long
#                           file flows on in small rows, and a single-page scan is one row
LOADING_NICE = 19  # the loading thread's nice value (Linux): what is left where SCHED_IDLE is refused
CPU_COLUMNS = ("cpu_render", "cpu_ocr", "cpu_chunk", "cpu_embed")  # each stage's CPU, gathered by the driver


@dataclass(frozen=True)
class FileToRead:
    """A file the driver planned to read, as a render task takes it."""

    read: str  # its absolute path (a worker may be on another machine, or in another folder)
    known_as: str  # the path of its points and its report
    sha256: str  # as planned: a file that changed since is not read
    already: StoredPoints  # its points an interrupted run stored (their chunks are not embedded again)
    pages: int  # pages to read


def render_files(files: list[FileToRead], config: PipelineConfig, longest_side: int,
                 text_words: bool | str = False):
    """Renders each file (one open, one read) and yields its pages in rows of up to
    ``RENDER_PAGES_PER_ROW``, as they are rendered: a 1,000-page PDF streams on, never held
    whole. A file that cannot be opened gives one row with its error and no pages; a page that
    cannot be rendered travels as its ``InputError`` (the OCR stage makes it a failed page).
    ``longest_side``: the model's page size, and ``text_words`` what of the text layer each page
    carries, asked once by the driver."""
    import pandas as pd

    password = config.input.password.get_secret_value() if config.input.password else None
    for file in files:
        def row(items: list, first: int, error: str = "", total: int = -1) -> "pd.DataFrame":
            """``items`` are the file's pages ``first``, ``first`` + 1...; ``total`` (on its last
            row only) how many it has in all."""
            return pd.DataFrame({"read": [file.read], "known_as": [file.known_as],
                                 "already": [pickle.dumps(file.already)], "items": [pickle.dumps(items)],
                                 "first": [first], "error": [error], "total": [total],
                                 "cpu_render": [PROCESS_CPU.take()]})

        try:
            with stage_cpu("open"):
                source = DocumentSource(file.read, password=password, longest_side=longest_side,
                                        text_words=text_words,
                                        detect_rotation=config.ocr.detect_rotation)
        except InputError as exc:
            yield row([], 0, str(exc).replace(file.read, file.known_as), total=0)
            continue
        with source:
            if file.sha256 and source.source.sha256 != file.sha256:
                yield row([], 0, f"{file.known_as}: changed since it was planned (its bytes differ); run again to "
                                 "read the new version", total=0)
                continue
            source.known_as(file.known_as)  # read from an absolute path, known by the planned one
            items: list = []
            sent = 0
            for item in source.iter_pages(config.input.pages):
                if len(items) == RENDER_PAGES_PER_ROW:
                    yield row(items, sent)
                    sent += len(items)
                    items = []
                items.append(item)
            yield row(items, sent, total=sent + len(items))


def render_group(batch, config: PipelineConfig, longest_side: int, text_words: bool | str = False):
    """``render_files`` over the files of each row (``files``: a pickled list of one render task's
    ``FileToRead``, as the driver groups them by pages). Here, not in ``driver``: a function a
    task runs is imported by its module in every worker process, and that one imports the whole reader."""
    for files in batch["files"]:
        yield from render_files(pickle.loads(files), config, longest_side, text_words)


class _Loading:
    """Something built in a background thread at the lowest CPU priority; ``result()`` waits for
    it (and raises its error). On Linux a thread's scheduling is its own, so the loading takes
    only CPU that the render tasks filling the GPUs' first batch leave idle (the OCR of that
    batch leaves plenty), and the threads that later embed run at the normal priority: each
    calling thread gets its own OpenMP team.

    The lowest priority is SCHED_IDLE, not nice 19: Ray starts its workers at nice 15
    (``worker_niceness``), only four steps above, where a nice-19 thread still takes about a
    third of a core from a render task beside it (measured: two loaders took 0.8 of the 2 cores
    while two render tasks rendered at half a core each)."""

    def __init__(self, build):
        self._future: concurrent.futures.Future = concurrent.futures.Future()
        threading.Thread(target=self._build, args=(build,), name="loading", daemon=True).start()

    def _build(self, build) -> None:
        _lowest_priority()
        try:
            self._future.set_result(build())
        except BaseException as exc:  # handed to the first call, which fails the run with it
            self._future.set_exception(exc)

    def result(self):
        return self._future.result()


def _lowest_priority() -> None:
    """This thread (and the threads it starts) on CPU that nothing else wants: SCHED_IDLE, else nice 19."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
    except OSError:  # refused (a seccomp or container policy): the lowest nice value instead
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, thread, LOADING_NICE)
    except OSError:  # not allowed here: load at the normal priority
        pass


class ChunkFiles:
    """Cuts each whole file of the batch as the local runner does (``chunk_file``, pages in order).
    An actor, so that its tokenizer loads once, not in every worker process a task lands on."""

    def __init__(self, config: PipelineConfig):
        self._parser = _Loading(lambda: _parser(config))

    def __call__(self, batch):
        parser = self._parser.result()
        nodes = []
        for pages in batch["pages"]:
            documents = [d for d in pickle.loads(pages) if d.ocr.status != "failed"]
            with stage_cpu("chunking"):
                nodes.append(pickle.dumps(parser.chunk_file(documents) if documents else []))
        out = batch.copy()
        out["nodes"] = nodes
        out["cpu_chunk"] = PROCESS_CPU.column(len(nodes))
        return out


def _parser(config: PipelineConfig):
    from ..build import make_parser

    parser = make_parser(config)
    parser.count_tokens("warm")  # loads the tokenizer now, not at the first file
    return parser


class EmbedChunks:
    """Embeds the chunks of a batch of files together (those an earlier run stored are left out)."""

    def __init__(self, config: PipelineConfig):
        self._model = _Loading(lambda: _embed_model(config))

    def __call__(self, batch):
        model = self._model.result()  # first: importing LlamaIndex while the loading thread does could fail
        from ...embedding import embed_nodes

        files = [pickle.loads(nodes) for nodes in batch["nodes"]]
        stored = [pickle.loads(already) for already in batch["already"]]
        embed_nodes(model, [node for nodes, done in zip(files, stored) for node in nodes if node.node_id not in done])
        out = batch.copy()
        out["nodes"] = [pickle.dumps(nodes) for nodes in files]
        out["cpu_embed"] = PROCESS_CPU.column(len(files))
        return out


def _embed_model(config: PipelineConfig):
    from ...embedding import pick_device
    from ..build import make_embedder

    model = make_embedder(config)
    if pick_device(config.embedding.device) == "cpu":
        import torch

        # Ray sets OMP_NUM_THREADS to the actor's logical CPUs (1): torch would embed on one
        # core. The local runner's embedder uses every core of its machine; so does this one.
        # (The setting is torch's, for every thread: calls run in another thread than this.)
        torch.set_num_threads(os.cpu_count() or 1)
    return model


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
