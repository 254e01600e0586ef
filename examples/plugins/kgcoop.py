"""KgCoOp as a plug-in: Knowledge-guided Context Optimization (Yao, Zhang and Xu, CVPR 2023).

Load it without editing the package::

    python train.py --plugin examples/plugins/kgcoop.py --trainer KgCoOp \\
        --config-file examples/plugins/configs/KgCoOp/vit_b16_ep100_ctxv1.yaml ...
    PROMPTKD_PLUGINS=examples/plugins/kgcoop.py bash scripts/kgcoop/base2new_train.sh dtd 1

The method is CoOp (a learned context shared by all classes, cross-entropy on CLIP's cosine logits)
plus one regulariser that keeps the learned class text features close to the hand-crafted ones of the
frozen CLIP:

    L = L_ce + lambda * L_kg,   L_kg = 1/N_c * sum_i (1 - cos(w_i, w_i^clip))
                                     = 1/(2 N_c) * sum_i ||w_i - w_i^clip||_2^2   (unit vectors)

with ``w_i = norm(g(ctx, class_i))`` the text feature of the learned prompt of training class i and
``w_i^clip = norm(g(template(class_i)))`` the frozen CLIP's feature of the dataset's hand-crafted
prompt (computed once per run). The paper writes L_kg as the mean squared Euclidean distance; its
released code computes ``1 - mean cos``, half of it for unit vectors, and its published numbers
(lambda = 8.0 for base-to-novel) were produced with that form, which :func:`kg_loss` computes.
Differences from the released code: the loss is also applied under ``PREC amp`` (the released
trainer dropped it there) and nothing is wrapped in DataParallel.

Everything else comes from the project: the prompt learner, model and evaluation of
``trainers.coop``, the shared training step (``PromptTrainer.optimize``), the hand-crafted features
of ``trainers.common.templates.template_text_features`` and the dataset templates of ``trainers.common.templates``.
The config node is ``TRAINER.KGCOOP`` (added by :func:`extend_cfg`, which ``train.py`` calls for
every plug-in); the checkpoint holds only ``ctx``, under the reference's name ``prompt_learner``.
"""

from __future__ import annotations

import logging
from typing import Dict

import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

from engine.api import TRAINER_REGISTRY
from trainers.common.templates import dataset_template, template_text_features
from trainers.coop import CoOp

logger = logging.getLogger(__name__)

__all__ = ["KgCoOp", "extend_cfg", "kg_loss", "handcrafted_template", "RELEASED_TEMPLATES"]

#: Where the released KgCoOp code used another hand-crafted template than CoOp's zero-shot one.
RELEASED_TEMPLATES: Dict[str, str] = {"DescribableTextures": "a photo of a {}, a type of texture."}


def extend_cfg(cfg: CN) -> None:
    """TRAINER.KGCOOP: CoOp's prompt keys plus the weight ``W`` (lambda) and the hand-crafted ``TEMPLATE``."""
    if "KGCOOP" in cfg.TRAINER:
        return
    cfg.TRAINER.KGCOOP = CN()
    cfg.TRAINER.KGCOOP.N_CTX = 4  # context vectors (overridden by the token count of CTX_INIT when set)
    cfg.TRAINER.KGCOOP.CTX_INIT = "a photo of a"  # words initialising the context ("" = random N(0, 0.02^2))
    cfg.TRAINER.KGCOOP.CSC = False  # class-specific contexts (the paper uses one shared context)
    cfg.TRAINER.KGCOOP.CLASS_TOKEN_POSITION = "end"  # end | middle | front
    cfg.TRAINER.KGCOOP.PREC = "fp16"  # fp32 | fp16 | amp | bf16
    cfg.TRAINER.KGCOOP.W = 8.0  # lambda, weight of L_kg (8.0 in the paper's base-to-novel setting)
    cfg.TRAINER.KGCOOP.TEMPLATE = ""  # hand-crafted prompt, "{}" = class name; "" = the dataset's (see below)


def handcrafted_template(cfg: CN) -> str:
    """``TRAINER.KGCOOP.TEMPLATE``, or the released code's template for the dataset (CoOp's zero-shot
    template, except DescribableTextures: :data:`RELEASED_TEMPLATES`)."""
    template = str(cfg.TRAINER.KGCOOP.TEMPLATE).strip()
    if not template:
        template = RELEASED_TEMPLATES.get(cfg.DATASET.NAME) or dataset_template(cfg)
    if template.count("{}") != 1:
        raise ValueError(f"TRAINER.KGCOOP.TEMPLATE = {template!r} must contain exactly one '{{}}' (the class name)")
    return template


def kg_loss(learned: torch.Tensor, handcrafted: torch.Tensor) -> torch.Tensor:
    """L_kg = mean_i (1 - cos(learned_i, handcrafted_i)) over the classes (fp32, scalar); both [C, D].

    Equal to half the mean squared Euclidean distance between the L2-normalised features.
    """
    if learned.shape != handcrafted.shape:
        raise ValueError(f"kg_loss: learned {list(learned.shape)} and hand-crafted {list(handcrafted.shape)} "
                         "features must have the same shape [classes, dim]")
    a = F.normalize(learned.float(), dim=-1)
    b = F.normalize(handcrafted.float(), dim=-1)
    return 1.0 - (a * b).sum(dim=-1).mean()


@TRAINER_REGISTRY.register()
class KgCoOp(CoOp):
    """KgCoOp trainer: L = CE(exp(logit_scale) * cos(image, w), y) + W * L_kg(w, w^clip); only ``ctx`` trains."""

    CFG_NODE = "KGCOOP"

    def build_model(self) -> None:
        super().build_model()
        self.kg_weight = float(self.cfg.TRAINER.KGCOOP.W)
        if self.kg_weight < 0:
            raise ValueError(f"TRAINER.KGCOOP.W = {self.kg_weight}: the weight of L_kg must be >= 0")
        self.kg_template = handcrafted_template(self.cfg)
        # w^clip of the training classes, once: the frozen tower does not change during training
        self.kg_text_features = template_text_features(self.model.backbone, self.train_classnames, [self.kg_template],
                                                       autocast=self.autocast)
        logger.info("KgCoOp: lambda (TRAINER.KGCOOP.W) = %g, hand-crafted template %r for %d training classes",
                    self.kg_weight, self.kg_template, len(self.train_classnames))

    def forward_backward(self, batch) -> Dict[str, float]:
        images, labels = self.parse_batch_train(batch)
        with self.autocast():
            text = self.model.encode_text()
            image = self.model.encode_image(images)
        logits = self.model.logits(image, text)
        loss_ce = F.cross_entropy(logits, labels)
        loss_kg = kg_loss(text, self.kg_text_features)
        loss = loss_ce + self.kg_weight * loss_kg
        grad_norm = self.optimize(loss)
        acc = (logits.argmax(dim=1) == labels).float().mean().item() * 100.0
        return {"loss": loss.item(), "loss_ce": loss_ce.item(), "loss_kg": loss_kg.item(), "acc": acc,
                "grad_norm": grad_norm}
