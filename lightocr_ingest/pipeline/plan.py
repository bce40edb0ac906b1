"""Discovery and planning: which files a run reads, and which it can skip before any OCR.

Folders are expanded into files (``collect_files``: names only). ``Planner`` then opens them
in steps, ahead of rendering: opening a file reads its bytes once, and the content hash,
the page count and the rendering all come from those bytes (``pages.DocumentSource``). For
each step two Qdrant queries say which versions are already stored, and which of the step's files
have points of other versions (deleted as each file starts): a byte-identical copy of a
file met earlier in the run, or a file whose points are complete in Qdrant for the same
content and settings, is skipped and closed; a file an interrupted run left half-stored
keeps the ids of its stored chunks, so only the rest are embedded. What is left is read, in
order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..cpu_cost import stage_cpu
from ..errors import InputError
from ..metadata import FILE_SHA256_KEY, FINGERPRINT_KEY
from ..pages import DocumentSource
from ..store import files_with_stale_points, stored_versions
from .config import PipelineConfig
from .progress import StoredPoints
from .report import FileReport

STEP_FILES = 64  # files opened and looked up in Qdrant together: one query per step instead of two per
#                  file, and enough pages opened ahead that the OCR window never waits on opening
STEP_BYTES = 128 << 20  # file bytes a step holds open at most (a step of large PDFs is shorter): files wait
#                         in memory from opening to rendering, and two steps can be open at once


# What the embedding model and BM25 are given of a chunk, beyond the settings: a change here makes
# stored vectors stale, so it is part of the fingerprint (0.2.0: tables as their cells' text).
EMBEDDED_TEXT = "tables as cell text"


def settings_fingerprint(config: PipelineConfig) -> str:
    """What decides a file's points besides its content: re-ingest when it changes."""
    relevant = {"chunking": config.chunking.model_dump(), "embedding_model": config.embedding.model,
                "pages": config.input.pages, "detect_rotation": config.ocr.detect_rotation,
                "embedded_text": EMBEDDED_TEXT}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def collect_inputs(config: PipelineConfig, paths: Iterable[str] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """``collect_files`` for a run: the config's ``input.paths`` and ``paths``, with its extensions
    and recursion."""
    return collect_files(list(config.input.paths) + list(paths), config.input.extensions, config.input.recursive)


def collect_files(paths: Iterable[str], extensions: list[str],
                  recursive: bool = True) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand folders into files, sorted; return them and ``(path, problem)`` for what was left out.

    Symlinked folders are not followed (a link back to a parent would loop forever, and one
    elsewhere would ingest files outside the folder given); symlinked files are read.
    """
    wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    files: list[str] = []
    problems: list[tuple[str, str]] = []

    def walk_error(error: OSError) -> None:
        problems.append((error.filename, f"{error.filename}: cannot be listed: {error.strerror}"))

    for raw in paths:
        path = os.path.expanduser(str(raw))
        if os.path.isdir(path):
            walker = os.walk(path, followlinks=False, onerror=walk_error) if recursive \
                else [(path, [], os.listdir(path))]
            for folder, subfolders, names in walker:
                for name in sorted(subfolders):
                    link = os.path.join(folder, name)
                    if os.path.islink(link):
                        problems.append((link, f"{link}: symlinked folder not followed (ingest its target "
                                               f"{os.path.realpath(link)} directly if it is wanted)"))
                for name in sorted(names):
                    if Path(name).suffix.lower() not in wanted:
                        continue
                    file = os.path.join(folder, name)
                    if os.path.isfile(file):
                        files.append(file)
                    elif os.path.islink(file):
                        problems.append((file, f"{file}: broken symlink (its target {os.readlink(file)} is missing)"))
        elif os.path.exists(path):
            files.append(path)
        else:
            problems.append((path, f"{path}: no such file or folder"))
    return list(dict.fromkeys(files)), problems


@dataclass
class PlannedFile:
    """A file of the run: to read (``source`` open, its pages selected), or already settled
    (skipped or failed: ``report`` says which and why)."""

    report: FileReport
    read: str = ""  # its path on this machine (the report and the points may know it by another)
    source: DocumentSource | None = None
    page_numbers: list[int] = field(default_factory=list)
    already: StoredPoints = field(default_factory=dict)  # stored by an earlier, interrupted run
    stale: bool = False  # it has points of other versions: they are deleted as it starts


class Planner:
    """Opens a run's files step by step and decides, per step, which need reading (see the
    module docstring). ``open_step`` blocks (file reads, PDFium, Qdrant): run it in a thread."""

    def __init__(self, config: PipelineConfig, client, collection: str, fingerprint: str,
                 password: str | None = None, names: dict[str, str] | None = None):
        self.config, self.client, self.collection, self.fingerprint = config, client, collection, fingerprint
        self.password = password
        self.names = names or {}  # path read -> the path it is known by (the service's uploads)
        self.first_with: dict[str, str] = {}  # content hash -> first path with it in this run

    @staticmethod
    def steps(files: list[str]) -> Iterator[list[str]]:
        """``files`` cut into steps of at most ``STEP_FILES`` files and ``STEP_BYTES`` bytes (at least one file)."""
        step: list[str] = []
        size = 0
        for path in files:
            try:
                length = os.stat(path).st_size
            except OSError:
                length = 0  # opening will say what is wrong with it
            if step and (len(step) >= STEP_FILES or size + length > STEP_BYTES):
                yield step
                step, size = [], 0
            step.append(path)
            size += length
        if step:
            yield step

    def open_step(self, paths: list[str]) -> list[PlannedFile]:
        planned: list[PlannedFile] = []
        for path in paths:
            known_as = self.names.get(path, path)
            report = FileReport(path=known_as)
            planned.append(PlannedFile(report, read=path))
            try:
                source = DocumentSource(path, password=self.password)
            except InputError as exc:
                report.status, report.error = "failed", str(exc).replace(path, known_as)
                continue
            source.known_as(known_as)  # its pages, chunks and points carry the name it is known by
            report.sha256 = source.source.sha256
            if report.sha256 in self.first_with:  # a byte-identical copy: its points would be the same points
                report.status, report.duplicate_of = "skipped", self.first_with[report.sha256]
                source.close()
                continue
            self.first_with[report.sha256] = path
            try:
                planned[-1].page_numbers = source.page_numbers(self.config.input.pages)
            except InputError as exc:
                report.status, report.error = "failed", str(exc)
                source.close()
                continue
            planned[-1].source = source
        try:
            with stage_cpu("upsert"):  # Qdrant's share of the run: its look-ups too
                self._look_up(planned)
        except BaseException:
            for item in planned:
                if item.source is not None:
                    item.source.close()
            raise
        return planned

    def _look_up(self, planned: list[PlannedFile]) -> None:
        """Skip the files stored complete; for the others, what is stored of their version and
        which of their points are of other versions."""
        reading = [p for p in planned if p.source is not None]
        stored = stored_versions(self.client, self.collection, [p.report.sha256 for p in reading], self.fingerprint)
        for item in reading:
            version = stored.get(item.report.sha256)
            if version is None:
                continue
            if version.complete:
                item.report.status = "skipped"
                item.source.close()
                item.source = None
            else:
                item.already = version.points
        reading = [p for p in reading if p.source is not None]
        stale = files_with_stale_points(self.client, self.collection,
                                        {p.report.path: version_of(p.report.sha256 or "", self.fingerprint)
                                         for p in reading})
        for item in reading:
            item.stale = item.report.path in stale


def version_of(sha256: str, fingerprint: str) -> dict:
    """The payload values that identify a run's points of a file: its content and the settings."""
    return {FILE_SHA256_KEY: sha256, FINGERPRINT_KEY: fingerprint}
