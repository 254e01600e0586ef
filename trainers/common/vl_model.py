"""The IVLP model (docs/REFERENCE.md M2, T5): a frozen CLIP with independent deep prompts in both towers.

Used by the IVLP and PromptSRC trainers (and, for its text branch, by the PromptKD teacher). Only
``text_prompts.layer*`` and ``image_prompts.layer*`` are trainable; the CLIP model is held as the
frozen sub-module ``backbone`` and stays in eval mode even when the wrapper is put in train mode.

:class:`FrozenCLIPModel` is that frozen-backbone part on its own (class set, logit scale, prompted
encoders, cosine logits), the base of :class:`VLPromptCLIP`, ``trainers.coop.CoOpCLIP`` and
``trainers.common.maple_model.MaPLeCLIP``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import clip

from .prompts import TextPromptLearner, VisualPromptStack


def tower_dtype(module: nn.Module) -> torch.dtype:
    """Compute dtype of a frozen tower: fp16/bf16 when its matmul weights were stored in low precision
    (LayerNorms and embeddings stay fp32 in OpenAI-style mixed precision, so they do not count)."""
    if isinstance(getattr(module, "conv1", None), nn.Module):
        return module.conv1.weight.dtype
    if callable(getattr(module, "get_cast_dtype", None)):
        return module.get_cast_dtype()
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def cast_prompts(prompts: Optional[List[torch.Tensor]], dtype: torch.dtype) -> Optional[List[torch.Tensor]]:
    """Differentiable cast of fp32 prompt parameters to the tower dtype (no-op for fp32 towers)."""
    return None if prompts is None else [p.to(dtype) for p in prompts]


def cosine_logits(image_features: torch.Tensor, class_features: torch.Tensor, scale) -> torch.Tensor:
    """``scale * norm(image) @ norm(class).T`` in fp32, with autocast disabled (logits are never low precision)."""
    with torch.autocast(device_type=image_features.device.type, enabled=False):
        img = F.normalize(image_features.float(), dim=-1)
        cls = F.normalize(class_features.float(), dim=-1)
        scale = scale.float() if isinstance(scale, torch.Tensor) else float(scale)
        return scale * img @ cls.t()


class FrozenCLIPModel(nn.Module):
    """Base of the prompted-CLIP wrappers (CoOp/CoCoOp, MaPLe, IVLP/PromptSRC/PromptKD teacher).

    The CLIP model is the frozen sub-module ``backbone`` and stays in eval mode even when the wrapper is
    put in train mode. The text prompt module (attribute named by ``TEXT_LEARNER``) owns the class set
    (``classnames`` / ``set_classnames``) and returns ``(token_embeds, token_ids[, deep_prompts])``.
    ``forward(images)`` -> logits ``exp(logit_scale) * norm(img) @ norm(text).T`` [B, C] (fp32).
    """

    #: attribute holding the text prompt module
    TEXT_LEARNER: str = "text_prompts"

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        self.backbone = clip_model

    def train(self, mode: bool = True) -> "FrozenCLIPModel":
        super().train(mode)
        self.backbone.eval()  # frozen tower: never in train mode
        return self

    @property
    def text_learner(self) -> nn.Module:
        return getattr(self, self.TEXT_LEARNER)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.backbone.logit_scale.detach().float().exp()

    @property
    def classnames(self) -> List[str]:
        return self.text_learner.classnames

    def set_classnames(self, classnames: Sequence[str]) -> None:
        self.text_learner.set_classnames(classnames)

    def encode_prompts(self, token_embeds: torch.Tensor, token_ids: torch.Tensor,
                       deep_prompts: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        """Text features [R, D] (fp32, unnormalised) of prompt embeddings (+ deep text prompts) through the
        frozen text tower at its dtype (shared :func:`clip.encode_text`)."""
        dtype = tower_dtype(self.backbone.transformer)
        return clip.encode_text(self.backbone, token_embeds.to(dtype), token_ids,
                                deep_prompts=cast_prompts(deep_prompts, dtype), n_ctx=self.text_learner.n_ctx).float()

    def encode_text(self) -> torch.Tensor:
        """Prompted text features for the current class set [C, D] (fp32, unnormalised)."""
        return self.encode_prompts(*self.text_learner())

    def encode_prompted_image(self, images: torch.Tensor,
                              prompts: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        """Image features [B, D] (fp32, unnormalised) with visual prompts (None: plain CLIP)."""
        visual = self.backbone.visual
        dtype = tower_dtype(visual)
        return clip.encode_image(visual, images.to(dtype), prompts=cast_prompts(prompts, dtype)).float()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_prompted_image(images)

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(image_features, text_features, self.logit_scale)

    def forward(self, images: torch.Tensor, text_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        if text_features is None:
            text_features = self.encode_text()
        return self.logits(self.encode_image(images), text_features)


class VLPromptCLIP(FrozenCLIPModel):
    """Frozen CLIP + :class:`TextPromptLearner` + :class:`VisualPromptStack`.

    ``encode_text()`` -> prompted text features for the current class set [C, D] (fp32, unnormalised);
    ``encode_image(images, prompted)`` -> [B, D] (fp32, unnormalised);
    ``forward(images)`` -> logits ``exp(logit_scale) * norm(img) @ norm(text).T`` [B, C] (fp32).
    """

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx_text: int, depth_text: int,
                 ctx_init: str, n_ctx_vision: int, depth_vision: int) -> None:
        info = clip.model_info(clip_model)
        if depth_text > info.text_layers or depth_vision > info.vision_layers:
            raise ValueError(
                f"prompt depth (text {depth_text}, vision {depth_vision}) exceeds the CLIP towers' number of blocks "
                f"(text {info.text_layers}, vision {info.vision_layers}); lower PROMPT_DEPTH_TEXT / PROMPT_DEPTH_VISION"
            )
        super().__init__(clip_model)
        self.text_prompts = TextPromptLearner(clip_model, classnames, n_ctx_text, depth_text, ctx_init)
        self.image_prompts = VisualPromptStack(n_ctx_vision, depth_vision, info.vision_width)
        self.embed_dim = int(info.embed_dim)

    def encode_image(self, images: torch.Tensor, prompted: bool = True) -> torch.Tensor:
        return self.encode_prompted_image(images, self.image_prompts() if prompted else None)
