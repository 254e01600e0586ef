"""IVLP: independent vision-language deep prompting (reference §3.5, PromptSRC repo independentVL.py).

Both CLIP towers get deep prompts (§2.2); the loss is cross-entropy over the prompted logits. The
trainable parameters are the text prompts (``text_prompts.layer0`` = the reference's
``prompt_learner.ctx`` and the deep text prompts) and the visual prompts; checkpoints are registered
as "VLPromptLearner" like the reference and hold only these tensors.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

from engine.api import TRAINER_REGISTRY

from .common.backbone import build_clip, check_input_size
from .common.base import PromptTrainer
from .common.checkpoints import CheckpointKeyError, _fmt, is_reference_vl_state, split_reference_vl_state
from .common.vl_model import VLPromptCLIP

logger = logging.getLogger(__name__)

__all__ = ["IVLP", "VLPromptTrainer", "add_config"]


def add_config(cfg: CN) -> None:
    """TRAINER.IVLP (reference §4.1 defaults)."""
    cfg.TRAINER.IVLP = CN()
    cfg.TRAINER.IVLP.N_CTX_VISION = 2  # visual prompt tokens per layer (Nv)
    cfg.TRAINER.IVLP.N_CTX_TEXT = 2  # text context tokens per layer (Nt)
    cfg.TRAINER.IVLP.CTX_INIT = "a photo of a"  # words initialising the layer-0 text context
    cfg.TRAINER.IVLP.PREC = "fp16"  # fp32 | fp16 (frozen towers in half) | amp | bf16
    cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION = 9  # Jv: layers with visual prompts (0 = none)
    cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT = 9  # Jt: layers with text prompts (>= 1)


class VLPromptTrainer(PromptTrainer):
    """Shared body of IVLP and PromptSRC: builds :class:`VLPromptCLIP`, registers "VLPromptLearner",
    evaluates with text features computed once per class set, loads reference checkpoints."""

    REGISTERED_NAME = "VLPromptLearner"

    def build_model(self) -> None:
        cfg = self.cfg
        node = cfg.TRAINER[self.CFG_NODE]
        clip_model = build_clip(cfg, prec=self.prec, device=self.device)
        check_input_size(cfg, clip_model, cfg.MODEL.BACKBONE.NAME)
        self.model = VLPromptCLIP(
            clip_model, self.train_classnames, node.N_CTX_TEXT, node.PROMPT_DEPTH_TEXT, node.CTX_INIT,
            node.N_CTX_VISION, node.PROMPT_DEPTH_VISION,
        ).to(self.device)
        self._text_cache: Optional[torch.Tensor] = None
        self.build_extra()
        optim, sched = self.build_optim_sched(self.model.parameters())
        self.optim, self.sched = optim, sched
        self.register_model(self.REGISTERED_NAME, self.model, optim, sched)

    def build_extra(self) -> None:
        """Trainer-specific additions after the model is built (PromptSRC's frozen text features)."""

    def checkpoint_meta(self, name: str) -> Dict:
        meta = super().checkpoint_meta(name)
        meta["ctx_init"] = self.model.text_prompts.ctx_init
        return meta

    # ------------------------------------------------------------------ evaluation
    def set_eval_classnames(self, classnames: Sequence[str]) -> None:
        if list(classnames) != self.model.classnames:
            self.model.set_classnames(classnames)
        self._text_cache = None

    def set_model_mode(self, mode: str = "train", names=None) -> None:
        super().set_model_mode(mode, names)
        self._text_cache = None  # prompts may change; recompute text features on the next evaluation

    def after_load_model(self) -> None:
        self._text_cache = None

    @torch.no_grad()
    def model_inference(self, images: torch.Tensor) -> torch.Tensor:
        if self._text_cache is None:
            self._text_cache = self.model.encode_text()
        return self.model(images, text_features=self._text_cache)

    def parse_batch_train(self, batch: Dict) -> Tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    # ------------------------------------------------------------------ reference checkpoints
    def convert_checkpoint_state(self, name: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Released IVLP/PromptSRC checkpoints (whole CustomCLIP, §2.6) -> our prompt keys.

        Their CLIP tower weights are checked against the frozen backbone (they must be the same
        weights, up to the fp16 storage of the release) rather than silently dropped.
        """
        if not is_reference_vl_state(state_dict):
            return state_dict
        ref = split_reference_vl_state(state_dict)
        if ref.unexpected:
            raise CheckpointKeyError(f"reference checkpoint: unexpected keys {_fmt(ref.unexpected)}")
        own = self.model.backbone.state_dict()
        unknown = sorted(k for k in ref.backbone if k not in own)
        if unknown:
            raise CheckpointKeyError(f"reference checkpoint: CLIP keys not in {self.cfg.MODEL.BACKBONE.NAME}: {_fmt(unknown)}")
        differing = [k for k, v in ref.backbone.items()
                     if own[k].shape != v.shape or not torch.allclose(own[k].float().cpu(), v.float(), atol=1e-2, rtol=1e-2)]
        if differing:
            raise ValueError(
                f"reference checkpoint: {len(differing)} CLIP tensors differ from the backbone "
                f"{self.cfg.MODEL.BACKBONE.NAME!r} (e.g. {differing[:3]}); it was trained on another CLIP model"
            )
        logger.info("Reference checkpoint: %d prompt tensors mapped; %d CLIP tensors match the backbone; "
                    "%d skipped (%s)", len(ref.prompts), len(ref.backbone), len(ref.skipped),
                    "class-name buffers / ZS_image_encoder")
        return dict(ref.prompts)


@TRAINER_REGISTRY.register()
class IVLP(VLPromptTrainer):
    """IVLP trainer: L = CE(exp(logit_scale) * cos(prompted image, prompted text), y)."""

    CFG_NODE = "IVLP"

    def forward_backward(self, batch) -> Dict[str, float]:
        images, labels = self.parse_batch_train(batch)
        with self.autocast():
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels)
        grad_norm = self.optimize(loss)
        acc = (logits.argmax(dim=1) == labels).float().mean().item() * 100.0
        return {"loss": loss.item(), "acc": acc, "grad_norm": grad_norm}
