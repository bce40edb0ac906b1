"""Stage 7 - pipeline: orchestration of all stages from a YAML config, with a run report."""

from typing import TYPE_CHECKING

from .._lazy import lazy_members

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, ``__getattr__`` below
    from .config import PipelineConfig, json_schema, load_config, parse_config
    from .report import FileReport, PageReport, RunReport
    from .plan import collect_files
    from .build import build_pipeline, make_parser, make_reader
    from .run import Ingestor

# Imported on first use (PEP 562): a Ray worker process imports ``pipeline.ray_runner.workers`` and
# ``pipeline.config``, and must not pay for LlamaIndex and Qdrant that the rest of the pipeline imports.
_LAZY = {
    "PipelineConfig": ".config",
    "json_schema": ".config",
    "load_config": ".config",
    "parse_config": ".config",
    "FileReport": ".report",
    "PageReport": ".report",
    "RunReport": ".report",
    "collect_files": ".plan",
    "Ingestor": ".run",
    "build_pipeline": ".build",
    "make_parser": ".build",
    "make_reader": ".build",
}

__all__ = [
    "FileReport",
    "Ingestor",
    "PageReport",
    "PipelineConfig",
    "RunReport",
    "build_pipeline",
    "collect_files",
    "json_schema",
    "load_config",
    "make_parser",
    "make_reader",
    "parse_config",
]


__getattr__, __dir__ = lazy_members(__name__, _LAZY, __all__)
