"""CoCoOp: conditional context optimisation (Zhou et al., CVPR 2022; docs/REFERENCE.md M4, T3).

CoOp's shared context (``end`` layout, no CSC) is shifted per image by a meta-net applied to the
L2-normalised image feature ``f``:  ``pi = linear2(relu(linear1(f)))`` with
``linear1: vis_dim -> vis_dim // 16`` and ``linear2: -> text width`` (dimensions read from the model),
``ctx_i = ctx + pi_i`` for every context vector. Every image gets its own prompts for ALL C classes;
the logits are ``exp(logit_scale) * <f_i, norm(text(ctx_i, class c))>`` -> [B, C], trained with
cross-entropy.

The reference runs B text-encoder passes of C prompts; here the B*C prompts are flattened and
encoded in chunks of ``TRAINER.COCOOP.TEXT_CHUNK_SIZE`` prompts (same result; bounds the memory of one
pass, and lets small batches use one pass). The prompt learner (``ctx`` + ``meta_net.linear1/2``) is
registered as "prompt_learner" with the reference's key names, so reference checkpoints load.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

import clip
from engine.api import TRAINER_REGISTRY

from .coop import CoOp, CoOpCLIP, CoOpPromptLearner


def add_config(cfg: CN) -> None:
    """TRAINER.COCOOP (docs/REFERENCE.md C1 keys and defaults + the text-encoder chunk size)."""
    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16  # context vectors (overridden by the token count of CTX_INIT when set)
    cfg.TRAINER.COCOOP.CTX_INIT = ""  # words initialising the context ("" = random N(0, 0.02^2))
    cfg.TRAINER.COCOOP.PREC = "fp16"  # fp32 | fp16 (frozen CLIP in half) | amp | bf16
    # (image, class) prompts per text-encoder pass; lower it if B x C prompts do not fit in memory
    cfg.TRAINER.COCOOP.TEXT_CHUNK_SIZE = 1024


class CoCoOpPromptLearner(CoOpPromptLearner):
    """CoOp's generic context + the meta-net (reference key names ``ctx``, ``meta_net.linear{1,2}.*``)."""

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx: int, ctx_init: str = "") -> None:
        super().__init__(clip_model, classnames, n_ctx, ctx_init, csc=False, class_token_position="end")
        vis_dim = int(clip.model_info(clip_model).embed_dim)
        hidden = max(1, vis_dim // 16)
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, hidden)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(hidden, self.width)),
        ]))

    def conditional_contexts(self, image_features: torch.Tensor) -> torch.Tensor:
        """Per-image contexts [B, N_CTX, W] = ctx + pi_i (the same shift for every context vector), with
        pi [B, W] = meta_net(L2-normalised image features [B, vis_dim])."""
        return self.ctx.unsqueeze(0) + self.meta_net(image_features.to(self.ctx.dtype)).unsqueeze(1)


class CoCoOpCLIP(CoOpCLIP):
    """Frozen CLIP + :class:`CoCoOpPromptLearner`; ``forward(images)`` -> per-image logits [B, C]."""

    def __init__(self, clip_model: nn.Module, prompt_learner: CoCoOpPromptLearner, chunk_size: int = 1024) -> None:
        super().__init__(clip_model, prompt_learner)
        if int(chunk_size) < 1:
            raise ValueError(f"TRAINER.COCOOP.TEXT_CHUNK_SIZE = {chunk_size}: need >= 1 prompt per text-encoder pass")
        self.chunk_size = int(chunk_size)

    def conditional_logits(self, image_features: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] of normalised image features [B, D] against their own prompts ``contexts``
        [B, N_CTX, W]: the B*C (image, class) prompts are encoded in chunks."""
        learner = self.prompt_learner
        n_img, n_cls = image_features.shape[0], learner.n_classes
        scores = []
        for flat in torch.arange(n_img * n_cls, device=image_features.device).split(self.chunk_size):
            img_idx, cls_idx = flat // n_cls, flat % n_cls
            text = self.encode_prompts(learner.assemble(contexts[img_idx], cls_idx), learner.token_ids[cls_idx])
            with torch.autocast(device_type=flat.device.type, enabled=False):  # logits in fp32
                text = F.normalize(text.float(), dim=-1)
                scores.append((image_features[img_idx].float() * text).sum(dim=-1))
        return self.logit_scale * torch.cat(scores).view(n_img, n_cls)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        img = F.normalize(self.encode_image(images), dim=-1)
        return self.conditional_logits(img, self.prompt_learner.conditional_contexts(img))


@TRAINER_REGISTRY.register()
class CoCoOp(CoOp):
    """CoCoOp trainer: CE on per-image conditioned prompt logits; learns ``ctx`` and the meta-net."""

    CFG_NODE = "COCOOP"

    def build_prompted_model(self, clip_model: nn.Module) -> CoCoOpCLIP:
        node = self.cfg.TRAINER.COCOOP
        learner = CoCoOpPromptLearner(clip_model, self.train_classnames, int(node.N_CTX), node.CTX_INIT)
        return CoCoOpCLIP(clip_model, learner, int(node.TEXT_CHUNK_SIZE))

    @torch.no_grad()
    def model_inference(self, images: torch.Tensor) -> torch.Tensor:
        # text features depend on the image: nothing to cache
        return self.model(images)
