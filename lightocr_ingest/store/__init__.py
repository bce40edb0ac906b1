"""Stage 6 - store: chunks with vectors -> Qdrant points, idempotently.

Point ids are the chunk node ids (deterministic), so re-ingesting the same file overwrites
its points. When a file's content or the pipeline's settings change, the points of its old
version (same path, other ``file_sha256`` or ``pipeline_fingerprint``) are deleted before the
new ones go in. The embedded default is a folder of Qdrant Edge shards (``store.edge``, one
shard a collection, searched through ``EdgeVectorStore``); a Qdrant server is used when ``url``
is given (LlamaIndex's ``QdrantVectorStore``). Both are spoken to with qdrant-client's API.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from qdrant_client import QdrantClient, models

from ..metadata import DOCUMENT_KEYS, FILE_PATH_KEY, FILE_SHA256_KEY, FINGERPRINT_KEY, ChunkMetadata, PageMetadata
from ..notices import warn_once
from .edge import EdgeClient
from .folder_lock import FolderInUse
from .migrate import migrate_local_mode
from .schema import (COMPLETE_KEY, DEFAULT_COLLECTION, DEFAULT_PATH, DENSE_VECTOR, INDEXED_FIELDS, MODES,
                     SPARSE_VECTOR, STORED_AT_KEY, UPSERT_BATCH)

log = logging.getLogger("lightocr_ingest")
Client = QdrantClient | EdgeClient  # the two speak qdrant-client's API (EdgeClient: the part this project uses)


def make_client(path: str | None = None, url: str | None = None, api_key: str | None = None):
    """A Qdrant server client when ``url`` is set, else the embedded store on ``path``
    (``EdgeClient``), after moving in the collections a qdrant-client local-mode folder there
    holds (once, said on stderr)."""
    if url:
        return QdrantClient(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"), timeout=60)
    path = os.path.expanduser(path or DEFAULT_PATH)
    os.makedirs(path, exist_ok=True)
    migrate_local_mode(path)
    return EdgeClient(path)


def open_client(qdrant):
    """The client a config's ``qdrant`` section describes (``path``, ``url``, ``api_key``): the one
    way every runner, the retriever and the service open their store."""
    return make_client(qdrant.path, qdrant.url, qdrant.api_key.get_secret_value() if qdrant.api_key else None)


def is_embedded(client) -> bool:
    """The embedded store (Qdrant Edge in this process), not a server."""
    return isinstance(client, EdgeClient)




def make_vector_store(client, collection: str = DEFAULT_COLLECTION, mode: str = "dense"):
    """The LlamaIndex vector store of ``collection``, made with the right size on first add:
    ``EdgeVectorStore`` on the embedded store, LlamaIndex's ``QdrantVectorStore`` on a server.

    ``hybrid`` stores a BM25 sparse vector (``embedding.bm25``) beside the dense one, in a
    collection with named vectors whose sparse vector has Qdrant's IDF modifier.
    """
    hybrid = mode == "hybrid"
    if is_embedded(client):
        from .edge_vector_store import EdgeVectorStore

        return EdgeVectorStore(client, collection, hybrid=hybrid, batch_size=UPSERT_BATCH,
                               dense_vector_name=DENSE_VECTOR if hybrid else "", sparse_vector_name=SPARSE_VECTOR,
                               indexed_fields={k: v.value for k, v in INDEXED_FIELDS.items()})
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    options = {}
    if hybrid:
        from ..embedding.bm25 import encode_documents, encode_queries

        options = dict(enable_hybrid=True, sparse_doc_fn=encode_documents, sparse_query_fn=encode_queries,
                       sparse_config=models.SparseVectorParams(index=models.SparseIndexParams(),
                                                               modifier=models.Modifier.IDF),
                       dense_vector_name=DENSE_VECTOR, sparse_vector_name=SPARSE_VECTOR)
    return QdrantVectorStore(collection_name=collection, client=client, batch_size=UPSERT_BATCH,
                             payload_indexes=[{"field_name": k, "field_schema": v} for k, v in INDEXED_FIELDS.items()],
                             **options)


def require_mode(mode: str) -> None:
    """A retrieval mode this package knows, or ``ConfigError`` naming the ones it does."""
    from ..errors import ConfigError

    if mode not in MODES:
        raise ConfigError(f"retrieval mode {mode!r} is not one of {', '.join(MODES)}")


def collection_mode(client: Client, collection: str) -> str | None:
    """``hybrid`` when the collection has the BM25 sparse vector, ``dense`` when it has not, None
    when there is no such collection yet."""
    if not client.collection_exists(collection):
        return None
    sparse = client.get_collection(collection).config.params.sparse_vectors or {}
    return "hybrid" if SPARSE_VECTOR in sparse else "dense"


def check_mode(client: Client, collection: str, mode: str) -> None:
    """Before writing: stop with the fix when ``mode`` is unknown or does not fit the collection.
    Hybrid points cannot go into a dense collection (it has no BM25 vector to hold them), and
    dense points in a hybrid collection would be missing from its keyword half."""
    from ..errors import ConfigError

    require_mode(mode)
    found = collection_mode(client, collection)
    if found is None or found == mode:
        return
    if found == "dense":
        raise ConfigError(
            f"collection '{collection}' was made for dense search: it holds no BM25 vectors, and hybrid points "
            f"cannot be added to it. Ingest into a new collection (--collection NEW; the OCR cache answers every page "
            f"read before, so only chunking and embedding run again), or set retrieval.mode: dense in the config")
    raise ConfigError(f"collection '{collection}' is a hybrid collection (dense + BM25): dense-only points would be "
                      f"missing from its keyword search. Set retrieval.mode: hybrid in the config to add to it, or "
                      f"ingest into a new collection (--collection NEW)")


def search_mode(client: Client, collection: str, mode: str) -> str:
    """The mode to search ``collection`` in when ``mode`` is asked: ``mode`` itself, except hybrid
    on a collection ingested dense (no BM25 vectors), which is searched dense, said once."""
    require_mode(mode)
    if mode == "hybrid" and collection_mode(client, collection) == "dense":
        warn_once(f"collection '{collection}' holds no BM25 vectors (it was ingested dense): searching it dense. "
                  f"For hybrid search, ingest into a new collection (--collection NEW) with retrieval.mode: hybrid")
        return "dense"
    return mode


def finish_writes(client, collection: str) -> None:
    """After a run has stored its points: the payload indexes on a server collection (made
    before LlamaIndex made them on first add); on the embedded store, the shard's segments merged
    and indexed (HNSW and payload indexes: Edge runs no optimiser of its own)."""
    if not client.collection_exists(collection):
        return
    if is_embedded(client):
        client.optimize(collection)
        return
    for name, schema in INDEXED_FIELDS.items():
        client.create_payload_index(collection, name, schema)


def _match(key: str, value) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def mark_complete(client: Client, collection: str, point_id: str) -> None:
    from .documents import now_iso

    client.set_payload(collection, payload={COMPLETE_KEY: True, STORED_AT_KEY: now_iso()}, points=[point_id], wait=True)


@dataclass
class StoredVersion:
    """What a collection holds of one version of a file (its content hash under the run's settings)."""

    points: dict[str, set[int]] = field(default_factory=dict)  # point id -> the pages its chunk covers
    complete: bool = False  # its last chunk was stored: a run can skip the file


def stored_versions(client: Client, collection: str, sha256s: list[str],
                    fingerprint: str) -> dict[str, StoredVersion]:
    """Content hash -> what is stored of that version, for many files in one query.

    One scroll (paged) per run step instead of two queries per file: a run over many small files
    would otherwise spend more time asking Qdrant than reading them.
    """
    if not sha256s or not client.collection_exists(collection):
        return {}
    found: dict[str, StoredVersion] = {}
    selected = models.Filter(must=[
        models.FieldCondition(key=FILE_SHA256_KEY, match=models.MatchAny(any=sorted(set(sha256s)))),
        _match(FINGERPRINT_KEY, fingerprint)])
    offset = None
    while True:
        points, offset = client.scroll(collection, scroll_filter=selected, limit=1024, offset=offset,
                                       with_payload=[*DOCUMENT_KEYS, COMPLETE_KEY],
                                       with_vectors=False)
        for point in points:
            payload = point.payload or {}
            version = found.setdefault(PageMetadata.from_metadata(payload).file_sha256, StoredVersion())
            version.points[str(point.id)] = set(ChunkMetadata.from_metadata(payload).pages)
            version.complete |= payload.get(COMPLETE_KEY) is True
        if offset is None:
            return found


def files_with_stale_points(client: Client, collection: str, versions: dict[str, dict]) -> set[str]:
    """The paths among ``versions`` (path -> the payload values that name the version being
    written: content hash and settings fingerprint) that have points of another version.

    One query for many files, so that the delete by filter (``delete_stale_points``) runs only
    for files that changed (run per file on qdrant-client's local mode, which scanned every
    point, it cost 2 core-ms a page over 233 single-page files).
    """
    if not versions or not client.collection_exists(collection):
        return set()
    stale: set[str] = set()
    offset = None
    while True:
        points, offset = client.scroll(
            collection, scroll_filter=models.Filter(must=[models.FieldCondition(
                key=FILE_PATH_KEY, match=models.MatchAny(any=sorted(versions)))]),
            limit=1024, offset=offset, with_payload=[FILE_PATH_KEY, *{k for v in versions.values() for k in v}],
            with_vectors=False)
        for point in points:
            payload = point.payload or {}
            path = PageMetadata.from_metadata(payload).file_path
            current = versions.get(path)
            if current is not None and any(payload.get(key) != value for key, value in current.items()):
                stale.add(path)
        if offset is None:
            return stale


def delete_stale_points(client: Client, collection: str, file_path: str, current: dict) -> None:
    """Delete the points of ``file_path`` that do not match all ``current`` payload values.

    ``current`` names the version being written (content hash and settings fingerprint), so
    both a changed file and an unchanged file re-chunked with new settings lose their old points.
    """
    if not client.collection_exists(collection):
        return
    client.delete(collection, points_selector=models.FilterSelector(filter=models.Filter(
        must=[_match(FILE_PATH_KEY, file_path)],
        must_not=[models.Filter(must=[_match(k, v) for k, v in current.items()])])), wait=True)


def delete_ids(client: Client, collection: str, ids: set[str]) -> None:
    if ids and client.collection_exists(collection):
        client.delete(collection, points_selector=models.PointIdsList(points=sorted(ids)), wait=True)


def count_points(client: Client, collection: str) -> int:
    if not client.collection_exists(collection):
        return 0
    return client.count(collection, exact=True).count


__all__ = ["COMPLETE_KEY", "DEFAULT_COLLECTION", "DEFAULT_PATH", "DENSE_VECTOR", "MODES", "SPARSE_VECTOR",
           "UPSERT_BATCH", "EdgeClient", "FolderInUse", "check_mode", "collection_mode", "search_mode", "count_points",
           "delete_ids", "require_mode", "delete_stale_points", "finish_writes", "files_with_stale_points", "is_embedded",
           "make_client", "make_vector_store", "mark_complete", "StoredVersion", "stored_versions"]
