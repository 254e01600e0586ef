"""Trainer classes (Dassl ``dassl.engine``): ``TrainerBase`` -> ``TrainerX``, ``TRAINER_REGISTRY`` and
``build_trainer`` (lifecycle of docs/REFERENCE.md A4).

``TrainerX`` is Dassl's ``SimpleTrainer`` and ``TrainerX`` in one class; ``SimpleTrainer`` is another name of
it, so Dassl-style code that subclasses or patches ``SimpleTrainer`` keeps working. Every method of Dassl's
trainers that the CoOp family uses exists with the same name and meaning, so Dassl-style trainers (CoOp,
CoCoOp, MaPLe, IVLP, PromptSRC, PromptKD) subclass ``TrainerX`` unchanged. Dassl's default model
(``SimpleNet``) and its labeled + unlabeled trainer (``TrainerXU``) are not provided: no trainer of the
CoOp family uses them (a trainer builds its model in ``build_model``). Differences:
- device: ``cuda`` (the local rank's GPU under torchrun) when available and ``USE_CUDA``, else CPU;
  never ``nn.DataParallel`` (docs/REFERENCE.md D8); under torchrun ``self.model`` is wrapped in
  DDP when it has trainable parameters (``wrap_model_ddp``, overridable);
- ``load_model`` works with ``val_result=None`` (docs/REFERENCE.md D10) and loads strictly by default,
  reporting missing/unexpected keys;
- only rank 0 writes checkpoints, tensorboard and logs; evaluation is distributed-aware;
- progress: a tqdm bar over batches (rank 0, TTY only) plus Dassl's periodic log line;
- reliability (docs/RELIABILITY.md): ``RESUME`` auto / none / path; one resumable state
  ``OUTPUT_DIR/last_state.pth.tar`` written atomically every ``TRAIN.CHECKPOINT_STEPS`` steps and at
  every epoch end, so a run killed mid-epoch resumes onto the same trajectory; per-epoch scalars in
  ``OUTPUT_DIR/metrics.csv`` and tensorboard (``epoch/*``); a non-finite loss stops the run naming
  epoch/step and keeps the last good state.

This module holds the loop; two small objects owned by the trainer hold the rest: the resumable state
(:class:`engine.resume.ResumableState`, ``self.resumer``) and the epoch log (:class:`engine.epoch_log.EpochLog`,
``self.epoch_logger``: metrics.csv, tensorboard scalars, progress line and bar).
"""

from __future__ import annotations

import datetime
import logging
from abc import ABC, abstractmethod
import os
import os.path as osp
import signal
import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from engine import dist
from engine.checkpoint import (BEST_NAME, load_checkpoint, numbered_checkpoint_name, read_checkpoint_pointer,
                               resume_from_checkpoint, save_checkpoint)
from engine.data.data_manager import DataManager
from engine.epoch_log import EpochLog, progress_enabled
from engine.evaluation import build_evaluator
from engine.registry import Registry
from engine.resume import ResumableState
from engine.utils import AverageMeter, set_random_seed, tolist_if_not

logger = logging.getLogger(__name__)

__all__ = ["TRAINER_REGISTRY", "build_trainer", "TrainerBase", "TrainerX", "SimpleTrainer", "unwrap_model"]

TRAINER_REGISTRY = Registry("TRAINER")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside a DDP / DataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model


class TrainerBase(ABC):
    """Base class for iterative trainers: model registry, checkpoints, LR/optimiser steps, tensorboard writer.
    The loop, its hooks and Dassl's ``run_epoch`` / ``test`` / ``parse_batch_*`` / ``model_inference`` are
    :class:`TrainerX`'s."""

    def __init__(self) -> None:
        self._models: "OrderedDict[str, nn.Module]" = OrderedDict()
        self._optims: "OrderedDict[str, Optional[torch.optim.Optimizer]]" = OrderedDict()
        self._scheds: "OrderedDict[str, Any]" = OrderedDict()
        self._writer = None

    # ------------------------------------------------------------------ model registry
    def register_model(self, name: str = "model", model: Optional[nn.Module] = None,
                       optim: Optional[torch.optim.Optimizer] = None, sched: Any = None) -> None:
        """Register a model (and its optimiser/scheduler) under ``name``; the name is the checkpoint folder."""
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if name in self._models:
            raise KeyError(f"Found duplicate model names: '{name}' is already registered")
        if model is None:
            raise ValueError(f"register_model('{name}'): model is None")
        self._models[name], self._optims[name], self._scheds[name] = model, optim, sched
        if optim is not None:  # the configured base LRs (``--resume-with-changes`` re-applies them)
            built = [g.get("initial_lr", g["lr"]) for g in optim.param_groups]
            self.__dict__.setdefault("_built_lrs", {})[name] = built

    def get_model_names(self, names: Optional[Union[str, List[str]]] = None) -> List[str]:
        """All registered names, or the validated subset ``names``."""
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        for name in tolist_if_not(names):
            if name not in names_real:
                raise KeyError(f"Model '{name}' is not registered; registered models: {names_real}")
        return tolist_if_not(names)

    # ------------------------------------------------------------------ checkpoints
    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result: Optional[float] = None,
                   model_name: str = "") -> None:
        """Save every registered model to ``<directory>/<name>/``.

        Call it on every rank: rank 0 writes, then all ranks meet at a barrier (so a following
        ``load_model`` on any rank sees the file).
        """
        if dist.is_main_process():
            for name in self.get_model_names():
                save_checkpoint({"state_dict": unwrap_model(self._models[name]).state_dict(), "epoch": epoch + 1,
                                 **self.optim_state_dicts(name), "val_result": val_result},
                                osp.join(directory, name), is_best=is_best, model_name=model_name)
        dist.barrier()

    def optim_state_dicts(self, name: str) -> Dict[str, Any]:
        """``{"optimizer": ..., "scheduler": ...}`` state dicts of registered model ``name`` (None when it has none),
        as the epoch checkpoints and the resumable state store them."""
        optim, sched = self._optims[name], self._scheds[name]
        return {"optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None}

    def resume_model_if_exist(self, directory: str) -> int:
        """Resume every registered model from ``<directory>/<name>/checkpoint``; returns the start epoch.

        Returns 0 ("train from scratch") when a model folder or its pointer file is missing.
        """
        names = self.get_model_names()
        for path in [osp.join(directory, name) for name in names]:
            if not osp.isdir(path) or read_checkpoint_pointer(path) is None:
                files = sorted(os.listdir(path)) if osp.isdir(path) else "(no folder)"
                logger.info("No checkpoint found, train from scratch (%s has no 'checkpoint' pointer file; files: %s)",
                            path, files)
                return 0
        if names:
            logger.info("Found checkpoint at %s (will resume training)", directory)
        start_epoch = 0
        for name in names:
            path = osp.join(directory, name)
            start_epoch = resume_from_checkpoint(path, unwrap_model(self._models[name]), self._optims[name],
                                                 self._scheds[name])
            best_path = osp.join(path, BEST_NAME)
            best = load_checkpoint(best_path).get("val_result") if osp.isfile(best_path) else None
            if best is not None:
                self.best_result = max(getattr(self, "best_result", -np.inf), float(best))
        return start_epoch

    def load_model(self, directory: str, epoch: Optional[int] = None, strict: bool = True) -> None:
        """Load ``model-best.pth.tar`` (or ``model.pth.tar-<epoch>``) of every registered model.

        Strict by default: a key mismatch raises an error listing missing/unexpected keys. With
        ``strict=False`` mismatches are logged as warnings (never silently ignored).
        """
        if not directory:
            logger.info("Note that load_model() is skipped as no pretrained model is given (ignore this if it's done "
                        "on purpose)")
            return
        model_file = BEST_NAME if epoch is None else numbered_checkpoint_name(epoch)
        for name in self.get_model_names():
            folder = osp.join(directory, name)
            model_path = osp.join(folder, model_file)
            if not osp.exists(model_path):
                found = sorted(os.listdir(folder)) if osp.isdir(folder) else []
                raise FileNotFoundError(
                    f"No model at {model_path}. Files in {folder}: {found if found else '(folder missing or empty)'}. "
                    "Check --model-dir / --load-epoch.")
            checkpoint = load_checkpoint(model_path)
            val_result = checkpoint.get("val_result")
            val_str = f"{val_result:.1f}" if isinstance(val_result, (int, float)) else str(val_result)
            logger.info("Load %s to %s (epoch=%s, val_result=%s)", model_path, name, checkpoint.get("epoch"), val_str)
            self.load_state_dict_checked(unwrap_model(self._models[name]), checkpoint["state_dict"], strict=strict,
                                         source=model_path)

    @staticmethod
    def load_state_dict_checked(model: nn.Module, state_dict: Dict[str, Any], strict: bool = True,
                                source: str = "") -> None:
        """``load_state_dict`` that reports key mismatches with the file name."""
        result = model.load_state_dict(state_dict, strict=False)
        if result.missing_keys or result.unexpected_keys:
            msg = (f"State dict from {source or 'checkpoint'} does not match the model: missing keys "
                   f"{list(result.missing_keys)}, unexpected keys {list(result.unexpected_keys)}")
            if strict:
                raise RuntimeError(msg)
            logger.warning(msg)

    # ------------------------------------------------------------------ modes and steps
    def set_model_mode(self, mode: str = "train", names: Optional[Union[str, List[str]]] = None) -> None:
        """``.train()`` or ``.eval()`` ("eval"/"test") on the registered models."""
        if mode not in ("train", "test", "eval"):
            raise KeyError(f"set_model_mode: unknown mode '{mode}' (use 'train', 'eval' or 'test')")
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def _optimizers(self, names: Optional[Union[str, List[str]]] = None) -> List[torch.optim.Optimizer]:
        """The optimisers of the registered models ``names`` (default: all) that have one, in registration order."""
        return [self._optims[name] for name in self.get_model_names(names) if self._optims[name] is not None]

    def update_lr(self, names: Optional[Union[str, List[str]]] = None) -> None:
        """Step the LR scheduler of each registered model (Dassl trainers call it once per epoch)."""
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss: torch.Tensor) -> None:
        """Non-finite loss guard: raises naming the epoch, step and value (nothing is stepped or saved)."""
        if not torch.isfinite(loss).all():
            epoch, max_epoch = getattr(self, "epoch", 0) + 1, getattr(self, "max_epoch", "?")
            step, num = getattr(self, "batch_idx", 0) + 1, getattr(self, "num_batches", "?")
            raise FloatingPointError(
                f"Loss is infinite or NaN! (loss {loss.detach().float().flatten()[:4].tolist()} at epoch "
                f"{epoch}/{max_epoch}, step {step}/{num}); lower the learning rate or check the inputs")

    def model_zero_grad(self, names: Optional[Union[str, List[str]]] = None) -> None:
        for optim in self._optimizers(names):
            optim.zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names: Optional[Union[str, List[str]]] = None) -> None:
        """Step the optimisers; the gradient norm of their parameters is kept in ``last_grad_norm`` (logs)."""
        grads = [p.grad.detach().float().norm() for optim in self._optimizers(names)
                 for group in optim.param_groups for p in group["params"] if p.grad is not None]
        self.last_grad_norm = float(torch.linalg.vector_norm(torch.stack(grads)).item()) if grads else None
        for optim in self._optimizers(names):
            optim.step()

    def model_backward_and_update(self, loss: torch.Tensor, names: Optional[Union[str, List[str]]] = None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)

    # ------------------------------------------------------------------ tensorboard
    def init_writer(self, log_dir: str) -> None:
        """Create the SummaryWriter (rank 0 only)."""
        if dist.is_main_process() and self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            logger.info("Initialize tensorboard (log_dir=%s)", log_dir)
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_scalar(self, tag: str, scalar_value: Any, global_step: Optional[int] = None) -> None:
        """Add a scalar to tensorboard; no-op when the writer was never initialised (eval-only runs)."""
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    # ------------------------------------------------------------------ training step
    def forward_backward(self, *batches: Any) -> Dict[str, float]:
        """One optimisation step on a batch; returns a dict of scalars for the meters.

        Evaluation-only trainers (e.g. ZeroshotCLIP) do not define it and cannot be trained.
        """
        raise RuntimeError(f"{type(self).__name__} does not define forward_backward(), so it cannot be trained; "
                           "run it with --eval-only (or implement forward_backward)")


class TrainerX(TrainerBase):
    """Trainer using labeled data (the base of every CLIP prompt trainer): device choice, data, model,
    evaluator, Dassl's epoch hooks, the epoch loop and ``test``."""

    # DDP option for models with trainable parameters not used in every forward pass.
    ddp_find_unused_parameters: bool = False
    # Builds ``dm`` in build_data_loader and the evaluator (the Dassl backend uses Dassl's data sets, transforms
    # and evaluator).
    data_manager_class: Any = DataManager
    evaluator_builder = staticmethod(build_evaluator)

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.check_cfg(cfg)
        self.device = self.choose_device(cfg)
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.cfg = cfg
        self.best_result = -np.inf
        self.best_epoch: Optional[int] = None
        self.epoch_logger = EpochLog(self)
        self.resumer = ResumableState(self)
        self.build_data_loader()
        self.build_model()
        self.wrap_model_ddp()
        self.seed_rank_streams()
        self.evaluator = self.evaluator_builder(cfg, lab2cname=self.lab2cname)

    def check_cfg(self, cfg: Any) -> None:
        """Hook: validate trainer-specific config values (raise with a clear message)."""

    @staticmethod
    def choose_device(cfg: Any) -> torch.device:
        """cuda (the local rank's GPU under torchrun) when available and ``USE_CUDA``, else cpu.

        With several visible GPUs and no torchrun, one GPU is used (never DataParallel).
        """
        if not (cfg.USE_CUDA and torch.cuda.is_available()):
            return torch.device("cpu")
        index = dist.get_local_rank() if dist.is_dist() else torch.cuda.current_device()
        if not dist.is_dist() and torch.cuda.device_count() > 1:
            logger.info("Detected %d GPUs: using cuda:%d only (DataParallel is never used; launch with torchrun for "
                        "multi-GPU DDP)", torch.cuda.device_count(), index)
        return torch.device("cuda", index)

    def build_data_loader(self) -> None:
        """Create ``dm`` and the Dassl data attributes (loaders, num_classes, lab2cname)."""
        dm = self.data_manager_class(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.lab2cname = dm.lab2cname
        self.dm = dm

    @abstractmethod
    def build_model(self) -> None:
        """Build the model(s), their optimisers and schedulers and ``register_model`` them. Every trainer defines
        it: the engine has no default model (Dassl's ``SimpleNet`` is not provided), so a trainer without it
        cannot be instantiated."""

    def wrap_model_ddp(self) -> None:
        """Under torchrun, wrap ``self.model`` in DistributedDataParallel if it has trainable parameters.

        Registered models stay unwrapped, so checkpoints have no ``module.`` prefix.
        """
        model = getattr(self, "model", None)
        ddp = nn.parallel.DistributedDataParallel
        if (not dist.is_dist() or not isinstance(model, nn.Module) or isinstance(model, ddp)
                or not any(p.requires_grad for p in model.parameters())):
            return
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.model = ddp(model, device_ids=device_ids, find_unused_parameters=self.ddp_find_unused_parameters)
        logger.info("Wrapped the model in DistributedDataParallel (world size %d)", dist.get_world_size())

    def seed_rank_streams(self) -> None:
        """Per-rank seeding under torchrun: once the model is built (identically on every rank), ranks
        > 0 reseed random / numpy / torch with ``dist.rank_seed(SEED)`` so that their augmentations
        differ (the loaders' generators and workers are seeded per rank by ``build_data_loader``)."""
        seed = self.cfg.SEED
        if dist.is_dist() and dist.get_rank() > 0 and seed is not None and seed >= 0:
            set_random_seed(dist.rank_seed(seed))

    # ------------------------------------------------------------------ the run
    def train(self) -> None:
        """Dassl's loop: before_train, [before_epoch, run_epoch, after_epoch] per epoch, after_train; after each
        epoch its row of the epoch log and the epoch-end resumable state. A non-finite loss stops the run with
        the last good resumable state kept."""
        try:
            self.before_train()
            for self.epoch in range(self.start_epoch, self.max_epoch):
                self.before_epoch()
                self.run_epoch()
                self.after_epoch()
                self.epoch_logger.end_epoch()
                self.resumer.save(self.epoch + 1, 0)
            self.after_train()
        except FloatingPointError as exc:
            self.resumer.roll_back()
            logger.error("Training stopped: %s\n%s", exc, self.resumer.last_good_state_message())
            raise

    def before_epoch(self) -> None:
        """Hook called before each epoch."""

    def before_train(self) -> None:
        """Hook called once before the first epoch: where the run starts (``RESUME``), tensorboard."""
        self.start_epoch = self.resumer.resume_or_start()
        if self.start_epoch == 0 and self.resumer.point is None and self.max_epoch > 0:
            # the first resumable state exists before the first epoch checkpoint: a kill between
            # model.pth.tar-1 and the epoch-end state still resumes with every RNG state
            self.resumer.save(0, 0)
        self.init_writer(osp.join(self.output_dir, "tensorboard"))  # SummaryWriter creates the folder
        self.time_start = time.time()

    def after_train(self) -> None:
        logger.info("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                logger.info("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                logger.info("Deploy the last-epoch model")
            self.update_epoch_row({"test_accuracy": self.test()})  # kept when the result is a number
        logger.info("Elapsed: %s", datetime.timedelta(seconds=round(time.time() - self.time_start)))
        self.close_writer()

    def after_epoch(self) -> None:
        if not self.cfg.TEST.NO_TEST and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            self.log_epoch_scalar("val_accuracy", curr_result)
            if curr_result > self.best_result:
                self.best_result = curr_result
                self.best_epoch = self.epoch + 1
                self.save_model(self.epoch, self.output_dir, val_result=curr_result, model_name=BEST_NAME)
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        if (freq > 0 and (self.epoch + 1) % freq == 0) or self.epoch + 1 == self.max_epoch:
            self.save_model(self.epoch, self.output_dir)

    # ------------------------------------------------------------------ epoch log (metrics.csv, tensorboard)
    @property
    def epoch_log(self) -> List[Dict[str, Any]]:
        """One row of scalars per finished epoch (the rows of ``metrics.csv``)."""
        return self.epoch_logger.rows

    def log_epoch_scalar(self, name: str, value: float) -> None:
        """Add a scalar (e.g. a validation accuracy) to this epoch's row of metrics.csv / tensorboard."""
        self.epoch_logger.add_scalar(name, value)

    def update_epoch_row(self, values: Dict[str, float]) -> None:
        """Merge ``values`` (e.g. the final test accuracies) into the last epoch's row of metrics.csv."""
        self.epoch_logger.update_last_row(values)

    # ------------------------------------------------------------------ the epoch loop
    def run_epoch(self) -> None:
        """One epoch over ``train_loader_x``; a resume into this epoch replays the loader to the saved batch."""
        self.set_model_mode("train")
        batch_time, data_time = AverageMeter(), AverageMeter()
        sampler = getattr(self.train_loader_x, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        self.num_batches = len(self.train_loader_x)
        self.epoch_logger.start_epoch()
        skip = self.resumer.begin_epoch()
        iterator = iter(self.train_loader_x)
        if skip:
            self.resumer.replay(lambda: next(iterator), skip)
        bar = self.epoch_logger.progress_bar(initial=skip)
        end = time.time()
        for self.batch_idx in range(skip, self.num_batches):
            batch = next(iterator)
            data_time.update(time.time() - end)
            loss_summary = self._run_step(batch)
            batch_time.update(time.time() - end)
            self.epoch_logger.meters.update(loss_summary)
            self._log_progress(batch_time, data_time, bar)
            self._after_train_step()
            end = time.time()
        bar.close()

    def _run_step(self, *batches: Any) -> Any:
        """``forward_backward`` plus the gradient norm in the summary when the trainer did not report it."""
        self.last_grad_norm = None
        summary = self.forward_backward(*batches)
        if isinstance(summary, dict) and "grad_norm" not in summary and self.last_grad_norm is not None:
            summary = dict(summary, grad_norm=self.last_grad_norm)
        return summary

    def _log_progress(self, batch_time: AverageMeter, data_time: AverageMeter, bar: Any) -> None:
        self.epoch_logger.progress(batch_time, data_time, bar)

    def _after_train_step(self) -> None:
        """Mid-epoch resumable state every ``TRAIN.CHECKPOINT_STEPS`` global steps (the epoch-end state is
        written by :meth:`train` after each epoch), a pending preemption, and the test-only
        ``TRAIN.DEBUG_KILL_AT_STEP``."""
        train_cfg = self.cfg.TRAIN
        step = self.epoch * self.num_batches + self.batch_idx + 1
        every = int(train_cfg.get("CHECKPOINT_STEPS", 0) or 0)
        if every > 0 and step % every == 0 and self.batch_idx + 1 < self.num_batches:
            self.resumer.save(self.epoch, self.batch_idx + 1)
        self.resumer.check_preemption()
        kill_at = int(train_cfg.get("DEBUG_KILL_AT_STEP", 0) or 0)
        if kill_at > 0 and step == kill_at:
            logger.warning("TRAIN.DEBUG_KILL_AT_STEP = %d reached: killing this process (test hook)", kill_at)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    # ------------------------------------------------------------------ resumable state hooks (engine.resume)
    def state_for_resume(self, name: str) -> Dict[str, Any]:
        """What the resumable state stores for registered model ``name`` (default: its full state dict)."""
        return {"state_dict": unwrap_model(self._models[name]).state_dict()}

    def load_state_for_resume(self, name: str, entry: Dict[str, Any], source: str) -> None:
        """Inverse of :meth:`state_for_resume` (strict)."""
        self.load_state_dict_checked(unwrap_model(self._models[name]), entry["state_dict"], strict=True, source=source)

    def extra_resume_state(self) -> Dict[str, Any]:
        """Hook: trainer state outside the registered models to put in the resumable state (e.g. a GradScaler)."""
        return {}

    def load_extra_resume_state(self, extra: Dict[str, Any]) -> None:
        """Hook: restore :meth:`extra_resume_state`."""

    # ------------------------------------------------------------------ evaluation and Dassl accessors
    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """Evaluate on ``split`` (default TEST.SPLIT; "val" falls back to test when there is no val loader).

        Returns the evaluator's first metric (accuracy) and writes ``<split>/<metric>`` scalars.
        """
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split, data_loader = "test", self.test_loader
        logger.info("Evaluate on the *%s* set", split)
        for batch in tqdm(data_loader, disable=not progress_enabled(), leave=False, desc=f"eval {split}",
                          dynamic_ncols=True):
            input, label = self.parse_batch_test(batch)
            self.evaluator.process(self.model_inference(input), label)
        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        return list(results.values())[0]

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        return self.model(input)

    def parse_batch_train(self, batch: Dict[str, Any]):
        """(image, label, domain) on the device."""
        return tuple(batch[key].to(self.device, non_blocking=True) for key in ("img", "label", "domain"))

    def parse_batch_test(self, batch: Dict[str, Any]):
        """(image, label) on the device."""
        return tuple(batch[key].to(self.device, non_blocking=True) for key in ("img", "label"))

    def get_current_lr(self, names: Optional[Union[str, List[str]]] = None) -> float:
        """LR of param group 0 of the first registered optimiser (0.0 when no optimiser is registered)."""
        optims = self._optimizers(names)
        return optims[0].param_groups[0]["lr"] if optims else 0.0

    def get_specific_lr(self, names: Optional[str] = None) -> float:
        """LR of param group 0 of the optimiser of model ``names`` (default: the first registered model)."""
        name = self.get_model_names(names)[0]  # an unknown name: KeyError listing the registered ones
        if self._optims[name] is None:
            raise ValueError(f"Model '{name}' was registered without an optimizer")
        return self._optims[name].param_groups[0]["lr"]


#: Dassl's name of the generic trainer (merged into ``TrainerX``), kept for Dassl-style code.
SimpleTrainer = TrainerX


def build_trainer(cfg: Any) -> TrainerBase:
    """Instantiate the trainer registered as ``cfg.TRAINER.NAME`` (unknown names list the registered ones)."""
    name = cfg.TRAINER.NAME
    if not name:
        raise ValueError("TRAINER.NAME is empty: pass --trainer <Name>. Registered trainers: "
                         f"{sorted(TRAINER_REGISTRY.registered_names())}")
    trainer_cls = TRAINER_REGISTRY.get(name)  # an unknown name: an error listing the registered ones
    if cfg.VERBOSE:
        logger.info("Loading trainer: %s", name)
    return trainer_cls(cfg)
