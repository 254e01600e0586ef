"""Dataset config keys (``datasets.extend_cfg``) and their validation.

Keeps Dassl's ``DATASET.ROOT / NAME / NUM_SHOTS`` from the engine defaults and adds the keys that the
protocol layer (:mod:`datasets.protocol`) reads; this is the one place that sets their defaults
(``DATASET.SUBSAMPLE_CLASSES`` included). Existing values are never overwritten, so calling ``extend_cfg``
twice is harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from yacs.config import CfgNode as CN

logger = logging.getLogger(__name__)

__all__ = ["extend_cfg", "validate_dataset_cfg", "resolve_eval_protocol"]

SUBSAMPLE_CHOICES = ("all", "base", "new")
EVAL_PROTOCOL_CHOICES = ("auto", "base2novel", "subsample")
TRAIN_LABEL_CHOICES = ("use", "drop")


def _add(node: CN, key: str, value: Any) -> None:
    if key not in node:
        node[key] = value


def extend_cfg(cfg: CN) -> CN:
    """Add the dataset/protocol keys to ``cfg`` (in place; also returned). Existing keys are kept."""
    d = cfg.DATASET
    # Which classes the TRAINING set holds (reference semantics, docs/REFERENCE.md A3): "all"; "base" = first
    # ceil(N/2) labels; "new" = the remaining floor(N/2), relabelled from 0. val/test follow it.
    _add(d, "SUBSAMPLE_CLASSES", "all")
    # Which evaluation sets the trainer reports after training: "base2novel" -> {"base", "novel"}
    # (base/novel halves of all classes, each relabelled from 0); "subsample" -> {"test"} (the test
    # split restricted to SUBSAMPLE_CLASSES); "auto" -> "base2novel" if TRAINER.MODAL == "base2novel"
    # (what the original PromptKD scripts pass), else "subsample".
    _add(d, "EVAL_PROTOCOL", "auto")
    # "use" keeps training labels; "drop" replaces every training label by -1 (and the class name by
    # "") so an unsupervised student provably never reads them.
    _add(d, "TRAIN_LABELS", "use")
    # -1 = every training image; M > 0 = at most M training images per class, sampled
    # deterministically per SEED and cached (paper Fig. 4 "unlabeled images per class").
    # Applied after NUM_SHOTS few-shot sampling.
    _add(d, "MAX_IMAGES_PER_CLASS", -1)
    if "CUSTOM" not in d:
        c = CN()
        # Folder (relative to DATASET.ROOT, or absolute) holding the images: one sub-folder per class
        # in folder mode; the base folder of the CSV's relative paths in CSV mode.
        c.IMAGE_DIR = "images"
        # CSV file (relative to DATASET.ROOT, or absolute) with a header "path,label[,split]";
        # empty = folder mode. label: 0-based index into CLASSNAMES_FILE or an exact class name;
        # split: train / val / test.
        c.CSV = ""
        # CSV mode: one class name per line (line i = label i). Folder mode (optional): lines
        # "<folder> <class name>" renaming folders; without it, '_' in folder names becomes ' '.
        c.CLASSNAMES_FILE = ""
        # Prompt template for text-side trainers and zero-shot sanity checks ("{}" = class name).
        c.TEMPLATE = "a photo of a {}."
        # The dataset's name in results.json and result tables ("" = the name of the DATASET.ROOT folder);
        # give two custom datasets different names and they are aggregated separately.
        c.NAME = ""
        # train / val / test fractions per class when the data has no split column (reference 50/20/30).
        c.SPLIT_RATIOS = (0.5, 0.2, 0.3)
        # Where the generated split is saved (relative to DATASET.ROOT); reused while the data is unchanged.
        c.SPLIT_FILE = "split_custom.json"
        # Seed of the generated split (independent of SEED, so every run seed sees the same split).
        c.SPLIT_SEED = 1
        d.CUSTOM = c
    return cfg


def resolve_eval_protocol(cfg: CN) -> str:
    """``DATASET.EVAL_PROTOCOL`` with ``auto`` resolved through ``TRAINER.MODAL``."""
    proto = cfg.DATASET.get("EVAL_PROTOCOL", "auto")
    if proto != "auto":
        return proto
    modal = cfg.TRAINER.get("MODAL", None) if "TRAINER" in cfg else None
    return "base2novel" if modal == "base2novel" else "subsample"


def _choice(cfg: CN, key: str, choices: tuple) -> None:
    value = cfg.DATASET.get(key)
    if value not in choices:
        raise ValueError(f"DATASET.{key} = {value!r} is not valid; expected one of {list(choices)}")


def validate_dataset_cfg(cfg: CN) -> None:
    """Check the protocol keys; raise ``ValueError`` naming the key, the value and the accepted values."""
    missing = [k for k in ("SUBSAMPLE_CLASSES", "EVAL_PROTOCOL", "TRAIN_LABELS", "MAX_IMAGES_PER_CLASS") if k not in cfg.DATASET]
    if missing:
        raise ValueError(
            f"config lacks DATASET.{missing[0]} (and {len(missing) - 1} more): call datasets.extend_cfg(cfg) "
            "on the default config before merging yaml files"
        )
    _choice(cfg, "SUBSAMPLE_CLASSES", SUBSAMPLE_CHOICES)
    _choice(cfg, "EVAL_PROTOCOL", EVAL_PROTOCOL_CHOICES)
    _choice(cfg, "TRAIN_LABELS", TRAIN_LABEL_CHOICES)
    for key in ("NUM_SHOTS", "MAX_IMAGES_PER_CLASS"):
        value = cfg.DATASET.get(key, -1)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"DATASET.{key} = {value!r} must be an integer (-1 = all)")
    if cfg.DATASET.MAX_IMAGES_PER_CLASS == 0 or cfg.DATASET.MAX_IMAGES_PER_CLASS < -1:
        raise ValueError(
            f"DATASET.MAX_IMAGES_PER_CLASS = {cfg.DATASET.MAX_IMAGES_PER_CLASS} is not valid; use -1 (all images) "
            "or a positive number of training images per class"
        )
    ratios = tuple(cfg.DATASET.CUSTOM.SPLIT_RATIOS) if "CUSTOM" in cfg.DATASET else (0.5, 0.2, 0.3)
    if len(ratios) != 3 or any(not isinstance(r, (int, float)) or r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(
            f"DATASET.CUSTOM.SPLIT_RATIOS = {ratios!r} must be three non-negative numbers (train, val, test) summing to 1"
        )
    if ratios[0] <= 0 or ratios[2] <= 0:
        raise ValueError(f"DATASET.CUSTOM.SPLIT_RATIOS = {ratios!r}: the train and test fractions must be > 0")
