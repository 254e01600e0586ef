"""Tiny CLIP pre-training on the source domain with open_clip's contrastive loss.

Models are open_clip ``CLIP`` architectures defined by config dicts in OpenAI style (QuickGELU,
head width 64 in both towers, standard 49408-token vocabulary, argmax text pooling), so that their
state dicts have exactly OpenAI's keys and load through the project's ``clip`` loaders.

Training (per step): sample a batch of non-held-out classes, render source-domain images, draw a
caption per image, and minimise ``open_clip.loss.ClipLoss`` (symmetric InfoNCE) with AdamW, linear
warm-up then cosine decay, logit scale clamped at 100 (as open_clip does). Everything is driven by
integer seeds, so a run with one thread is bit-for-bit reproducible.

Speed on CPU (see docs of the proving ground): the math SDPA backend (the fused CPU attention
backward is slow for 17-token sequences), bf16 autocast for the towers with fp32 loss and master
weights, and a compact token-embedding table while training: only the rows of the ~60 tokens the
caption grammar uses are trained, and they are written back into the full 49408-row table at the
end. Because the embedding is excluded from weight decay, this is exactly what AdamW on the full
table would do (rows that never receive a gradient never move).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import open_clip
import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import world as W
from .captions import CLASS_TEMPLATE, CaptionTokenizer, grammar_token_ids, longest_caption_tokens, make_captions

logger = logging.getLogger(__name__)

#: Bump when the training procedure changes (part of the model cache key).
PRETRAIN_VERSION = 1

#: CLIP's image normalisation (the data layer's INPUT.PIXEL_MEAN/STD use the same values).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

VOCAB_SIZE = 49408  # open_clip / OpenAI BPE vocabulary


@dataclass(frozen=True)
class ModelConfig:
    """An OpenAI-style open_clip CLIP (heads = width // 64 in both towers)."""

    name: str  # file stem of the weights and of the registered open_clip config
    embed_dim: int
    vision_width: int
    vision_layers: int
    text_width: int
    text_layers: int
    image_size: int = 32
    patch_size: int = 8
    context_length: int = 16

    def __post_init__(self) -> None:
        for key in ("vision_width", "text_width"):
            width = getattr(self, key)
            if width % 64 != 0 or width <= 0:
                raise ValueError(
                    f"model config {self.name!r}: {key}={width} must be a positive multiple of 64 "
                    "(the clip loader infers heads = width // 64)"
                )
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"model config {self.name!r}: image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"model config name {self.name!r} must contain only letters, digits, '_' and '-'")

    def open_clip_config(self) -> Dict[str, Any]:
        """The open_clip model config dict (the JSON written next to the weights)."""
        return {
            "embed_dim": self.embed_dim,
            "quick_gelu": True,
            "vision_cfg": {
                "image_size": self.image_size,
                "layers": self.vision_layers,
                "width": self.vision_width,
                "head_width": 64,
                "patch_size": self.patch_size,
            },
            "text_cfg": {
                "context_length": self.context_length,
                "vocab_size": VOCAB_SIZE,
                "width": self.text_width,
                "heads": self.text_width // 64,
                "layers": self.text_layers,
            },
        }

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Pre-training schedule (values follow the calibration note; see README)."""

    steps: int = 800
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: Tuple[float, float] = (0.9, 0.98)
    warmup_frac: float = 0.05
    max_logit_scale: float = 100.0
    precision: str = "bf16"  # "bf16" (autocast, fp32 master weights) or "fp32"
    seed: int = 0  # model initialisation and data order

    def __post_init__(self) -> None:
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"train config: precision must be 'bf16' or 'fp32', got {self.precision!r}")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(f"train config: need steps >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}")

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def build_model(cfg: ModelConfig, seed: int) -> open_clip.model.CLIP:
    """Randomly initialised open_clip CLIP for ``cfg`` (initialisation seeded by ``seed``)."""
    torch.manual_seed(seed)
    cc = cfg.open_clip_config()
    return open_clip.model.CLIP(
        embed_dim=cc["embed_dim"], vision_cfg=cc["vision_cfg"], text_cfg=cc["text_cfg"], quick_gelu=True
    )


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> CLIP-normalised float ``[B, 3, H, W]`` (== ToTensor + Normalize)."""
    # float32 element-wise ops in the same order as torchvision (x / 255 - mean) / std: same values,
    # done in numpy because torch's strided permute + cast is slow on one thread
    x = images.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(CLIP_MEAN, dtype=np.float32)) / np.asarray(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


class _CompactVocab:
    """Maps full-vocabulary ids to rows of a compact embedding table (order preserved)."""

    def __init__(self, used_ids: Iterable[int]) -> None:
        # id 0 is the padding token of open_clip's tokenizer
        self.ids = torch.tensor(sorted(set(used_ids) | {0}), dtype=torch.long)
        self.lut = torch.full((VOCAB_SIZE,), -1, dtype=torch.long)
        self.lut[self.ids] = torch.arange(len(self.ids))

    def remap(self, text: torch.Tensor) -> torch.Tensor:
        out = self.lut[text]
        if (out < 0).any():
            bad = sorted(set(text[out < 0].tolist()))
            raise ValueError(f"token ids {bad[:10]} are not in the compact training vocabulary")
        return out


def _param_groups(model: nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """open_clip's rule (no decay for gains, biases, 1-d params, logit scale) + no decay for token embeddings."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "ln" in n or "bias" in n or "logit_scale" in n or "token_embedding" in n:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_frac`` of the steps, then cosine decay to 0."""
    warm = max(1, int(round(cfg.warmup_frac * cfg.steps)))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t))


def pretrain_batch(
    world: W.WorldConfig, step: int, batch_size: int, seed: int, tokenizer: CaptionTokenizer
) -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
    """Deterministic pre-training batch ``(images, token ids, captions)`` for a step."""
    rng = W.make_rng(world, "source", "pretrain", seed, step)
    labels = rng.choice(W.pretrain_labels(world), size=batch_size)
    images, scenes = W.generate(world, "source", labels, rng)
    caps = make_captions(world, scenes, rng)
    return images_to_tensor(images), tokenizer(caps), caps


def pretrain(
    world: W.WorldConfig,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    on_step: Optional[Callable[[int, float, float], None]] = None,
) -> Tuple[open_clip.model.CLIP, Dict[str, Any]]:
    """Contrastive pre-training of ``model_cfg`` on the source domain. Returns ``(model, stats)``.

    ``on_step(step, loss, seconds_so_far)`` is called after every step (progress reporting).
    """
    need = longest_caption_tokens(world)
    if need > model_cfg.context_length:
        raise ValueError(
            f"model config {model_cfg.name!r}: context_length {model_cfg.context_length} is shorter than the "
            f"longest caption ({need} tokens); raise context_length to at least {need}"
        )
    tokenizer = CaptionTokenizer(model_cfg.context_length)
    model = build_model(model_cfg, train_cfg.seed)
    vocab = _CompactVocab(grammar_token_ids(world, tokenizer))
    full_embedding = model.token_embedding
    model.token_embedding = nn.Embedding(len(vocab.ids), full_embedding.embedding_dim)
    with torch.no_grad():
        model.token_embedding.weight.copy_(full_embedding.weight[vocab.ids])
    model.train()

    opt = torch.optim.AdamW(_param_groups(model, train_cfg.weight_decay), lr=train_cfg.lr,
                            betas=train_cfg.betas, eps=1e-6)
    loss_fn = open_clip.loss.ClipLoss()
    max_log_scale = math.log(train_cfg.max_logit_scale)
    use_bf16 = train_cfg.precision == "bf16"
    t0 = time.perf_counter()
    losses: List[float] = []
    for step in range(train_cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, train_cfg)
        images, text, _ = pretrain_batch(world, step, train_cfg.batch_size, train_cfg.seed, tokenizer)
        with sdpa_kernel(SDPBackend.MATH), torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            img_f, txt_f, scale = model(images, vocab.remap(text))
        loss = loss_fn(img_f.float(), txt_f.float(), scale.float())
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"pre-training of {model_cfg.name!r} diverged at step {step} (loss {loss.item()}); "
                "lower the learning rate or use precision='fp32'"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, max_log_scale)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1], time.perf_counter() - t0)
    seconds = time.perf_counter() - t0

    with torch.no_grad():
        full_embedding.weight[vocab.ids] = model.token_embedding.weight
    model.token_embedding = full_embedding
    model.eval()
    stats = {
        "train_seconds": round(seconds, 2),
        "final_loss": float(np.mean(losses[-20:])),
        "loss_curve": [round(float(np.mean(losses[i:i + 50])), 4) for i in range(0, len(losses), 50)],
        "logit_scale": model.logit_scale.detach().exp().item(),
        "params_visual": sum(p.numel() for p in model.visual.parameters()),
    }
    return model, stats


@torch.no_grad()
def class_text_features(model: open_clip.model.CLIP, world: W.WorldConfig, context_length: int) -> torch.Tensor:
    """L2-normalised text features of ``"a photo of a {classname}."`` for all classes, [N, D]."""
    tok = CaptionTokenizer(context_length)
    text = tok([CLASS_TEMPLATE.format(n) for n in W.classnames(world)])
    with sdpa_kernel(SDPBackend.MATH):
        f = model.encode_text(text).float()
    return f / f.norm(dim=-1, keepdim=True)


@torch.no_grad()
def image_features(model: open_clip.model.CLIP, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised image features for uint8 images ``[B, H, W, 3]`` (fp32)."""
    feats = []
    with sdpa_kernel(SDPBackend.MATH):
        for i in range(0, images.shape[0], batch_size):
            f = model.encode_image(images_to_tensor(images[i:i + batch_size])).float()
            feats.append(f / f.norm(dim=-1, keepdim=True))
    return torch.cat(feats)


def accuracy_report(world: W.WorldConfig, pred: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """64-way accuracy (%) over all classes, plus colour / shape accuracy and base / novel / held-out splits."""
    classes = W.class_list(world)
    colour = np.array([c.colour for c in classes])
    shape = np.array([c.shape for c in classes])
    base = np.array([c.base for c in classes])
    held = np.array([c.held_out for c in classes])
    ok = pred == labels
    out = {
        "accuracy": 100.0 * ok.mean(),
        "colour_accuracy": 100.0 * (colour[pred] == colour[labels]).mean(),
        "shape_accuracy": 100.0 * (shape[pred] == shape[labels]).mean(),
        "base_accuracy": 100.0 * ok[base[labels]].mean(),
        "novel_accuracy": 100.0 * ok[~base[labels]].mean(),
    }
    if held.any():
        out["held_out_accuracy"] = 100.0 * ok[held[labels]].mean()
    return {k: round(float(v), 2) for k, v in out.items()}


def zero_shot(
    model: open_clip.model.CLIP, world: W.WorldConfig, images: np.ndarray, labels: np.ndarray, context_length: int
) -> Dict[str, float]:
    """Zero-shot classification over all classes with the prompt ``"a photo of a {classname}."``."""
    logits = image_features(model, images) @ class_text_features(model, world, context_length).t()
    return accuracy_report(world, logits.argmax(dim=1).numpy(), labels)


def eval_sets(world: W.WorldConfig, per_class: int, target_test_per_class: int) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The fixed evaluation sets: a source-domain set and the target domain's test split."""
    return {
        "source": W.generate_balanced(world, "source", "eval", per_class),
        "target": W.generate_balanced(world, "target", "test", target_test_per_class),
    }
