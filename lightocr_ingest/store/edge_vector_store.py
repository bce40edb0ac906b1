"""LlamaIndex's view of the embedded store: a ``BasePydanticVectorStore`` over ``EdgeClient``.

It writes the points LlamaIndex's ``QdrantVectorStore`` writes for the same nodes (the node id
as the point id; the payload of ``node_to_metadata_dict``: the node's metadata, ``_node_content``,
``_node_type``, ``doc_id``...; one unnamed dense vector, or ``text-dense`` and a BM25
``text-sparse-new`` vector with the IDF modifier in a hybrid collection), so collections and
their payloads are the same whichever store wrote them, and reads them back the same way. Hybrid
search asks the engine once: the dense and the BM25 searches run as prefetches and the engine
fuses them by reciprocal rank.

``VectorStoreIndex.from_vector_store(EdgeVectorStore(...))`` works as it does over Qdrant.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (BasePydanticVectorStore, FilterCondition, FilterOperator,
                                                  MetadataFilters, VectorStoreQuery, VectorStoreQueryMode,
                                                  VectorStoreQueryResult)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from qdrant_client import models

from .edge import EdgeClient
from .schema import DENSE_VECTOR

DOCUMENT_ID_KEY = "doc_id"  # LlamaIndex's key of a node's source document in the payload
DEFAULT_RRF_K = 2  # Qdrant's own default when a hybrid query names none


class EdgeVectorStore(BasePydanticVectorStore):
    """A collection of the embedded store (Qdrant Edge), dense or hybrid (dense + BM25).

    The collection is made on the first ``add`` with the size of the first embedding and the
    payload indexes ``indexed_fields`` names (plus ``doc_id``, for deleting a document).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection_name: str
    hybrid: bool = False  # store and search a BM25 sparse vector beside the dense one
    batch_size: int = 128  # points a write: Qdrant's sweet spot is 64-256 for 384-dim vectors
    dense_vector_name: str = ""  # "" for a dense collection's one vector; "text-dense" in hybrid
    sparse_vector_name: str = "text-sparse-new"
    indexed_fields: dict[str, str] = {}  # payload key -> Qdrant schema ("keyword", "integer")
    rrf_k: int = DEFAULT_RRF_K

    _client: EdgeClient = PrivateAttr()
    _found_dense_name: str | None = PrivateAttr(default=None)

    def __init__(self, client: EdgeClient, collection_name: str, **fields: Any):
        super().__init__(collection_name=collection_name, **fields)
        self._client = client

    @classmethod
    def class_name(cls) -> str:
        return "EdgeVectorStore"

    @property
    def client(self) -> EdgeClient:
        return self._client

    def _dense_name(self) -> str:
        """The dense vector's name in the collection as it was made: a hybrid collection searched
        dense (``mode: dense``) keeps its vector under ``text-dense``."""
        if self._found_dense_name is None:
            vectors = self._client.get_collection(self.collection_name).config.params.vectors
            self._found_dense_name = next(iter(vectors)) if isinstance(vectors, dict) else ""
        return self._found_dense_name

    # ------------------------------------------------------------------ writing

    def add(self, nodes: list[BaseNode], **kwargs: Any) -> list[str]:
        if not nodes:
            return []
        self._ensure_collection(len(nodes[0].get_embedding()))
        ids = []
        for start in range(0, len(nodes), self.batch_size):
            batch = nodes[start:start + self.batch_size]
            # Built without validation (``model_construct``): the ids, vectors and payloads are
            # the nodes' own, and validating 384 floats a point cost more than writing them.
            self._client.upsert(self.collection_name, [
                models.PointStruct.model_construct(
                    id=node.node_id, vector=vector,
                    payload=node_to_metadata_dict(node, remove_text=False, flat_metadata=self.flat_metadata))
                for node, vector in zip(batch, self._vectors(batch))])
            ids += [node.node_id for node in batch]
        return ids

    def _vectors(self, nodes: list[BaseNode]) -> list[Any]:
        if not self.hybrid:
            return [node.get_embedding() for node in nodes]
        from ..embedding.bm25 import encode_documents

        indices, values = encode_documents([node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes])
        return [{self.dense_vector_name: node.get_embedding(),
                 self.sparse_vector_name: models.SparseVector(indices=i, values=v)}
                for node, i, v in zip(nodes, indices, values)]

    def _ensure_collection(self, size: int) -> None:
        if self._client.collection_exists(self.collection_name):
            return
        dense = models.VectorParams(size=size, distance=models.Distance.COSINE)
        try:
            if self.hybrid:
                self._client.create_collection(
                    self.collection_name, vectors_config={self.dense_vector_name: dense},
                    sparse_vectors_config={self.sparse_vector_name: models.SparseVectorParams(
                        modifier=models.Modifier.IDF)})
            else:
                self._client.create_collection(self.collection_name, vectors_config=dense)
        except ValueError as exc:  # made meanwhile by another thread of this process
            if "already exists" not in str(exc):
                raise
            return
        for name, schema in {DOCUMENT_ID_KEY: "keyword", **self.indexed_fields}.items():
            self._client.create_payload_index(self.collection_name, name, schema)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the points of every node of the document ``ref_doc_id``."""
        if self._client.collection_exists(self.collection_name):
            self._client.delete(self.collection_name, models.FilterSelector(filter=models.Filter(must=[
                models.FieldCondition(key=DOCUMENT_ID_KEY, match=models.MatchValue(value=ref_doc_id))])))

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        """Delete the points of ``node_ids`` and/or those ``filters`` select (both: the ones that
        are both). Neither deletes nothing."""
        where = self._build_query_filter(VectorStoreQuery(node_ids=node_ids, filters=filters))
        if where is not None and self._client.collection_exists(self.collection_name):
            self._client.delete(self.collection_name, models.FilterSelector(filter=where))

    def clear(self) -> None:
        self._client.delete_collection(self.collection_name)

    # ------------------------------------------------------------------ reading

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                  **kwargs: Any) -> list[BaseNode]:
        if not self._client.collection_exists(self.collection_name):
            return []
        where = self._build_query_filter(VectorStoreQuery(node_ids=node_ids, filters=filters))
        nodes, offset = [], None
        while True:
            points, offset = self._client.scroll(self.collection_name, scroll_filter=where, limit=1024,
                                                 offset=offset, with_payload=True, with_vectors=True)
            nodes += self.parse_to_query_result(points).nodes
            if offset is None:
                return nodes

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Dense (``query_embedding``), sparse (BM25 of ``query_str``) or hybrid (both, fused by
        reciprocal rank in the engine, ``sparse_top_k`` candidates from each)."""
        if not self._client.collection_exists(self.collection_name):
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        where = kwargs.get("qdrant_filters") or self._build_query_filter(query)
        k = query.similarity_top_k
        if query.mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.SPARSE):
            if not self.hybrid:
                raise ValueError(f"collection '{self.collection_name}' holds no BM25 vectors: it was made for "
                                 f"dense search; ask it in the default (dense) mode")
            sparse = self._sparse_query(query.query_str or "")
            if query.mode == VectorStoreQueryMode.SPARSE:
                return self._answer(query=sparse, using=self.sparse_vector_name, limit=k, query_filter=where)
            candidates = max(query.sparse_top_k or k, k)
            prefetch = [models.Prefetch(query=query.query_embedding, using=self.dense_vector_name,
                                        limit=candidates, filter=where)]
            if sparse.indices:  # a question of stop words only has no terms: dense alone then
                prefetch.append(models.Prefetch(query=sparse, using=self.sparse_vector_name, limit=candidates,
                                                filter=where))
            return self._answer(prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=self.rrf_k)),
                                limit=query.hybrid_top_k or k)
        return self._answer(query=query.query_embedding, using=self._dense_name() or None, limit=k,
                            query_filter=where)

    def _sparse_query(self, text: str) -> models.SparseVector:
        from ..embedding.bm25 import encode_queries

        (indices,), (values,) = encode_queries([text])
        return models.SparseVector(indices=indices, values=values)

    def _answer(self, **request: Any) -> VectorStoreQueryResult:
        response = self._client.query_points(self.collection_name, with_payload=True, **request)
        return self.parse_to_query_result(response.points)

    def parse_to_query_result(self, points: list[Any]) -> VectorStoreQueryResult:
        """Points (scored or not) as LlamaIndex nodes, as ``QdrantVectorStore`` reads them."""
        nodes, similarities, ids = [], [], []
        for point in points:
            vector = point.vector
            embedding = vector.get(self.dense_vector_name, vector.get(DENSE_VECTOR)) if isinstance(vector, dict) \
                else vector
            try:
                node = metadata_dict_to_node(point.payload or {})
            except Exception:  # a point written by other code: its text and metadata as they are
                payload = dict(point.payload or {})
                node = TextNode(id_=str(point.id), text=str(payload.pop("text", "")), metadata=payload)
            if embedding and node.embedding is None:
                node.embedding = list(embedding)
            nodes.append(node)
            ids.append(str(point.id))
            similarities.append(getattr(point, "score", 1.0))
        return VectorStoreQueryResult(nodes=nodes, similarities=similarities, ids=ids)

    # ------------------------------------------------------------------ filters

    def _build_query_filter(self, query: VectorStoreQuery) -> models.Filter | None:
        """The Qdrant filter of a query's ``doc_ids``, ``node_ids`` and ``filters`` (as
        ``QdrantVectorStore`` builds it), or None when it has none."""
        must: list[Any] = []
        if query.doc_ids:
            must.append(models.FieldCondition(key=DOCUMENT_ID_KEY, match=models.MatchAny(any=list(query.doc_ids))))
        if query.node_ids:
            must.append(models.HasIdCondition(has_id=list(query.node_ids)))
        if query.filters and query.filters.filters:
            must.append(to_qdrant_filter(query.filters))
        return models.Filter(must=must) if must else None


def to_qdrant_filter(filters: MetadataFilters) -> models.Filter:
    """LlamaIndex ``MetadataFilters`` as a Qdrant filter, operator by operator (EQ, NE, GT, GTE,
    LT, LTE, IN, NIN, TEXT_MATCH, IS_EMPTY; nested filters with AND, OR, NOT)."""
    conditions: list[Any] = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            if item.filters:
                conditions.append(to_qdrant_filter(item))
            continue
        conditions.append(_condition(item.key, item.operator or FilterOperator.EQ, item.value))
    if filters.condition == FilterCondition.OR:
        return models.Filter(should=conditions)
    if filters.condition == FilterCondition.NOT:
        return models.Filter(must_not=conditions)
    return models.Filter(must=conditions)


def _condition(key: str, operator: FilterOperator, value: Any) -> Any:
    def listed(v):
        return list(v) if isinstance(v, (list, tuple)) else str(v).split(",")

    if operator == FilterOperator.EQ:
        if isinstance(value, float):
            return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    ranges = {FilterOperator.LT: "lt", FilterOperator.GT: "gt", FilterOperator.GTE: "gte", FilterOperator.LTE: "lte"}
    if operator in ranges:
        return models.FieldCondition(key=key, range=models.Range(**{ranges[operator]: value}))
    if operator in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        return models.FieldCondition(key=key, match=models.MatchText(text=value))
    if operator == FilterOperator.NE:
        return models.FieldCondition(key=key, match=models.MatchExcept(**{"except": [value]}))
    if operator == FilterOperator.IN:
        return models.FieldCondition(key=key, match=models.MatchAny(any=listed(value)))
    if operator == FilterOperator.NIN:
        return models.FieldCondition(key=key, match=models.MatchExcept(**{"except": listed(value)}))
    if operator == FilterOperator.IS_EMPTY:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    raise NotImplementedError(f"filter operator {operator} is not supported by the embedded store; supported: "
                              f"EQ, NE, GT, GTE, LT, LTE, IN, NIN, TEXT_MATCH, TEXT_MATCH_INSENSITIVE, IS_EMPTY")
