"""What differs between LightOnOCR checkpoints, told apart by the served model name.

vLLM serves a model under its Hugging Face id unless ``--served-model-name`` renames it, so
the name is the only thing a client can see. Every 1B checkpoint was trained on pages whose
longest side is 1540 px and samples best at temperature 0.2, top_p 0.9 (model cards).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelProfile:
    name: str
    generation: int | None  # 1, 2, or None for a name that says neither
    longest_side: int = 1540  # px the vision encoder was trained on
    temperature: float = 0.2  # model card's sampling
    top_p: float = 0.9
    max_tokens: int = 4096  # a dense page is ~1.5k tokens; larger caps only lengthen loops
    figure_boxes: bool = False  # -bbox variants append x1,y1,x2,y2 to image references
    table_format: str = "html"  # LightOnOCR-2 writes <table>; LightOnOCR-1 wrote pipe tables


def profile_for(model: str) -> ModelProfile:
    """The profile of a served model name such as ``lightonai/LightOnOCR-2-1B-bbox``."""
    name = model.lower()
    figure_boxes = "bbox" in name
    if re.search(r"lightonocr-1b", name):
        return ModelProfile(model, generation=1, table_format="pipe", figure_boxes=figure_boxes)
    if re.search(r"lightonocr-2-", name):
        return ModelProfile(model, generation=2, figure_boxes=figure_boxes)
    # Unknown (a custom --served-model-name): LightOnOCR-2 defaults are the safe guess,
    # and a bbox suffix in the name still turns on box parsing.
    return ModelProfile(model, generation=None, figure_boxes=figure_boxes)
