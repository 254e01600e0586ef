"""Shared set-up of the end-to-end tests: tiny CLIP weight files, a generated DTD root, test hygiene.

- :func:`save_tiny_clips` saves random tiny CLIPs (``torch.manual_seed(seed)`` first, so every test
  module gets the same weights) to ``<base>/<name>.pt`` files, which every run of a test then loads;
- :func:`make_tiny_env` adds a 4-class DTD root (6 images per class: 3 train / 1 val / 2 test) and
  returns ``{"base", "root", "student", "teacher"}``;
- :func:`skip_env_probe` replaces torch's environment probe (it shells out for seconds per call and is
  not what the tests check); :func:`reset_run_state` undoes the process-wide state a ``train.main``
  run leaves behind (deterministic-algorithms flag, log handlers on the root logger).

The matching pytest fixtures (``fast_env_info``, ``run_hygiene``, ``one_thread``) live in
``tests/conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

import torch

import clip
from engine import utils as engine_utils

from .fake_roots import make_root

__all__ = ["CANNED_ENV_INFO", "TINY_CLIPS", "save_tiny_clips", "make_tiny_env", "tiny_student_args", "start_torchrun",
           "skip_env_probe", "reset_run_state"]

CANNED_ENV_INFO = "env info skipped in tests"
TINY_CLIPS = ("tiny-vit-student", "tiny-vit-teacher")


def save_tiny_clips(base: os.PathLike, names: Sequence[str] = TINY_CLIPS, seed: int = 0) -> Dict[str, str]:
    """Random-weight tiny CLIPs ``names`` saved (OpenAI state-dict format) as ``<base>/<name>.pt``; name -> path."""
    torch.manual_seed(seed)
    paths: Dict[str, str] = {}
    for name in names:
        paths[name] = os.path.join(str(base), f"{name}.pt")
        clip.save_openai_state_dict(clip.load(name, allow_random=True), paths[name])
    return paths


def make_tiny_env(base: os.PathLike, data_dir: Optional[os.PathLike] = None) -> Dict[str, object]:
    """A 4-class DTD root under ``data_dir`` (default ``base``) and the tiny student / teacher CLIP files in ``base``."""
    root = make_root("DescribableTextures", base if data_dir is None else data_dir, n_classes=4, per_class=6)
    paths = save_tiny_clips(base)
    return {"base": base, "root": root, "student": paths["tiny-vit-student"], "teacher": paths["tiny-vit-teacher"]}


def tiny_student_args(root: str, student: str, teacher: str, out: os.PathLike, batch: int, epochs: int,
                      *opts: str) -> List[str]:
    """``train.py`` arguments of a tiny PromptKD student (zero-shot teacher, KD_WEIGHT 10, LR 0.05, normalize
    only, no loader workers) on the DTD ``root``, training batch ``batch`` for ``epochs``, then ``opts``."""
    return ["--root", root, "--seed", "1", "--trainer", "PromptKDStudent",
            "--dataset-config-file", "configs/datasets/dtd.yaml",
            "--config-file", "configs/trainers/PromptKD/tiny_smoke.yaml", "--output-dir", str(out),
            "MODEL.BACKBONE.NAME", student, "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot",
            "TRAINER.PROMPTKD.TEACHER_NAME", teacher, "TRAINER.PROMPTKD.KD_WEIGHT", "10.0",
            "OPTIM.MAX_EPOCH", str(epochs), "OPTIM.LR", "0.05", "INPUT.TRANSFORMS", "['normalize']",
            "DATALOADER.TRAIN_X.BATCH_SIZE", str(batch), "DATALOADER.TEST.BATCH_SIZE", "4",
            "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "100", *opts]


def start_torchrun(train_args: Sequence[str], cwd: os.PathLike, nproc: int = 2) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node N train.py ARGS`` in the background (one thread per process,
    unbuffered output, stdout and stderr together); the caller waits with ``communicate``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "train.py"]
    return subprocess.Popen(cmd + list(train_args), cwd=str(cwd), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def skip_env_probe(monkeypatch) -> None:
    """Skip torch's slow environment probe in the log header of ``train.main`` runs."""
    monkeypatch.setattr(engine_utils, "collect_env_info", lambda: CANNED_ENV_INFO)


def reset_run_state() -> None:
    """Undo what a ``train.main`` run leaves behind: ``ENGINE.DETERMINISTIC``'s process-wide flag and the
    stdout / log-file handlers it installs on the root logger."""
    torch.use_deterministic_algorithms(False)
    engine_utils.close_logger()
