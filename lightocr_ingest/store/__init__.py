"""Stage 5 - store: chunks with vectors -> Qdrant points, idempotently.

Point ids are the chunk node ids (deterministic), so re-ingesting the same file overwrites
its points. When a file's content or the pipeline's settings change, the points of its old
version (same path, other ``file_sha256`` or ``pipeline_fingerprint``) are deleted before the
new ones go in. Qdrant's local mode on a directory is
the embedded default; a server is used when ``url`` is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from qdrant_client import QdrantClient, models

DEFAULT_PATH = ".lightocr/qdrant"
DEFAULT_COLLECTION = "lightocr"
UPSERT_BATCH = 128  # points per request: Qdrant's sweet spot is 64-256 for 384-dim vectors
INDEXED_FIELDS = {"file_name": models.PayloadSchemaType.KEYWORD, "file_path": models.PayloadSchemaType.KEYWORD,
                  "file_sha256": models.PayloadSchemaType.KEYWORD,
                  "page": models.PayloadSchemaType.INTEGER}  # filters users and re-ingestion run


def make_client(path: str | None = None, url: str | None = None, api_key: str | None = None) -> QdrantClient:
    """A Qdrant server client when ``url`` is set, else local mode on ``path``."""
    if url:
        return QdrantClient(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"), timeout=60)
    path = os.path.expanduser(path or DEFAULT_PATH)
    os.makedirs(path, exist_ok=True)
    try:
        return QdrantClient(path=path)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise RuntimeError(f"the local Qdrant folder {path} is open in another process (local mode allows "
                               f"one at a time); close it, or run a Qdrant server and use --qdrant-url") from None
        raise


def is_local(client: QdrantClient) -> bool:
    """Local mode has no payload indexes (it scans); only a server gets them."""
    return type(getattr(client, "_client", None)).__name__ == "QdrantLocal"


def make_vector_store(client: QdrantClient, collection: str = DEFAULT_COLLECTION):
    """LlamaIndex's ``QdrantVectorStore``; the collection is created with the right size on first add."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    indexes = None if is_local(client) else [{"field_name": k, "field_schema": v} for k, v in INDEXED_FIELDS.items()]
    return QdrantVectorStore(collection_name=collection, client=client, batch_size=UPSERT_BATCH,
                             payload_indexes=indexes, index_doc_id=not is_local(client))


def ensure_payload_indexes(client: QdrantClient, collection: str) -> None:
    if is_local(client) or not client.collection_exists(collection):
        return
    for field, schema in INDEXED_FIELDS.items():
        client.create_payload_index(collection, field, schema)


def _match(key: str, value) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def delete_stale_points(client: QdrantClient, collection: str, file_path: str, current: dict) -> None:
    """Delete the points of ``file_path`` that do not match all ``current`` payload values.

    ``current`` names the version being written (content hash and settings fingerprint), so
    both a changed file and an unchanged file re-chunked with new settings lose their old points.
    """
    if not client.collection_exists(collection):
        return
    client.delete(collection, points_selector=models.FilterSelector(filter=models.Filter(
        must=[_match("file_path", file_path)],
        must_not=[models.Filter(must=[_match(k, v) for k, v in current.items()])])), wait=True)


def has_points(client: QdrantClient, collection: str, **payload: object) -> bool:
    """Whether any point's payload holds all the given values."""
    if not client.collection_exists(collection):
        return False
    hits = client.count(collection, count_filter=models.Filter(must=[_match(k, v) for k, v in payload.items()]),
                        exact=True)
    return hits.count > 0


# Progress markers: after each batch of a file is upserted, its last point is stamped with the
# page the batch ended on and the heading path open there; the file's last point also gets
# ``file_complete``. A killed run resumes each file after its last stamped page, so nothing is
# read twice and the heading paths come out as in an uninterrupted run.
RESUME_PAGE_KEY = "batch_last_page"
RESUME_HEADINGS_KEY = "batch_heading_path"
COMPLETE_KEY = "file_complete"


def mark_progress(client: QdrantClient, collection: str, point_id: str, last_page: int,
                  heading_path: list[tuple[int, str]], complete: bool = False) -> None:
    payload = {RESUME_PAGE_KEY: last_page, RESUME_HEADINGS_KEY: [list(h) for h in heading_path]}
    if complete:
        payload[COMPLETE_KEY] = True
    client.set_payload(collection, payload=payload, points=[point_id], wait=True)


def mark_complete(client: QdrantClient, collection: str, point_id: str) -> None:
    client.set_payload(collection, payload={COMPLETE_KEY: True}, points=[point_id], wait=True)


@dataclass(frozen=True)
class ResumePoint:
    """How far a file version is safely stored: its last stamped page and what was open there."""

    after_page: int = 0  # 0: nothing stored, start from the first page
    heading_path: tuple[tuple[int, str], ...] = ()
    point_id: str | None = None  # the stamped point (to mark the file complete on)


def resume_point(client: QdrantClient, collection: str, version: dict) -> ResumePoint:
    """The last page of ``version`` (payload values) safely stored, and the heading path open there."""
    if not client.collection_exists(collection):
        return ResumePoint()
    marked = models.Filter(must=[*(_match(k, v) for k, v in version.items()),
                                 models.FieldCondition(key=RESUME_PAGE_KEY, range=models.Range(gte=1))])
    best = ResumePoint()
    offset = None
    while True:
        points, offset = client.scroll(collection, scroll_filter=marked, limit=256, offset=offset,
                                       with_payload=[RESUME_PAGE_KEY, RESUME_HEADINGS_KEY], with_vectors=False)
        for point in points:
            page = int(point.payload[RESUME_PAGE_KEY])
            if page > best.after_page:
                headings = tuple((int(level), str(title)) for level, title in point.payload.get(RESUME_HEADINGS_KEY, []))
                best = ResumePoint(page, headings, str(point.id))
        if offset is None:
            return best


def delete_pages_after(client: QdrantClient, collection: str, version: dict, page: int) -> None:
    """Delete the points of ``version`` whose chunk starts after ``page``: a batch cut short by a kill."""
    if not client.collection_exists(collection):
        return
    client.delete(collection, points_selector=models.FilterSelector(filter=models.Filter(
        must=[*(_match(k, v) for k, v in version.items()),
              models.FieldCondition(key="page", range=models.Range(gt=page))])), wait=True)


def count_points(client: QdrantClient, collection: str) -> int:
    if not client.collection_exists(collection):
        return 0
    return client.count(collection, exact=True).count


__all__ = ["COMPLETE_KEY", "DEFAULT_COLLECTION", "DEFAULT_PATH", "UPSERT_BATCH", "count_points",
           "delete_pages_after", "delete_stale_points", "ensure_payload_indexes", "has_points", "make_client",
           "make_vector_store", "mark_complete", "mark_progress", "ResumePoint", "resume_point"]
