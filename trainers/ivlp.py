"""IVLP: independent vision-language deep prompting (docs/REFERENCE.md T5, PromptSRC repo independentVL.py).

Both CLIP towers get deep prompts (docs/REFERENCE.md M2); the loss is cross-entropy over the prompted logits. The
trainable parameters are the text prompts (``text_prompts.layer0`` = the reference's
``prompt_learner.ctx`` and the deep text prompts) and the visual prompts; checkpoints are registered
as "VLPromptLearner" like the reference and hold only these tensors.
"""

from __future__ import annotations

import logging
from typing import Dict

import torch
from yacs.config import CfgNode as CN

from engine.api import TRAINER_REGISTRY

from .common.checkpoints import (
    CheckpointKeyError,
    check_reference_backbone,
    format_keys,
    is_reference_vl_state,
    split_reference_vl_state,
)
from .common.frozen_clip import PromptedCLIPTrainer
from .common.vl_model import VLPromptCLIP

logger = logging.getLogger(__name__)

__all__ = ["IVLP", "VLPromptTrainer", "add_config", "vl_prompt_node"]


def vl_prompt_node(n_ctx: int, depth: int = 9) -> CN:
    """The IVLP-style prompt keys of TRAINER.IVLP and TRAINER.PROMPTSRC (docs/REFERENCE.md C1): the same
    number of context tokens and layers in both towers by default."""
    node = CN()
    node.N_CTX_VISION = n_ctx  # visual prompt tokens per layer (Nv)
    node.N_CTX_TEXT = n_ctx  # text context tokens per layer (Nt)
    node.CTX_INIT = "a photo of a"  # words initialising the layer-0 text context
    node.PREC = "fp16"  # fp32 | fp16 (frozen towers in half) | amp | bf16
    node.PROMPT_DEPTH_VISION = depth  # Jv: layers with visual prompts (0 = none)
    node.PROMPT_DEPTH_TEXT = depth  # Jt: layers with text prompts (>= 1)
    return node


def add_config(cfg: CN) -> None:
    """TRAINER.IVLP (docs/REFERENCE.md C1 defaults: Nv = Nt = 2, Jv = Jt = 9)."""
    cfg.TRAINER.IVLP = vl_prompt_node(n_ctx=2)


class VLPromptTrainer(PromptedCLIPTrainer):
    """Shared body of IVLP and PromptSRC (and MaPLe): builds :class:`VLPromptCLIP`, registers
    "VLPromptLearner", evaluates with text features computed once per class set, loads reference checkpoints."""

    REGISTERED_NAME = "VLPromptLearner"

    def build_model(self) -> None:
        node = self.cfg.TRAINER[self.CFG_NODE]
        self.model = VLPromptCLIP(
            self.build_backbone(), self.train_classnames, node.N_CTX_TEXT, node.PROMPT_DEPTH_TEXT, node.CTX_INIT,
            node.N_CTX_VISION, node.PROMPT_DEPTH_VISION,
        ).to(self.device)
        self.build_extra()
        self.register_trainable(self.model)

    def build_extra(self) -> None:
        """Trainer-specific additions after the model is built (PromptSRC's frozen text features)."""

    def checkpoint_meta(self, name: str) -> Dict:
        meta = super().checkpoint_meta(name)
        meta["ctx_init"] = self.model.text_prompts.ctx_init
        node = self.cfg.TRAINER[self.CFG_NODE]  # the depths the teacher loader checks the keys against
        if "PROMPT_DEPTH_TEXT" in node and "PROMPT_DEPTH_VISION" in node:
            meta.setdefault("prompt", {"depth_text": int(node.PROMPT_DEPTH_TEXT),
                                       "depth_vision": int(node.PROMPT_DEPTH_VISION)})
        return meta

    # ------------------------------------------------------------------ reference checkpoints
    def convert_checkpoint_state(self, name: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Released IVLP/PromptSRC checkpoints (whole CustomCLIP, docs/REFERENCE.md M6) -> our prompt keys.

        Their CLIP tower weights are checked against the frozen backbone (they must be the same
        weights, up to the fp16 storage of the release) rather than silently dropped.
        """
        if not is_reference_vl_state(state_dict):
            return state_dict
        ref = split_reference_vl_state(state_dict)
        if ref.unexpected:
            raise CheckpointKeyError(f"reference checkpoint: unexpected keys {format_keys(ref.unexpected)}")
        check_reference_backbone(self.model.backbone, ref.backbone, self.cfg.MODEL.BACKBONE.NAME)
        logger.info("Reference checkpoint: %d prompt tensors mapped; %d CLIP tensors match the backbone; "
                    "%d skipped (%s)", len(ref.prompts), len(ref.backbone), len(ref.skipped),
                    "class-name buffers / ZS_image_encoder")
        return dict(ref.prompts)


@TRAINER_REGISTRY.register()
class IVLP(VLPromptTrainer):
    """IVLP trainer: L = CE(exp(logit_scale) * cos(prompted image, prompted text), y)."""

    CFG_NODE = "IVLP"
