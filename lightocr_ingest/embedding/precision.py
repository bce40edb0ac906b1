"""bfloat16 matrix products for the embedding model where the processor runs them fast.

Intel Xeon processors from the 4th generation (Sapphire Rapids) on have AMX tiles, and oneDNN
(inside torch) runs bfloat16 matrix products on them at twice the float32 rate or more. Under
``torch.autocast`` the matrix products (linear layers, attention) take bfloat16 inputs and
accumulate in float32; their outputs stay bfloat16 up to the next residual sum and layer norm,
which, like the embeddings, the mean pooling and the normalisation, run in float32.
all-MiniLM-L6-v2's vectors then stay within cosine 0.9999 of float32's on real chunks
(tests/test_embedding_models_and_precision.py; benchmarks/embedding.py gives chunks/s and retrieval both ways).

Measured (benchmarks/embedding.py, 320 real chunks of ~256 tokens, 2 cores): with AMX,
93 chunks/s against float32's 35 (2.6x; 21 against 56 core-ms a chunk; another AMX Xeon
pinned to 2 cores: 2.0x), cosine to float32 0.99992 at worst, recall@k and MRR unchanged on
``samples`` and ``real``. Without AMX, bfloat16 is slower than float32 (oneDNN limited to
AVX512-BF16: 1.3x the core-ms; AVX512: 2.8x; AVX2: 6.5x), so ``auto`` keeps float32 there, and
on GPUs, where embedding is not the bottleneck and float32 keeps earlier runs' vectors exactly.

The ONNX alternatives were measured too (``benchmarks/embedding.py --onnx``) and not taken:
onnxruntime float32, exported and graph-fused, runs at 0.95x torch's float32 (both reach the
processor's float32 rate on 256-token batches); int8 dynamic quantisation (per channel) gives
1.4x at a cosine of 0.98 to float32, and changes the top-5 order of two questions in three
(all-MiniLM's activations have outliers that int8 loses).
"""

from __future__ import annotations

import functools
import os
from io import BytesIO

from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from pydantic import PrivateAttr

from .tables import tables_as_text

PRECISIONS = ("auto", "float32", "bfloat16")


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether this processor has AMX tiles that oneDNN may use (the OS permits them)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa and isa != "ALL" and "AMX" not in isa:
        return False  # oneDNN told not to use them
    try:
        import torch
    except ImportError:
        return False
    has = getattr(torch.cpu, "_is_amx_tile_supported", None)
    init = getattr(torch.cpu, "_init_amx", None)  # asks Linux for the tile state; False when refused
    if has is None or init is None:  # private helpers (torch 2.1-2.13): fall back to the flags
        return _cpuinfo_flag("amx_bf16")
    try:
        return bool(has() and init())
    except Exception:  # noqa: BLE001 - an unknown build: stay on float32
        return False


def _cpuinfo_flag(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            return any(line.startswith("flags") and flag in line.split() for line in handle)
    except OSError:
        return False


def pick_precision(precision: str, device: str) -> str:
    """float32 or bfloat16 for a device that ``pick_device`` chose (``auto``: bfloat16 on an AMX CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"embedding precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cpu" and cpu_has_amx() else "float32"


class PrecisionEmbedding(HuggingFaceEmbedding):
    """LlamaIndex's ``HuggingFaceEmbedding`` that runs the model under bfloat16 autocast when
    ``precision`` is ``bfloat16`` (every embedding, text or query, goes through ``_embed``), and
    embeds a chunk's HTML tables as their cells' text (``tables.tables_as_text``), whichever path
    calls it (``ingest``, the Ray runner, an ``IngestionPipeline``)."""

    _precision: str = PrivateAttr(default="float32")

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be float32 or bfloat16, got {value!r}")
        self._precision = value

    def _embed(self, inputs: list[str | BytesIO], prompt_name: str | None = None) -> list[list[float]]:
        if prompt_name != "query":
            inputs = [tables_as_text(i) if isinstance(i, str) else i for i in inputs]
        if self._precision == "float32":
            return super()._embed(inputs, prompt_name)
        import torch

        # thread-local: the pipeline embeds in a worker thread, and other threads stay float32
        with torch.autocast(str(self._device).split(":")[0], dtype=torch.bfloat16):
            return super()._embed(inputs, prompt_name)


__all__ = ["PRECISIONS", "PrecisionEmbedding", "cpu_has_amx", "pick_precision"]
