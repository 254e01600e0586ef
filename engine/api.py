"""The one import point for Dassl names (``from engine.api import TrainerX, DATASET_REGISTRY, ...``).

The backend is chosen once, at import time, by the environment variable ``PROMPTKD_ENGINE``:

- ``builtin`` (default): the objects of this package (``engine.*``);
- ``dassl``: the objects of an installed Dassl.pytorch (``dassl.config``, ``dassl.engine``,
  ``dassl.data``, ``dassl.data.datasets``, ``dassl.data.transforms``, ``dassl.optim``,
  ``dassl.evaluation``, ``dassl.metrics``, ``dassl.utils``), so the project's trainers and datasets
  subclass and register into Dassl itself. A few names are the project's on that backend (the trainer
  classes' run loop, data loaders, LR scheduler, evaluator under DDP, checkpoint I/O, the stdout tee):
  :mod:`engine.dassl_compat` says which and why, and the log header names them.

Our own helpers that Dassl lacks (atomic saves, distributed helpers, checked config merges,
engine config extras) always come from ``engine.*`` and work with both backends.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, Dict, List, Tuple

import torch

from engine import __version__ as _ENGINE_VERSION

# Engine-only helpers, re-exported with either backend.
from engine import dist  # noqa: F401
from engine.config import add_engine_extras, merge_from_file_checked, merge_from_list_checked  # noqa: F401
from engine.fileio import atomic_torch_save, atomic_write_json, atomic_write_text  # noqa: F401

logger = logging.getLogger(__name__)

ENV_VAR = "PROMPTKD_ENGINE"
VALID_ENGINES = ("builtin", "dassl")

# (builtin module, dassl module) -> the names taken from it (the attribute name is the same in both)
_GROUPS: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("engine.config", "dassl.config"): ("get_cfg_default",),
    ("engine.trainer", "dassl.engine"): ("TRAINER_REGISTRY", "build_trainer", "TrainerBase", "SimpleTrainer",
                                         "TrainerX"),
    ("engine.data.datasets", "dassl.data.datasets"): ("DATASET_REGISTRY", "build_dataset", "Datum", "DatasetBase"),
    ("engine.data.data_manager", "dassl.data"): ("DataManager", "DatasetWrapper"),
    ("engine.data.data_manager", "dassl.data.data_manager"): ("build_data_loader",),
    ("engine.data.transforms", "dassl.data.transforms"): ("build_transform", "INTERPOLATION_MODES"),
    ("engine.optim", "dassl.optim"): ("build_optimizer", "build_lr_scheduler"),
    ("engine.evaluation", "dassl.evaluation"): ("EVALUATOR_REGISTRY", "build_evaluator", "EvaluatorBase",
                                                "Classification"),
    ("engine.evaluation", "dassl.metrics"): ("compute_accuracy",),
    ("engine.checkpoint", "dassl.utils"): ("load_pretrained_weights", "load_checkpoint", "save_checkpoint",
                                           "resume_from_checkpoint"),
    ("engine.utils", "dassl.utils"): ("count_num_param", "setup_logger", "set_random_seed", "collect_env_info",
                                      "mkdir_if_missing", "check_isfile", "read_json", "write_json", "read_image",
                                      "listdir_nohidden", "tolist_if_not", "AverageMeter", "MetricMeter"),
    ("engine.registry", "dassl.utils"): ("Registry",),
}
# name -> (builtin module, dassl module)
_SOURCES: Dict[str, Tuple[str, str]] = {name: modules for modules, names in _GROUPS.items() for name in names}

_DASSL_INSTALL_HELP = (
    "Install Dassl.pytorch from source: `git clone https://github.com/KaiyangZhou/Dassl.pytorch && "
    "cd Dassl.pytorch && pip install -r requirements.txt && pip install --no-build-isolation -e .`. "
    "Upstream Dassl imports the `wilds` package at import time (dassl/data/datasets/dg/wilds), so "
    "`wilds` must be installed too (its requirements pin wilds==1.2.2). "
    f"Or unset {ENV_VAR} to use the built-in engine."
)


def selected_engine() -> str:
    """The backend named by ``PROMPTKD_ENGINE`` (default builtin); anything else is an error."""
    value = os.environ.get(ENV_VAR, "builtin").strip().lower() or "builtin"
    if value not in VALID_ENGINES:
        raise ValueError(
            f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not valid: use one of {list(VALID_ENGINES)} "
            "(builtin = this project's engine, dassl = an installed Dassl.pytorch)"
        )
    return value


def _import(module_name: str, engine_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        if engine_name != "dassl":
            raise
        what = ("the `dassl` package is not importable" if e.name == "dassl"
                else f"importing {module_name} failed ({e.__class__.__name__}: {e})")
        raise ImportError(f"{ENV_VAR}=dassl: {what}. {_DASSL_INSTALL_HELP}") from e


def _resolve(engine_name: str) -> Dict[str, Any]:
    index = VALID_ENGINES.index(engine_name)
    out: Dict[str, Any] = {}
    for name, sources in _SOURCES.items():
        module = _import(sources[index], engine_name)  # imported once (sys.modules)
        if not hasattr(module, name):
            help_text = f" {_DASSL_INSTALL_HELP}" if index else ""
            raise ImportError(f"{ENV_VAR}={engine_name}: {sources[index]} has no attribute '{name}' (is the installed "
                              f"{'Dassl' if index else 'engine'} too old?).{help_text}")
        out[name] = getattr(module, name)
    return out


def _resolve_dassl() -> Dict[str, Any]:
    """Dassl's objects, with logging restored after the import and the project's replacements
    (:data:`engine.dassl_compat.OVERRIDES`) for what the Dassl snapshot lacks or breaks under current torch."""
    disabled_before = logging.root.manager.disable
    objects = _resolve("dassl")
    from engine import dassl_compat

    dassl_compat.restore_logging(disabled_before)
    objects.update(dassl_compat.OVERRIDES)
    return objects


ENGINE_NAME: str = selected_engine()
globals().update(_resolve_dassl() if ENGINE_NAME == "dassl" else _resolve(ENGINE_NAME))


def describe_engine() -> str:
    """The log header's engine line: the backend and its version; under Dassl also one line per part the
    project provides on that backend (``engine.dassl_compat``)."""
    if ENGINE_NAME == "dassl":
        from engine import dassl_compat

        version = getattr(importlib.import_module("dassl"), "__version__", "unknown")
        lines = [f"Engine: dassl (Dassl.pytorch {version}, selected by {ENV_VAR}=dassl; torch {torch.__version__})"]
        lines += [f"  dassl backend: {note}" for note in dassl_compat.notes()]
        return "\n".join(lines)
    return f"Engine: builtin (PromptKD engine {_ENGINE_VERSION}, Dassl-compatible; torch {torch.__version__})"


def end_run_logging() -> None:
    """End of a ``train.main`` run: under Dassl, remove the stdout copy into log.txt (runs in one process must
    not write into each other's logs); nothing to do for the built-in engine, whose file handler is replaced
    by the next ``setup_logger``."""
    if ENGINE_NAME == "dassl":
        from engine import dassl_compat

        dassl_compat.release_stdout()


__all__: List[str] = sorted(list(_SOURCES) + [
    "ENGINE_NAME", "describe_engine", "end_run_logging", "selected_engine", "dist", "atomic_torch_save",
    "atomic_write_text", "atomic_write_json", "merge_from_file_checked", "merge_from_list_checked",
    "add_engine_extras"])
