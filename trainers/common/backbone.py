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


ENV_WEIGHTS_DIR = "CLIP_WEIGHTS_DIR"


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no parameter requires grad, eval mode."""
    module.requires_grad_(False)
    module.eval()
    return module


def build_clip(cfg, name: Optional[str] = None, prec: str = "fp32",
               device: torch.device | str = "cpu", what: str = "MODEL.BACKBONE.NAME",
               storage: Optional[str] = None) -> nn.Module:
    """Load the CLIP model ``name`` (default ``MODEL.BACKBONE.NAME``), frozen, on ``device``.

    ``prec`` is the resolved trainer precision; the frozen towers are stored as
    :func:`~trainers.common.precision.frozen_storage` says for it and ``MODEL.BACKBONE.FROZEN_PREC`` (by
    default only PREC "fp16" stores them in half precision, as the reference; "amp" and "bf16" keep fp32
    weights and run under autocast). ``storage`` (fp32 | fp16 | bf16) overrides the weight storage (e.g.
    fp32 for a tower that is trained). ``what`` names the config key the model name came from, for error
    messages.
    """
    bb = cfg.MODEL.BACKBONE
    name = name or bb.NAME
    if not name:
        raise ValueError(f"{what} is empty: set it to a CLIP model name such as 'ViT-B/16'")
    allow_random = bool(bb.get("ALLOW_RANDOM_INIT", False))
    # MODEL.BACKBONE.WEIGHTS_DIR, else $CLIP_WEIGHTS_DIR, else None (the clip package's default search path)
    weights_dir = os.path.expanduser(bb.get("WEIGHTS_DIR", "") or os.environ.get(ENV_WEIGHTS_DIR, "")) or None
    if allow_random:
        logger.warning("MODEL.BACKBONE.ALLOW_RANDOM_INIT is on: %s may be built with RANDOM weights "
                       "(tests / smoke runs only)", name)
    storage = storage or frozen_storage(prec, bb.get("FROZEN_PREC", "auto"), device)
    model = freeze(clip.load(name, weights_dir=weights_dir, allow_random=allow_random, precision=storage, device=device))
    logger.info("Loaded CLIP %s (%s) as a frozen backbone on %s", name, storage, device)
    return model


def check_input_size(cfg, model: nn.Module, model_name: str) -> None:
    """The prompt learners need INPUT.SIZE == the model's image size (reference asserts the same)."""
    size = clip.model_info(model).image_size
    expected = tuple(map(int, size)) if isinstance(size, (tuple, list)) else (int(size), int(size))
    got = tuple(map(int, cfg.INPUT.SIZE))
    if got != expected:
        raise ValueError(
            f"INPUT.SIZE is {got} but the CLIP model {model_name!r} takes {expected[0]}x{expected[1]} images; "
            f"set INPUT.SIZE ({expected[0]}, {expected[1]}) in the trainer config (or on the command line: "
            f"INPUT.SIZE \"({expected[0]}, {expected[1]})\")"
        )
