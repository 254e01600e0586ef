"""Image transforms (Dassl ``dassl.data.transforms.build_transform``) built from torchvision.

Train pipeline, in this fixed order whatever the order of ``INPUT.TRANSFORMS`` (docs/REFERENCE.md A3):
resize (only when no random crop is requested) -> random_translation -> random_crop ->
random_resized_crop -> random_flip -> AutoAugment policies / randaugment -> colorjitter ->
randomgrayscale -> gaussian_blur -> ToTensor -> cutout -> normalize -> gaussian_noise ->
instance_norm.

Test pipeline: resize the shorter side to max(INPUT.SIZE) -> centre crop INPUT.SIZE -> ToTensor ->
normalize (if listed) -> instance_norm (if listed).

The AutoAugment policies and ``randaugment`` use torchvision's implementations
(``AutoAugment``/``RandAugment``); Dassl's own ``randaugment_fixmatch``/``randaugment2`` variants are
not provided by the built-in engine and raise an error saying so.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any, Optional, Sequence

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

logger = logging.getLogger(__name__)

__all__ = [
    "build_transform",
    "decode_size",
    "AVAI_CHOICES",
    "INTERPOLATION_MODES",
    "Random2DTranslation",
    "InstanceNormalization",
    "Cutout",
    "GaussianNoise",
]

# Names accepted in INPUT.TRANSFORMS by the built-in engine.
AVAI_CHOICES = [
    "random_flip",
    "random_resized_crop",
    "normalize",
    "instance_norm",
    "random_crop",
    "random_translation",
    "center_crop",  # accepted; the test pipeline always centre-crops
    "cutout",
    "imagenet_policy",
    "cifar10_policy",
    "svhn_policy",
    "randaugment",
    "gaussian_noise",
    "colorjitter",
    "randomgrayscale",
    "gaussian_blur",
]

# Dassl names that exist upstream but are not implemented here.
_DASSL_ONLY_CHOICES = ["randaugment_fixmatch", "randaugment2"]

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class Random2DTranslation:
    """With probability ``p``: resize to 1.125x (height, width) and random-crop back to (height, width);
    otherwise resize to (height, width)."""

    def __init__(
        self, height: int, width: int, p: float = 0.5, interpolation: InterpolationMode = InterpolationMode.BILINEAR
    ):
        self.height = height
        self.width = width
        self.p = p
        self.interpolation = interpolation

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return TF.resize(img, [self.height, self.width], interpolation=self.interpolation)
        new_w = int(round(self.width * 1.125))
        new_h = int(round(self.height * 1.125))
        img = TF.resize(img, [new_h, new_w], interpolation=self.interpolation)
        x1 = int(round(random.uniform(0, new_w - self.width)))
        y1 = int(round(random.uniform(0, new_h - self.height)))
        return TF.crop(img, top=y1, left=x1, height=self.height, width=self.width)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(height={self.height}, width={self.width}, p={self.p})"


class InstanceNormalization:
    """Normalise each channel of a (C, H, W) tensor by its own mean and std."""

    def __init__(self, eps: float = 1e-8):
        self.eps = eps

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        c = img.shape[0]
        flat = img.reshape(c, -1)
        mean = flat.mean(1).view(c, 1, 1)
        std = flat.std(1).view(c, 1, 1)
        return (img - mean) / (std + self.eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps})"


class Cutout:
    """Zero out ``n_holes`` square patches of side ``length`` (clipped at the borders) of a tensor image."""

    def __init__(self, n_holes: int = 1, length: int = 16):
        self.n_holes = n_holes
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[1], img.shape[2]
        mask = torch.ones(h, w, dtype=img.dtype)
        half = self.length // 2
        for _ in range(self.n_holes):
            y = random.randrange(h)
            x = random.randrange(w)
            mask[max(0, y - half) : min(h, y + half), max(0, x - half) : min(w, x + half)] = 0
        return img * mask.expand_as(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_holes={self.n_holes}, length={self.length})"


class GaussianNoise:
    """With probability ``p`` add N(mean, std^2) noise to a tensor image."""

    def __init__(self, mean: float = 0.0, std: float = 0.15, p: float = 0.5):
        self.mean = mean
        self.std = std
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn(img.size()) * self.std + self.mean

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std}, p={self.p})"


def _check_choices(choices: Sequence[str]) -> None:
    for choice in choices:
        if choice in _DASSL_ONLY_CHOICES:
            raise ValueError(
                f"INPUT.TRANSFORMS: '{choice}' is only available with the Dassl backend (PROMPTKD_ENGINE=dassl); "
                f"the built-in engine accepts {AVAI_CHOICES}"
            )
        if choice not in AVAI_CHOICES:
            raise ValueError(f"INPUT.TRANSFORMS: unknown transform '{choice}'. Valid names: {AVAI_CHOICES}")


def _interpolation(cfg: Any) -> InterpolationMode:
    name = cfg.INPUT.INTERPOLATION
    if name not in INTERPOLATION_MODES:
        raise ValueError(f"INPUT.INTERPOLATION: unknown mode '{name}'. Valid: {sorted(INTERPOLATION_MODES)}")
    return INTERPOLATION_MODES[name]



def decode_size(transform: Any) -> Optional[tuple]:
    """The smallest decoded (width, height) that leaves ``transform``'s output as it is up to resampling
    differences, or None when every pixel of the file may matter.

    Only the first operation of a ``T.Compose`` (or a bare operation) decides: ``T.Resize(S)`` (shorter
    side to S) needs both sides >= S; ``T.Resize((H, W))`` needs width >= W and height >= H;
    ``T.RandomResizedCrop(size, scale, ratio)`` needs its smallest crop (area fraction ``scale[0]`` at the
    most extreme aspect ratio) to keep >= max(size) pixels per side, i.e. a shorter side of
    ``max(size) / sqrt(scale[0] * min(ratio[0], 1 / ratio[1]))`` (e.g. 915 px for 224 px and the default
    scale 0.08). Anything else (random_crop, random_translation, a custom callable, a list of
    transforms): None. Used with :func:`engine.utils.read_image`'s ``min_size``.
    """
    ops = getattr(transform, "transforms", None)
    op = ops[0] if isinstance(ops, (list, tuple)) and ops else transform
    if isinstance(op, T.RandomResizedCrop):
        size = max(int(s) for s in op.size)
        aspect = min(float(op.ratio[0]), 1.0 / float(op.ratio[1]), 1.0)
        side = int(math.ceil(size / math.sqrt(float(op.scale[0]) * aspect)))
        return (side, side)
    if isinstance(op, T.Resize) and op.max_size is None:
        size = op.size
        if isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 1):
            side = int(size if isinstance(size, int) else size[0])
            return (side, side)
        if isinstance(size, (list, tuple)) and len(size) == 2:
            return (int(size[1]), int(size[0]))
    return None


def build_transform(cfg: Any, is_train: bool = True, choices: Optional[Sequence[str]] = None) -> Optional[T.Compose]:
    """Build the train or test transform from ``cfg.INPUT`` (``choices`` overrides INPUT.TRANSFORMS).

    Returns None when ``INPUT.NO_TRANSFORM`` is set (Dassl semantics).
    """
    if cfg.INPUT.NO_TRANSFORM:
        logger.info("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    choices = list(choices)
    _check_choices(choices)
    size = tuple(cfg.INPUT.SIZE)
    if len(size) != 2:
        raise ValueError(f"INPUT.SIZE must be (height, width), got {cfg.INPUT.SIZE!r}")
    normalize = T.Normalize(mean=list(cfg.INPUT.PIXEL_MEAN), std=list(cfg.INPUT.PIXEL_STD))
    if is_train:
        tfm = _build_transform_train(cfg, choices, size, normalize)
    else:
        tfm = _build_transform_test(cfg, choices, size, normalize)
    return tfm


def _build_transform_train(cfg: Any, choices: Sequence[str], size: tuple, normalize: T.Normalize) -> T.Compose:
    interp = _interpolation(cfg)
    tfms: list = []
    inp = cfg.INPUT
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        tfms.append(T.Resize(size, interpolation=interp))
    if "random_translation" in choices:
        tfms.append(Random2DTranslation(size[0], size[1]))
    if "random_crop" in choices:
        tfms.append(T.RandomCrop(size, padding=inp.CROP_PADDING))
    if "random_resized_crop" in choices:
        tfms.append(T.RandomResizedCrop(size, scale=tuple(inp.RRCROP_SCALE), interpolation=interp))
    if "random_flip" in choices:
        tfms.append(T.RandomHorizontalFlip())
    if "imagenet_policy" in choices:
        tfms.append(T.AutoAugment(T.AutoAugmentPolicy.IMAGENET))
    if "cifar10_policy" in choices:
        tfms.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    if "svhn_policy" in choices:
        tfms.append(T.AutoAugment(T.AutoAugmentPolicy.SVHN))
    if "randaugment" in choices:
        tfms.append(T.RandAugment(num_ops=inp.RANDAUGMENT_N, magnitude=inp.RANDAUGMENT_M))
    if "colorjitter" in choices:
        tfms.append(
            T.ColorJitter(
                brightness=inp.COLORJITTER_B,
                contrast=inp.COLORJITTER_C,
                saturation=inp.COLORJITTER_S,
                hue=inp.COLORJITTER_H,
            )
        )
    if "randomgrayscale" in choices:
        tfms.append(T.RandomGrayscale(p=inp.RGS_P))
    if "gaussian_blur" in choices:
        tfms.append(T.RandomApply([T.GaussianBlur(inp.GB_K)], p=inp.GB_P))
    tfms.append(T.ToTensor())
    if "cutout" in choices:
        tfms.append(Cutout(inp.CUTOUT_N, inp.CUTOUT_LEN))
    if "normalize" in choices:
        tfms.append(normalize)
    if "gaussian_noise" in choices:
        tfms.append(GaussianNoise(inp.GN_MEAN, inp.GN_STD))
    if "instance_norm" in choices:
        tfms.append(InstanceNormalization())
    compose = T.Compose(tfms)
    logger.info("Building transform_train: %s", " -> ".join(repr(t) for t in tfms))
    return compose


def _build_transform_test(cfg: Any, choices: Sequence[str], size: tuple, normalize: T.Normalize) -> T.Compose:
    interp = _interpolation(cfg)
    tfms: list = [T.Resize(max(size), interpolation=interp), T.CenterCrop(size), T.ToTensor()]
    if "normalize" in choices:
        tfms.append(normalize)
    if "instance_norm" in choices:
        tfms.append(InstanceNormalization())
    logger.info("Building transform_test: %s", " -> ".join(repr(t) for t in tfms))
    return T.Compose(tfms)
