"""The IVLP model (reference §2.2, §3.5): a frozen CLIP with independent deep prompts in both towers.

Used by the IVLP and PromptSRC trainers (and, for its text branch, by the PromptKD teacher). Only
``text_prompts.layer*`` and ``image_prompts.layer*`` are trainable; the CLIP model is held as the
frozen sub-module ``backbone`` and stays in eval mode even when the wrapper is put in train mode.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import clip

from .prompts import TextPromptLearner, VisualPromptStack

logger = logging.getLogger(__name__)

__all__ = ["VLPromptCLIP", "tower_dtype", "cast_prompts", "cosine_logits"]


def tower_dtype(module: nn.Module) -> torch.dtype:
    """Compute dtype of a frozen tower: fp16/bf16 when its matmul weights were stored in low precision
    (LayerNorms and embeddings stay fp32 in OpenAI-style mixed precision, so they do not count)."""
    conv1 = getattr(module, "conv1", None)
    if isinstance(conv1, nn.Module):
        return conv1.weight.dtype
    get_cast_dtype = getattr(module, "get_cast_dtype", None)
    if callable(get_cast_dtype):
        return get_cast_dtype()
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def cast_prompts(prompts: Optional[List[torch.Tensor]], dtype: torch.dtype) -> Optional[List[torch.Tensor]]:
    """Differentiable cast of fp32 prompt parameters to the tower dtype (no-op for fp32 towers)."""
    if prompts is None:
        return None
    return [p.to(dtype) for p in prompts]


def cosine_logits(image_features: torch.Tensor, class_features: torch.Tensor, scale) -> torch.Tensor:
    """``scale * norm(image) @ norm(class).T`` in fp32, with autocast disabled (logits are never low precision)."""
    with torch.autocast(device_type=image_features.device.type, enabled=False):
        img = F.normalize(image_features.float(), dim=-1)
        cls = F.normalize(class_features.float(), dim=-1)
        scale = scale.float() if isinstance(scale, torch.Tensor) else float(scale)
        return scale * img @ cls.t()


class VLPromptCLIP(nn.Module):
    """Frozen CLIP + :class:`TextPromptLearner` + :class:`VisualPromptStack`.

    ``encode_text()`` -> prompted text features for the current class set [C, D] (fp32, unnormalised);
    ``encode_image(images, prompted)`` -> [B, D] (fp32, unnormalised);
    ``forward(images)`` -> logits ``exp(logit_scale) * norm(img) @ norm(text).T`` [B, C] (fp32).
    """

    def __init__(
        self,
        clip_model: nn.Module,
        classnames: Sequence[str],
        n_ctx_text: int,
        depth_text: int,
        ctx_init: str,
        n_ctx_vision: int,
        depth_vision: int,
    ) -> None:
        super().__init__()
        info = clip.model_info(clip_model)
        if depth_text > info.text_layers or depth_vision > info.vision_layers:
            raise ValueError(
                f"prompt depth (text {depth_text}, vision {depth_vision}) exceeds the CLIP towers' number of blocks "
                f"(text {info.text_layers}, vision {info.vision_layers}); lower PROMPT_DEPTH_TEXT / PROMPT_DEPTH_VISION"
            )
        self.backbone = clip_model
        self.text_prompts = TextPromptLearner(clip_model, classnames, n_ctx_text, depth_text, ctx_init)
        self.image_prompts = VisualPromptStack(n_ctx_vision, depth_vision, info.vision_width)
        self.embed_dim = int(info.embed_dim)

    def train(self, mode: bool = True) -> "VLPromptCLIP":
        super().train(mode)
        self.backbone.eval()  # frozen tower: never in train mode
        return self

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.backbone.logit_scale.detach().float().exp()

    def set_classnames(self, classnames: Sequence[str]) -> None:
        self.text_prompts.set_classnames(classnames)

    @property
    def classnames(self) -> List[str]:
        return self.text_prompts.classnames

    def encode_text(self) -> torch.Tensor:
        token_embeds, token_ids, deep = self.text_prompts()
        dtype = tower_dtype(self.backbone.transformer)
        feats = clip.encode_text(
            self.backbone,
            token_embeds.to(dtype),
            token_ids,
            deep_prompts=cast_prompts(deep, dtype),
            n_ctx=self.text_prompts.n_ctx,
        )
        return feats.float()

    def encode_image(self, images: torch.Tensor, prompted: bool = True) -> torch.Tensor:
        visual = self.backbone.visual
        dtype = tower_dtype(visual)
        prompts = cast_prompts(self.image_prompts(), dtype) if prompted else None
        return clip.encode_image(visual, images.to(dtype), prompts=prompts).float()

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(image_features, text_features, self.logit_scale)

    def forward(self, images: torch.Tensor, text_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        if text_features is None:
            text_features = self.encode_text()
        return self.logits(self.encode_image(images), text_features)
