"""Image transforms (Dassl ``dassl.data.transforms.build_transform``) built from torchvision.

The built-in engine provides the transforms the CoOp-family configs use (``random_resized_crop``,
``random_flip``, ``normalize``) plus ``random_crop``, ``center_crop`` and ``instance_norm``. Dassl's
other names (AutoAugment policies, RandAugment variants, colour jitter, cutout, Gaussian noise/blur,
random translation) serve its domain-adaptation recipes; they raise an error saying that they are
available with the Dassl backend (``PROMPTKD_ENGINE=dassl``, where Dassl builds the transforms).

Train pipeline, in this fixed order whatever the order of ``INPUT.TRANSFORMS`` (docs/REFERENCE.md A3):
resize (only when no random crop is requested) -> random_crop -> random_resized_crop -> random_flip ->
ToTensor -> normalize -> instance_norm.

Test pipeline: resize the shorter side to max(INPUT.SIZE) -> centre crop INPUT.SIZE -> ToTensor ->
normalize (if listed) -> instance_norm (if listed).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional, Sequence

import torch
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

logger = logging.getLogger(__name__)

# Names accepted in INPUT.TRANSFORMS by the built-in engine ("center_crop" is accepted; the test
# pipeline always centre-crops).
AVAI_CHOICES = ["random_flip", "random_resized_crop", "normalize", "instance_norm", "random_crop", "center_crop"]

# Dassl names that exist upstream but are not implemented here.
_DASSL_ONLY_CHOICES = ["random_translation", "cutout", "imagenet_policy", "cifar10_policy", "svhn_policy",
                       "randaugment", "randaugment_fixmatch", "randaugment2", "gaussian_noise", "colorjitter",
                       "randomgrayscale", "gaussian_blur"]

INTERPOLATION_MODES = {name: InterpolationMode(name) for name in ("bilinear", "bicubic", "nearest")}


class InstanceNormalization:
    """Normalise each channel of a (C, H, W) tensor by its own mean and std."""

    def __init__(self, eps: float = 1e-8):
        self.eps = eps

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        c = img.shape[0]
        flat = img.reshape(c, -1)
        return (img - flat.mean(1).view(c, 1, 1)) / (flat.std(1).view(c, 1, 1) + self.eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps})"


def _check_choices(choices: Sequence[str]) -> None:
    for choice in choices:
        if choice in _DASSL_ONLY_CHOICES:
            raise ValueError(
                f"INPUT.TRANSFORMS: '{choice}' is only available with the Dassl backend (PROMPTKD_ENGINE=dassl); "
                f"the built-in engine accepts {AVAI_CHOICES}"
            )
        if choice not in AVAI_CHOICES:
            raise ValueError(f"INPUT.TRANSFORMS: unknown transform '{choice}'. Valid names: {AVAI_CHOICES}")


def interpolation_mode(cfg: Any) -> InterpolationMode:
    """The torchvision mode named by ``INPUT.INTERPOLATION``; an unknown name is an error listing the valid ones."""
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
    scale 0.08). Anything else (random_crop, a custom callable, a list of transforms): None. Used with
    :func:`engine.utils.read_image`'s ``min_size``.
    """
    ops = getattr(transform, "transforms", None)
    op = ops[0] if isinstance(ops, (list, tuple)) and ops else transform
    if isinstance(op, T.RandomResizedCrop):
        size = max(int(s) for s in op.size)
        aspect = min(float(op.ratio[0]), 1.0 / float(op.ratio[1]), 1.0)
        side = int(math.ceil(size / math.sqrt(float(op.scale[0]) * aspect)))
        return (side, side)
    if isinstance(op, T.Resize) and op.max_size is None:
        size = [op.size] if isinstance(op.size, int) else list(op.size)
        if len(size) in (1, 2):
            return (int(size[-1]), int(size[0]))  # (H, W) -> (width, height); S -> (S, S)
    return None


def build_transform(cfg: Any, is_train: bool = True, choices: Optional[Sequence[str]] = None) -> Optional[T.Compose]:
    """Build the train or test transform from ``cfg.INPUT`` (``choices`` overrides INPUT.TRANSFORMS).

    Returns None when ``INPUT.NO_TRANSFORM`` is set (Dassl semantics).
    """
    if cfg.INPUT.NO_TRANSFORM:
        logger.info("Note: no transform is applied!")
        return None
    choices = list(cfg.INPUT.TRANSFORMS if choices is None else choices)
    _check_choices(choices)
    size = tuple(cfg.INPUT.SIZE)
    if len(size) != 2:
        raise ValueError(f"INPUT.SIZE must be (height, width), got {cfg.INPUT.SIZE!r}")
    interp = interpolation_mode(cfg)
    if not is_train:
        tfms: list = [T.Resize(max(size), interpolation=interp), T.CenterCrop(size)]
    elif "random_crop" not in choices and "random_resized_crop" not in choices:
        tfms = [T.Resize(size, interpolation=interp)]
    else:
        tfms = []
    if is_train and "random_crop" in choices:
        tfms.append(T.RandomCrop(size, padding=cfg.INPUT.CROP_PADDING))
    if is_train and "random_resized_crop" in choices:
        tfms.append(T.RandomResizedCrop(size, scale=tuple(cfg.INPUT.RRCROP_SCALE), interpolation=interp))
    if is_train and "random_flip" in choices:
        tfms.append(T.RandomHorizontalFlip())
    tfms.append(T.ToTensor())
    if "normalize" in choices:
        tfms.append(T.Normalize(mean=list(cfg.INPUT.PIXEL_MEAN), std=list(cfg.INPUT.PIXEL_STD)))
    if "instance_norm" in choices:
        tfms.append(InstanceNormalization())
    logger.info("Building transform_%s: %s", "train" if is_train else "test", " -> ".join(repr(t) for t in tfms))
    return T.Compose(tfms)
