"""The shared trainer body of the prompt learners on a frozen CLIP (CoOp, CoCoOp, MaPLe, IVLP, PromptSRC).

Each of these trainers (docs/REFERENCE.md T2-T6) builds one :class:`~trainers.common.vl_model.FrozenCLIPModel`
as ``self.model``, registers its trainable part under the reference's name (``REGISTERED_NAME``) and
evaluates with the prompted text features computed once per class set (they do not depend on the image).
The baseline loss is the reference's cross-entropy on ``exp(logit_scale) * cos`` logits.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import build_clip, check_input_size
from .base import PromptTrainer

logger = logging.getLogger(__name__)

__all__ = ["PromptedCLIPTrainer", "load_init_weights"]


def load_init_weights(trainer: PromptTrainer, name: str) -> None:
    """``MODEL.INIT_WEIGHTS``: strictly load a checkpoint file into the registered model ``name``
    before training (the reference's ``load_pretrained_weights``, without its silent key skipping)."""
    path = trainer.cfg.MODEL.INIT_WEIGHTS
    if not path:
        return
    trainer.load_checkpoint_into(name, path)
    logger.info("Initialised %s from MODEL.INIT_WEIGHTS = %s", name, path)


class PromptedCLIPTrainer(PromptTrainer):
    """A trainer whose ``self.model`` is a frozen CLIP with prompts (``FrozenCLIPModel``).

    Provides the backbone construction, the registration of the trainable module, the cross-entropy
    step and the evaluation with cached text features; subclasses implement ``build_model``.
    """

    #: name the trainable module is registered (and checkpointed) under, as in the reference
    REGISTERED_NAME: str = ""
    #: text features of the current class set for evaluation (None: recompute on the next inference)
    _text_cache: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ model
    def build_backbone(self) -> nn.Module:
        """The frozen CLIP of ``MODEL.BACKBONE.NAME`` at the trainer's precision, checked against INPUT.SIZE."""
        cfg = self.cfg
        clip_model = build_clip(cfg, prec=self.prec, device=self.device)
        check_input_size(cfg, clip_model, cfg.MODEL.BACKBONE.NAME)
        return clip_model

    def register_trainable(self, module: nn.Module) -> None:
        """Optimiser + scheduler over ``module``'s trainable parameters; register it as ``REGISTERED_NAME``."""
        optim, sched = self.build_optim_sched(module.parameters())
        self.optim, self.sched = optim, sched
        self.register_model(self.REGISTERED_NAME, module, optim, sched)

    # ------------------------------------------------------------------ training
    def parse_batch_train(self, batch: Dict) -> Tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def forward_backward(self, batch) -> Dict[str, torch.Tensor]:
        """L = CE(exp(logit_scale) * cos(image, text), y) (CoOp / CoCoOp / MaPLe / IVLP)."""
        images, labels = self.parse_batch_train(batch)
        with self.autocast():
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels)
        grad_norm = self.optimize(loss)
        acc = (logits.detach().argmax(dim=1) == labels).float().mean() * 100.0
        return {"loss": loss.detach(), "acc": acc, "grad_norm": grad_norm}  # device tensors, read at PRINT_FREQ

    # ------------------------------------------------------------------ evaluation
    def set_eval_classnames(self, classnames: Sequence[str]) -> None:
        if list(classnames) != self.model.classnames:
            self.model.set_classnames(classnames)
        self._text_cache = None

    def set_model_mode(self, mode: str = "train", names=None) -> None:
        super().set_model_mode(mode, names)
        self.model.backbone.eval()  # frozen tower: never in train mode
        self._text_cache = None  # the prompts may have changed: recompute text features for evaluation

    def after_load_model(self) -> None:
        self._text_cache = None

    @torch.no_grad()
    def model_inference(self, images: torch.Tensor) -> torch.Tensor:
        if self._text_cache is None:
            self._text_cache = self.model.encode_text()
        return self.model(images, text_features=self._text_cache)
