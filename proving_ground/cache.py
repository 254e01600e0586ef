"""Where the proving ground's world and models live, and atomic file writing.

Layout under the cache root (default ``./output/proving_ground/``, overridden by the environment
variable ``PROMPTKD_PG_DIR`` or an explicit argument)::

    <root>/data/<data digest>/proving_ground/           # CoOp-style dataset (DATASET.ROOT = <root>/data/<digest>)
        images/<class_folder>/<split>_<index>.png
        split_zhou_ProvingGround.json
        world.json                                     # the world config that produced it
    <root>/models/<model key>/<name>.pt                # OpenAI-format state dict (clip.load() reads it)
    <root>/models/<model key>/<name>.json              # open_clip model config (open_clip.add_model_config)
    <root>/models/<model key>/pretrain.json            # configs, zero-shot accuracies, timings

The data digest hashes the world config (with the renderer's version) and the split sizes; the model key hashes the
world config, the model config and the training config (with the trainer's version). A changed
configuration therefore never reuses a stale entry. Every file is written to a temporary name in
the same directory and moved into place with ``os.replace`` (:mod:`engine.fileio`), so an interrupted
build leaves no half-written file behind; ``pretrain.json`` is written last and marks a complete model entry.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from engine import fileio

from .world_config import WorldConfig, config_digest

logger = logging.getLogger(__name__)

ENV_VAR = "PROMPTKD_PG_DIR"
DEFAULT_DIR = os.path.join("output", "proving_ground")

PathLike = Union[str, os.PathLike]


def cache_root(root: Optional[PathLike] = None) -> Path:
    """The cache root: ``root`` if given, else ``$PROMPTKD_PG_DIR``, else ``./output/proving_ground``."""
    if root is not None and str(root) != "":
        return Path(root)
    env = os.environ.get(ENV_VAR, "")
    return Path(env) if env else Path(DEFAULT_DIR)


def model_key(world: WorldConfig, model: Dict[str, Any], train: Dict[str, Any], version: int) -> str:
    """Hash of everything that determines a pre-trained model's weights."""
    return config_digest({"world": world.to_dict(), "model": model, "train": train, "pretrain_version": version})


def model_dir(key: str, root: Optional[PathLike] = None) -> Path:
    return cache_root(root) / "models" / key


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON (:func:`engine.fileio.atomic_write_text`)."""
    fileio.atomic_write_text(os.fspath(path), json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``path`` (:func:`engine.fileio.atomic_torch_save`)."""
    fileio.atomic_torch_save(obj, os.fspath(path))
    return Path(path)


def read_json(path: PathLike, what: str) -> Dict[str, Any]:
    """Read a JSON object, with an error naming ``what`` the file is and how to fix a broken one."""
    path = Path(path)
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found at {path}: run tools/build_proving_ground.py to create it") from None
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{what} at {path} is not valid JSON ({e}); delete it and rerun tools/build_proving_ground.py"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} at {path}: expected a JSON object, got {type(obj).__name__}")
    return obj
