"""Stage 8 - retrieval: search a collection (dense or hybrid), score it on labelled questions,
and draw retrieved chunks on their pages."""

from typing import TYPE_CHECKING

from .._lazy import lazy_members

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, ``__getattr__`` below
    from .evaluate import LabelledQuery, RetrievalScores, evaluate_collection, evaluate_retriever, load_queries
    from .overlay import Outline, boxes_of_chunk, page_with_boxes
    from .query import CollectionRetriever, Hit, build_retriever, search, search_collection

# Imported on first use (PEP 562): searching pulls in LlamaIndex and Qdrant, drawing only Pillow.
_LAZY = {
    "LabelledQuery": ".evaluate",
    "RetrievalScores": ".evaluate",
    "evaluate_collection": ".evaluate",
    "evaluate_retriever": ".evaluate",
    "load_queries": ".evaluate",
    "Outline": ".overlay",
    "boxes_of_chunk": ".overlay",
    "page_with_boxes": ".overlay",
    "CollectionRetriever": ".query",
    "Hit": ".query",
    "build_retriever": ".query",
    "search": ".query",
    "search_collection": ".query",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_members(__name__, _LAZY, __all__)
