"""What a service instance is allowed to do: limits, auth, and the pipeline config it runs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..pipeline.config import PipelineConfig, parse_config


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    config: PipelineConfig = Field(default_factory=lambda: parse_config({}),
                                   description="The pipeline the service runs (OCR, chunking, embedding, Qdrant).")
    api_key: SecretStr | None = Field(default=None, description="When set, every /v1 route needs it "
                                                                "(Authorization: Bearer KEY or X-API-Key).")
    max_upload_mb: float = Field(default=50.0, gt=0, description="Largest upload, checked while it streams in.")
    max_pages: int = Field(default=500, ge=1, description="Most pages one uploaded file may have.")
    concurrency: int = Field(default=4, ge=1, le=256, description=(
        "OCR requests worked on at once. Each keeps its pages in flight on the OCR server, so a few "
        "requests already fill a GPU's batch; more only queue there."))
    queue_size: int = Field(default=16, ge=0, description=(
        "OCR requests waiting beyond those; when full the service answers 429 with Retry-After instead of "
        "holding connections it cannot serve soon."))
    max_jobs_queued: int = Field(default=64, ge=1, description="Ingest jobs waiting; more are refused with 429.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; none by default.")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
