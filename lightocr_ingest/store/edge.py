"""The embedded store: one Qdrant Edge shard a collection, in one folder.

Qdrant Edge (``qdrant-edge-py``) is Qdrant's engine in the process (segments on disk, HNSW,
payload indexes, BM25 with IDF, fusion); it replaced qdrant-client's local mode. ``EdgeClient`` answers the part of ``QdrantClient``'s API this project calls (collections,
upsert, scroll, retrieve, delete, payload, count, query with prefetch and fusion), taking and
returning qdrant-client's models, so the store helpers, the retriever and the tests speak one
API to a server and to the embedded store. Edge is in beta: every call into its API is in this
module (``tests/test_edge_store.py`` covers each one), so an upgrade fails here and nowhere else.

A folder (``qdrant.path``) holds ``edge/<collection>/`` (the shard), ``edge/<collection>.json``
(its vectors as qdrant-client describes them) and ``.lock`` (docs/storage.md).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable

import qdrant_edge as qe
from qdrant_client import models
from qdrant_client.http import models as rest  # QueryResponse: qdrant_client.models has another of that name

from .edge_layout import check_name, layout_of, layout_params
from .folder_lock import hold_folder, release_folder

SHARDS = "edge"  # the shards' folder inside qdrant.path (local mode's files sit beside it, untouched)
# A million 384-d float vectors are 1.5 GB: the originals stay on disk and HNSW searches int8
# copies (a quarter of the size), rescoring the best candidates with the originals, as Qdrant
# recommends. The copies are mapped from disk (Cold), not read into memory on opening (Pinned):
# at 200,000 chunks that opened in 0.67 s, not 3.3 s, and answered no slower (benchmarks/README).
QUANTIZATION = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Cold)
ORIGINALS = qe.Memory.Cold
HNSW = qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000, memory=qe.Memory.Cold)
# Edge optimises only when asked: every OPTIMIZE_EVERY points written, and at the end of a run,
# new points become indexed segments of at most SEGMENT_KB of vectors (~2 kB a chunk). A question
# rescores twice its limit in every segment from disk: at 1M chunks, 300/450/700 MB segments left
# a reader 1,517/1,256/1,121 MiB resident, dense 6.3/5.0/15 ms cold; the writer 2.8/4.0/6.5 GB.
# The log is flushed with each optimisation: reopening replays at most OPTIMIZE_EVERY points.
OPTIMIZE_EVERY = 50_000
SEGMENT_KB = 450_000
OPTIMIZERS = qe.EdgeOptimizersConfig(max_segment_size=SEGMENT_KB)
# Searching: int8 distances pick OVERSAMPLING times the candidates asked for, the originals
# rescore them, and HNSW looks at HNSW_EF candidates a segment: on clustered 384-d vectors, ef 128
# found 0.975 of the exact top 10 at 10,240 points, ef 256 0.991, in the same 1.5 ms a query.
HNSW_EF = 256
OVERSAMPLING = 2.0
QDRANT_RRF_K = 2  # Qdrant's (server and qdrant-client) constant when a fusion query names none
# Payload indexes on disk, no HNSW links per value: for re-ingestion's look-ups and users' filters.
_SCHEMAS = {models.PayloadSchemaType.KEYWORD: qe.KeywordIndexParams(enable_hnsw=False, memory=qe.Memory.Cold),
            models.PayloadSchemaType.INTEGER: qe.IntegerIndexParams(lookup=True, range=True, enable_hnsw=False,
                                                                    memory=qe.Memory.Cold),
            models.PayloadSchemaType.FLOAT: qe.PayloadSchemaType.Float,
            models.PayloadSchemaType.BOOL: qe.PayloadSchemaType.Bool}


class EdgeClient:
    """The embedded store on ``path``: ``QdrantClient``'s calls this project uses, on Edge shards.

    Safe from several threads at once (the engine locks inside; opening and creating shards is
    serialised here). One process at a time may open a folder: a second gets ``FolderInUse``
    naming the process that holds it.
    """

    def __init__(self, path: str | os.PathLike, hold: bool = True):
        self.path = Path(path)
        (self.path / SHARDS).mkdir(parents=True, exist_ok=True)
        # hold=False: for code that holds the folder already (moving local mode's points in)
        self._lock_file = hold_folder(self.path) if hold else None
        self._shards: dict[str, qe.EdgeShard] = {}
        self._unoptimised: dict[str, int] = {}  # points written since the shard's last optimisation
        self._opening = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ collections

    def _shard_dir(self, name: str) -> Path:
        check_name(name)
        return self.path / SHARDS / name

    def _layout_file(self, name: str) -> Path:
        return self.path / SHARDS / f"{name}.json"

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._opening:
            if self._closed:
                raise RuntimeError(f"the embedded store at {self.path} was closed")
            if name not in self._shards:
                if not self.collection_exists(name):
                    raise ValueError(f"Collection {name} not found")
                self._shards[name] = qe.EdgeShard.load(str(self._shard_dir(name)))
            return self._shards[name]

    def collection_exists(self, collection_name: str) -> bool:
        return self._layout_file(collection_name).is_file() and self._shard_dir(collection_name).is_dir()

    def get_collections(self) -> SimpleNamespace:
        names = sorted(p.stem for p in (self.path / SHARDS).glob("*.json") if self.collection_exists(p.stem))
        return SimpleNamespace(collections=[SimpleNamespace(name=n) for n in names])

    def get_collection(self, collection_name: str) -> SimpleNamespace:
        """What qdrant-client's ``get_collection`` tells of it: vector params and point count."""
        if not self.collection_exists(collection_name):
            raise ValueError(f"Collection {collection_name} not found")
        dense, sparse = layout_params(json.loads(self._layout_file(collection_name).read_text()))
        info = self._shard(collection_name).info()
        return SimpleNamespace(points_count=info.points_count, segments_count=info.segments_count,
                               indexed_vectors_count=info.indexed_vectors_count,
                               config=SimpleNamespace(params=SimpleNamespace(vectors=dense, sparse_vectors=sparse)))

    def create_collection(self, collection_name: str, vectors_config: Any,
                          sparse_vectors_config: dict | None = None, **_: Any) -> bool:
        """A shard for ``vectors_config`` (one ``VectorParams``, or a dict of named ones) and
        ``sparse_vectors_config`` (name -> ``SparseVectorParams``; IDF kept)."""
        with self._opening:
            if self.collection_exists(collection_name):
                raise ValueError(f"Collection {collection_name} already exists")
            named = vectors_config if isinstance(vectors_config, dict) else {"": vectors_config}
            layout = layout_of(named, sparse_vectors_config or {})
            config = qe.EdgeConfig(
                vectors={name: qe.EdgeVectorParams(size=p.size, distance=_DISTANCES[models.Distance(p.distance).value],
                                                   memory=ORIGINALS, quantization_config=QUANTIZATION,
                                                   hnsw_config=HNSW) for name, p in named.items()},
                sparse_vectors={name: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if p["idf"] else None,
                                                                memory=qe.Memory.Cold)
                                for name, p in layout["sparse_vectors"].items()} or None,
                payload_memory=qe.Memory.Cold, id_tracker_memory=qe.Memory.Cold, optimizers=OPTIMIZERS)
            directory = self._shard_dir(collection_name)
            if directory.exists():  # a shard whose description was never written: an interrupted create
                shutil.rmtree(directory)
            self._shards[collection_name] = qe.EdgeShard.create(str(directory), config)
            temporary = self._layout_file(collection_name).with_suffix(".json.tmp")
            temporary.write_text(json.dumps(layout, indent=1))
            os.replace(temporary, self._layout_file(collection_name))  # the collection exists from here
            return True

    def delete_collection(self, collection_name: str, **_: Any) -> bool:
        with self._opening:
            if not self.collection_exists(collection_name):
                return False
            shard = self._shards.pop(collection_name, None)
            if shard is not None:
                shard.close()
            self._layout_file(collection_name).unlink()
            shutil.rmtree(self._shard_dir(collection_name))
            return True

    def rename_collection(self, old: str, new: str) -> None:
        """Give collection ``old`` the name ``new`` (which must be free): its description file
        moves last, so an interrupted rename leaves ``old`` as it was."""
        with self._opening:
            if self.collection_exists(new):
                raise ValueError(f"Collection {new} already exists")
            shard = self._shards.pop(old, None)
            if shard is not None:
                shard.close()
            os.rename(self._shard_dir(old), self._shard_dir(new))
            os.rename(self._layout_file(old), self._layout_file(new))

    def create_payload_index(self, collection_name: str, field_name: str, field_schema: Any = None, **_: Any):
        schema = _SCHEMAS.get(models.PayloadSchemaType(field_schema), _SCHEMAS[models.PayloadSchemaType.KEYWORD])
        self._shard(collection_name).update(qe.UpdateOperation.create_field_index(field_name, schema))

    def payload_indexes(self, collection_name: str) -> set[str]:
        return set(self._shard(collection_name).info().payload_schema)

    # ------------------------------------------------------------------ points

    def upsert(self, collection_name: str, points: list[models.PointStruct], wait: bool = True, **_: Any):
        """Insert or replace ``points``; durable when this returns (written to the shard's WAL)."""
        self._shard(collection_name).update(qe.UpdateOperation.upsert_points(
            [qe.Point(_point_id(p.id), _to_vector(p.vector), p.payload or {}) for p in points]))
        with self._opening:
            self._unoptimised[collection_name] = self._unoptimised.get(collection_name, 0) + len(points)
            due = self._unoptimised[collection_name] >= OPTIMIZE_EVERY
        if due:
            self.optimize(collection_name)
        return SimpleNamespace(status=models.UpdateStatus.COMPLETED)

    def scroll(self, collection_name: str, scroll_filter: models.Filter | None = None, limit: int = 10,
               offset: Any = None, with_payload: Any = True, with_vectors: Any = False, **_: Any):
        records, next_offset = self._shard(collection_name).scroll(qe.ScrollRequest(
            offset=_point_id(offset) if offset is not None else None, limit=limit, filter=_filter(scroll_filter),
            with_payload=_with_payload(with_payload), with_vector=_with_vectors(with_vectors)))
        return [_record(r) for r in records], (str(next_offset) if next_offset is not None else None)

    def retrieve(self, collection_name: str, ids: Iterable, with_payload: Any = True, with_vectors: Any = False,
                 **_: Any) -> list[models.Record]:
        found = self._shard(collection_name).retrieve([_point_id(i) for i in ids], _with_payload(with_payload),
                                                      _with_vectors(with_vectors))
        return [_record(r) for r in found]

    def delete(self, collection_name: str, points_selector: Any, wait: bool = True, **_: Any):
        shard = self._shard(collection_name)
        if isinstance(points_selector, models.FilterSelector):
            shard.update(qe.UpdateOperation.delete_points_by_filter(_filter(points_selector.filter)))
        elif isinstance(points_selector, models.Filter):
            shard.update(qe.UpdateOperation.delete_points_by_filter(_filter(points_selector)))
        else:
            ids = points_selector.points if isinstance(points_selector, models.PointIdsList) else points_selector
            shard.update(qe.UpdateOperation.delete_points([_point_id(i) for i in ids]))
        return SimpleNamespace(status=models.UpdateStatus.COMPLETED)

    def set_payload(self, collection_name: str, payload: dict, points: Any = None, wait: bool = True, **_: Any):
        shard = self._shard(collection_name)
        if isinstance(points, (models.Filter, models.FilterSelector)):
            where = points.filter if isinstance(points, models.FilterSelector) else points
            shard.update(qe.UpdateOperation.set_payload_by_filter(_filter(where), payload))
        else:
            shard.update(qe.UpdateOperation.set_payload([_point_id(i) for i in points], payload))

    def delete_payload(self, collection_name: str, keys: list[str], points: Any, wait: bool = True, **_: Any):
        self._shard(collection_name).update(qe.UpdateOperation.delete_payload([_point_id(i) for i in points], keys))

    def count(self, collection_name: str, count_filter: models.Filter | None = None, exact: bool = True,
              **_: Any) -> models.CountResult:
        return models.CountResult(count=self._shard(collection_name).count(
            qe.CountRequest(exact=exact, filter=_filter(count_filter))))

    def query_points(self, collection_name: str, query: Any = None, using: str | None = None,
                     prefetch: Any = None, query_filter: models.Filter | None = None, limit: int = 10,
                     with_payload: Any = True, with_vectors: Any = False, search_params: Any = None,
                     score_threshold: float | None = None, **kwargs: Any) -> rest.QueryResponse:
        """Nearest points to ``query`` (dense list or ``SparseVector``, in vector ``using``), or
        ``prefetch`` stages fused by ``FusionQuery``/``RrfQuery``: the fusion runs in the engine."""
        prefetches = prefetch if isinstance(prefetch, list) else [prefetch] if prefetch is not None else None
        request = qe.QueryRequest(
            limit=limit, query=_scoring(query, using), filter=_filter(query_filter or kwargs.get("filter")),
            prefetches=[_prefetch(p) for p in prefetches] if prefetches else None,
            with_payload=_with_payload(with_payload), with_vector=_with_vectors(with_vectors),
            score_threshold=score_threshold, params=_params(search_params))
        hits = self._shard(collection_name).query(request)
        return rest.QueryResponse(points=[models.ScoredPoint(
            id=_out_id(h.id), version=h.version, score=h.score, payload=h.payload,
            vector=_from_vector(h.vector)) for h in hits])

    # ------------------------------------------------------------------ upkeep

    def optimize(self, collection_name: str) -> bool:
        """Merge the shard's small segments and build their HNSW and payload indexes (blocking).
        Edge runs no optimiser on its own: an ingest calls this when it has stored its points."""
        with self._opening:
            self._unoptimised[collection_name] = 0
        shard = self._shard(collection_name)
        changed = shard.optimize()
        shard.flush()  # segments on disk: the log before this point is not replayed on opening
        return changed

    def close(self, **_: Any) -> None:
        with self._opening:
            if self._closed:
                return
            self._closed = True
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            if self._lock_file is not None:
                release_folder(self._lock_file)

    def __enter__(self) -> "EdgeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- model conversions

_DISTANCES = {"Cosine": qe.Distance.Cosine, "Dot": qe.Distance.Dot, "Euclid": qe.Distance.Euclid,
              "Manhattan": qe.Distance.Manhattan}


def _point_id(value: Any):
    """Qdrant ids are unsigned integers or UUIDs; a UUID as text goes in as a UUID."""
    if isinstance(value, (int, uuid.UUID)):
        return value
    return uuid.UUID(str(value))


def _out_id(value: Any):
    return str(value) if isinstance(value, uuid.UUID) else value  # qdrant-client gives UUIDs as text


def _to_vector(vector: Any):
    if isinstance(vector, dict):
        return {name: qe.SparseVector(list(v.indices), list(v.values)) if isinstance(v, models.SparseVector)
                else list(v) for name, v in vector.items()}
    return {"": list(vector)}


def _from_vector(vector: Any):
    if vector is None or isinstance(vector, list):
        return vector
    dense = {name: v for name, v in vector.items() if not isinstance(v, qe.SparseVector)}
    if list(dense) == [""] and len(vector) == 1:
        return dense[""]
    sparse = {name: models.SparseVector(indices=list(v.indices), values=list(v.values))
              for name, v in vector.items() if isinstance(v, qe.SparseVector)}
    return {**dense, **sparse}  # dense first, as qdrant-client gives them


def _record(record) -> models.Record:
    return models.Record(id=_out_id(record.id), payload=record.payload, vector=_from_vector(record.vector))


def _with_payload(value: Any):
    """What to return of a point (payload keys, or vector names): all, none, or those listed."""
    if isinstance(value, models.PayloadSelectorInclude):
        return list(value.include)
    return list(value) if isinstance(value, (list, tuple)) else bool(value)


_with_vectors = _with_payload


def _scoring(query: Any, using: str | None):
    if query is None:
        return None
    if isinstance(query, models.FusionQuery):
        return qe.Fusion.Rrf(k=QDRANT_RRF_K) if query.fusion == models.Fusion.RRF else qe.Fusion.Dbsf()
    if isinstance(query, models.RrfQuery):
        return qe.Fusion.Rrf(k=query.rrf.k if query.rrf.k is not None else QDRANT_RRF_K, weights=query.rrf.weights)
    if isinstance(query, models.NearestQuery):
        query = query.nearest
    if isinstance(query, models.SparseVector):
        return qe.Query.Nearest(qe.SparseVector(list(query.indices), list(query.values)), using=using)
    return qe.Query.Nearest([float(x) for x in query], using=using or None)


def _prefetch(prefetch: models.Prefetch) -> qe.Prefetch:
    inner = prefetch.prefetch if isinstance(prefetch.prefetch, list) else \
        [prefetch.prefetch] if prefetch.prefetch is not None else None
    return qe.Prefetch(limit=prefetch.limit or 10, query=_scoring(prefetch.query, prefetch.using),
                       prefetches=[_prefetch(p) for p in inner] if inner else None,
                       filter=_filter(prefetch.filter), params=_params(prefetch.params),
                       score_threshold=prefetch.score_threshold)


def _params(params: Any):
    """qdrant-client's ``SearchParams`` as Edge's, filling what is left unsaid with this store's
    defaults (``HNSW_EF``, rescoring with ``OVERSAMPLING``)."""
    if isinstance(params, dict):
        params = models.SearchParams(**params)
    params = params or models.SearchParams()
    quantization = params.quantization or models.QuantizationSearchParams()
    return qe.SearchParams(hnsw_ef=params.hnsw_ef or HNSW_EF, exact=bool(params.exact),
                           quantization=qe.QuantizationSearchParams(
                               ignore=bool(quantization.ignore), rescore=quantization.rescore is not False,
                               oversampling=quantization.oversampling or OVERSAMPLING))


def _filter(where: Any):
    """qdrant-client's ``Filter`` as Edge's (must, should, must_not; nested filters kept)."""
    if where is None:
        return None
    where = where.filter if isinstance(where, models.FilterSelector) else where

    def conditions(value):
        return None if value is None else [_condition(c) for c in (value if isinstance(value, list) else [value])]

    least = where.min_should
    min_should = None if least is None else qe.MinShould(conditions(least.conditions), least.min_count)
    return qe.Filter(must=conditions(where.must), should=conditions(where.should),
                     must_not=conditions(where.must_not), min_should=min_should)


def _condition(condition: Any):
    if isinstance(condition, models.Filter):
        return _filter(condition)
    if isinstance(condition, models.HasIdCondition):
        return qe.HasIdCondition({_point_id(i) for i in condition.has_id})
    if isinstance(condition, models.IsEmptyCondition):
        return qe.IsEmptyCondition(condition.is_empty.key)
    if isinstance(condition, models.IsNullCondition):
        return qe.IsNullCondition(condition.is_null.key)
    if isinstance(condition, models.FieldCondition):
        match, bounds = condition.match, condition.range
        if isinstance(match, models.MatchValue):
            return qe.FieldCondition(condition.key, match=qe.MatchValue(match.value))
        if isinstance(match, models.MatchAny):
            return qe.FieldCondition(condition.key, match=qe.MatchAny(list(match.any)))
        if isinstance(match, models.MatchExcept):
            return qe.FieldCondition(condition.key, match=qe.MatchExcept(list(match.except_)))
        if isinstance(match, models.MatchText):
            return qe.FieldCondition(condition.key, match=qe.MatchText(match.text))
        if bounds is not None:
            return qe.FieldCondition(condition.key, range=qe.RangeFloat(gte=bounds.gte, gt=bounds.gt,
                                                                        lte=bounds.lte, lt=bounds.lt))
        if condition.is_empty is not None:
            return qe.FieldCondition(condition.key, is_empty=condition.is_empty)
    raise NotImplementedError(f"the embedded store does not translate the condition {condition!r}; "
                              f"use match (value, any, except, text), range, is_empty, has_id or a nested filter")
