"""Prometheus metrics, one registry per app (so several apps in one process stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)  # seconds: a page takes 0.2-60


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pages = Counter("lightocr_pages_total", "Pages read, by status and engine",
                             ["status", "engine"], registry=self.registry)
        self.cache_hits = Counter("lightocr_ocr_cache_hits_total", "Pages answered from the OCR cache",
                                  registry=self.registry)
        self.latency = Histogram("lightocr_request_duration_seconds", "HTTP request latency",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("lightocr_requests_in_flight", "HTTP requests being served", registry=self.registry)
        self.ocr_queue = Gauge("lightocr_ocr_queue_depth", "OCR requests waiting for a slot", registry=self.registry)
        self.jobs_queued = Gauge("lightocr_jobs_queued", "Ingest jobs waiting to run", registry=self.registry)
        self.jobs = Counter("lightocr_jobs_total", "Ingest jobs finished, by status", ["status"],
                            registry=self.registry)

    def page(self, status: str, engine: str | None, cached: bool) -> None:
        self.pages.labels(status=status, engine=engine or "none").inc()
        if cached:
            self.cache_hits.inc()
