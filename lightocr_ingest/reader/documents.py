"""A page read, as a LlamaIndex Document: its id, its metadata (``metadata.PageMetadata``),
its layout in page points and the facts of this run.

A page's id depends only on its file's bytes and its number, so reading the same file again
gives the same ids; a page that could not be rendered still gets a Document, so it is never
lost from a report.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from pathlib import Path

from ..documents import PageDocument
from ..errors import InputError
from ..metadata import PageMetadata
from ..ocr.grounding import FURNITURE_LABELS
from ..records import OcrResult, OcrRun, PageImage, PageLayout, PageWords, PlacedFigure

log = logging.getLogger("lightocr_ingest")

ID_NAMESPACE = uuid.UUID("6f1c8a52-3d0e-4c55-9a57-6c1d0b8e2f41")  # fixed forever: ids must not change
EMBED_METADATA_KEYS = ("file_name",)  # the only page keys that help an embedding model
LLM_METADATA_KEYS = ("file_name", "page_label")  # what an LLM needs to cite a page
MAX_PRINTED_LABEL = 16  # characters: a printed page number longer than this is a misread line, not a label


def page_document_id(file_sha256: str, page: int) -> str:
    """The id of a page's Document: same file bytes and page number, same id."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{file_sha256}:{page}"))


def page_document(page: PageImage, result: OcrResult | BaseException | None, extra_info: dict | None,
                  regions: str, located: tuple[PageWords, float] | None = None) -> PageDocument:
    """The Document of a rendered page and what the engine made of it (``regions``: the reader's
    setting; ``located``: lines the detector placed, with the CPU seconds it took)."""
    if not isinstance(result, OcrResult):  # an engine that raised (ResilientEngine never does)
        result = OcrResult(markdown="", engine="", model="", attempts=0, status="failed",
                           error=f"{type(result).__name__}: {result}")
    # A page the model read after a transient error is the same page: "retried" is a fact of
    # this run (document.ocr.status), kept out of the metadata that the page's hash covers.
    furniture = [(b.label, result.markdown[b.start:b.end].strip()) for b in result.blocks
                 if b.label in FURNITURE_LABELS]
    facts = PageMetadata(
        file_name=page.source.name, file_path=page.source.path, file_sha256=page.source.sha256, page=page.page,
        page_label=printed_label(page, furniture), page_count=page.source.page_count, page_width=page.page_width,
        page_height=page.page_height, image_width=page.image_width, image_height=page.image_height,
        rotation=page.rotation, rotation_confidence=page.rotation_confidence, ocr_engine=result.engine,
        ocr_model=result.model, ocr_status="ok" if result.status == "retried" else result.status,
        ocr_error=result.error, ocr_warning=result.warning, page_furniture=tuple(text for _, text in furniture if text))
    metadata = dict(extra_info or {})
    metadata.update(facts.to_metadata())
    ocr_lines = None
    if located is not None:
        ocr_lines = located[0]
    elif result.text_boxes and regions != "off":
        ocr_lines = page.lines_in_points(result.text_boxes, "ocr_lines")
    layout = PageLayout(
        figures=tuple(PlacedFigure(f.ref, page.to_page_points(f.box) if f.box else None) for f in result.figures),
        text_layer=page.text_words if regions != "off" else None, ocr_lines=ocr_lines,
        locate_s=located[1] if located else 0.0,
        blocks=tuple(replace(block, box=page.to_page_points(block.box)) for block in result.blocks))
    return PageDocument(
        id_=page_document_id(page.source.sha256, page.page),
        text=result.markdown,
        metadata=metadata,
        excluded_embed_metadata_keys=[k for k in metadata if k not in EMBED_METADATA_KEYS],
        excluded_llm_metadata_keys=[k for k in metadata if k not in LLM_METADATA_KEYS],
        layout=layout,
        ocr=OcrRun(status=result.status, attempts=result.attempts, latency_s=round(result.latency_s, 3),
                   cached=result.cached, finish_reason=result.finish_reason, output_tokens=result.output_tokens,
                   thinking_removed=result.thinking_removed),
    )


def printed_label(page: PageImage, furniture: list[tuple[str, str]]) -> str:
    """The page's label: the PDF's own when it has one, else the number printed on the page
    when the model labelled one (a scan's "iv" or "A-3"), else its position in the file."""
    if page.label != str(page.page):
        return page.label  # the PDF's page labels
    printed = next((text for label, text in furniture if label == "page_number" and text), "")
    return printed if 0 < len(printed) <= MAX_PRINTED_LABEL else page.label


def failed_page_document(error: InputError, extra_info: dict | None = None) -> PageDocument:
    """A placeholder Document for a page that could not be rendered, so it is never lost."""
    log.error("%s", error)
    facts = PageMetadata(file_name=Path(error.file).name, file_path=error.file, page=error.page,
                         page_label=str(error.page), ocr_status="failed", ocr_error=error.cause, rendered=False)
    metadata = dict(extra_info or {})
    metadata.update(facts.to_metadata())
    return PageDocument(id_=str(uuid.uuid5(ID_NAMESPACE, f"failed:{error.file}:{error.page}")), text="",
                        metadata=metadata, excluded_embed_metadata_keys=list(metadata),
                        excluded_llm_metadata_keys=list(metadata), ocr=OcrRun(status="failed", attempts=0))
