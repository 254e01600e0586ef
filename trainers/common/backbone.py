"""Building the frozen CLIP backbone of a trainer from the config (docs/REFERENCE.md T1-T7 "load_clip_to_cpu").

Weights come from ``MODEL.BACKBONE.WEIGHTS_DIR`` ("" -> ``$CLIP_WEIGHTS_DIR`` -> the clip package's
default search path, ~/.cache/clip), never from the network. ``MODEL.BACKBONE.ALLOW_RANDOM_INIT``
builds random weights from the architecture alone (tests and smoke runs only; logged loudly).
Frozen means: ``requires_grad`` False on every parameter and eval mode.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch
from torch import nn

import clip

from .precision import frozen_storage

logger = logging.getLogger(__name__)

__all__ = ["resolve_weights_dir", "build_clip", "freeze", "check_input_size", "clip_precision"]

ENV_WEIGHTS_DIR = "CLIP_WEIGHTS_DIR"


def resolve_weights_dir(cfg) -> Optional[str]:
    """``MODEL.BACKBONE.WEIGHTS_DIR``, else ``$CLIP_WEIGHTS_DIR``, else None (the clip package's defaults)."""
    configured = cfg.MODEL.BACKBONE.get("WEIGHTS_DIR", "") if "BACKBONE" in cfg.MODEL else ""
    if configured:
        return os.path.expanduser(configured)
    env = os.environ.get(ENV_WEIGHTS_DIR, "")
    return os.path.expanduser(env) if env else None


def clip_precision(prec: str, cfg=None, device: torch.device | str = "cpu") -> str:
    """Storage precision of frozen towers for an (already resolved) trainer PREC and ``cfg``'s
    ``MODEL.BACKBONE.FROZEN_PREC`` (see :mod:`trainers.common.precision`).

    By default only "fp16" stores the frozen towers in half precision (as the reference); "amp" and
    "bf16" keep fp32 weights and run under autocast; "fp32" is plain fp32. FROZEN_PREC bf16 / fp16 / fp32
    overrides the storage.
    """
    frozen = cfg.MODEL.BACKBONE.get("FROZEN_PREC", "auto") if cfg is not None and "BACKBONE" in cfg.MODEL else "auto"
    return frozen_storage(prec, frozen, device)


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no parameter requires grad, eval mode."""
    module.requires_grad_(False)
    module.eval()
    return module


def build_clip(cfg, name: Optional[str] = None, prec: str = "fp32",
               device: torch.device | str = "cpu", what: str = "MODEL.BACKBONE.NAME",
               storage: Optional[str] = None) -> nn.Module:
    """Load the CLIP model ``name`` (default ``MODEL.BACKBONE.NAME``), frozen, on ``device``.

    ``prec`` is the resolved trainer precision (see :func:`clip_precision`); ``storage`` (fp32 | fp16 |
    bf16) overrides the weight storage (e.g. fp32 for a tower that is trained). ``what`` names the config
    key the model name came from, for error messages.
    """
    name = name or cfg.MODEL.BACKBONE.NAME
    if not name:
        raise ValueError(f"{what} is empty: set it to a CLIP model name such as 'ViT-B/16'")
    allow_random = bool(cfg.MODEL.BACKBONE.get("ALLOW_RANDOM_INIT", False))
    weights_dir = resolve_weights_dir(cfg)
    if allow_random:
        logger.warning("MODEL.BACKBONE.ALLOW_RANDOM_INIT is on: %s may be built with RANDOM weights "
                       "(tests / smoke runs only)", name)
    storage = storage or clip_precision(prec, cfg, device)
    model = clip.load(name, weights_dir=weights_dir, allow_random=allow_random, precision=storage, device=device)
    freeze(model)
    logger.info("Loaded CLIP %s (%s) as a frozen backbone on %s", name, storage, device)
    return model


def check_input_size(cfg, model: nn.Module, model_name: str) -> None:
    """The prompt learners need INPUT.SIZE == the model's image size (reference asserts the same)."""
    info = clip.model_info(model)
    size = info.image_size
    expected = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    got = tuple(int(s) for s in cfg.INPUT.SIZE)
    if got != tuple(int(s) for s in expected):
        raise ValueError(
            f"INPUT.SIZE is {got} but the CLIP model {model_name!r} takes {expected[0]}x{expected[1]} images; "
            f"set INPUT.SIZE ({expected[0]}, {expected[1]}) in the trainer config (or on the command line: "
            f"INPUT.SIZE \"({expected[0]}, {expected[1]})\")"
        )
