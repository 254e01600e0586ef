"""Released-checkpoint layouts built from our models (for the reference-checkpoint loading tests).

:func:`maple_reference_layout` writes a MaPLe model's prompts under the reference's whole-CustomCLIP
keys (``prompt_learner.ctx`` / ``proj`` / ``compound_prompts_text.{k}`` /
``compound_prompt_projections.{k}``) next to its frozen CLIP towers (``image_encoder.*``,
``text_encoder.*``, ``logit_scale``), stored in fp16 like the released files (see ``trainers/maple.py``).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
from torch import nn

__all__ = ["maple_reference_layout"]


def maple_reference_layout(model: nn.Module, prompts: Mapping[str, torch.Tensor],
                           extra: Optional[Mapping[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """A released-MaPLe-style state dict (whole CustomCLIP, fp16) of ``model``'s backbone with the given
    prompt tensors (our key names); ``extra`` reference keys (e.g. class-name buffers) go before the towers."""
    ref = {"prompt_learner.ctx": prompts["text_prompts.layer0"],
           "prompt_learner.proj.weight": prompts["couplings.0.weight"],
           "prompt_learner.proj.bias": prompts["couplings.0.bias"]}
    for k in range(1, model.depth):
        ref[f"prompt_learner.compound_prompts_text.{k - 1}"] = prompts[f"text_prompts.layer{k}"]
        ref[f"prompt_learner.compound_prompt_projections.{k - 1}.weight"] = prompts[f"couplings.{k}.weight"]
        ref[f"prompt_learner.compound_prompt_projections.{k - 1}.bias"] = prompts[f"couplings.{k}.bias"]
    ref.update(extra or {})
    for k, v in model.backbone.state_dict().items():
        if k.startswith("visual."):
            ref["image_encoder." + k[len("visual."):]] = v
        elif k.startswith(("transformer.", "ln_final.")) or k in ("positional_embedding", "text_projection"):
            ref["text_encoder." + k] = v
        elif k == "logit_scale":
            ref[k] = v
    return {k: v.detach().clone().half() for k, v in ref.items()}
