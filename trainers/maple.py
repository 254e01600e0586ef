"""MaPLe: multi-modal prompt learning (Khattak et al., CVPR 2023; docs/REFERENCE.md M3, T4).

The trainer: cross-entropy over ``exp(logit_scale) * cos(prompted image, prompted text)``, trainable text
prompts and their text -> vision couplings, registered as "MultiModalPromptLearner". The model (the coupled
prompts, 3,555,072 trainable parameters for ViT-B/16, J = 9, N = 2) and the key map between our checkpoints
and the released ones live in :mod:`trainers.common.maple_model`, which a MaPLe PromptKD teacher shares.
"""

from __future__ import annotations

import logging
from typing import Dict

import torch
from yacs.config import CfgNode as CN

from engine.api import TRAINER_REGISTRY

from .common.base import PromptTrainer
from .common.checkpoints import CheckpointKeyError, check_reference_backbone, format_keys
from .common.maple_model import MaPLeCLIP, is_maple_reference_state, map_maple_reference_state

logger = logging.getLogger(__name__)

__all__ = [
    "MaPLe",
    "MaPLeCLIP",
    "add_config",
    "is_maple_reference_state",
    "map_maple_reference_state",
    "check_reference_backbone",
]


def add_config(cfg: CN) -> None:
    """TRAINER.MAPLE (docs/REFERENCE.md C1 keys and defaults)."""
    cfg.TRAINER.MAPLE = CN()
    cfg.TRAINER.MAPLE.N_CTX = 2  # context tokens per layer (text and, through the couplings, vision)
    cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"  # words initialising the layer-0 text context
    cfg.TRAINER.MAPLE.PREC = "fp16"  # fp32 | fp16 (frozen CLIP in half) | amp | bf16
    cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9  # J: layers with coupled prompts (>= 1)


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    """MaPLe trainer: L = CE(exp(logit_scale) * cos(prompted image, prompted text), y)."""

    CFG_NODE = "MAPLE"
    REGISTERED_NAME = "MultiModalPromptLearner"

    def build_model(self) -> None:
        node = self.cfg.TRAINER.MAPLE
        self.model = MaPLeCLIP(self.build_backbone(), self.train_classnames, int(node.N_CTX),
                               int(node.PROMPT_DEPTH), node.CTX_INIT).to(self.device)
        self.register_trainable(self.model)
        self.load_init_weights()

    def checkpoint_meta(self, name: str) -> Dict:
        meta = super().checkpoint_meta(name)
        meta.update(ctx_init=self.model.text_prompts.ctx_init, n_ctx=self.model.text_prompts.n_ctx,
                    prompt_depth=self.model.depth)
        return meta

    def convert_checkpoint_state(self, name: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Released MaPLe checkpoints (whole CustomCLIP) -> our prompt keys; their CLIP tensors are checked
        against the frozen backbone. Our own checkpoints pass through unchanged."""
        if not is_maple_reference_state(state_dict):
            return state_dict
        ref = map_maple_reference_state(state_dict)
        if ref.unexpected:
            raise CheckpointKeyError(f"reference MaPLe checkpoint: unexpected keys {format_keys(ref.unexpected)}")
        check_reference_backbone(self.model.backbone, ref.backbone, self.cfg.MODEL.BACKBONE.NAME,
                                 "reference MaPLe checkpoint")
        logger.info("Reference MaPLe checkpoint: %d prompt tensors mapped; %d CLIP tensors match the backbone; "
                    "%d class-name buffers skipped", len(ref.prompts), len(ref.backbone), len(ref.skipped))
        return dict(ref.prompts)
