"""Stage 2 - ocr: page images in, Markdown out (vLLM client, CPU engine, post-processing)."""

from .cache import OcrCache
from .cpu import CPU_MODEL, CpuEngine
from .engine import EngineSettings, create_engine, resolve
from .postprocess import clean_markdown, extract_figures, fix_escaped_dollars
from .profiles import ModelProfile, profile_for
from .resilient import ResilientEngine
from .retry import RetryPolicy
from .servers import VLLM_HINT, normalize_base_url
from .vllm import DEFAULT_URL, MAX_IN_FLIGHT, VLLMEngine
from .window import ocr_in_order

__all__ = [
    "CPU_MODEL",
    "CpuEngine",
    "DEFAULT_URL",
    "EngineSettings",
    "MAX_IN_FLIGHT",
    "ModelProfile",
    "OcrCache",
    "ResilientEngine",
    "RetryPolicy",
    "VLLMEngine",
    "VLLM_HINT",
    "clean_markdown",
    "create_engine",
    "extract_figures",
    "fix_escaped_dollars",
    "normalize_base_url",
    "ocr_in_order",
    "profile_for",
    "resolve",
]
