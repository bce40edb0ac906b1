"""What differs between LightOnOCR checkpoints, told apart by the served model name.

vLLM serves a model under its Hugging Face id unless ``--served-model-name`` renames it, so
the name is all a client sees. It is read as LightOn's own client reads it
(``lightonocr-(N)-`` is the generation, ``lightonocr-1b`` the first), and each family gets
what its model card asks for (../shared/LIGHTONOCR.md, "The models"):

- generations 1 and 2: pages of 1540 px, temperature 0.2 and top_p 0.9, plain Markdown, and
  figure boxes after image references from the ``-bbox`` checkpoints only;
- LightOnOCR-3-1B (a Pixtral encoder like the 1B models before it): 1540 px;
- LightOnOCR-3-0.8B and -4B (Qwen3.5-based): 2048 px, and their chat template thinks unless
  every request says ``enable_thinking: false``.
Generation 3 samples at temperature 0.2 with top_p 1.0 and has a grounding mode (each layout
block with its box and label). A name that matches no family (a custom
``--served-model-name``) is taken, as LightOn's client takes it, for generation 3 at 2048 px
(or for LightOnOCR-2-bbox when "bbox" is in it), and the reader says so once;
``ocr.model_family`` names the family instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..notices import warn_once

ModelFamily = Literal["auto", "lightonocr-1", "lightonocr-2", "lightonocr-2-bbox", "lightonocr-3-1b",
                      "lightonocr-3-0.8b", "lightonocr-3-4b"]
FAMILIES: tuple[str, ...] = ModelFamily.__args__[1:]  # type: ignore[attr-defined]
OcrMode = Literal["auto", "plain", "grounding"]
GROUNDING_MODELS = "LightOnOCR-3 (lightonai/LightOnOCR-3-0.8B, -3-1B, -3-4B)"

_GENERATION = re.compile(r"lightonocr-(\d+)-")


@dataclass(frozen=True)
class ModelProfile:
    name: str
    family: str = "lightonocr-2"
    generation: int = 2
    longest_side: int = 1540  # px the vision encoder was trained on
    temperature: float = 0.2  # model card's sampling
    top_p: float = 0.9
    max_tokens: int = 4096  # a dense page is ~1.5k tokens; larger caps only lengthen loops
    # -bbox variants append x1,y1,x2,y2 to image references; from any other model, digits after
    # a reference are page text and must not be parsed away as a box.
    figure_boxes: bool = False
    grounding: bool = False  # answers "grounding" with every layout block's box and label
    # Qwen-based checkpoints were trained without thinking, which their chat template turns on
    # unless told; a template without the flag ignores it, so generation 3 always sends it.
    thinking_off: bool = False
    assumed: bool = False  # the name matched no family: the profile is a guess (said once)

    def chat_template_kwargs(self) -> dict:
        """What every request carries besides the sampling (nothing for generations 1 and 2,
        whose requests stay exactly as they were)."""
        return {"chat_template_kwargs": {"enable_thinking": False}} if self.thinking_off else {}


def family_of(model: str) -> tuple[str, bool]:
    """The family a served name belongs to, and whether that was a guess."""
    name = model.lower()
    if "lightonocr-1b" in name:
        return "lightonocr-1", False
    match = _GENERATION.search(name)
    generation = int(match.group(1)) if match else None
    if generation in (1, 2):
        return ("lightonocr-2-bbox" if "bbox" in name else f"lightonocr-{generation}"), False
    if generation == 3:
        for size in ("0.8b", "4b", "1b"):
            if f"lightonocr-3-{size}" in name:
                return f"lightonocr-3-{size}", False
    if "bbox" in name:  # only LightOnOCR-2's -bbox checkpoints are so named: a renamed one keeps its boxes
        return "lightonocr-2-bbox", True
    return "lightonocr-3-4b", True  # LightOn's client: an unknown name is generation 3 at 2048 px


def profile_for(model: str, family: str = "auto") -> ModelProfile:
    """The profile of a served model name such as ``lightonai/LightOnOCR-2-1B-bbox``, or of the
    family given (``ocr.model_family``) whatever the name."""
    assumed = False
    if family == "auto":
        family, assumed = family_of(model)
    elif family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; one of: auto, {', '.join(FAMILIES)}")
    if family.startswith("lightonocr-3"):
        qwen = family != "lightonocr-3-1b"
        return ModelProfile(model, family, 3, longest_side=2048 if qwen else 1540, top_p=1.0, grounding=True,
                            thinking_off=True, assumed=assumed)
    generation = 1 if family == "lightonocr-1" else 2
    # "bbox" anywhere in the name still turns on box parsing, so a renamed -bbox checkpoint keeps its boxes
    boxes = family == "lightonocr-2-bbox" or "bbox" in model.lower()
    return ModelProfile(model, family, generation, figure_boxes=boxes, assumed=assumed)


def say_assumed(profile: ModelProfile) -> None:
    """Once per model name: the profile a name that matched no family was given, and the fix."""
    if profile.assumed:
        warn_once(f"lightocr-ingest: model {profile.name!r} is not a LightOnOCR name; treating it as {profile.family} "
                  f"({_traits(profile)}). If it is another checkpoint, say "
                  f"which: ocr.model_family (YAML) or --model-family, one of {', '.join(FAMILIES)}",
                  key=f"assumed-profile {profile.name}")


def resolve_mode(profile: ModelProfile, mode: str) -> Literal["plain", "grounding"]:
    """``auto``: grounding where the model has it, plain elsewhere; grounding asked of a model
    without it is an error that says which models have it."""
    if mode == "auto":
        return "grounding" if profile.grounding else "plain"
    if mode == "grounding" and not profile.grounding:
        raise ValueError(f"ocr.mode grounding: {profile.name} ({profile.family}) has no grounding mode; only "
                         f"{GROUNDING_MODELS} have it. Use ocr.mode: auto or plain (--ocr-mode), or serve LightOnOCR-3")
    return mode  # type: ignore[return-value]


def _traits(profile: ModelProfile) -> str:
    traits = [f"{profile.longest_side} px pages"]
    if profile.thinking_off:
        traits.append("thinking off")
    traits.append("grounding" if profile.grounding else ("figure boxes" if profile.figure_boxes else "plain Markdown"))
    return ", ".join(traits)
