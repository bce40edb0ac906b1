"""What one run knows as it goes, shared by its planning, reading and store stages: the report
being filled in, what planning found of each file, and the caller's callbacks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .report import FileReport, PageReport, RunReport

log = logging.getLogger("lightocr_ingest")

StoredPoints = dict[str, set[int]]  # point id -> the pages it covers, stored for a file's version by an earlier run


@dataclass
class RunProgress:
    report: RunReport
    on_page: Callable[[FileReport, PageReport], None] | None = None
    on_file: Callable[[FileReport], None] | None = None
    by_path: dict[str, FileReport] = field(default_factory=dict)  # the files planned, by the path they are known by
    already: dict[str, StoredPoints] = field(default_factory=dict)  # path -> its points an interrupted run stored
    stale: set[str] = field(default_factory=set)  # paths with points of other versions (changed content or settings)
    worker_cpu: dict[str, int] = field(default_factory=dict)  # CPU by stage spent in other processes (Ray workers)

    def file_failed(self, path: str, error: str) -> None:
        """A file planned to be read that could not be (it changed, or would not open again)."""
        file_report = self.by_path.get(path)
        if file_report is None:
            return
        file_report.status, file_report.error = "failed", error
        log.warning("%s", error)
        self.file_done(file_report)

    def page_done(self, file_report: FileReport, page_report: PageReport) -> None:
        if self.on_page:
            self.on_page(file_report, page_report)

    def file_done(self, file_report: FileReport) -> None:
        if self.on_file:
            self.on_file(file_report)
