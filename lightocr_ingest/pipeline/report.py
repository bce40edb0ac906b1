"""The run report: every file and page with its status, so nothing is lost silently.

Totals always satisfy ``pages_seen == pages_ingested + pages_failed``; skipped files (already
in Qdrant with the same content and settings) are counted apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class PageReport:
    page: int
    status: str  # ok | retried | fallback_text_layer | fallback_cpu | failed
    engine: str | None = None
    attempts: int = 1
    latency_s: float = 0.0
    output_tokens: int | None = None
    chunks: int = 0
    error: str | None = None


@dataclass
class FileReport:
    path: str
    status: str = "ok"  # ok | partial | failed | skipped
    sha256: str | None = None
    pages: list[PageReport] = field(default_factory=list)
    chunks: int = 0
    error: str | None = None

    @property
    def failed_pages(self) -> list[int]:
        return [p.page for p in self.pages if p.status == "failed"]


@dataclass
class RunReport:
    collection: str
    files: list[FileReport] = field(default_factory=list)
    points_before: int = 0
    points_after: int = 0
    elapsed_s: float = 0.0

    def totals(self) -> dict:
        pages = [p for f in self.files for p in f.pages]
        failed = sum(p.status == "failed" for p in pages)
        return {
            "files": len(self.files),
            "files_failed": sum(f.status in ("failed", "partial") for f in self.files),
            "files_skipped": sum(f.status == "skipped" for f in self.files),
            "pages_seen": len(pages),
            "pages_ingested": len(pages) - failed,
            "pages_failed": failed,
            "chunks": sum(f.chunks for f in self.files),
            "points_before": self.points_before,
            "points_after": self.points_after,
            "elapsed_s": round(self.elapsed_s, 2),
            "pages_per_s": round(len(pages) / self.elapsed_s, 3) if self.elapsed_s else None,
        }

    @property
    def ok(self) -> bool:
        totals = self.totals()
        return totals["files_failed"] == 0 and totals["pages_failed"] == 0

    def failed_files(self) -> list[str]:
        return [f.path for f in self.files if f.status in ("failed", "partial")]

    def to_json(self) -> str:
        data = {"collection": self.collection, "totals": self.totals(),
                "files": [dict(asdict(f), failed_pages=f.failed_pages) for f in self.files]}
        return json.dumps(data, indent=2)
