"""CLIP prompt-learning trainers; importing this package registers all of them in TRAINER_REGISTRY.

``extend_cfg(cfg)`` adds every trainer's config node (docs/REFERENCE.md C1 keys and defaults, plus ours);
each trainer module contributes its own keys through ``add_config(cfg)``. The baselines CoOp, CoCoOp
and MaPLe live in their own modules (added separately); their reference nodes are still added here
when a module is absent, so published yaml files always merge.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from types import ModuleType
from typing import Dict, List

from yacs.config import CfgNode as CN

from . import ivlp, promptkd, promptsrc, zsclip

logger = logging.getLogger(__name__)

__all__ = ["extend_cfg", "trainer_modules"]

_CORE_MODULES: List[ModuleType] = [zsclip, ivlp, promptsrc, promptkd]
_OPTIONAL_MODULE_NAMES = ("coop", "cocoop", "maple")


def _optional_modules() -> Dict[str, ModuleType]:
    found = {}
    for name in _OPTIONAL_MODULE_NAMES:
        full = f"{__name__}.{name}"
        if importlib.util.find_spec(full) is not None:
            found[name] = importlib.import_module(full)
    return found


_OPTIONAL = _optional_modules()


def trainer_modules() -> List[ModuleType]:
    """The imported trainer modules (core + the optional baselines present in this checkout)."""
    return list(_CORE_MODULES) + list(_OPTIONAL.values())


def _reference_baseline_nodes(cfg: CN) -> None:
    """docs/REFERENCE.md C1 nodes of the baselines whose module is not present (so their yaml keys merge)."""
    if "coop" not in _OPTIONAL and "COOP" not in cfg.TRAINER:
        cfg.TRAINER.COOP = CN()
        cfg.TRAINER.COOP.N_CTX = 16  # context vectors
        cfg.TRAINER.COOP.CSC = False  # class-specific context
        cfg.TRAINER.COOP.CTX_INIT = ""  # initialisation words
        cfg.TRAINER.COOP.PREC = "fp16"  # fp32 | fp16 | amp | bf16
        cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # middle | end | front
    if "cocoop" not in _OPTIONAL and "COCOOP" not in cfg.TRAINER:
        cfg.TRAINER.COCOOP = CN()
        cfg.TRAINER.COCOOP.N_CTX = 16  # context vectors
        cfg.TRAINER.COCOOP.CTX_INIT = ""  # initialisation words
        cfg.TRAINER.COCOOP.PREC = "fp16"  # fp32 | fp16 | amp | bf16
    if "maple" not in _OPTIONAL and "MAPLE" not in cfg.TRAINER:
        cfg.TRAINER.MAPLE = CN()
        cfg.TRAINER.MAPLE.N_CTX = 2  # context tokens per layer
        cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"  # initialisation words
        cfg.TRAINER.MAPLE.PREC = "fp16"  # fp32 | fp16 | amp | bf16
        cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9  # layers with coupled prompts


def extend_cfg(cfg: CN) -> CN:
    """Add all trainer config nodes to ``cfg`` (in place; also returned)."""
    bb = cfg.MODEL.BACKBONE
    if "WEIGHTS_DIR" not in bb:
        # folder with OpenAI CLIP weight files (ViT-B-16.pt ...); "" -> $CLIP_WEIGHTS_DIR -> ./clip, ~/.cache/clip
        bb.WEIGHTS_DIR = ""
    if "ALLOW_RANDOM_INIT" not in bb:
        # build CLIP with random weights when no weights file exists (tests / smoke runs only)
        bb.ALLOW_RANDOM_INIT = False
    if "FROZEN_PREC" not in bb:
        # storage of the frozen CLIP towers: auto (fp16 under PREC fp16, else fp32) | fp32 | fp16 | bf16
        # (trainers/common/precision.py; trainable parameters are fp32 whatever this says)
        bb.FROZEN_PREC = "auto"
    if "NO_TEST" not in cfg.TEST:
        cfg.TEST.NO_TEST = False  # skip the evaluation after training
    for module in trainer_modules():
        if not callable(getattr(module, "add_config", None)):
            raise AttributeError(f"trainer module {module.__name__} has no add_config(cfg) adding its config node")
        module.add_config(cfg)
    _reference_baseline_nodes(cfg)
    return cfg
