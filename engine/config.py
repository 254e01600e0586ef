"""Config defaults (Dassl ``dassl.config.get_cfg_default``) and checked merge helpers.

The keys and default values are Dassl's (docs/REFERENCE.md A1), so published CoOp / PromptSRC / PromptKD
yaml files load unchanged. Extra keys of the built-in engine are under ``ENGINE`` and ``TRAIN.DIST``,
each commented below. Trainer- and dataset-specific nodes are added by ``trainers.extend_cfg`` /
``datasets.extend_cfg`` (called by ``train.py``).

``merge_from_file_checked`` / ``merge_from_list_checked`` wrap yacs' merges so that an unknown key
raises a ``KeyError`` naming the file, the key and the closest valid keys.
"""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

from yacs.config import CfgNode as CN

logger = logging.getLogger(__name__)

__all__ = ["get_cfg_default", "merge_from_file_checked", "merge_from_list_checked", "add_engine_extras",
           "flatten_config", "CN"]

_C = CN()

_C.VERSION = 1
# Directory for log.txt, tensorboard/, checkpoints, config.yaml, results.json
_C.OUTPUT_DIR = "./output"
# Directory of a previous run to resume from ("" -> OUTPUT_DIR is checked for checkpoints)
_C.RESUME = ""
# Negative: no fixed seed; >= 0: seed random/numpy/torch and the data loaders
_C.SEED = -1
_C.USE_CUDA = True
# Log details (dataset summary, transforms, builder messages)
_C.VERBOSE = True

# ----------------------------------------------------------------------------- input
_C.INPUT = CN()
_C.INPUT.SIZE = (224, 224)
# Interpolation of the resize operations: bilinear | bicubic | nearest
_C.INPUT.INTERPOLATION = "bilinear"
# Names from engine.data.transforms.AVAI_CHOICES, applied in a fixed order
_C.INPUT.TRANSFORMS = ()
# If True, tfm_train and tfm_test are None
_C.INPUT.NO_TRANSFORM = False
# Normalisation statistics (default ImageNet; CLIP configs override them)
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
# random_crop padding
_C.INPUT.CROP_PADDING = 4
# random_resized_crop scale range
_C.INPUT.RRCROP_SCALE = (0.08, 1.0)

# ----------------------------------------------------------------------------- dataset
_C.DATASET = CN()
# Folder that holds the datasets ($DATA)
_C.DATASET.ROOT = ""
# Registered dataset class name (e.g. DescribableTextures)
_C.DATASET.NAME = ""
# Domain names (multi-domain datasets only)
_C.DATASET.SOURCE_DOMAINS = ()
_C.DATASET.TARGET_DOMAINS = ()
# Images per class for few-shot training (< 1: all)
_C.DATASET.NUM_SHOTS = -1

# ----------------------------------------------------------------------------- data loader
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
# Number of augmented views per training image
_C.DATALOADER.K_TRANSFORMS = 1
# Also return the un-augmented image as batch["img0"]
_C.DATALOADER.RETURN_IMG0 = False
# Built-in engine extra: decode each image file once and keep the decoded RGB image in memory (per
# process; every loader worker keeps its own copy). Worth it for small images read many times (few-shot
# sets, the 16-32 px proving ground); for large datasets it exhausts memory. An installed Dassl ignores it.
_C.DATALOADER.CACHE_IMAGES = False
# Decode JPEGs at a reduced scale (1/2, 1/4, 1/8; PIL's draft mode) when the first transform downsizes the
# image anyway and the reduced image still covers its output size (engine.data.transforms.decode_size):
# 2-6x faster decoding of large photos, outputs within resampling differences of a full decode. Off by
# default so that a run sees exactly the pixels the reference code decodes; turn it on for speed.
_C.DATALOADER.REDUCED_JPEG_DECODE = False
_C.DATALOADER.TRAIN_X = CN()
_C.DATALOADER.TRAIN_X.SAMPLER = "RandomSampler"
_C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
# Dassl's RandomDomainSampler: domains per batch (0 or -1: all); passed on, but the built-in engine
# provides only RandomSampler / SequentialSampler (engine.data.samplers)
_C.DATALOADER.TRAIN_X.N_DOMAIN = 0
# Dassl's RandomClassSampler: instances per class (same)
_C.DATALOADER.TRAIN_X.N_INS = 16
_C.DATALOADER.TRAIN_U = CN()
# Reuse the TRAIN_X settings for the unlabeled loader
_C.DATALOADER.TRAIN_U.SAME_AS_X = True
_C.DATALOADER.TRAIN_U.SAMPLER = "RandomSampler"
_C.DATALOADER.TRAIN_U.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_U.N_DOMAIN = 0
_C.DATALOADER.TRAIN_U.N_INS = 16
_C.DATALOADER.TEST = CN()
_C.DATALOADER.TEST.SAMPLER = "SequentialSampler"
_C.DATALOADER.TEST.BATCH_SIZE = 32

# ----------------------------------------------------------------------------- model
_C.MODEL = CN()
# Weights loaded with load_pretrained_weights after build_model (optional)
_C.MODEL.INIT_WEIGHTS = ""
_C.MODEL.BACKBONE = CN()
# CLIP trainers: the CLIP model name ("ViT-B/16", "RN50", ...)
_C.MODEL.BACKBONE.NAME = ""
_C.MODEL.BACKBONE.PRETRAINED = True
_C.MODEL.HEAD = CN()
_C.MODEL.HEAD.NAME = ""
_C.MODEL.HEAD.HIDDEN_LAYERS = ()
_C.MODEL.HEAD.ACTIVATION = "relu"
_C.MODEL.HEAD.BN = True
_C.MODEL.HEAD.DROPOUT = 0.0

# ----------------------------------------------------------------------------- optimisation
_C.OPTIM = CN()
# adam | amsgrad | sgd | rmsprop | radam | adamw
_C.OPTIM.NAME = "adam"
_C.OPTIM.LR = 0.0003
_C.OPTIM.WEIGHT_DECAY = 5e-4
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPNING = 0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.RMSPROP_ALPHA = 0.99
# Betas of adam / amsgrad / adamw / radam
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
# Staged LR: children not in NEW_LAYERS get LR * BASE_LR_MULT
_C.OPTIM.STAGED_LR = False
_C.OPTIM.NEW_LAYERS = ()
_C.OPTIM.BASE_LR_MULT = 0.1
# single_step | multi_step | cosine (stepped once per epoch)
_C.OPTIM.LR_SCHEDULER = "single_step"
# single_step: -1 or 0 means MAX_EPOCH; multi_step: milestones
_C.OPTIM.STEPSIZE = (-1,)
_C.OPTIM.GAMMA = 0.1
_C.OPTIM.MAX_EPOCH = 10
# Warm-up epochs (> 0 activates warm-up)
_C.OPTIM.WARMUP_EPOCH = -1
# linear | constant
_C.OPTIM.WARMUP_TYPE = "linear"
# LR during constant warm-up
_C.OPTIM.WARMUP_CONS_LR = 1e-5
# LR at step 0 of linear warm-up
_C.OPTIM.WARMUP_MIN_LR = 1e-5
# True: the main scheduler counts epochs from 0 after warm-up; False: from WARMUP_EPOCH
_C.OPTIM.WARMUP_RECOUNT = True

# ----------------------------------------------------------------------------- training
_C.TRAIN = CN()
# Save every N epochs (<= 0: only the last epoch)
_C.TRAIN.CHECKPOINT_FREQ = 0
# Log every N batches
_C.TRAIN.PRINT_FREQ = 10
# Dassl's TrainerXU reads this (which loader defines an epoch: train_x | train_u | smaller_one); kept so
# configs written for Dassl still merge; the built-in TrainerX ignores it
_C.TRAIN.COUNT_ITER = "train_x"
# Built-in engine: multi-process mode. "auto": DDP when launched by torchrun, single process
# otherwise; "none": never initialise torch.distributed (several GPUs -> use one)
_C.TRAIN.DIST = "auto"
# Built-in engine: save the resumable OUTPUT_DIR/last_state.pth.tar every N training steps
# (0: only at epoch ends; see docs/RELIABILITY.md)
_C.TRAIN.CHECKPOINT_STEPS = 0
# TESTS ONLY: SIGKILL the process after this global training step (0: off); used to test resume
_C.TRAIN.DEBUG_KILL_AT_STEP = 0

# ----------------------------------------------------------------------------- testing
_C.TEST = CN()
_C.TEST.EVALUATOR = "Classification"
_C.TEST.PER_CLASS_RESULT = False
# Save the row-normalised confusion matrix to OUTPUT_DIR/cmat.pt
_C.TEST.COMPUTE_CMAT = False
_C.TEST.NO_TEST = False
# Split evaluated by test() without argument: test | val
_C.TEST.SPLIT = "test"
# Model evaluated after training: last_step | best_val
_C.TEST.FINAL_MODEL = "last_step"

# ----------------------------------------------------------------------------- trainer
_C.TRAINER = CN()
# Registered trainer class name
_C.TRAINER.NAME = ""

# ----------------------------------------------------------------------------- built-in engine extras
_C.ENGINE = CN()
# Deterministic mode: cuDNN deterministic, no benchmark, torch deterministic algorithms (warn only),
# CUBLAS_WORKSPACE_CONFIG (fix for docs/REFERENCE.md D15). Costs some speed on GPU.
_C.ENGINE.DETERMINISTIC = False


def get_cfg_default() -> CN:
    """Return a fresh (mutable) copy of the default config."""
    return _C.clone()


def flatten_config(node: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"OPTIM.LR": 0.002, ...}`` of a (yacs) config or a plain nested dict (tuples become lists)."""
    out: Dict[str, Any] = {}
    for key, value in dict(node).items():
        if isinstance(value, dict):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def _suggest(bad_key: str, cfg: CN) -> List[str]:
    valid = list(flatten_config(cfg))
    # close names, else the keys with the same last component (a key placed under the wrong node)
    hits = difflib.get_close_matches(bad_key, valid, n=3, cutoff=0.5)
    hits = hits or [k for k in valid if k.split(".")[-1] == bad_key.split(".")[-1]][:3]
    return hits or difflib.get_close_matches(bad_key, valid, n=3, cutoff=0.3)


def _unknown_key_error(cfg: CN, key: str, source: str) -> KeyError:
    hints = _suggest(key, cfg)
    hint = f" Did you mean: {', '.join(hints)}?" if hints else ""
    return KeyError(
        f"Unknown config key '{key}' in {source}.{hint} "
        "If it is a trainer/dataset key, make sure the trainer/dataset that defines it is registered "
        "(its extend_cfg adds the key)."
    )


def merge_from_file_checked(cfg: CN, path: str) -> None:
    """``cfg.merge_from_file(path)`` with clear errors for a missing file, invalid YAML and unknown keys."""
    if not path:
        raise ValueError("merge_from_file_checked: empty config file path")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Config file not found: {path} (check the path given to --config-file/--dataset-config-file)"
        )
    try:
        with open(path, "r", encoding="utf-8") as f:
            other = cfg.load_cfg(f)
    except Exception as e:
        raise ValueError(f"Cannot parse config file {path}: {e.__class__.__name__}: {e}") from e
    bad = next((key for key in flatten_config(other) if not _key_accepted(cfg, key)), None)
    if bad is not None:
        raise _unknown_key_error(cfg, bad, f"config file {path}")
    try:
        cfg.merge_from_other_cfg(other)
    except (KeyError, ValueError) as e:
        raise ValueError(f"Invalid value in config file {path}: {e}") from e


def _key_accepted(cfg: CN, key: str) -> bool:
    """True if ``key`` names an existing leaf, or lies under a node that allows new keys."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, CN):
            return False
        if part not in node:
            return node.is_new_allowed()
        node = node[part]
    return not isinstance(node, CN)


def merge_from_list_checked(cfg: CN, opts: Optional[Sequence[Any]]) -> None:
    """``cfg.merge_from_list(opts)`` (``KEY VALUE`` pairs) with clear errors for odd length and unknown keys."""
    if not opts:
        return
    opts = list(opts)
    if len(opts) % 2 != 0:
        raise ValueError(
            f"Command-line config overrides must be KEY VALUE pairs, got an odd number of items ({len(opts)}): {opts}"
        )
    for key in opts[0::2]:
        if not isinstance(key, str):
            raise ValueError(f"Config override key must be a string, got {key!r}")
        if not _key_accepted(cfg, key):
            raise _unknown_key_error(cfg, key, "the command-line options")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as e:
        raise ValueError(f"Invalid command-line config override: {e}") from e


# the built-in engine's keys that an installed Dassl's defaults lack
_ENGINE_EXTRAS = {"ENGINE": tuple(_C.ENGINE), "DATALOADER": ("CACHE_IMAGES", "REDUCED_JPEG_DECODE"),
                  "TRAIN": ("DIST", "CHECKPOINT_STEPS", "DEBUG_KILL_AT_STEP")}


def add_engine_extras(cfg: CN) -> CN:
    """Add the built-in engine's extra keys (``ENGINE.*``, ``DATALOADER.CACHE_IMAGES/REDUCED_JPEG_DECODE``,
    ``TRAIN.DIST/CHECKPOINT_STEPS/DEBUG_KILL_AT_STEP``) to a config that lacks them.

    Needed when ``get_cfg_default`` comes from an installed Dassl (``PROMPTKD_ENGINE=dassl``), so
    ``train.py`` can read them with either backend. Existing values are kept.
    """
    if "ENGINE" not in cfg:
        cfg.ENGINE = CN()
    for node, keys in _ENGINE_EXTRAS.items():
        for key in keys:
            if node in cfg and key not in cfg[node]:
                cfg[node][key] = _C[node][key]
    return cfg
