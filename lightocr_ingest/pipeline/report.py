"""The run report: every file and page with its status, so nothing is lost silently.

Totals always satisfy ``pages_seen == pages_ingested + pages_failed``; skipped files (already
in Qdrant with the same content and settings) are counted apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

from ..records import OcrStatus

PAGE_STATUSES: tuple[OcrStatus, ...] = get_args(OcrStatus)
FileStatus = Literal["ok", "partial", "failed", "skipped"]


@dataclass
class PageReport:
    page: int
    status: OcrStatus
    engine: str | None = None
    attempts: int = 1
    latency_s: float = 0.0  # of the request that answered
    output_tokens: int | None = None
    cached: bool = False  # read from the OCR cache: no request this run
    chunks: int = 0
    error: str | None = None  # why the model's answer was not used
    warning: str | None = None  # e.g. a repetition loop trimmed
    thinking_removed: bool = False  # the model thought aloud first (LightOnOCR-3 asked without thinking off)


@dataclass
class FileReport:
    path: str
    status: FileStatus = "ok"  # partial: some pages failed, under ocr.max_failed_share
    sha256: str | None = None
    pages: list[PageReport] = field(default_factory=list)
    chunks: int = 0
    error: str | None = None
    chunks_already_stored: int = 0  # stored by an earlier, interrupted run: not embedded again
    regions: dict[str, int] = field(default_factory=dict)  # chunks by where their regions came from
    duplicate_of: str | None = None  # skipped: byte-identical to this file, ingested in the same run

    @property
    def failed_pages(self) -> list[int]:
        return [p.page for p in self.pages if p.status == "failed"]


def sum_counts(counts) -> dict[str, int]:
    """Counts by key summed over several dicts (chunks by region source; CPU by stage over Ray's workers)."""
    total: dict[str, int] = {}
    for count in counts:
        for key, n in count.items():
            total[key] = total.get(key, 0) + n
    return dict(sorted(total.items()))


@dataclass
class PruneReport:
    """What ``--prune`` did: documents renamed to their file's new path, and removed (their file
    is no longer under the inputs); ``withheld`` says why nothing was removed, when nothing was."""

    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path)
    removed: list[str] = field(default_factory=list)  # paths
    removed_chunks: int = 0
    withheld: str | None = None


@dataclass
class RunReport:
    collection: str
    files: list[FileReport] = field(default_factory=list)
    points_before: int = 0
    points_after: int = 0
    elapsed_s: float = 0.0
    cpu_ns: dict[str, int] = field(default_factory=dict)  # CPU time by stage (cpu_cost.STAGES), and "process"
    prune: PruneReport | None = None  # ``--prune``: what was renamed and removed, or why nothing was

    def totals(self) -> dict:
        pages = [p for f in self.files for p in f.pages]
        failed = sum(p.status == "failed" for p in pages)
        by_status = {status: sum(p.status == status for p in pages) for status in PAGE_STATUSES}
        return {
            "files": len(self.files),
            "files_failed": sum(f.status == "failed" for f in self.files),
            "files_partial": sum(f.status == "partial" for f in self.files),
            "files_skipped": sum(f.status == "skipped" for f in self.files),
            "files_resumed": sum(f.chunks_already_stored > 0 for f in self.files),
            "pages_seen": len(pages),
            "pages_ingested": len(pages) - failed,
            "pages_failed": failed,
            "pages_by_status": by_status,
            # what read them: vllm, cpu (RapidOCR), pdf-text-layer (the CPU engine's or the fallback)
            "pages_by_engine": sum_counts([{p.engine: 1} for p in pages if p.status != "failed" and p.engine]),
            "pages_from_cache": sum(p.cached for p in pages),
            "ocr_requests": sum(p.attempts for p in pages if not p.cached),
            "output_tokens": sum(p.output_tokens or 0 for p in pages if not p.cached),
            # answers of this run that began with a thinking preamble (cut off): a server to fix
            "pages_thinking_removed": sum(p.thinking_removed for p in pages if not p.cached),
            "chunks": sum(f.chunks for f in self.files),
            "chunks_by_bbox_source": sum_counts(f.regions for f in self.files),
            "points_before": self.points_before,
            "points_after": self.points_after,
            "elapsed_s": round(self.elapsed_s, 2),
            "pages_per_s": round(len(pages) / self.elapsed_s, 3) if self.elapsed_s else None,
            "cpu_ms_per_page": {stage: round(ns / 1e6 / len(pages), 2) for stage, ns in self.cpu_ns.items()}
            if pages else {},
        }

    @property
    def ok(self) -> bool:
        totals = self.totals()
        return totals["files_failed"] == 0 and totals["files_partial"] == 0 and totals["pages_failed"] == 0

    def failed_files(self) -> list[str]:
        return [f.path for f in self.files if f.status in ("failed", "partial")]

    def to_json(self) -> str:
        data = {"collection": self.collection, "totals": self.totals(),
                "prune": asdict(self.prune) if self.prune is not None else None,
                "files": [dict(asdict(f), failed_pages=f.failed_pages) for f in self.files]}
        return json.dumps(data, indent=2)
