"""Decisions ``train.py`` makes before a run starts, so that no result is silently wrong (docs/RELIABILITY.md).

- :func:`check_resume_config`: resuming a run whose ``config.yaml`` differs from the current config in
  a key that changes the result is refused with :class:`ResumeConfigError` naming the keys;
  ``--resume-with-changes`` accepts them, logs them and records them (``results.json`` ``decisions``,
  a comment at the top of ``config.yaml``, the ``DONE`` marker), and the trainer then applies the new
  optimiser settings (LR, schedule, MAX_EPOCH) instead of the saved ones.
- :func:`check_untrained`: ``--eval-only`` without ``--model-dir``, or ``OPTIM.MAX_EPOCH 0``, would write
  results for untrained weights; refused with :class:`UntrainedWeightsError` unless ``--eval-untrained``
  asks for it (recorded).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Tuple

import yaml

from engine.checkpoint import RESUME_STATE_NAME, load_checkpoint, numbered_checkpoints
from engine.config import flatten_config

logger = logging.getLogger(__name__)

__all__ = ["ResumeConfigError", "UntrainedWeightsError", "RESULT_NEUTRAL_KEYS",
           "resume_source", "check_resume_config", "check_untrained", "changes_comment"]

#: config keys (or key prefixes ending in ".") that do not change what a run computes
RESULT_NEUTRAL_KEYS = (
    "OUTPUT_DIR", "RESUME", "VERBOSE", "USE_CUDA", "DATASET.ROOT", "DATALOADER.NUM_WORKERS",
    "DATALOADER.CACHE_IMAGES", "DATALOADER.TEST.", "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ",
    "TRAIN.CHECKPOINT_STEPS", "TRAIN.DEBUG_KILL_AT_STEP", "TRAIN.DIST", "MODEL.BACKBONE.WEIGHTS_DIR",
    "TRAINER.PROMPTKD.CLASS_VECTORS", "TRAINER.PROMPTKD.TEACHER_CKPT", "TRAINER.PROMPTKD.TEACHER_CACHE",
    "TEST.NO_TEST", "TEST.SPLIT",
)


class ResumeConfigError(ValueError):
    """A resume would continue a run under a config that differs in result-affecting keys."""


class UntrainedWeightsError(ValueError):
    """Results would be written for weights that were never trained."""


def _neutral(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) or key.startswith(k + ".")
               for k in RESULT_NEUTRAL_KEYS)


def resume_source(cfg: Any) -> Optional[str]:
    """The run folder a training run will resume from (as ``resume_or_start`` decides), or None."""
    mode = str(cfg.RESUME or "").strip()
    if mode.lower() == "none":
        return None
    if mode.lower() in ("", "auto"):
        out = cfg.OUTPUT_DIR
        subdirs = os.listdir(out) if os.path.isdir(out) else []
        has_ckpt = any(numbered_checkpoints(os.path.join(out, d)) for d in subdirs)
        return out if (os.path.isfile(os.path.join(out, RESUME_STATE_NAME)) or has_ckpt) else None
    path = os.path.expanduser(mode)
    if os.path.isfile(path):
        return os.path.dirname(os.path.abspath(path))
    return path if os.path.isdir(path) else None


def check_resume_config(cfg: Any, allow_changes: bool) -> Dict[str, Tuple[Any, Any]]:
    """Compare ``<resume source>/config.yaml`` with ``cfg`` (call before config.yaml is rewritten).

    Returns the accepted changes ({} when none or nothing is resumed); raises :class:`ResumeConfigError`
    when result-affecting keys differ and ``allow_changes`` is False.
    """
    source = resume_source(cfg)
    if source is None:
        return {}
    old_text, path = _saved_config(cfg, source)
    if old_text is None:
        logger.warning("Resuming %s: no recorded configuration (config.yaml), so it cannot be compared with this one",
                       source)
        return {}
    old = flatten_config(yaml.safe_load(old_text) or {})
    new = flatten_config(yaml.safe_load(cfg.dump()) or {})
    # result-affecting keys present in both whose values differ: key -> (old, new)
    changes = {k: (old[k], new[k]) for k in sorted(set(old) & set(new)) if not _neutral(k) and old[k] != new[k]}
    if not changes:
        return {}
    listing = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
    if not allow_changes:
        raise ResumeConfigError(
            f"Resuming {source} with a different configuration ({listing}; compared with {path}): the rest of the "
            "run would not be the run its config.yaml describes. Run with the same settings, pass "
            "--resume-with-changes to continue with the new values (recorded in config.yaml and results.json), "
            "or start a new run (--resume none / another --output-dir)"
        )
    logger.warning("--resume-with-changes: resuming %s with changed settings: %s (recorded in config.yaml and "
                   "results.json)", source, listing)
    return changes


def _saved_config(cfg: Any, source: str) -> Tuple[Optional[str], str]:
    """The config text of what will be resumed: the resumable state's own copy, else ``config.yaml``."""
    given = os.path.expanduser(str(cfg.RESUME or "").strip())  # RESUME may name the state file itself
    state_file = given if os.path.isfile(given) else os.path.join(source, RESUME_STATE_NAME)
    if os.path.isfile(state_file):
        state = load_checkpoint(state_file)
        if isinstance(state, dict) and isinstance(state.get("config"), str):
            return state["config"], state_file
    path = os.path.join(source, "config.yaml")
    if os.path.isfile(path):
        with open(path, "r", encoding="utf-8") as f:
            return f.read(), path
    return None, path


def changes_comment(changes: Dict[str, Tuple[Any, Any]], source: str) -> str:
    """YAML comment lines recording accepted resume changes (top of config.yaml)."""
    lines = [f"# resumed from {source} with --resume-with-changes:"]
    lines += [f"#   {k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()]
    return "\n".join(lines) + "\n"


def check_untrained(cfg: Any, trainer: Any, eval_only: bool, model_dir: str, allow: bool) -> Optional[str]:
    """Refuse results for untrained weights of a trainer that has trainable models (zero-shot trainers
    have none and evaluate as they are). Returns the recorded decision when ``allow`` (else None)."""
    names = trainer.get_model_names() if hasattr(trainer, "get_model_names") else []
    if not names:
        return None
    if eval_only and not model_dir:
        reason = "--eval-only without --model-dir evaluates the initial (untrained) weights"
        fix = "pass --model-dir RUN_DIR (the trained run's output folder)"
    elif not eval_only and int(cfg.OPTIM.MAX_EPOCH) <= 0:
        reason = f"OPTIM.MAX_EPOCH {cfg.OPTIM.MAX_EPOCH} trains nothing"
        fix = "set OPTIM.MAX_EPOCH >= 1"
    else:
        return None
    if not allow:
        raise UntrainedWeightsError(
            f"{reason} of {cfg.TRAINER.NAME} ({names}), and results.json / DONE would report them as this run's "
            f"result: {fix}, or pass --eval-untrained to evaluate untrained weights on purpose (recorded in results.json)"
        )
    logger.warning("--eval-untrained: %s; the results are those of untrained weights (recorded)", reason)
    return reason
