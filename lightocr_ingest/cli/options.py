"""Options several commands share, and the config they override: flags win over the config, the
config over the defaults."""

from __future__ import annotations

import argparse

from ..pipeline.config import PipelineConfig


def add_ocr_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ocr-url", help="vLLM base URL, e.g. http://gpu-host:8000/v1 (env LIGHTONOCR_URL); "
                                               "several, comma-separated, to balance pages across GPUs")
    parser.add_argument("--model", help="served model name (default: discovered from /v1/models)")
    parser.add_argument("--model-family", choices=["auto", "lightonocr-1", "lightonocr-2", "lightonocr-2-bbox",
                                                   "lightonocr-3-1b", "lightonocr-3-0.8b", "lightonocr-3-4b"],
                        help="the served model's checkpoint family, for a custom --served-model-name (default: "
                             "told by the name)")
    parser.add_argument("--ocr-mode", choices=["auto", "plain", "grounding"],
                        help="auto: grounding (blocks with boxes and labels) where the model has it, else plain")
    parser.add_argument("--ocr-engine", choices=["auto", "vllm", "cpu"],
                        help="auto: vLLM when it answers, else the CPU engine (default auto)")
    parser.add_argument("--no-detect-rotation", dest="detect_rotation", action="store_false", default=None,
                        help="send pages as they are stored, without turning sideways or upside-down pages upright")


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline YAML, e.g. pipelines/local.yaml")
    parser.add_argument("--collection", help="Qdrant collection (default: the config's qdrant.collection, else lightocr)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--qdrant-path", help="the embedded store's folder (Qdrant Edge in this process)")
    where.add_argument("--qdrant-url", help="Qdrant server URL (api key from QDRANT_API_KEY)")


def apply_flags(config: PipelineConfig, args: argparse.Namespace) -> PipelineConfig:
    data = config.model_dump()
    for section, key, value in [("qdrant", "collection", getattr(args, "collection", None)),
                                ("qdrant", "path", getattr(args, "qdrant_path", None)),
                                ("qdrant", "url", getattr(args, "qdrant_url", None)),
                                ("ocr", "url", getattr(args, "ocr_url", None)),
                                ("ocr", "model", getattr(args, "model", None)),
                                ("ocr", "engine", getattr(args, "ocr_engine", None)),
                                ("ocr", "model_family", getattr(args, "model_family", None)),
                                ("ocr", "mode", getattr(args, "ocr_mode", None)),
                                ("input", "pages", getattr(args, "pages", None)),
                                ("chunking", "regions", getattr(args, "regions", None)),
                                ("ocr", "detect_rotation", getattr(args, "detect_rotation", None))]:
        if value is not None:
            data[section][key] = value
    if getattr(args, "qdrant_path", None):
        data["qdrant"]["url"] = None
    for key in ("runner", "ray_address"):
        if (value := getattr(args, key, None)) is not None:
            data[key] = value
    return PipelineConfig.model_validate(data)  # model_dump keeps SecretStr values as they are

