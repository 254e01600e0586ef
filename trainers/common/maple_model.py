"""The MaPLe model (Khattak et al., CVPR 2023; docs/REFERENCE.md M3, T4) and the released checkpoints' key map.

Used by the MaPLe trainer (``trainers/maple.py``) and by a MaPLe PromptKD teacher (``trainers/common/teacher.py``).

Text prompts as IVLP's text side (:class:`TextPromptLearner`, depth J, N context tokens; layer 0
initialised from the first N words of ``CTX_INIT`` whose remaining words stay fixed in the prompt,
layers 1..J-1 N(0, 0.02^2)). The visual prompts are not independent: they are COUPLED to the text
prompts by linear maps ``text width -> vision width`` (dimensions read from the model, not the
reference's hard-coded 512/768)::

    visual prompt of layer 0 = couplings[0](text layer 0)        (the reference's ``proj``)
    visual prompt of layer i = couplings[i](text layer i), 1 <= i < J
                                (``compound_prompt_projections[i-1]``, deep copies of ONE freshly
                                 initialised Linear, so they all start identical)

and both go through the shared :func:`clip.encode_image` / :func:`clip.encode_text` (layer-0 visual
prompts appended after the positional embedding, deeper ones replacing the last N tokens; deep text
prompts replacing positions 1..N). Trainable: the text prompts and the J couplings (3,555,072
parameters for ViT-B/16, J = 9, N = 2).

Our checkpoint keys and the reference's (whole CustomCLIP, docs/REFERENCE.md M6) map as::

    prompt_learner.ctx                                   -> text_prompts.layer0
    prompt_learner.compound_prompts_text.{k}             -> text_prompts.layer{k+1}
    prompt_learner.proj.{weight,bias}                    -> couplings.0.{weight,bias}
    prompt_learner.compound_prompt_projections.{k}.*     -> couplings.{k+1}.*
    prompt_learner.token_prefix / token_suffix           -> skipped (class-name buffers)
    image_encoder.* / text_encoder.* / logit_scale       -> frozen CLIP: checked against the backbone
"""

from __future__ import annotations

import copy
import re
from typing import Dict, List, Mapping, Sequence

import torch
from torch import nn

import clip

from .checkpoints import ReferenceVLState, split_reference_vl_state
from .prompts import TextPromptLearner
from .vl_model import FrozenCLIPModel


class MaPLeCLIP(FrozenCLIPModel):
    """Frozen CLIP (``backbone``) + text prompts (``text_prompts.layer{i}``) + couplings (``couplings.{i}``).

    ``encode_text()`` -> prompted text features for the current class set [C, D] (fp32, unnormalised);
    ``encode_image(images)`` -> [B, D]; ``forward(images, text_features=None)`` -> logits [B, C] (fp32).
    """

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx: int, depth: int,
                 ctx_init: str = "a photo of a") -> None:
        info = clip.model_info(clip_model)
        if not info.is_vit:
            raise ValueError("MaPLe prompts the image transformer: MODEL.BACKBONE.NAME must be a ViT CLIP (e.g. ViT-B/16)")
        max_depth = min(info.text_layers, info.vision_layers)
        if not 1 <= depth <= max_depth:
            raise ValueError(f"TRAINER.MAPLE.PROMPT_DEPTH = {depth}: need 1 <= depth <= {max_depth} "
                             f"(blocks: text {info.text_layers}, vision {info.vision_layers})")
        if n_ctx < 1:
            raise ValueError(f"TRAINER.MAPLE.N_CTX = {n_ctx}: need >= 1 context token")
        super().__init__(clip_model)
        self.text_prompts = TextPromptLearner(clip_model, classnames, n_ctx, depth, ctx_init)
        layer0 = nn.Linear(info.text_width, info.vision_width)
        deep = nn.Linear(info.text_width, info.vision_width)
        self.couplings = nn.ModuleList([layer0] + [copy.deepcopy(deep) for _ in range(depth - 1)])
        self.depth = int(depth)

    def visual_prompts(self) -> List[torch.Tensor]:
        """[couplings[i](text layer i) for i < J]: the prompt list of :func:`clip.encode_image`."""
        text_layers = [self.text_prompts.layer0] + self.text_prompts.deep_prompts()
        return [coupling(p) for coupling, p in zip(self.couplings, text_layers)]

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_prompted_image(images, self.visual_prompts())


# ------------------------------------------------------------------------------------------------
# reference checkpoint layout
# ------------------------------------------------------------------------------------------------
_REF_COMPOUND_TEXT = re.compile(r"^prompt_learner\.compound_prompts_text\.(\d+)$")
_REF_COMPOUND_PROJ = re.compile(r"^prompt_learner\.compound_prompt_projections\.(\d+)\.(weight|bias)$")
_REF_PROJ = re.compile(r"^prompt_learner\.proj\.(weight|bias)$")


def is_maple_reference_state(state: Mapping[str, torch.Tensor]) -> bool:
    """True for the reference CustomCLIP layout (``prompt_learner.*`` / ``image_encoder.*`` keys)."""
    return any(k.split(".", 1)[0] in ("prompt_learner", "image_encoder", "text_encoder")
               or k.startswith("module.prompt_learner.") for k in state)


def map_maple_reference_state(state: Mapping[str, torch.Tensor]) -> ReferenceVLState:
    """Split a reference MaPLe state dict into our prompt keys (``prompts``), CLIP backbone keys
    (``backbone``, open_clip names), skipped class-name buffers and unexpected keys (module docstring)."""
    prompts: Dict[str, torch.Tensor] = {}
    rest: Dict[str, torch.Tensor] = {}
    ivlp_prompts: List[str] = []
    for k, v in state.items():
        key = k[len("module."):] if k.startswith("module.") else k
        m_text, m_proj, m0 = _REF_COMPOUND_TEXT.match(key), _REF_COMPOUND_PROJ.match(key), _REF_PROJ.match(key)
        if key == "image_encoder.VPT" or key.endswith(".VPT_shallow"):
            ivlp_prompts.append(key)  # IVLP's independent prompts have no place in MaPLe
        elif m_text:
            prompts[f"text_prompts.layer{int(m_text.group(1)) + 1}"] = v
        elif m_proj:
            prompts[f"couplings.{int(m_proj.group(1)) + 1}.{m_proj.group(2)}"] = v
        elif m0:
            prompts[f"couplings.0.{m0.group(1)}"] = v
        else:
            rest[key] = v
    # the rest has the IVLP/PromptSRC layout: prompt_learner.ctx, class-name buffers, CLIP towers
    out = split_reference_vl_state(rest)
    out.unexpected.extend(ivlp_prompts)
    out.prompts.update(prompts)
    return out
