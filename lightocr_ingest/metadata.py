"""Page and chunk metadata as typed records, each with its one conversion to LlamaIndex
metadata and back.

LlamaIndex keeps a node's facts in ``metadata``, a dict, and Qdrant stores that dict as the
point's payload; so these conversions are also the payload's. Every stage that needs a page's
or a chunk's facts goes through ``PageMetadata.from_metadata`` / ``ChunkMetadata.from_metadata``
rather than reading keys: the keys are written and read here only, and they are the public
ones documented in docs/provenance.md.

Key order is kept as it always was: a Document's hash (which an ``IngestionPipeline``'s
docstore and cache compare) is taken over its metadata as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .records import Box, Region

PageStatus = Literal["ok", "fallback_text_layer", "fallback_cpu", "failed"]  # "retried" is a fact of a run
BboxSource = Literal["model", "text_layer", "ocr_lines", "located", "none"]  # "model": LightOnOCR-3 grounding
FINGERPRINT_KEY = "pipeline_fingerprint"  # the settings a page was chunked and embedded under (``ingest``)
# The keys the store selects a document's points by (payload indexes), and the ones it reads to
# tell which document and pages a point holds (``PageMetadata``/``ChunkMetadata`` read them back).
FILE_PATH_KEY, FILE_NAME_KEY, FILE_SHA256_KEY, PAGE_KEY = "file_path", "file_name", "file_sha256", "page"
DOCUMENT_KEYS = (FILE_NAME_KEY, FILE_PATH_KEY, FILE_SHA256_KEY, PAGE_KEY, "pages", "page_count")


@dataclass(frozen=True)
class PageMetadata:
    """What describes one page read by ``LightOnOCRReader`` (its Document's metadata).

    ``rendered`` is False for a page that could not be rendered: its metadata then has no
    content hash, sizes or rotation (there were none to know)."""

    file_name: str
    file_path: str
    page: int | None
    page_label: str | None
    ocr_status: PageStatus
    ocr_engine: str | None = None
    ocr_model: str | None = None
    ocr_error: str | None = None
    ocr_warning: str | None = None
    rendered: bool = True
    file_sha256: str | None = None
    page_count: int | None = None
    page_width: float | None = None  # PDF points of the page as stored (images: pixels at their DPI)
    page_height: float | None = None
    image_width: int | None = None  # pixels sent to the model, after the turn below
    image_height: int | None = None
    rotation: int = 0  # degrees clockwise the page was turned upright
    rotation_confidence: float | None = None
    pipeline_fingerprint: str | None = None  # set by ``ingest`` (``FINGERPRINT_KEY``), not by the reader
    # The running heads, footers and printed page number the model labelled (grounding): out of
    # the chunks' text, kept here. Absent (not empty) on other pages, whose metadata stays as it was.
    page_furniture: tuple[str, ...] = ()

    def to_metadata(self) -> dict[str, Any]:
        """The Document's metadata keys, in the order the reader has always written them."""
        if not self.rendered:
            return {"file_name": self.file_name, "file_path": self.file_path, "page": self.page,
                    "page_label": self.page_label, "ocr_status": self.ocr_status, "ocr_error": self.ocr_error,
                    "ocr_engine": self.ocr_engine, "ocr_model": self.ocr_model}
        metadata: dict[str, Any] = {
            "file_name": self.file_name, "file_path": self.file_path, "file_sha256": self.file_sha256,
            "page": self.page, "page_label": self.page_label, "page_count": self.page_count,
            "page_width": self.page_width, "page_height": self.page_height, "image_width": self.image_width,
            "image_height": self.image_height, "rotation": self.rotation,
            "rotation_confidence": self.rotation_confidence, "ocr_engine": self.ocr_engine,
            "ocr_model": self.ocr_model, "ocr_status": self.ocr_status}
        if self.ocr_error:
            metadata["ocr_error"] = self.ocr_error
        if self.ocr_warning:
            metadata["ocr_warning"] = self.ocr_warning
        if self.page_furniture:
            metadata["page_furniture"] = list(self.page_furniture)
        if self.pipeline_fingerprint:
            metadata[FINGERPRINT_KEY] = self.pipeline_fingerprint
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "PageMetadata":
        """The page's facts from a Document's (or a chunk's, or a payload's) metadata; keys
        another reader did not write are None."""
        get = metadata.get
        return cls(file_name=get("file_name") or "", file_path=get("file_path") or "", page=get("page"),
                   page_label=get("page_label"), ocr_status=get("ocr_status") or "ok",
                   ocr_engine=get("ocr_engine"), ocr_model=get("ocr_model"), ocr_error=get("ocr_error"),
                   ocr_warning=get("ocr_warning"), rendered="file_sha256" in metadata,
                   file_sha256=get("file_sha256"), page_count=get("page_count"), page_width=get("page_width"),
                   page_height=get("page_height"), image_width=get("image_width"),
                   image_height=get("image_height"), rotation=get("rotation") or 0,
                   rotation_confidence=get("rotation_confidence"), pipeline_fingerprint=get(FINGERPRINT_KEY),
                   page_furniture=tuple(get("page_furniture") or ()))


@dataclass(frozen=True)
class FigureMetadata:
    """An embedded image a chunk refers to, with its box in page points when the model gave one."""

    ref: str
    page: int
    bbox: Box | None

    def to_payload(self) -> dict[str, Any]:
        return {"ref": self.ref, "page": self.page, "bbox": list(self.bbox) if self.bbox else None}


@dataclass(frozen=True)
class ChunkMetadata:
    """What a chunk adds to the metadata of the page it starts on (which it carries too)."""

    page: int  # the page it starts on
    pages: tuple[int, ...]
    page_label: str
    header_path: str  # "Title > Section > Subsection"
    block_types: tuple[str, ...]
    regions: tuple[Region, ...]
    bbox: Box | None  # the union of its regions on its first page
    bbox_source: BboxSource
    figures: tuple[FigureMetadata, ...]
    chunk_index: int
    oversize: bool
    # grounded pages: each model block it holds, {"page", "label", "bbox"}; absent elsewhere
    blocks: tuple[dict[str, Any], ...] = ()
    section: str = ""  # the chunk's own heading, the path's last ("Subsection"); what the embedder sees of it

    def to_metadata(self) -> dict[str, Any]:
        """The chunk's own keys, which go over the page's."""
        metadata = {"page": self.page, "pages": list(self.pages), "page_label": self.page_label,
                    "header_path": self.header_path, "section": self.section, "block_types": list(self.block_types),
                    "regions": [region.to_payload() for region in self.regions],
                    "bbox": [round(v, 1) for v in self.bbox] if self.bbox else None,
                    "bbox_source": self.bbox_source,
                    "figures": [figure.to_payload() for figure in self.figures], "chunk_index": self.chunk_index,
                    "oversize": self.oversize}
        if self.blocks:
            metadata["blocks"] = [dict(block) for block in self.blocks]
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "ChunkMetadata":
        """A chunk's facts from its node's metadata or its point's payload (lenient: a point
        another tool wrote gets empty values where it has no key)."""
        get = metadata.get
        page = get("page") or 0
        bbox = get("bbox")
        header_path = get("header_path") or ""
        return cls(page=page, pages=tuple(get("pages") or ([page] if page else [])),
                   page_label=str(get("page_label") or page), header_path=header_path,
                   section=get("section") or header_path.rsplit(" > ", 1)[-1],  # points stored before 0.2.0 lack it
                   block_types=tuple(get("block_types") or ()),
                   regions=tuple(Region(r["page"], tuple(r["bbox"])) for r in get("regions") or ()
                                 if r.get("bbox")),
                   bbox=tuple(bbox) if bbox else None, bbox_source=get("bbox_source") or "none",
                   figures=tuple(FigureMetadata(f.get("ref") or "figure", f.get("page", page),
                                                tuple(f["bbox"]) if f.get("bbox") else None)
                                 for f in get("figures") or ()),
                   chunk_index=get("chunk_index") or 0, oversize=bool(get("oversize")),
                   blocks=tuple(dict(b) for b in get("blocks") or ()))
