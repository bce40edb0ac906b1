"""Search a collection through LlamaIndex: dense (the embedding model) or hybrid (dense and
BM25 fused by reciprocal rank in Qdrant).

``build_retriever(config)`` gives a LlamaIndex retriever over a pipeline config's collection.
Hybrid asks Qdrant once: both searches run as prefetches and Qdrant fuses them by reciprocal
rank (RRF), which LlamaIndex's own hybrid mode does client-side instead; a fused hit's score is
its RRF score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores import VectorStoreQuery

from ..defaults import PREFETCH, RRF_K
from ..errors import EmptyCollectionError
from ..metadata import BboxSource, ChunkMetadata, PageMetadata


@dataclass
class Hit:
    score: float
    file_name: str
    file_path: str
    file_sha256: str
    page: int
    pages: list[int]
    header_path: str
    text: str
    bbox: list | None  # the union of its regions on its first page (page points, top-left origin)
    regions: list[dict]  # [{"page": 3, "bbox": [x0, y0, x1, y1]}, ...]: where its text lies
    bbox_source: BboxSource
    node_id: str
    block_types: list[str] = field(default_factory=list)  # the model's labels on grounded pages, else Markdown kinds
    blocks: list[dict] = field(default_factory=list)  # grounded pages: [{"page", "label", "bbox"}] of the model's blocks

    def to_dict(self) -> dict:
        return asdict(self)


class CollectionRetriever(BaseRetriever):
    """The top ``k`` chunks of a Qdrant collection for a question, dense or hybrid.

    Holds its own Qdrant client when it opened one: ``close()`` it (or use ``with``), since
    the embedded store locks its folder while open.
    """

    def __init__(self, vector_store, embed_model, k: int = 5, mode: str = "dense", prefetch: int = PREFETCH,
                 rrf_k: int | None = RRF_K, owned_client: Any = None, filters: Any = None):
        super().__init__()
        from ..store import require_mode

        require_mode(mode)
        self.vector_store, self.embed_model, self.k, self.mode = vector_store, embed_model, k, mode
        self.prefetch = max(prefetch, k)  # RRF fuses candidates beyond the top k of each list
        self.rrf_k = rrf_k
        self.filters = filters  # LlamaIndex MetadataFilters on the payload (file_name, page, ...), both modes
        # Hybrid: the same Qdrant filter LlamaIndex builds for a dense query, applied to both prefetches.
        self._where = vector_store._build_query_filter(VectorStoreQuery(filters=filters)) \
            if filters and mode == "hybrid" else None
        self._owned_client = owned_client
        if mode == "dense":
            from llama_index.core import VectorStoreIndex

            self._dense = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model) \
                .as_retriever(similarity_top_k=k, filters=filters)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.mode == "dense":
            return self._dense.retrieve(query_bundle)
        from qdrant_client import models

        from ..embedding.bm25 import encode_queries
        from ..store import DENSE_VECTOR, SPARSE_VECTOR

        dense = self.embed_model.get_query_embedding(query_bundle.query_str)
        prefetch = [models.Prefetch(query=dense, using=DENSE_VECTOR, limit=self.prefetch, filter=self._where)]
        (indices,), (values,) = encode_queries([query_bundle.query_str])
        if indices:  # a question of stop words only has no terms: dense alone then
            prefetch.append(models.Prefetch(query=models.SparseVector(indices=indices, values=values),
                                            using=SPARSE_VECTOR, limit=self.prefetch, filter=self._where))
        fusion = models.FusionQuery(fusion=models.Fusion.RRF) if self.rrf_k is None else \
            models.RrfQuery(rrf=models.Rrf(k=self.rrf_k))
        response = self.vector_store.client.query_points(self.vector_store.collection_name, prefetch=prefetch,
                                                         query=fusion, limit=self.k, with_payload=True)
        result = self.vector_store.parse_to_query_result(response.points)
        return [NodeWithScore(node=node, score=score) for node, score in zip(result.nodes, result.similarities)]

    def close(self) -> None:
        if self._owned_client is not None:
            self._owned_client.close()
            self._owned_client = None

    def __enter__(self) -> "CollectionRetriever":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_retriever(config, k: int = 5, mode: str | None = None, client: Any = None,
                    embed_model: Any = None, filters: Any = None) -> CollectionRetriever:
    """A LlamaIndex retriever over the collection of a pipeline config (``mode`` defaults to
    ``retrieval.mode``; ``filters``: LlamaIndex ``MetadataFilters`` on the payload). Hybrid on a
    collection ingested dense searches it dense, and says so once."""
    from ..embedding import make_embed_model
    from ..store import count_points, make_vector_store, open_client, search_mode

    mode = mode or config.retrieval.mode
    q, e = config.qdrant, config.embedding
    owned = None
    if client is None:
        client = owned = open_client(q)
    try:
        if count_points(client, q.collection) == 0:
            raise EmptyCollectionError(f"collection '{q.collection}' is empty or missing at {q.url or q.path}; "
                                       f"run `lightocr-ingest ingest PATH` first (with the same --config)")
        mode = search_mode(client, q.collection, mode)
        store = make_vector_store(client, q.collection, mode)
        embed_model = embed_model or make_embed_model(e.model, e.device, e.batch_size, e.precision)
        return CollectionRetriever(store, embed_model, k, mode, config.retrieval.prefetch, config.retrieval.rrf_k,
                                   owned_client=owned, filters=filters)
    except Exception:
        if owned is not None:
            owned.close()
        raise


def to_hit(result: NodeWithScore) -> Hit:
    page = PageMetadata.from_metadata(result.node.metadata)
    chunk = ChunkMetadata.from_metadata(result.node.metadata)
    return Hit(score=round(float(result.score or 0.0), 4), file_name=page.file_name, file_path=page.file_path,
               file_sha256=page.file_sha256 or "", page=chunk.page, pages=list(chunk.pages),
               header_path=chunk.header_path, text=result.node.get_content(),
               bbox=list(chunk.bbox) if chunk.bbox else None, regions=[r.to_payload() for r in chunk.regions],
               bbox_source=chunk.bbox_source, node_id=result.node.node_id, block_types=list(chunk.block_types),
               blocks=[dict(block) for block in chunk.blocks])


def search(vector_store, embed_model, text: str, k: int = 5, mode: str = "dense") -> list[Hit]:
    """The top ``k`` hits for ``text`` in an open vector store (``make_vector_store``)."""
    from ..store import search_mode

    mode = search_mode(vector_store.client, vector_store.collection_name, mode)
    return [to_hit(result) for result in CollectionRetriever(vector_store, embed_model, k, mode).retrieve(text)]


def search_collection(config, text: str, k: int = 5, mode: str | None = None) -> list[Hit]:
    """The top ``k`` hits for ``text`` in a pipeline config's collection (opened and closed here)."""
    with build_retriever(config, k, mode) as retriever:
        return [to_hit(result) for result in retriever.retrieve(text)]
