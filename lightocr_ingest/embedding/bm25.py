"""BM25 sparse vectors for hybrid search: exact terms that a dense model blurs (part numbers,
function names, rare proper names). Terms are whole words: "opt_clean" is "opt" and "clean",
and the digits of "4.2.1" are three terms in no order; that is the server's tokenisation, and
staying with it keeps local and server collections interchangeable.

The vectors come from ``qdrant-edge-py``'s ``Bm25``: Qdrant's own BM25 (the one its server
runs as ``Qdrant/bm25``), with no weights to download, so hybrid works offline. A chunk's
vector holds its terms' BM25 term-frequency weights; the collection's sparse vector has
Qdrant's IDF modifier, so the inverse document frequency comes from the collection itself
and stays right as it grows. A query's vector holds each of its terms once.

The tokenisation (English: lower-cased words, stop words dropped, Snowball stemming, terms
hashed to indices) is the same for chunks and queries, in the embedded store and on a server.
"""

from __future__ import annotations

import functools

from ..errors import ConfigError
from .tables import tables_as_text

AVG_CHUNK_TOKENS = 150  # BM25's expected document length, in its own tokens: a 256-word-piece chunk of
#                         English prose holds about 190 words, of which about 150 survive stop words


@functools.cache
def _model():
    try:
        from qdrant_edge import Bm25, Bm25Config
    except ImportError:
        raise ConfigError("hybrid retrieval needs qdrant-edge-py (Qdrant's BM25): "
                          "pip install 'qdrant-edge-py>=0.9,<1', or set retrieval.mode: dense") from None
    return Bm25(Bm25Config(language="english", avg_len=AVG_CHUNK_TOKENS))


def _as_lists(vectors) -> tuple[list[list[int]], list[list[float]]]:
    """Sparse vectors as LlamaIndex's ``QdrantVectorStore`` takes them: all indices, all values."""
    return [list(v.indices) for v in vectors], [list(v.values) for v in vectors]


def encode_documents(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
    """Sparse vectors of chunks (``sparse_doc_fn``): BM25 term-frequency weights, of the text the
    dense model sees too (tables as their cells' text)."""
    return _as_lists([_model().embed_document(tables_as_text(text)) for text in texts])


def encode_queries(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
    """Sparse vectors of queries (``sparse_query_fn``): each term once, weight 1."""
    return _as_lists([_model().embed_query(text) for text in texts])
