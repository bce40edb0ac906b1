"""Stage 6 - store: chunks with vectors -> Qdrant points, idempotently.

Point ids are the chunk node ids (deterministic), so re-ingesting the same file overwrites
its points. When a file's content or the pipeline's settings change, the points of its old
version (same path, other ``file_sha256`` or ``pipeline_fingerprint``) are deleted before the
new ones go in. Qdrant's local mode on a directory is
the embedded default; a server is used when ``url`` is given.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field

from qdrant_client import QdrantClient, models

from ..notices import warn_once

log = logging.getLogger("lightocr_ingest")

DEFAULT_PATH = ".lightocr/qdrant"
DEFAULT_COLLECTION = "lightocr"
UPSERT_BATCH = 128  # points per request: Qdrant's sweet spot is 64-256 for 384-dim vectors
INDEXED_FIELDS = {"file_name": models.PayloadSchemaType.KEYWORD, "file_path": models.PayloadSchemaType.KEYWORD,
                  "file_sha256": models.PayloadSchemaType.KEYWORD,
                  "pipeline_fingerprint": models.PayloadSchemaType.KEYWORD,
                  "page": models.PayloadSchemaType.INTEGER}  # filters users and re-ingestion run
# Local mode keeps each collection's points in a SQLite file and commits every point on its own
# (qdrant-client's CollectionPersistence). In SQLite's default rollback-journal mode each commit
# writes, syncs and deletes a journal file: 0.49 core-ms and 1.2 ms of wall time a point on the
# benchmark machine. Write-ahead logging with synchronous=NORMAL (SQLite's recommended pairing for
# it) takes 0.12 core-ms and 0.14 ms. A power cut can then lose the last commits but never corrupts
# the file, and a file whose last point was lost is read again by the next run (resume).
LOCAL_SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL")
_tuned_storages: weakref.WeakSet = weakref.WeakSet()  # the local collections' SQLite files set up so far


def make_client(path: str | None = None, url: str | None = None, api_key: str | None = None) -> QdrantClient:
    """A Qdrant server client when ``url`` is set, else local mode on ``path``."""
    if url:
        return QdrantClient(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"), timeout=60)
    path = os.path.expanduser(path or DEFAULT_PATH)
    os.makedirs(path, exist_ok=True)
    try:
        client = QdrantClient(path=path)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise RuntimeError(f"the local Qdrant folder {path} is open in another process (local mode allows "
                               f"one at a time); close it, or run a Qdrant server and use --qdrant-url") from None
        raise
    tune_local_storage(client)
    return client


def open_client(qdrant) -> QdrantClient:
    """The client a config's ``qdrant`` section describes (``path``, ``url``, ``api_key``): the one
    way every runner, the retriever and the service open their store."""
    return make_client(qdrant.path, qdrant.url, qdrant.api_key.get_secret_value() if qdrant.api_key else None)


def tune_local_storage(client: QdrantClient) -> int:
    """Put the SQLite file of each local collection not seen before into ``LOCAL_SQLITE_PRAGMAS``;
    returns how many were set now. The vector store of ``make_vector_store`` calls it after each
    add (a set look-up when there is nothing new), so a collection its first add created is set
    up from its second. A server client, an in-memory one, or a qdrant-client whose local mode is
    laid out otherwise is left as it is: this is speed, never correctness."""
    if not is_local(client):
        return 0
    with getattr(client, "_lock", None) or contextlib.nullcontext():  # SerialisedClient's: one call at a time
        tuned = 0
        for name, collection in list(getattr(client._client, "collections", {}).items()):
            storage = getattr(collection, "storage", None)  # None in memory
            connection = getattr(storage, "storage", None)
            if connection is None or storage in _tuned_storages:
                continue
            try:
                # SQLite answers with the mode it is in, without an error, when it cannot switch (a
                # transaction open): NORMAL is only safe from corruption in WAL, so it waits for that.
                mode = connection.execute(f"PRAGMA {LOCAL_SQLITE_PRAGMAS[0]}").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.debug("local Qdrant collection %s: still in %s journal mode; tried again later", name, mode)
                    continue
                for pragma in LOCAL_SQLITE_PRAGMAS[1:]:
                    connection.execute(f"PRAGMA {pragma}")
            except Exception as exc:  # sqlite3.Error: try again next time
                log.debug("local Qdrant collection %s: SQLite settings not applied (%s)", name, exc)
                continue
            _tuned_storages.add(storage)
            tuned += 1
    return tuned


class SerialisedClient:
    """A Qdrant client whose calls run one at a time. Local mode's in-process store is not safe
    from two threads at once (a query during an upsert can fail with an IndexError), and a
    local folder allows one client, so a process that searches while it ingests (the service)
    shares one client through this. A server client needs none of it."""

    def __init__(self, client: QdrantClient):
        self._inner = client
        self._lock = threading.RLock()

    @property
    def _client(self):  # what ``is_local`` and LlamaIndex look at
        return self._inner._client

    def __getattr__(self, name: str):
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def serialised(*args, **kwargs):
            with self._lock:
                return attribute(*args, **kwargs)

        return serialised


def is_local(client: QdrantClient) -> bool:
    """Local mode has no payload indexes (it scans); only a server gets them."""
    return type(getattr(client, "_client", None)).__name__ == "QdrantLocal"


MODES = ("dense", "hybrid")
DENSE_VECTOR = "text-dense"  # LlamaIndex's names for a hybrid collection's two vectors, so that its own
SPARSE_VECTOR = "text-sparse-new"  # QdrantVectorStore(enable_hybrid=True) reads our collections as they are


def make_vector_store(client: QdrantClient, collection: str = DEFAULT_COLLECTION, mode: str = "dense"):
    """LlamaIndex's ``QdrantVectorStore``; the collection is created with the right size on first add.

    ``hybrid`` stores a BM25 sparse vector (``embedding.bm25``) beside the dense one, in a
    collection with named vectors whose sparse vector has Qdrant's IDF modifier.
    """
    indexes = None if is_local(client) else [{"field_name": k, "field_schema": v} for k, v in INDEXED_FIELDS.items()]
    options = {}
    if mode == "hybrid":
        from ..embedding.bm25 import encode_documents, encode_queries

        options = dict(enable_hybrid=True, sparse_doc_fn=encode_documents, sparse_query_fn=encode_queries,
                       sparse_config=models.SparseVectorParams(index=models.SparseIndexParams(),
                                                               modifier=models.Modifier.IDF),
                       dense_vector_name=DENSE_VECTOR, sparse_vector_name=SPARSE_VECTOR)
    return _tuned_store_class()(collection_name=collection, client=client, batch_size=UPSERT_BATCH,
                                payload_indexes=indexes, index_doc_id=not is_local(client), **options)


@functools.cache
def _tuned_store_class():
    """``QdrantVectorStore`` that sets up a local collection's SQLite file after adding to it
    (``tune_local_storage``): the collection may have been made by that very add, and every
    path that stores (``ingest``, the service, the Ray driver, ``build_pipeline``) adds through it."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    class TunedQdrantVectorStore(QdrantVectorStore):
        def add(self, nodes, **kwargs):
            ids = super().add(nodes, **kwargs)
            tune_local_storage(self.client)
            return ids

        async def async_add(self, nodes, **kwargs):
            ids = await super().async_add(nodes, **kwargs)
            tune_local_storage(self.client)
            return ids

    return TunedQdrantVectorStore


def require_mode(mode: str) -> None:
    """A retrieval mode this package knows, or ``ConfigError`` naming the ones it does."""
    from ..errors import ConfigError

    if mode not in MODES:
        raise ConfigError(f"retrieval mode {mode!r} is not one of {', '.join(MODES)}")


def collection_mode(client: QdrantClient, collection: str) -> str | None:
    """``hybrid`` when the collection has the BM25 sparse vector, ``dense`` when it has not, None
    when there is no such collection yet."""
    if not client.collection_exists(collection):
        return None
    sparse = client.get_collection(collection).config.params.sparse_vectors or {}
    return "hybrid" if SPARSE_VECTOR in sparse else "dense"


def check_mode(client: QdrantClient, collection: str, mode: str) -> None:
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


def search_mode(client: QdrantClient, collection: str, mode: str) -> str:
    """The mode to search ``collection`` in when ``mode`` is asked: ``mode`` itself, except hybrid
    on a collection ingested dense (no BM25 vectors), which is searched dense, said once."""
    require_mode(mode)
    if mode == "hybrid" and collection_mode(client, collection) == "dense":
        warn_once(f"collection '{collection}' holds no BM25 vectors (it was ingested dense): searching it dense. "
                  f"For hybrid search, ingest into a new collection (--collection NEW) with retrieval.mode: hybrid")
        return "dense"
    return mode


def ensure_payload_indexes(client: QdrantClient, collection: str) -> None:
    if is_local(client) or not client.collection_exists(collection):
        return
    for name, schema in INDEXED_FIELDS.items():
        client.create_payload_index(collection, name, schema)


def _match(key: str, value) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


# A file is complete when all its chunks are stored: its last point then gets ``file_complete``,
# and a later run skips the file before reading it. A run killed before that re-reads the file
# (the OCR cache answers its pages), finds the chunks already stored by id, and embeds only
# the rest, since the same file and settings always give the same chunk ids.
COMPLETE_KEY = "file_complete"


def mark_complete(client: QdrantClient, collection: str, point_id: str) -> None:
    client.set_payload(collection, payload={COMPLETE_KEY: True}, points=[point_id], wait=True)


@dataclass
class StoredVersion:
    """What a collection holds of one version of a file (its content hash under the run's settings)."""

    points: dict[str, set[int]] = field(default_factory=dict)  # point id -> the pages its chunk covers
    complete: bool = False  # its last chunk was stored: a run can skip the file


def stored_versions(client: QdrantClient, collection: str, sha256s: list[str],
                    fingerprint: str) -> dict[str, StoredVersion]:
    """Content hash -> what is stored of that version, for many files in one query.

    One scroll (paged) per run step instead of two queries per file: a run over many small files
    would otherwise spend more time asking Qdrant than reading them.
    """
    if not sha256s or not client.collection_exists(collection):
        return {}
    found: dict[str, StoredVersion] = {}
    selected = models.Filter(must=[
        models.FieldCondition(key="file_sha256", match=models.MatchAny(any=sorted(set(sha256s)))),
        _match("pipeline_fingerprint", fingerprint)])
    offset = None
    while True:
        points, offset = client.scroll(collection, scroll_filter=selected, limit=1024, offset=offset,
                                       with_payload=["file_sha256", "pages", "page", COMPLETE_KEY],
                                       with_vectors=False)
        for point in points:
            payload = point.payload or {}
            version = found.setdefault(payload.get("file_sha256"), StoredVersion())
            version.points[str(point.id)] = set(payload.get("pages") or [payload.get("page")])
            version.complete |= payload.get(COMPLETE_KEY) is True
        if offset is None:
            return found


def files_with_stale_points(client: QdrantClient, collection: str, versions: dict[str, dict]) -> set[str]:
    """The paths among ``versions`` (path -> the payload values that name the version being
    written: content hash and settings fingerprint) that have points of another version.

    One query for many files, so that the delete by filter (``delete_stale_points``), which
    scans every point of a local collection, runs only for files that changed: run per file,
    it cost 2 core-ms a page over 233 single-page files.
    """
    if not versions or not client.collection_exists(collection):
        return set()
    stale: set[str] = set()
    offset = None
    while True:
        points, offset = client.scroll(
            collection, scroll_filter=models.Filter(must=[models.FieldCondition(
                key="file_path", match=models.MatchAny(any=sorted(versions)))]),
            limit=1024, offset=offset, with_payload=["file_path", *{k for v in versions.values() for k in v}],
            with_vectors=False)
        for point in points:
            payload = point.payload or {}
            current = versions.get(payload.get("file_path"))
            if current is not None and any(payload.get(key) != value for key, value in current.items()):
                stale.add(payload["file_path"])
        if offset is None:
            return stale


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


def delete_ids(client: QdrantClient, collection: str, ids: set[str]) -> None:
    if ids and client.collection_exists(collection):
        client.delete(collection, points_selector=models.PointIdsList(points=sorted(ids)), wait=True)


def count_points(client: QdrantClient, collection: str) -> int:
    if not client.collection_exists(collection):
        return 0
    return client.count(collection, exact=True).count


__all__ = ["COMPLETE_KEY", "DEFAULT_COLLECTION", "DEFAULT_PATH", "DENSE_VECTOR", "MODES", "SPARSE_VECTOR",
           "UPSERT_BATCH", "check_mode", "collection_mode", "search_mode", "count_points", "delete_ids", "require_mode",
           "delete_stale_points", "ensure_payload_indexes", "files_with_stale_points", "make_client", "make_vector_store",
           "mark_complete", "StoredVersion", "stored_versions", "tune_local_storage"]
