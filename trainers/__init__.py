"""CLIP prompt-learning trainers; importing this package registers all of them in TRAINER_REGISTRY.

``extend_cfg(cfg)`` adds every trainer's config node (docs/REFERENCE.md C1 keys and defaults, plus ours);
each trainer module contributes its own keys through ``add_config(cfg)``.
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

from . import cocoop, coop, ivlp, maple, promptkd, promptsrc, zsclip


def extend_cfg(cfg: CN) -> CN:
    """Add all trainer config nodes to ``cfg`` (in place; also returned)."""
    bb = cfg.MODEL.BACKBONE
    # folder with OpenAI CLIP weight files (ViT-B-16.pt ...); "" -> $CLIP_WEIGHTS_DIR -> ./clip, ~/.cache/clip
    bb.WEIGHTS_DIR = ""
    # build CLIP with random weights when no weights file exists (tests / smoke runs only)
    bb.ALLOW_RANDOM_INIT = False
    # storage of the frozen CLIP towers: auto (fp16 under PREC fp16, else fp32) | fp32 | fp16 | bf16
    # (trainers/common/precision.py; trainable parameters are fp32 whatever this says)
    bb.FROZEN_PREC = "auto"
    for module in (zsclip, ivlp, promptsrc, promptkd, coop, cocoop, maple):  # each adds its config node
        module.add_config(cfg)
    return cfg
