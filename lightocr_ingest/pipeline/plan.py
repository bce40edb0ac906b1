"""Discovery and planning: which files a run reads, and which it can skip before any OCR.

Folders are expanded into files; each file is hashed; a byte-identical copy of a file met
earlier in the run, or a file whose points are already complete in Qdrant for the same
content and settings, is skipped. What is left is read, in order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..store import COMPLETE_KEY, has_points
from .config import PipelineConfig
from .report import FileReport


def settings_fingerprint(config: PipelineConfig) -> str:
    """What decides a file's points besides its content: re-ingest when it changes."""
    relevant = {"chunking": config.chunking.model_dump(), "embedding_model": config.embedding.model,
                "pages": config.input.pages, "detect_rotation": config.ocr.detect_rotation}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


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
class RunPlan:
    """Every file of a run with its report; ``to_read`` are those that need reading."""

    reports: list[FileReport] = field(default_factory=list)  # problems, skipped and read, in order
    to_read: list[str] = field(default_factory=list)
    by_path: dict[str, FileReport] = field(default_factory=dict)


def plan_run(paths: Iterable[str], config: PipelineConfig, client, collection: str, fingerprint: str) -> RunPlan:
    """Decide what a run reads (blocking: hashes files and asks Qdrant; run it in a thread)."""
    plan = RunPlan()
    files, problems = collect_files(paths, config.input.extensions, config.input.recursive)
    for path, problem in problems:
        plan.reports.append(FileReport(path=path, status="failed", error=problem))
    first_with: dict[str, str] = {}  # content hash -> first path with it in this run
    for path in files:
        sha = file_sha256(path)
        report = FileReport(path=path, sha256=sha)
        plan.reports.append(report)
        plan.by_path[path] = report
        if sha in first_with:  # a byte-identical copy: its points would be the same points
            report.status, report.duplicate_of = "skipped", first_with[sha]
            continue
        if sha:
            first_with[sha] = path
            if has_points(client, collection, **version_of(sha, fingerprint), **{COMPLETE_KEY: True}):
                report.status = "skipped"
                continue
        plan.to_read.append(path)
    return plan


def version_of(sha256: str, fingerprint: str) -> dict:
    """The payload values that identify a run's points of a file: its content and the settings."""
    return {"file_sha256": sha256, "pipeline_fingerprint": fingerprint}
