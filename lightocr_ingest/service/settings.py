"""What a service instance is allowed to do: limits, auth, and the pipeline config it runs.

Every limit is per request or per process, never only per file, so the worst request within
them costs a stated amount (docs/service.md, "Limits"): pages and files a request, decoded
pixels a page and in flight, OCR requests worked on and waiting, how long one may wait.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ..pipeline.config import PipelineConfig, parse_config


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    config: PipelineConfig = Field(default_factory=lambda: parse_config({}),
                                   description="The pipeline the service runs (OCR, chunking, embedding, Qdrant).")
    api_key: SecretStr | None = Field(default=None, description="When set, every /v1 route needs it "
                                                                "(Authorization: Bearer KEY or X-API-Key).")
    max_upload_mb: float = Field(default=50.0, gt=0, description=(
        "Largest request body (all its files together), checked while it streams in."))
    max_uploads_in_flight_mb: float = Field(default=200.0, gt=0, description=(
        "Request bodies being received or held at once, all requests (a body of unknown length counts "
        "as --max-upload-mb); past it 429. The multipart parser holds files of up to 1 MB in memory."))
    max_pages: int = Field(default=500, ge=1, description=(
        "Most pages one request may bring: an OCR request's pages (after its page selection), an ingest "
        "request's files together (an ingest job is one request)."))
    max_files: int = Field(default=100, ge=1, description="Most files one ingest request may bring.")
    max_page_megapixels: float = Field(default=50.0, gt=0, description=(
        "Most decoded pixels one page may have (an image, a TIFF frame; PDF pages are rendered at the "
        "reader's size). A 600 dpi A4 scan is 35 MP; a 20,000 x 20,000 px PNG (400 MP) is refused with 413."))
    max_decode_megapixels: float = Field(default=150.0, gt=0, description=(
        "Pixels of pages being decoded at once, all requests and the running job together (each holds its "
        "largest page's pixels while it is read); past it the answer is 429 with Retry-After."))
    concurrency: int = Field(default=4, ge=1, le=256, description=(
        "OCR requests worked on at once. Each keeps its pages in flight on the OCR server, so a few "
        "requests already fill a GPU's batch; more only queue there. The CPU engine reads one page at "
        "a time, so with it the service admits one."))
    queue_size: int = Field(default=16, ge=0, description=(
        "OCR requests waiting beyond those; when full the service answers 429 with Retry-After instead of "
        "holding connections it cannot serve soon."))
    max_queue_wait_s: float = Field(default=30.0, gt=0, description=(
        "Longest an OCR request waits for its turn: one whose wait would be longer (the pages ahead times "
        "the engine's measured time a page) gets 429 at once, and one still waiting then gets 503, both "
        "with Retry-After."))
    max_jobs_queued: int = Field(default=64, ge=1, description="Ingest jobs waiting; more are refused with 429.")
    shutdown_grace_s: float = Field(default=20.0, ge=0, description=(
        "At shutdown, how long the running job may take to finish; then it stops at its next page, is "
        "recorded as interrupted (what it stored stays; submitting it again resumes) and its uploads go."))
    state_dir: Path | None = Field(default=None, description=(
        "Job records and uploads in progress. Default: beside the embedded collection folder "
        "('<qdrant.path>-service'), or .lightocr/service with a Qdrant server."))
    header_timeout_s: float = Field(default=10.0, gt=0, description=(
        "A connection that has not sent a whole request head within this time of connecting (or of "
        "starting its next request) is closed: half-sent heads cannot hold connections."))
    body_idle_s: float = Field(default=30.0, gt=0, description=(
        "A request body that sends nothing for this long is refused with 408 (a stalled upload cannot "
        "hold its connection)."))
    keep_alive_s: int = Field(default=5, ge=1, description="An idle keep-alive connection is closed after this.")
    max_connections: int = Field(default=256, ge=1, description=(
        "Connections and requests at once; past it new requests get 503 at once."))
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; none by default.")

    @model_validator(mode="after")
    def _decode_room_for_a_page(self) -> "ServiceSettings":
        if self.max_uploads_in_flight_mb < self.max_upload_mb:
            raise ValueError(f"max_uploads_in_flight_mb ({self.max_uploads_in_flight_mb:g}) must be at least "
                             f"max_upload_mb ({self.max_upload_mb:g}): an upload allowed could never be received")
        if self.max_decode_megapixels < self.max_page_megapixels:
            raise ValueError(f"max_decode_megapixels ({self.max_decode_megapixels:g}) must be at least "
                             f"max_page_megapixels ({self.max_page_megapixels:g}): a page allowed could never be read")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def state_folder(self) -> Path:
        """Where job records and uploads live, as an absolute path (a restart from another working
        folder finds them; the log shows where)."""
        if self.state_dir is not None:
            return Path(self.state_dir).expanduser().absolute()
        qdrant = self.config.qdrant
        if qdrant.url is None and qdrant.path:
            return Path(str(Path(qdrant.path).expanduser().absolute()) + "-service")
        return Path(".lightocr/service").absolute()
