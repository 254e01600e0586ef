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

from .common.checkpoints import (CheckpointKeyError, check_reference_backbone, format_keys, is_reference_vl_state,
                                 split_reference_vl_state)
from .common.base import PromptTrainer
from .common.vl_model import VLPromptCLIP

logger = logging.getLogger(__name__)


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


def build_vl_model(trainer: PromptTrainer) -> VLPromptCLIP:
    """The IVLP model (:class:`VLPromptCLIP`) of the trainer's config node on its frozen backbone (IVLP, PromptSRC)."""
    node = trainer.cfg.TRAINER[trainer.CFG_NODE]
    return VLPromptCLIP(
        trainer.build_backbone(), trainer.train_classnames, node.N_CTX_TEXT, node.PROMPT_DEPTH_TEXT, node.CTX_INIT,
        node.N_CTX_VISION, node.PROMPT_DEPTH_VISION,
    ).to(trainer.device)


@TRAINER_REGISTRY.register()
class IVLP(PromptTrainer):
    """IVLP trainer: L = CE(exp(logit_scale) * cos(prompted image, prompted text), y).

    PromptSRC shares its model (:func:`build_vl_model`) and checkpoint layout (:meth:`checkpoint_meta`,
    :meth:`convert_checkpoint_state`, written without ``super()`` so that PromptSRC can take them)."""

    CFG_NODE = "IVLP"
    REGISTERED_NAME = "VLPromptLearner"

    def build_model(self) -> None:
        self.model = build_vl_model(self)
        self.register_trainable(self.model)

    def checkpoint_meta(self, name: str) -> Dict:
        """The base metadata + CTX_INIT and the depths the teacher loader checks the keys against."""
        prompts = {"depth_text": self.model.text_prompts.depth, "depth_vision": self.model.image_prompts.depth}
        return {**PromptTrainer.checkpoint_meta(self, name), "ctx_init": self.model.text_prompts.ctx_init,
                "prompt": prompts}

    def convert_checkpoint_state(self, name: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Released IVLP/PromptSRC checkpoints (whole CustomCLIP, docs/REFERENCE.md M6) -> our prompt keys; our
        own checkpoints pass through unchanged.

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
