"""Stage 6 - pipeline: orchestration of all stages from a YAML config, with a run report."""

from .config import PipelineConfig, json_schema, load_config, parse_config
from .evaluate import LabelledQuery, RetrievalScores, evaluate_collection, evaluate_retriever, load_queries
from .query import CollectionRetriever, Hit, build_retriever, search, search_collection
from .report import FileReport, PageReport, RunReport
from .plan import collect_files
from .run import Ingestor, build_pipeline, make_parser, make_reader

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
