"""The project's side of the real-Dassl backend (``PROMPTKD_ENGINE=dassl``); imported by :mod:`engine.api` only.

Under this backend the trainers and datasets subclass and register into the installed Dassl.pytorch: Dassl's
config defaults, trainer and dataset registries, ``Datum`` / ``DatasetBase``, ``build_dataset``,
``build_transform``, ``build_optimizer``, evaluator, metrics and utilities are used. A few objects are the
project's instead, because the Dassl snapshot fails under current torch or lacks what a run of this project
relies on. Each is named once in the log at start (:func:`notes`, printed by ``engine.api.describe_engine``):

- ``build_lr_scheduler``: Dassl's warm-up schedulers pass ``verbose`` positionally to torch's LR scheduler,
  which current torch rejects (a TypeError for any ``OPTIM.WARMUP_EPOCH > 0``). The engine's builder gives the
  same schedule (Dassl's stepping semantics; see :mod:`engine.optim`).
- logging: importing Dassl calls ``logging.disable(logging.WARNING)`` (its wilds module); :func:`restore_logging`
  undoes it right after the import.
- the trainer classes (:class:`TrainerBase`, :class:`TrainerX`; ``SimpleTrainer`` is another name of ``TrainerX``,
  as in the engine) are subclasses of Dassl's whose run loop is the engine's: ``--resume auto|none|PATH``, the
  mid-epoch resumable state and ``TRAIN.CHECKPOINT_STEPS``, ``metrics.csv`` (which the collapse detector's loss
  check reads), ``sampler.set_epoch`` every epoch, DDP under torchrun, writes on rank 0 only. Their data sets and
  transforms come from Dassl's ``build_dataset`` / ``build_transform``; the loaders are the engine's (a generator
  seeded from ``SEED``, so the same seed gives the same data order on both engines; DistributedSampler and a
  padding-free evaluation sampler under torchrun; ``DATALOADER.CACHE_IMAGES``). ``build_data_loader``,
  ``DataManager`` and ``DatasetWrapper`` are therefore the engine's too.
- ``build_evaluator``: Dassl's evaluator; under torchrun a wrapper feeds it the predictions of every rank
  (Dassl's own sees only its rank's shard).
- ``save_checkpoint`` / ``load_checkpoint`` / ``resume_from_checkpoint``: the engine's (atomic writes,
  weights-only loading), same files and layout as Dassl's.
- ``setup_logger``: Dassl replaces ``sys.stdout`` by a tee into ``log.txt`` and never removes it (runs in one
  process stacked their logs; its ``close`` closed pytest's capture). :func:`setup_logger` installs a tee that
  :func:`release_stdout` removes at the end of every ``train.main``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from dassl import engine as _dassl_engine
from dassl.data.datasets import build_dataset as _dassl_build_dataset
from dassl.data.transforms import build_transform as _dassl_build_transform
from dassl.evaluation import build_evaluator as _dassl_build_evaluator

from engine import dist
from engine import trainer as _builtin
from engine import utils as engine_utils
from engine.checkpoint import load_checkpoint, resume_from_checkpoint, save_checkpoint
from engine.data.data_manager import DataManager as _BuiltinDataManager
from engine.data.data_manager import DatasetWrapper, build_data_loader
from engine.optim import build_lr_scheduler

__all__ = ["OVERRIDES", "notes", "restore_logging", "setup_logger", "release_stdout", "build_evaluator", "DataManager",
           "TrainerBase", "TrainerX", "SimpleTrainer"]

_NOTES: List[str] = [
    "the LR scheduler is the project's (same schedule as Dassl's; Dassl's warm-up schedulers pass `verbose` "
    f"positionally, which torch {torch.__version__} rejects)",
    "trainers subclass Dassl's TrainerX with the project's run loop (resume auto/none/PATH, mid-epoch resumable "
    "state, TRAIN.CHECKPOINT_STEPS, metrics.csv, sampler.set_epoch, torchrun DDP)",
    "data sets and transforms are Dassl's, the loaders the project's (seeded generator: same data order as the "
    "built-in engine; DDP samplers; DATALOADER.CACHE_IMAGES)",
    "evaluation uses Dassl's evaluator (fed every rank's predictions under torchrun)",
    "checkpoints are written atomically and loaded weights-only by the project's functions (Dassl's layout)",
]


def notes() -> List[str]:
    """What the project provides under this backend (one line each, for the log header)."""
    return list(_NOTES)


def restore_logging(level_before_import: int) -> None:
    """Undo a ``logging.disable`` done while Dassl was imported (its wilds module disables WARNING and below)."""
    now = logging.root.manager.disable
    if now != level_before_import:
        logging.disable(level_before_import)
        note = (f"logging re-enabled after importing Dassl (it had called logging.disable("
                f"{logging.getLevelName(now)}), which hides every log line and warning)")
        if note not in _NOTES:
            _NOTES.insert(0, note)


# ------------------------------------------------------------------------------------------------ stdout tee
class _StdoutTee:
    """``sys.stdout`` replacement copying everything written (Dassl's prints, log lines) into a file; anything
    else (``isatty``, ``fileno``, ``encoding``, ...) is the console's.

    Unlike Dassl's tee it never closes the console stream, and :meth:`close_file` leaves it a pass-through."""

    def __init__(self, console: Any, path: str) -> None:
        self.console = console
        self._file: Optional[Any] = open(path, "a", encoding="utf-8")

    def write(self, text: str) -> int:
        self.console.write(text)
        if self._file is not None:
            self._file.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        if self._file is not None:
            self._file.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_ACTIVE_TEE: Optional[_StdoutTee] = None


def release_stdout() -> None:
    """Remove the tee installed by :func:`setup_logger` (restoring the stdout it wrapped) and close its file."""
    global _ACTIVE_TEE
    tee, _ACTIVE_TEE = _ACTIVE_TEE, None
    if tee is None:
        return
    if sys.stdout is tee:
        sys.stdout = tee.console
    tee.close_file()


def setup_logger(output: Optional[str] = None) -> Optional[str]:
    """Dassl's ``setup_logger`` contract (stdout copied into ``<output>/log.txt``, an existing file is never
    overwritten) without stacking: a previous tee is removed first. Logging goes to the (tee'd) console; only
    rank 0 writes the file. Returns the log file path (None when no file is written)."""
    release_stdout()
    path = None
    if output and dist.is_main_process():
        path = engine_utils._resolve_log_path(output)
        global _ACTIVE_TEE
        sys.stdout = _ACTIVE_TEE = _StdoutTee(sys.stdout, path)
    engine_utils.setup_logger(None)
    return path


# ------------------------------------------------------------------------------------------------ evaluation
class _RankGatheredEvaluator:
    """Dassl evaluator under torchrun: each rank keeps its (prediction, label) pairs; :meth:`evaluate` gathers the
    pairs of every rank and feeds them to the Dassl evaluator (as one-hot outputs, so its argmax is the
    prediction), whose metrics then cover the whole evaluation set on every rank."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reset()

    def reset(self) -> None:
        self.inner.reset()
        self._preds: List[torch.Tensor] = [torch.zeros(0, dtype=torch.long)]  # a rank may see no sample
        self._labels: List[torch.Tensor] = [torch.zeros(0, dtype=torch.long)]
        self._num_classes = 0

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        self._num_classes = max(self._num_classes, int(mo.shape[1]))
        self._preds.append(mo.max(1)[1].detach().cpu())
        self._labels.append(gt.detach().cpu())

    def evaluate(self) -> Dict[str, float]:
        parts = dist.all_gather_object(((torch.cat(self._preds), torch.cat(self._labels)), self._num_classes))
        num_classes = max(n for _, n in parts)
        self.inner.reset()
        for (pred, label), _ in parts:
            if len(label):
                self.inner.process(F.one_hot(pred, num_classes).float(), label)
        return self.inner.evaluate()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def build_evaluator(cfg: Any, **kwargs: Any) -> Any:
    """Dassl's ``build_evaluator``; under torchrun wrapped so that its metrics cover every rank's shard."""
    evaluator = _dassl_build_evaluator(cfg, **kwargs)
    return _RankGatheredEvaluator(evaluator) if dist.is_dist() else evaluator


# ------------------------------------------------------------------------------------------------ data
class DataManager(_BuiltinDataManager):
    """The engine's data manager with Dassl's ``build_dataset`` and ``build_transform``."""

    def __init__(self, cfg: Any, custom_tfm_train: Any = None, custom_tfm_test: Any = None,
                 dataset_wrapper: Optional[type] = None) -> None:
        super().__init__(cfg, custom_tfm_train, custom_tfm_test, dataset_wrapper,
                         dataset_builder=_dassl_build_dataset, transform_builder=_dassl_build_transform)


# ------------------------------------------------------------------------------------------------ trainers
class TrainerBase(_builtin.TrainerBase, _dassl_engine.TrainerBase):
    """Dassl's ``TrainerBase`` with the engine's model registry, checkpoints and loop."""


class TrainerX(_builtin.TrainerX, TrainerBase, _dassl_engine.TrainerX):
    """Dassl's ``TrainerX`` (labeled data only) with the engine's epoch loop; the base of the project's trainers.
    Data sets, transforms and the evaluator are Dassl's; the model is the trainer's (``build_model``)."""

    data_manager_class = DataManager
    evaluator_builder = staticmethod(build_evaluator)


SimpleTrainer = TrainerX  # as in the engine: Dassl's SimpleTrainer is merged into TrainerX


#: engine.api names whose Dassl object is replaced by the project's under this backend (see the module docstring)
OVERRIDES: Dict[str, Any] = dict(
    TrainerBase=TrainerBase, SimpleTrainer=SimpleTrainer, TrainerX=TrainerX, DataManager=DataManager,
    DatasetWrapper=DatasetWrapper, build_data_loader=build_data_loader, build_lr_scheduler=build_lr_scheduler,
    build_evaluator=build_evaluator, save_checkpoint=save_checkpoint, load_checkpoint=load_checkpoint,
    resume_from_checkpoint=resume_from_checkpoint, setup_logger=setup_logger)
