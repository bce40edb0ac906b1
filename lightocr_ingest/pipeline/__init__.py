"""Stage 6 - pipeline: orchestration of all stages from a YAML config, with a run report."""

from typing import TYPE_CHECKING

from .._lazy import lazy_members

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, ``__getattr__`` below
    from .config import PipelineConfig, json_schema, load_config, parse_config
    from .evaluate import LabelledQuery, RetrievalScores, evaluate_collection, evaluate_retriever, load_queries
    from .query import CollectionRetriever, Hit, build_retriever, search, search_collection
    from .report import FileReport, PageReport, RunReport
    from .plan import collect_files
    from .run import Ingestor, build_pipeline, make_parser, make_reader

# Imported on first use (PEP 562): a Ray worker process imports ``pipeline.ray_workers`` and must
# not pay for LlamaIndex and Qdrant that the rest of the pipeline imports.
_LAZY = {
    "PipelineConfig": ".config",
    "json_schema": ".config",
    "load_config": ".config",
    "parse_config": ".config",
    "LabelledQuery": ".evaluate",
    "RetrievalScores": ".evaluate",
    "evaluate_collection": ".evaluate",
    "evaluate_retriever": ".evaluate",
    "load_queries": ".evaluate",
    "CollectionRetriever": ".query",
    "Hit": ".query",
    "build_retriever": ".query",
    "search": ".query",
    "search_collection": ".query",
    "FileReport": ".report",
    "PageReport": ".report",
    "RunReport": ".report",
    "collect_files": ".plan",
    "Ingestor": ".run",
    "build_pipeline": ".run",
    "make_parser": ".run",
    "make_reader": ".run",
}

__all__ = [
    "CollectionRetriever",
    "FileReport",
    "Hit",
    "Ingestor",
    "LabelledQuery",
    "PageReport",
    "PipelineConfig",
    "RetrievalScores",
    "RunReport",
    "build_pipeline",
    "build_retriever",
    "collect_files",
    "evaluate_collection",
    "evaluate_retriever",
    "json_schema",
    "load_config",
    "load_queries",
    "make_parser",
    "make_reader",
    "parse_config",
    "search",
    "search_collection",
]


__getattr__, __dir__ = lazy_members(__name__, _LAZY, __all__)
