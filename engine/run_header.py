"""The first lines of a run's log, and the full environment beside it.

``log.txt`` starts with a short header (:func:`header_lines`: command, engine and library versions, device,
dataset, trainer, config files, where the rest is written) and, once the dataset is read, the class names
(:func:`class_lines`: base and novel halves, or the training classes). The long material goes into files in
the run folder: ``env.txt`` (:func:`write_environment`: the command, code version, arguments and the
system information of :func:`engine.utils.collect_env_info`) and ``config.yaml`` (the resolved config,
written by ``train.py``).
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
from typing import Any, Dict, List, Sequence

import torch

from . import utils as engine_utils
from .fileio import atomic_write_text

__all__ = ["ENV_FILE", "header_lines", "class_lines", "write_environment", "library_versions", "device_line"]

ENV_FILE = "env.txt"


def library_versions() -> str:
    """``python X, torch Y, torchvision Z, open_clip W`` (a missing package is left out)."""
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    for module in ("torchvision", "open_clip"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except (ImportError, AttributeError):
            pass
    return ", ".join(parts)


def device_line(cfg: Any) -> str:
    """The device the run uses: the CUDA devices' names, or the CPU with its thread count."""
    if cfg.USE_CUDA and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"cuda ({n} visible: {torch.cuda.get_device_name(0)}{' ...' if n > 1 else ''})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _run_lines(cfg: Any, argv: Sequence[str]) -> List[str]:
    """command, start time, engine, library versions and device: the lines the log header and env.txt share."""
    from . import api

    return [f"command: python train.py {' '.join(shlex.quote(a) for a in argv)}",
            f"started: {datetime.datetime.now().isoformat(timespec='seconds')}", api.describe_engine(),
            f"versions: {library_versions()}", f"device: {device_line(cfg)}"]


def _dataset_line(cfg: Any, name: str) -> str:
    d = cfg.DATASET
    shown = name if name == d.NAME else f"{name} ({d.NAME})"
    extra = [f"{k.lower()} {d.get(k)}" for k in ("EVAL_PROTOCOL", "SUBSAMPLE_CLASSES", "TRAIN_LABELS") if k in d]
    return f"dataset: {shown} in {d.ROOT}; shots {d.NUM_SHOTS}; " + ", ".join(extra)


def header_lines(cfg: Any, argv: Sequence[str], config_file: str = "", dataset_config_file: str = "",
                 dataset_name: str = "") -> List[str]:
    """The short header at the top of ``log.txt`` (``dataset_name``: the dataset's name in outputs, default
    ``DATASET.NAME``)."""
    out = cfg.OUTPUT_DIR
    return _run_lines(cfg, argv) + [
        _dataset_line(cfg, dataset_name or cfg.DATASET.NAME),
        f"trainer: {cfg.TRAINER.NAME}; config: {config_file or '-'}; dataset config: {dataset_config_file or '-'}; "
        f"seed {cfg.SEED}",
        f"output: {out} (resolved config: {os.path.join(out, 'config.yaml')}; environment: "
        f"{os.path.join(out, ENV_FILE)})",
    ]


def class_lines(dataset: Any, limit: int = 40) -> List[str]:
    """The class names a run trains and evaluates on: base and novel halves (base-to-novel), else the classes."""
    def fmt(names: Sequence[str]) -> str:
        names = list(names)
        shown = ", ".join(names[:limit])
        return f"{len(names)}: {shown}" + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")

    eval_sets: Dict[str, Any] = getattr(dataset, "eval_sets", None) or {}
    lines = []
    if "base" in eval_sets and "novel" in eval_sets:
        lines.append(f"classes (base) {fmt(eval_sets['base'].classnames)}")
        lines.append(f"classes (novel) {fmt(eval_sets['novel'].classnames)}")
    classnames = getattr(dataset, "classnames", None)
    if classnames is not None:
        lines.append(f"classes (training) {fmt(classnames)}")
    template = getattr(dataset, "template", None)
    if template:
        lines.append(f"template: {template!r}")
    return lines


def write_environment(cfg: Any, argv: Sequence[str], args: Any = None, code: str = "unknown") -> str:
    """Write ``<OUTPUT_DIR>/env.txt``: command, working directory, code version (``code``), engine, arguments
    and the system information."""
    command, started, *rest = _run_lines(cfg, argv)
    lines = [command, started, f"working directory: {os.getcwd()}", f"code: git commit {code}", *rest]
    if args is not None:
        lines += ["", "** Arguments **"] + [f"{k}: {getattr(args, k)}" for k in sorted(vars(args))]
    lines += ["", "** System info **", engine_utils.collect_env_info(), ""]
    path = os.path.join(cfg.OUTPUT_DIR, ENV_FILE)
    atomic_write_text(path, "\n".join(lines))
    return path
