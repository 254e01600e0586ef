"""Zero-shot CLIP baselines (docs/REFERENCE.md T1).

- ``ZeroshotCLIP``: the dataset's template (``dataset.template``: the benchmark's hand-crafted one, or
  ``DATASET.CUSTOM.TEMPLATE`` for custom data).
- ``ZeroshotCLIP2``: prompt ensemble over ``IMAGENET_TEMPLATES_SELECT`` plus the dataset's template
  for every dataset except ImageNet (per-template normalised features averaged, then renormalised).
  The template list is built per instance (the reference extended a class attribute in place,
  docs/REFERENCE.md D13).

Nothing is trained or registered; use ``--eval-only`` (no ``--model-dir`` needed). With
``DATASET.EVAL_PROTOCOL base2novel`` the text features are recomputed for each evaluation set's
classes, which gives the CLIP row of the base-to-novel table.
"""

from __future__ import annotations

import logging
from typing import List, Sequence

import torch
from yacs.config import CfgNode as CN

from engine.api import TRAINER_REGISTRY

from .common.backbone import build_clip
from .common.base import PromptTrainer
from .common.templates import IMAGENET_TEMPLATES_SELECT, template_text_features
from .common.vl_model import cosine_logits

logger = logging.getLogger(__name__)


def add_config(cfg: CN) -> None:
    """TRAINER.ZSCLIP (not in the reference, which loads CLIP in fp16 for zero-shot evaluation)."""
    cfg.TRAINER.ZSCLIP = CN()
    cfg.TRAINER.ZSCLIP.PREC = "fp16"  # fp32 | fp16 (CLIP weights in half, as the reference) | amp | bf16


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(PromptTrainer):
    """logits = exp(logit_scale) * norm(image) @ norm(text(template(class)))^T."""

    CFG_NODE = "ZSCLIP"

    def templates(self) -> List[str]:
        """The dataset's own template (``dataset.template``: the benchmark's, or DATASET.CUSTOM.TEMPLATE)."""
        return [self.dm.dataset.template]

    def build_model(self) -> None:
        self.clip_model = build_clip(self.cfg, prec=self.prec, device=self.device)
        self.template_list = self.templates()
        logger.info("Zero-shot templates: %s", self.template_list)
        self.logit_scale = float(self.clip_model.logit_scale.detach().float().exp().item())
        self.set_eval_classnames(self.train_classnames)

    def set_eval_classnames(self, classnames: Sequence[str]) -> None:
        """Normalised text features [C, D]: per-template normalised, averaged over templates, renormalised."""
        self.text_features = template_text_features(self.clip_model, list(classnames), self.template_list,
                                                    autocast=self.autocast)

    @torch.no_grad()
    def model_inference(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.clip_model.encode_image(images.to(self.clip_model.visual.conv1.weight.dtype))
        return cosine_logits(feats, self.text_features, self.logit_scale)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling: the 7 selected ImageNet templates (+ the dataset template, except for ImageNet)."""

    def templates(self) -> List[str]:
        own = [self.dm.dataset.template] if self.cfg.DATASET.NAME != "ImageNet" else []
        return list(IMAGENET_TEMPLATES_SELECT) + own
