"""Checkpoint save/load (Dassl ``dassl.utils.torchtools``), docs/REFERENCE.md A5.

Layout (Dassl): ``<dir>/<model name>/model.pth.tar-<epoch>``, ``model-best.pth.tar`` and a
one-line ``checkpoint`` pointer file naming the latest regular save. Changes from Dassl:
- every file is written atomically (temp file + ``os.replace``): a crash mid-save leaves the
  previous checkpoint intact;
- saving ``model-best.pth.tar`` does not move the ``checkpoint`` pointer (docs/REFERENCE.md D9:
  resuming a best_val run restarted from the best instead of the last epoch);
- ``load_checkpoint`` always maps to CPU (the trainer moves weights to its device) and reads with
  ``weights_only=True`` only (:mod:`engine.safe_load`; no fallback to a full unpickle).

Resumable state (docs/RELIABILITY.md): besides the Dassl epoch checkpoints, the trainer keeps ONE
resumable file ``<OUTPUT_DIR>/last_state.pth.tar`` (every ``TRAIN.CHECKPOINT_STEPS`` steps and at every
epoch end) with model/optimiser/scheduler/trainer state, the position in the epoch and every RNG state
(:func:`capture_rng_state`), so a run killed at any point resumes onto the same trajectory.
"""

from __future__ import annotations

import logging
import os
import os.path as osp
import random
import re
import shutil
import warnings
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn

from engine.safe_load import safe_torch_load
from engine.fileio import atomic_torch_save, atomic_write, atomic_write_text
from engine.utils import mkdir_if_missing

logger = logging.getLogger(__name__)

__all__ = ["save_checkpoint", "load_checkpoint", "resume_from_checkpoint", "load_pretrained_weights",
           "read_checkpoint_pointer", "numbered_checkpoint_name", "numbered_checkpoints", "strip_module_prefix",
           "RESUME_STATE_NAME", "PREV_STATE_NAME", "DONE_NAME", "capture_rng_state", "restore_rng_state",
           "save_resume_state", "load_resume_state"]

BEST_NAME = "model-best.pth.tar"
POINTER_NAME = "checkpoint"
#: the single resumable state of a run, in OUTPUT_DIR (removed once the run is complete)
RESUME_STATE_NAME = "last_state.pth.tar"
#: the resumable state before the last one (rolled back when the last one's weights give a non-finite loss)
PREV_STATE_NAME = "prev_state.pth.tar"
#: completion marker of a run, in OUTPUT_DIR (written by train.py after results.json)
DONE_NAME = "DONE"
_RESUME_FORMAT = "promptkd-resume-state"
_RESUME_VERSION = 1
_NUMBERED_RE = re.compile(r"model\.pth\.tar-(\d+)")


def numbered_checkpoint_name(epoch: int) -> str:
    """Dassl's file name of the checkpoint saved after ``epoch``: ``model.pth.tar-<epoch>``."""
    return f"model.pth.tar-{epoch}"


def numbered_checkpoints(folder: str) -> "list[tuple[int, str]]":
    """``(epoch, path)`` of every ``model.pth.tar-<epoch>`` file in ``folder``, oldest first."""
    found = []
    for name in (os.listdir(folder) if osp.isdir(folder) else []):
        match = _NUMBERED_RE.fullmatch(name)
        if match:
            found.append((int(match.group(1)), osp.join(folder, name)))
    return sorted(found)


def strip_module_prefix(state_dict: Dict[str, Any]) -> "OrderedDict[str, Any]":
    """Remove a leading ``module.`` (DataParallel/DDP wrappers) from every key."""
    return OrderedDict((k[7:] if k.startswith("module.") else k, v) for k, v in state_dict.items())


def save_checkpoint(state: Dict[str, Any], save_dir: str, is_best: bool = False, remove_module_from_keys: bool = True,
                    model_name: str = "") -> str:
    """Save ``state`` (with keys ``state_dict``, ``epoch``, ...) to ``save_dir`` atomically.

    File name: ``model_name`` or ``model.pth.tar-<epoch>``. The ``checkpoint`` pointer file is
    rewritten with that name unless the save is ``model-best.pth.tar``. ``is_best`` also writes a copy
    as ``model-best.pth.tar``. Returns the file path.
    """
    mkdir_if_missing(save_dir)
    if "state_dict" not in state or "epoch" not in state:
        raise KeyError(f"save_checkpoint: state must contain 'state_dict' and 'epoch', got keys {sorted(state)}")
    if remove_module_from_keys:
        state = dict(state)
        state["state_dict"] = strip_module_prefix(state["state_dict"])
    if not model_name:
        model_name = numbered_checkpoint_name(state["epoch"])
    fpath = osp.join(save_dir, model_name)
    atomic_torch_save(state, fpath)
    logger.info("Checkpoint saved to %s", fpath)
    if model_name != BEST_NAME:
        atomic_write_text(osp.join(save_dir, POINTER_NAME), f"{model_name}\n")
    if is_best and model_name != BEST_NAME:
        best_fpath = osp.join(save_dir, BEST_NAME)

        def _copy(dst_file: Any) -> None:
            with open(fpath, "rb") as src:
                shutil.copyfileobj(src, dst_file)

        atomic_write(best_fpath, _copy)
        logger.info('Best checkpoint saved to "%s"', best_fpath)
    return fpath


def load_checkpoint(fpath: str) -> Dict[str, Any]:
    """Load a checkpoint file onto the CPU with ``weights_only=True`` only (:mod:`engine.safe_load`): a
    missing file raises ``FileNotFoundError``, a file that needs more than tensors and plain values
    ``UnsafeCheckpointError`` (nothing in it is executed), a truncated one ``CorruptCheckpointError``."""
    if fpath is None or fpath == "":
        raise ValueError("load_checkpoint: file path is None/empty")
    return safe_torch_load(fpath, "checkpoint")  # a missing file: FileNotFoundError naming it


def read_checkpoint_pointer(fdir: str) -> Optional[str]:
    """Return the file name stored in ``<fdir>/checkpoint`` (None if the pointer file is absent)."""
    pointer = osp.join(fdir, POINTER_NAME)
    if not osp.isfile(pointer):
        return None
    with open(pointer, "r", encoding="utf-8") as f:
        name = f.readline().strip()
    if not name:
        raise ValueError(
            f"Checkpoint pointer file {pointer} is empty; delete it or write the checkpoint file name into it"
        )
    return name


def resume_from_checkpoint(fdir: str, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                           scheduler: Optional[Any] = None) -> int:
    """Load the checkpoint named by ``<fdir>/checkpoint`` into model (strict), optimizer and scheduler.

    Returns the stored ``epoch`` (= number of finished epochs, the epoch to start from).
    """
    name = read_checkpoint_pointer(fdir)
    if name is None:
        raise FileNotFoundError(f"No checkpoint pointer file in {fdir}: cannot tell which checkpoint to resume from")
    fpath = osp.join(fdir, name)
    logger.info("Loading checkpoint from %s", fpath)
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(checkpoint["state_dict"])
    logger.info("Loaded model weights")
    for key, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is not None and checkpoint.get(key) is not None:
            target.load_state_dict(checkpoint[key])
            logger.info("Loaded %s", key)
    start_epoch = int(checkpoint["epoch"])
    logger.info("Previous epoch: %d", start_epoch)
    return start_epoch


def load_pretrained_weights(model: nn.Module, weight_path: str) -> None:
    """Load the weights of ``weight_path`` whose names and shapes match the model's; report the rest.

    Accepts a checkpoint with a ``state_dict`` key or a raw state dict; a leading ``module.`` is
    stripped. Warns when nothing matched.
    """
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint["state_dict"] if isinstance(checkpoint, dict) and "state_dict" in checkpoint else checkpoint
    if not isinstance(state_dict, dict):
        raise TypeError(f"{weight_path} does not contain a state dict (got {type(state_dict).__name__})")
    model_dict = model.state_dict()
    stripped = strip_module_prefix(state_dict)
    matched = {k: v for k, v in stripped.items()
               if k in model_dict and isinstance(v, torch.Tensor) and model_dict[k].size() == v.size()}
    discarded = [k for k in stripped if k not in matched]
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    if not matched:
        warnings.warn(f'The pretrained weights "{weight_path}" cannot be loaded: no key matches the model (names or '
                      'shapes differ)')
    else:
        logger.info('Successfully loaded pretrained weights from "%s"', weight_path)
        if discarded:
            logger.info("Layers discarded due to unmatched keys or size: %s", discarded)


# ------------------------------------------------------------------------------------------------
# resumable state
# ------------------------------------------------------------------------------------------------
def capture_rng_state(generators: Optional[Mapping[str, Optional[torch.Generator]]] = None) -> Dict[str, Any]:
    """Every RNG a training step can draw from: Python ``random``, numpy's global generator, torch
    (CPU and each CUDA device) and the named ``torch.Generator`` objects (the data loaders' / samplers').

    The result holds only tensors, numbers, strings, lists and tuples (loadable with ``weights_only``).
    """
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(np_state["bit_generator"]),
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "generators": {name: gen.get_state() for name, gen in (generators or {}).items() if gen is not None},
    }


def restore_rng_state(state: Mapping[str, Any],
                      generators: Optional[Mapping[str, Optional[torch.Generator]]] = None) -> None:
    """Inverse of :func:`capture_rng_state`. A generator present on one side only is reported (WARNING):
    the data order then differs from the interrupted run (e.g. ``SEED`` changed between the two runs)."""
    version, internal, gauss = state["python"]  # random.setstate needs tuples; a state read back may hold lists
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["bit_generator"], np_state["key"].numpy().astype(np.uint32), int(np_state["pos"]),
                         int(np_state["has_gauss"]), float(np_state["gauss"])))
    torch.set_rng_state(state["torch"])
    cuda_states = list(state.get("cuda") or [])
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning("Resume: the state has %d CUDA RNG states but %d devices are visible; CUDA RNGs not "
                           "restored", len(cuda_states), torch.cuda.device_count())
    saved = dict(state.get("generators") or {})
    current = {k: g for k, g in (generators or {}).items() if g is not None}
    for name, gen in current.items():
        if name in saved:
            gen.set_state(saved[name])
    only_saved, only_now = sorted(set(saved) - set(current)), sorted(set(current) - set(saved))
    if only_saved or only_now:
        logger.warning("Resume: data-loader generators differ from the interrupted run (only in the state: %s, only "
                       "now: %s); the remaining data order will differ (same SEED and config give identical runs)",
                       only_saved, only_now)


def save_resume_state(state: Dict[str, Any], path: str) -> str:
    """Write a resumable state atomically (temp file + ``os.replace``): an interrupted save leaves the
    previous state intact. ``state`` holds ``epoch`` and ``batches_done`` (written by
    :meth:`engine.resume.ResumableState.save`)."""
    atomic_torch_save(dict(state, format=_RESUME_FORMAT, version=_RESUME_VERSION), path)
    logger.debug("Resumable state saved to %s (epoch %s, batches done %s)", path, state["epoch"], state["batches_done"])
    return path


def load_resume_state(path: str) -> Dict[str, Any]:
    """Read a file written by :func:`save_resume_state`; anything else is refused with a clear error."""
    state = load_checkpoint(path)
    if not (isinstance(state, dict) and state.get("format") == _RESUME_FORMAT):
        raise ValueError(
            f"{path} is not a resumable state file (expected a dict with format={_RESUME_FORMAT!r}, as written to "
            f"OUTPUT_DIR/{RESUME_STATE_NAME}); pass the run directory or its {RESUME_STATE_NAME} to --resume"
        )
    if state.get("version") != _RESUME_VERSION:
        raise ValueError(f"{path}: resumable state version {state.get('version')!r} is not supported by this code "
                         f"(reads version {_RESUME_VERSION}); resume with --resume none or the code that wrote it")
    return state
