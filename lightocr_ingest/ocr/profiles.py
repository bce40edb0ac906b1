"""What differs between LightOnOCR checkpoints, told apart by the served model name.

vLLM serves a model under its Hugging Face id unless ``--served-model-name`` renames it, so
the name is the only thing a client can see. Every 1B checkpoint was trained on pages whose
longest side is 1540 px and samples best at temperature 0.2, top_p 0.9 (model cards). The one
difference the reader acts on is figure boxes: only the ``-bbox`` checkpoints write them.
Tables need no profile: the chunker reads both LightOnOCR-2's HTML and LightOnOCR-1's pipes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelProfile:
    name: str
    longest_side: int = 1540  # px the vision encoder was trained on
    temperature: float = 0.2  # model card's sampling
    top_p: float = 0.9
    max_tokens: int = 4096  # a dense page is ~1.5k tokens; larger caps only lengthen loops
    # -bbox variants append x1,y1,x2,y2 to image references; from any other model, digits after
    # a reference are page text and must not be parsed away as a box.
    figure_boxes: bool = False


def profile_for(model: str) -> ModelProfile:
    """The profile of a served model name such as ``lightonai/LightOnOCR-2-1B-bbox``.

    A custom ``--served-model-name`` gets the same defaults; "bbox" anywhere in the name
    still turns on box parsing, so a renamed -bbox checkpoint keeps its boxes.
    """
    return ModelProfile(model, figure_boxes="bbox" in model.lower())
