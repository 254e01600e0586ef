"""Trainer classes (Dassl ``dassl.engine``): ``TrainerBase`` -> ``SimpleTrainer`` -> ``TrainerX`` /
``TrainerXU``, ``TRAINER_REGISTRY`` and ``build_trainer`` (lifecycle of docs/REFERENCE.md A4).

Every method of Dassl's trainers exists with the same name and meaning, so Dassl-style trainers
(CoOp, CoCoOp, MaPLe, IVLP, PromptSRC, PromptKD) subclass ``TrainerX`` unchanged. Differences:
- device: ``cuda`` (the local rank's GPU under torchrun) when available and ``USE_CUDA``, else CPU;
  never ``nn.DataParallel`` (docs/REFERENCE.md D8); under torchrun ``self.model`` is wrapped in
  DDP when it has trainable parameters (``wrap_model_ddp``, overridable);
- ``load_model`` works with ``val_result=None`` (docs/REFERENCE.md D10) and loads strictly by default,
  reporting missing/unexpected keys;
- only rank 0 writes checkpoints, tensorboard and logs; evaluation is distributed-aware;
- progress: a tqdm bar over batches (rank 0, TTY only) plus Dassl's periodic log line;
- reliability (docs/RELIABILITY.md): ``RESUME`` auto / none / path; one resumable state
  ``OUTPUT_DIR/last_state.pth.tar`` written atomically every ``TRAIN.CHECKPOINT_STEPS`` steps and at
  every epoch end (weights, optimiser, scheduler, trainer state, position in the epoch, RNG states), so a
  run killed mid-epoch resumes onto the same trajectory; per-epoch scalars in ``OUTPUT_DIR/metrics.csv``
  and tensorboard (``epoch/*``); a non-finite loss stops the run naming epoch/step and keeps the last
  good state.
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
import math
import os
import os.path as osp
import signal
import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from engine import dist, run_guard
from engine.checkpoint import (
    BEST_NAME,
    PREV_STATE_NAME,
    RESUME_STATE_NAME,
    capture_rng_state,
    load_checkpoint,
    load_pretrained_weights,
    load_resume_state,
    read_checkpoint_pointer,
    restore_rng_state,
    resume_from_checkpoint,
    save_checkpoint,
    save_resume_state,
)
from engine.data.data_manager import DataManager
from engine.evaluation import build_evaluator
from engine.fileio import atomic_write_text
from engine.optim import build_lr_scheduler, build_optimizer
from engine.registry import Registry
from engine.utils import AverageMeter, MetricMeter, count_num_param, mkdir_if_missing, set_random_seed, tolist_if_not

logger = logging.getLogger(__name__)

__all__ = [
    "TRAINER_REGISTRY",
    "build_trainer",
    "TrainerBase",
    "SimpleTrainer",
    "TrainerX",
    "TrainerXU",
    "SimpleNet",
    "unwrap_model",
    "METRICS_CSV_NAME",
]

TRAINER_REGISTRY = Registry("TRAINER")
#: per-epoch scalars of a run (one row per epoch), in OUTPUT_DIR
METRICS_CSV_NAME = "metrics.csv"


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside a DDP / DataParallel wrapper (or the model itself)."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


def _progress_enabled() -> bool:
    return dist.is_main_process() and sys.stderr.isatty()


class SimpleNet(nn.Module):
    """Dassl's default model: backbone -> optional MLP head -> linear classifier.

    The built-in engine takes backbones from ``torchvision.models`` by name (``MODEL.BACKBONE.NAME``,
    e.g. ``resnet18``): the last ``nn.Linear`` of the torchvision model is removed and its input
    size becomes the feature size. ``MODEL.BACKBONE.PRETRAINED`` loads torchvision's default
    weights (needs them in the torch hub cache or network access).
    """

    def __init__(self, cfg: Any, model_cfg: Any, num_classes: int, **kwargs: Any) -> None:
        super().__init__()
        import torchvision

        name = model_cfg.BACKBONE.NAME
        available = torchvision.models.list_models()
        if name not in available:
            raise ValueError(
                f"MODEL.BACKBONE.NAME='{name}' is not a torchvision model; the default SimpleNet needs one of "
                f"torchvision.models.list_models() (e.g. resnet18, resnet50). CLIP trainers override build_model()."
            )
        backbone = torchvision.models.get_model(name, weights="DEFAULT" if model_cfg.BACKBONE.PRETRAINED else None)
        last_name, last_linear = None, None
        for mod_name, mod in backbone.named_modules():
            if isinstance(mod, nn.Linear):
                last_name, last_linear = mod_name, mod
        if last_linear is None:
            raise ValueError(f"torchvision model '{name}' has no final nn.Linear layer to use as classifier input")
        fdim = last_linear.in_features
        parent = backbone.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else backbone
        setattr(parent, last_name.rsplit(".", 1)[-1], nn.Identity())
        self.backbone = backbone

        self.head: Optional[nn.Module] = None
        if model_cfg.HEAD.NAME and model_cfg.HEAD.HIDDEN_LAYERS:
            if model_cfg.HEAD.NAME != "mlp":
                raise ValueError(
                    f"MODEL.HEAD.NAME='{model_cfg.HEAD.NAME}' is unknown; the built-in engine provides 'mlp'"
                )
            acts = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
            if model_cfg.HEAD.ACTIVATION not in acts:
                raise ValueError(
                    f"MODEL.HEAD.ACTIVATION='{model_cfg.HEAD.ACTIVATION}' is unknown; choose from {sorted(acts)}"
                )
            layers: List[nn.Module] = []
            in_dim = fdim
            for hidden in model_cfg.HEAD.HIDDEN_LAYERS:
                layers.append(nn.Linear(in_dim, hidden))
                if model_cfg.HEAD.BN:
                    layers.append(nn.BatchNorm1d(hidden))
                layers.append(acts[model_cfg.HEAD.ACTIVATION]())
                if model_cfg.HEAD.DROPOUT > 0:
                    layers.append(nn.Dropout(model_cfg.HEAD.DROPOUT))
                in_dim = hidden
            self.head = nn.Sequential(*layers)
            fdim = in_dim

        self.classifier: Optional[nn.Linear] = nn.Linear(fdim, num_classes) if num_classes > 0 else None
        self._fdim = fdim

    @property
    def fdim(self) -> int:
        return self._fdim

    def forward(self, x: torch.Tensor, return_feature: bool = False) -> Any:
        f = self.backbone(x)
        if self.head is not None:
            f = self.head(f)
        if self.classifier is None:
            return f
        y = self.classifier(f)
        if return_feature:
            return y, f
        return y


class TrainerBase(ABC):
    """Base class for iterative trainers: model registry, checkpoints, LR/optimiser steps, the loop."""

    def __init__(self) -> None:
        self._models: "OrderedDict[str, nn.Module]" = OrderedDict()
        self._optims: "OrderedDict[str, Optional[torch.optim.Optimizer]]" = OrderedDict()
        self._scheds: "OrderedDict[str, Any]" = OrderedDict()
        self._writer = None

    # ------------------------------------------------------------------ model registry
    def register_model(
        self,
        name: str = "model",
        model: Optional[nn.Module] = None,
        optim: Optional[torch.optim.Optimizer] = None,
        sched: Any = None,
    ) -> None:
        """Register a model (and its optimiser/scheduler) under ``name``; the name is the checkpoint folder."""
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if name in self._models:
            raise KeyError(f"Found duplicate model names: '{name}' is already registered")
        if model is None:
            raise ValueError(f"register_model('{name}'): model is None")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched
        if optim is not None:  # the configured base LRs (``--resume-with-changes`` re-applies them)
            self.__dict__.setdefault("_built_lrs", {})[name] = [g.get("initial_lr", g["lr"]) for g in optim.param_groups]

    def get_model_names(self, names: Optional[Union[str, List[str]]] = None) -> List[str]:
        """All registered names, or the validated subset ``names``."""
        names_real = list(self._models.keys())
        if names is not None:
            names = tolist_if_not(names)
            for name in names:
                if name not in names_real:
                    raise KeyError(f"Model '{name}' is not registered; registered models: {names_real}")
            return names
        return names_real

    # ------------------------------------------------------------------ checkpoints
    def save_model(
        self,
        epoch: int,
        directory: str,
        is_best: bool = False,
        val_result: Optional[float] = None,
        model_name: str = "",
    ) -> None:
        """Save every registered model to ``<directory>/<name>/``.

        Call it on every rank: rank 0 writes, then all ranks meet at a barrier (so a following
        ``load_model`` on any rank sees the file).
        """
        if dist.is_main_process():
            for name in self.get_model_names():
                optim = self._optims[name]
                sched = self._scheds[name]
                save_checkpoint(
                    {
                        "state_dict": unwrap_model(self._models[name]).state_dict(),
                        "epoch": epoch + 1,
                        "optimizer": optim.state_dict() if optim is not None else None,
                        "scheduler": sched.state_dict() if sched is not None else None,
                        "val_result": val_result,
                    },
                    osp.join(directory, name),
                    is_best=is_best,
                    model_name=model_name,
                )
        dist.barrier()

    def resume_model_if_exist(self, directory: str) -> int:
        """Resume every registered model from ``<directory>/<name>/checkpoint``; returns the start epoch.

        Returns 0 ("train from scratch") when a model folder or its pointer file is missing.
        """
        names = self.get_model_names()
        if not names:
            return 0
        for name in names:
            path = osp.join(directory, name)
            if not osp.isdir(path):
                logger.info("No checkpoint found, train from scratch")
                return 0
            if read_checkpoint_pointer(path) is None:
                logger.info(
                    "No checkpoint found, train from scratch (%s has no 'checkpoint' pointer file; files: %s)",
                    path,
                    sorted(os.listdir(path)),
                )
                return 0
        logger.info("Found checkpoint at %s (will resume training)", directory)
        start_epoch = 0
        for name in names:
            path = osp.join(directory, name)
            start_epoch = resume_from_checkpoint(
                path, unwrap_model(self._models[name]), self._optims[name], self._scheds[name]
            )
            best_path = osp.join(path, BEST_NAME)
            if osp.isfile(best_path):
                best = load_checkpoint(best_path).get("val_result")
                if best is not None:
                    self.best_result = max(getattr(self, "best_result", -np.inf), float(best))
        return start_epoch

    def load_model(self, directory: str, epoch: Optional[int] = None, strict: bool = True) -> None:
        """Load ``model-best.pth.tar`` (or ``model.pth.tar-<epoch>``) of every registered model.

        Strict by default: a key mismatch raises an error listing missing/unexpected keys. With
        ``strict=False`` mismatches are logged as warnings (never silently ignored).
        """
        if not directory:
            logger.info(
                "Note that load_model() is skipped as no pretrained model is given (ignore this if it's done on purpose)"
            )
            return
        model_file = BEST_NAME if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                folder = osp.join(directory, name)
                found = sorted(os.listdir(folder)) if osp.isdir(folder) else []
                raise FileNotFoundError(
                    f"No model at {model_path}. Files in {folder}: {found if found else '(folder missing or empty)'}. "
                    "Check --model-dir / --load-epoch."
                )
            checkpoint = load_checkpoint(model_path)
            state_dict = checkpoint["state_dict"]
            ck_epoch = checkpoint.get("epoch")
            val_result = checkpoint.get("val_result")
            val_str = f"{val_result:.1f}" if isinstance(val_result, (int, float)) else str(val_result)
            logger.info("Load %s to %s (epoch=%s, val_result=%s)", model_path, name, ck_epoch, val_str)
            self.load_state_dict_checked(unwrap_model(self._models[name]), state_dict, strict=strict, source=model_path)

    @staticmethod
    def load_state_dict_checked(
        model: nn.Module,
        state_dict: Dict[str, Any],
        strict: bool = True,
        source: str = "",
        allowed_missing: Sequence[str] = (),
    ) -> None:
        """``load_state_dict`` that reports key mismatches with the file name.

        Keys in ``allowed_missing`` (exact names) may be absent from ``state_dict`` even when strict.
        """
        result = model.load_state_dict(state_dict, strict=False)
        missing = [k for k in result.missing_keys if k not in set(allowed_missing)]
        unexpected = list(result.unexpected_keys)
        if missing or unexpected:
            msg = f"State dict from {source or 'checkpoint'} does not match the model: missing keys {missing}, unexpected keys {unexpected}"
            if strict:
                raise RuntimeError(msg)
            logger.warning(msg)

    # ------------------------------------------------------------------ modes and steps
    def set_model_mode(self, mode: str = "train", names: Optional[Union[str, List[str]]] = None) -> None:
        """``.train()`` or ``.eval()`` ("eval"/"test") on the registered models."""
        for name in self.get_model_names(names):
            if mode == "train":
                self._models[name].train()
            elif mode in ("test", "eval"):
                self._models[name].eval()
            else:
                raise KeyError(f"set_model_mode: unknown mode '{mode}' (use 'train', 'eval' or 'test')")

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
                f"{epoch}/{max_epoch}, step {step}/{num}); lower the learning rate or check the inputs"
            )

    def model_zero_grad(self, names: Optional[Union[str, List[str]]] = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names: Optional[Union[str, List[str]]] = None) -> None:
        """Step the optimisers; the gradient norm of their parameters is kept in ``last_grad_norm`` (logs)."""
        grads = [p.grad.detach().float().norm() for name in self.get_model_names(names)
                 if self._optims[name] is not None
                 for group in self._optims[name].param_groups for p in group["params"] if p.grad is not None]
        self.last_grad_norm = float(torch.linalg.vector_norm(torch.stack(grads)).item()) if grads else None
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss: torch.Tensor, names: Optional[Union[str, List[str]]] = None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)

    # ------------------------------------------------------------------ tensorboard
    def init_writer(self, log_dir: str) -> None:
        """Create the SummaryWriter (rank 0 only)."""
        if not dist.is_main_process():
            return
        if self.__dict__.get("_writer") is None:
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

    # ------------------------------------------------------------------ loop
    def train(self, start_epoch: int, max_epoch: int) -> None:
        """Generic loop: before_train, [before_epoch, run_epoch, after_epoch] per epoch, after_train."""
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
            self.end_of_epoch()
        self.after_train()

    def before_train(self) -> None:
        """Hook called once before the first epoch."""

    def after_train(self) -> None:
        """Hook called once after the last epoch."""

    def before_epoch(self) -> None:
        """Hook called before each epoch."""

    def after_epoch(self) -> None:
        """Hook called after each epoch."""

    def end_of_epoch(self) -> None:
        """Called after ``after_epoch`` (epoch logs and the resumable state in ``SimpleTrainer``)."""

    @abstractmethod
    def run_epoch(self) -> None:
        """Train for one epoch."""

    @abstractmethod
    def test(self, split: Optional[str] = None) -> Any:
        """Evaluate; returns the main metric."""

    @abstractmethod
    def parse_batch_train(self, *batches: Any) -> Any:
        """Turn a training batch into tensors on the device."""

    @abstractmethod
    def parse_batch_test(self, batch: Any) -> Any:
        """Turn an evaluation batch into (input, label) on the device."""

    @abstractmethod
    def model_inference(self, input: Any) -> Any:
        """Forward pass used by ``test``; returns logits."""

    def forward_backward(self, *batches: Any) -> Dict[str, float]:
        """One optimisation step on a batch; returns a dict of scalars for the meters.

        Evaluation-only trainers (e.g. ZeroshotCLIP) do not define it and cannot be trained.
        """
        raise RuntimeError(
            f"{type(self).__name__} does not define forward_backward(), so it cannot be trained; "
            "run it with --eval-only (or implement forward_backward)"
        )


class SimpleTrainer(TrainerBase):
    """Generic trainer: device choice, data, model, evaluator, Dassl's epoch hooks and ``test``."""

    # DDP option for models with trainable parameters not used in every forward pass.
    ddp_find_unused_parameters: bool = False
    # Builds ``dm`` in build_data_loader (the Dassl backend passes Dassl's dataset/transform builders).
    data_manager_class: Any = DataManager

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
        self.epoch_log: List[Dict[str, Any]] = []  # one row of scalars per finished epoch (metrics.csv)
        self._epoch_scalars: Dict[str, float] = {}
        self._resume_point: Optional[Dict[str, Any]] = None
        self._last_saved_state: Optional[tuple] = None
        self._previous_saved_state: Optional[tuple] = None
        self.build_data_loader()
        self.build_model()
        self.wrap_model_ddp()
        self.seed_rank_streams()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)

    def check_cfg(self, cfg: Any) -> None:
        """Hook: validate trainer-specific config values (raise with a clear message)."""

    @staticmethod
    def choose_device(cfg: Any) -> torch.device:
        """cuda (the local rank's GPU under torchrun) when available and ``USE_CUDA``, else cpu.

        With several visible GPUs and no torchrun, one GPU is used (never DataParallel).
        """
        if cfg.USE_CUDA and torch.cuda.is_available():
            if dist.is_dist():
                index = dist.get_local_rank()
            else:
                index = torch.cuda.current_device()
                n = torch.cuda.device_count()
                if n > 1:
                    logger.info(
                        "Detected %d GPUs: using cuda:%d only (DataParallel is never used; launch with torchrun for multi-GPU DDP)",
                        n,
                        index,
                    )
            return torch.device("cuda", index)
        return torch.device("cpu")

    def build_data_loader(self) -> None:
        """Create ``dm`` and the Dassl data attributes (loaders, num_classes, lab2cname, ...)."""
        dm = self.data_manager_class(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def build_model(self) -> None:
        """Default: a ``SimpleNet`` classifier with its optimiser and scheduler, registered as "model"."""
        cfg = self.cfg
        logger.info("Building model")
        self.model = SimpleNet(cfg, cfg.MODEL, self.num_classes)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        logger.info("# params: %s", f"{count_num_param(self.model):,}")
        self.optim = build_optimizer(self.model, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def wrap_model_ddp(self) -> None:
        """Under torchrun, wrap ``self.model`` in DistributedDataParallel if it has trainable parameters.

        Registered models stay unwrapped, so checkpoints have no ``module.`` prefix.
        """
        if not dist.is_dist():
            return
        model = getattr(self, "model", None)
        if not isinstance(model, nn.Module) or isinstance(model, nn.parallel.DistributedDataParallel):
            return
        if not any(p.requires_grad for p in model.parameters()):
            return
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.model = nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=self.ddp_find_unused_parameters
        )
        logger.info("Wrapped the model in DistributedDataParallel (world size %d)", dist.get_world_size())

    def seed_rank_streams(self) -> None:
        """Per-rank seeding under torchrun: once the model is built (identically on every rank), ranks
        > 0 reseed random / numpy / torch with ``dist.rank_seed(SEED)`` so that their augmentations
        differ (the loaders' generators and workers are seeded per rank by ``build_data_loader``)."""
        seed = self.cfg.SEED
        if dist.is_dist() and dist.get_rank() > 0 and seed is not None and seed >= 0:
            set_random_seed(dist.rank_seed(seed))

    def train(self) -> None:  # type: ignore[override]
        try:
            super().train(self.start_epoch, self.max_epoch)
        except FloatingPointError as exc:
            self._roll_back_unusable_state()
            logger.error("Training stopped: %s\n%s", exc, self._last_good_state_message())
            raise

    def before_train(self) -> None:
        self.start_epoch = self.resume_or_start()
        if self.start_epoch == 0 and self._resume_point is None and self.max_epoch > 0:
            # the first resumable state exists before the first epoch checkpoint: a kill between
            # model.pth.tar-1 and the epoch-end state still resumes with every RNG state
            self.save_resume_state(0, 0)
        writer_dir = osp.join(self.output_dir, "tensorboard")
        if dist.is_main_process():
            mkdir_if_missing(writer_dir)
        self.init_writer(writer_dir)
        self.time_start = time.time()

    def after_train(self) -> None:
        logger.info("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                logger.info("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                logger.info("Deploy the last-epoch model")
            result = self.test()
            if isinstance(result, (int, float)):
                self.update_epoch_row({"test_accuracy": float(result)})
        elapsed = str(datetime.timedelta(seconds=round(time.time() - self.time_start)))
        logger.info("Elapsed: %s", elapsed)
        self.close_writer()

    def after_epoch(self) -> None:
        last_epoch = (self.epoch + 1) == self.max_epoch
        do_test = not self.cfg.TEST.NO_TEST
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        meet_checkpoint_freq = (self.epoch + 1) % freq == 0 if freq > 0 else False
        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            self.log_epoch_scalar("val_accuracy", curr_result)
            if curr_result > self.best_result:
                self.best_result = curr_result
                self.best_epoch = self.epoch + 1
                self.save_model(self.epoch, self.output_dir, val_result=curr_result, model_name=BEST_NAME)
        if meet_checkpoint_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir)

    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """Evaluate on ``split`` (default TEST.SPLIT; "val" falls back to test when there is no val loader).

        Returns the evaluator's first metric (accuracy) and writes ``<split>/<metric>`` scalars.
        """
        self.set_model_mode("eval")
        self.evaluator.reset()
        if split is None:
            split = self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"
            data_loader = self.test_loader
        logger.info("Evaluate on the *%s* set", split)
        for batch in tqdm(
            data_loader, disable=not _progress_enabled(), leave=False, desc=f"eval {split}", dynamic_ncols=True
        ):
            input, label = self.parse_batch_test(batch)
            output = self.model_inference(input)
            self.evaluator.process(output, label)
        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        return list(results.values())[0]

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        return self.model(input)

    def parse_batch_test(self, batch: Dict[str, Any]):
        input = batch["img"].to(self.device, non_blocking=True)
        label = batch["label"].to(self.device, non_blocking=True)
        return input, label

    def get_current_lr(self, names: Optional[Union[str, List[str]]] = None) -> float:
        """LR of param group 0 of the first registered optimiser (0.0 when no optimiser is registered)."""
        for name in self.get_model_names(names):
            optim = self._optims[name]
            if optim is not None:
                return optim.param_groups[0]["lr"]
        return 0.0

    def get_specific_lr(self, names: Optional[str] = None) -> float:
        """LR of param group 0 of the optimiser of model ``names`` (default: the first registered model)."""
        name = self.get_model_names()[0] if names is None else names
        if name not in self._optims:
            raise KeyError(f"Model '{name}' is not registered; registered models: {self.get_model_names()}")
        optim = self._optims[name]
        if optim is None:
            raise ValueError(f"Model '{name}' was registered without an optimizer")
        return optim.param_groups[0]["lr"]

    # ------------------------------------------------------------------ resume (docs/RELIABILITY.md)
    @property
    def resume_state_path(self) -> str:
        """``<OUTPUT_DIR>/last_state.pth.tar``: the single resumable state of the run."""
        return osp.join(self.output_dir, RESUME_STATE_NAME)

    def resume_or_start(self) -> int:
        """Apply ``RESUME`` and return the epoch to start from.

        ``none``: train from scratch (a stale resumable state in OUTPUT_DIR is removed). ``""`` / ``auto``:
        resume OUTPUT_DIR from its resumable state (exact, also mid-epoch), else from its Dassl epoch
        checkpoints (``resume_model_if_exist``), else start from scratch. A path: that run directory (same
        order) or a ``last_state.pth.tar`` file; a path that does not exist is an error.
        """
        mode = str(self.cfg.RESUME or "").strip()
        if mode.lower() == "none":
            if dist.is_main_process():
                self._remove_stale_run_files()
            dist.barrier()
            return 0
        auto = mode.lower() in ("", "auto")
        target = self.output_dir if auto else osp.expanduser(mode)
        if not osp.exists(target):
            if auto:
                return 0
            raise FileNotFoundError(
                f"RESUME / --resume {mode!r}: no such file or directory. Use 'auto' (resume OUTPUT_DIR when it holds "
                "a resumable state or checkpoints), 'none' (start from scratch), or a run directory / its "
                f"{RESUME_STATE_NAME}"
            )
        if osp.isfile(target):
            return self._check_resumed(self.load_resume_state_file(target), target, auto)
        state_file = osp.join(target, RESUME_STATE_NAME)
        if osp.isfile(state_file):
            return self._check_resumed(self.load_resume_state_file(state_file), target, auto)
        start = self._check_resumed(self.resume_model_if_exist(target), target, auto)
        if start > 0:
            logger.info("No %s in %s: resumed from the epoch-%d checkpoint (RNG states are not restored, so the rest "
                        "of the run is not bit-identical to an uninterrupted one)", RESUME_STATE_NAME, target, start)
            self._restore_epoch_log_from_csv(osp.join(target, METRICS_CSV_NAME), start)
        elif not auto and self.get_model_names():
            raise FileNotFoundError(
                f"RESUME / --resume {mode!r}: the folder holds neither {RESUME_STATE_NAME} nor epoch checkpoints of "
                f"{self.get_model_names()} (files: {sorted(os.listdir(target))}); pass the output directory of the "
                "run to resume, or --resume none to start from scratch"
            )
        return start

    def _remove_stale_run_files(self) -> None:
        """``RESUME none``: the previous run's resumable state and Dassl checkpoints in OUTPUT_DIR go (a stale
        ``model.pth.tar-N`` of a longer abandoned run would otherwise be taken for this run's, e.g. as a teacher)."""
        stale = [self.resume_state_path] if osp.isfile(self.resume_state_path) else []
        for name in self.get_model_names():
            folder = osp.join(self.output_dir, name)
            if osp.isdir(folder):
                stale += [osp.join(folder, f) for f in sorted(os.listdir(folder))
                          if f.startswith("model.pth.tar-") or f in (BEST_NAME, "checkpoint")]
        for path in stale:
            os.remove(path)
        if stale:
            logger.info("RESUME none: removed %d file(s) of the previous run in %s: %s", len(stale), self.output_dir,
                        stale)

    def _check_resumed(self, start: int, target: str, auto: bool) -> int:
        """After a resume: refuse to relabel another run's finished training as this run, and apply accepted
        optimiser changes (``--resume-with-changes``) instead of the saved LR schedule."""
        other = osp.realpath(target if osp.isdir(target) else osp.dirname(target)) != osp.realpath(self.output_dir)
        if not auto and other and start >= self.max_epoch:
            raise ValueError(
                f"--resume {target}: that run already trained {start} epoch(s) and OPTIM.MAX_EPOCH is {self.max_epoch}, "
                f"so nothing would be trained and {osp.join(self.output_dir, 'results.json')} would label its weights "
                "as this run. To evaluate it use --eval-only --model-dir "
                f"{target if osp.isdir(target) else osp.dirname(target)}; to train it longer raise OPTIM.MAX_EPOCH "
                "and pass --resume-with-changes"
            )
        changed = (getattr(self, "run_decisions", None) or {}).get("resumed_with_changes") or {}
        if any(k.startswith("OPTIM.") for k in changed):
            self._reschedule(start)
        return start

    def _reschedule(self, epochs_done: int) -> None:
        """Replace the restored LR schedule by the configured one at the same position: each optimiser's
        groups get the LR they were built with (this config), then the scheduler is rebuilt and stepped
        ``epochs_done`` times. Optimiser state (momentum, Adam moments) is kept."""
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            built = getattr(self, "_built_lrs", {}).get(name)
            if optim is None or sched is None or built is None:
                continue
            for group, lr in zip(optim.param_groups, built):
                group["lr"] = lr
                group.pop("initial_lr", None)
            new_sched = build_lr_scheduler(optim, self.cfg.OPTIM)
            with warnings.catch_warnings():  # stepping without optimiser steps is the point here
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
                for _ in range(epochs_done):
                    new_sched.step()
            self._scheds[name] = new_sched
            if getattr(self, "sched", None) is sched:
                self.sched = new_sched
            logger.info("--resume-with-changes: %s LR schedule rebuilt from OPTIM (LR now %.4g after %d epoch(s))",
                        name, optim.param_groups[0]["lr"], epochs_done)

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

    def _rng_generators(self) -> Dict[str, Optional[torch.Generator]]:
        """The ``torch.Generator`` objects of the training loaders and their samplers (they set the data order)."""
        gens: Dict[str, Optional[torch.Generator]] = {}
        for tag in ("train_loader_x", "train_loader_u"):
            loader = getattr(self, tag, None)
            if loader is None:
                continue
            gens[f"{tag}.generator"] = getattr(loader, "generator", None)
            sampler_gen = getattr(getattr(loader, "sampler", None), "generator", None)
            if isinstance(sampler_gen, torch.Generator) and sampler_gen is not gens[f"{tag}.generator"]:
                gens[f"{tag}.sampler"] = sampler_gen
        return gens

    def _meter_state(self) -> Dict[str, Dict[str, float]]:
        meters = getattr(self, "_epoch_meters", None)
        if meters is None:
            return {}
        meters.materialize()
        return {k: {"val": float(m.val), "sum": float(m.sum), "count": int(m.count)} for k, m in meters.meters.items()}

    @staticmethod
    def _meters_from_state(state: Dict[str, Dict[str, float]]) -> MetricMeter:
        meters = MetricMeter()
        for k, v in state.items():
            m = AverageMeter()
            m.val, m.sum, m.count = float(v["val"]), float(v["sum"]), int(v["count"])
            m.avg = m.sum / m.count if m.count else 0.0
            meters.meters[k] = m
        return meters

    def save_resume_state(self, epoch: int, batches_done: int) -> None:
        """Write the resumable state (rank 0, atomically): ``epoch`` = 0-based epoch in progress with
        ``batches_done`` batches trained (``batches_done`` 0: the epoch has not started). Call on every rank."""
        gens = self._rng_generators()
        rng_now = dist.all_gather_object(capture_rng_state(gens))
        start = getattr(self, "_rng_epoch_start", None) if batches_done > 0 else None
        rng_start = dist.all_gather_object(start) if batches_done > 0 else rng_now
        if dist.is_main_process():
            models = {}
            self._check_finite_weights(epoch, batches_done)
            for name in self.get_model_names():
                entry = dict(self.state_for_resume(name))
                optim, sched = self._optims[name], self._scheds[name]
                entry["optimizer"] = optim.state_dict() if optim is not None else None
                entry["scheduler"] = sched.state_dict() if sched is not None else None
                models[name] = entry
            best = float(self.best_result) if math.isfinite(float(self.best_result)) else None
            state = {
                "trainer": type(self).__name__,
                "epoch": int(epoch),
                "batches_done": int(batches_done),
                "num_batches": int(getattr(self, "num_batches", 0) or 0),
                "max_epoch": int(self.max_epoch),
                "models": models,
                "extra": self.extra_resume_state(),
                "rng_epoch_start": rng_start,
                "rng_now": rng_now,
                "meters": self._meter_state() if batches_done > 0 else {},
                "epoch_log": [dict(r) for r in self.epoch_log],
                "best_result": best,
                "best_epoch": self.best_epoch,
                "config": self.cfg.dump(),  # what the state continues (train.py compares it on resume)
            }
            self._keep_previous_state()
            save_resume_state(state, self.resume_state_path)
        self._previous_saved_state = self._last_saved_state
        self._last_saved_state = (int(epoch), int(batches_done))
        dist.barrier()

    @property
    def previous_state_path(self) -> str:
        """``<OUTPUT_DIR>/prev_state.pth.tar``: the resumable state before the last one (non-finite rollback)."""
        return osp.join(self.output_dir, PREV_STATE_NAME)

    def _keep_previous_state(self) -> None:
        """The current resumable state becomes ``prev_state.pth.tar`` (hard link, else copy) before it is
        replaced, so a state whose weights turn out to diverge can be rolled back."""
        last, prev = self.resume_state_path, self.previous_state_path
        if not osp.isfile(last):
            return
        tmp = prev + ".link"
        try:
            if osp.lexists(tmp):
                os.remove(tmp)
            try:
                os.link(last, tmp)
            except OSError:
                import shutil

                shutil.copyfile(last, tmp)
            os.replace(tmp, prev)
        except OSError as exc:
            logger.warning("Could not keep the previous resumable state as %s: %s", prev, exc)

    def _check_finite_weights(self, epoch: int, batches_done: int) -> None:
        """Never keep non-finite weights as the resumable state (the "last good state" must be good)."""
        for name in self.get_model_names():
            for key, value in unwrap_model(self._models[name]).state_dict().items():
                if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
                    raise FloatingPointError(
                        f"Non-finite weights in {name}.{key} at epoch {epoch + (1 if batches_done else 0)}, after "
                        f"{batches_done} batch(es): not saved as the resumable state"
                    )

    def _roll_back_unusable_state(self) -> None:
        """After a non-finite loss: a resumable state saved with the very weights that produced it is not a
        good state; the previous one replaces it (or it is removed when there is none)."""
        if not dist.is_main_process() or self._last_saved_state is None:
            return
        failing = (int(self.epoch), int(getattr(self, "batch_idx", 0)))
        if self._last_saved_state != failing or not osp.isfile(self.resume_state_path):
            return
        if self._previous_saved_state is not None and osp.isfile(self.previous_state_path):
            os.replace(self.previous_state_path, self.resume_state_path)
            logger.warning("The resumable state saved at epoch %d, %d batch(es) holds the weights that gave the "
                           "non-finite loss: rolled back to the previous state (epoch %d, %d batch(es))",
                           failing[0] + 1, failing[1], self._previous_saved_state[0] + 1, self._previous_saved_state[1])
            self._last_saved_state, self._previous_saved_state = self._previous_saved_state, None
        else:
            os.remove(self.resume_state_path)
            self._last_saved_state = None
            logger.warning("The resumable state holds the weights that gave the non-finite loss and there is no "
                           "earlier one: removed")

    def load_resume_state_file(self, path: str) -> int:
        """Restore a resumable state (weights, optimisers, schedulers, trainer state, logs, position, RNGs);
        returns the epoch to start from. The RNGs are restored when that epoch starts (see ``run_epoch``)."""
        state = load_resume_state(path)
        if state.get("trainer") != type(self).__name__:
            raise ValueError(f"Resumable state {path} was written by trainer {state.get('trainer')!r}, not "
                             f"{type(self).__name__!r}; resume with the same --trainer or pass --resume none")
        names = self.get_model_names()
        saved = state.get("models") or {}
        if sorted(saved) != sorted(names):
            raise KeyError(f"Resumable state {path} holds models {sorted(saved)} but the trainer registers "
                           f"{sorted(names)}; it comes from another configuration (pass --resume none to start "
                           "from scratch)")
        for name in names:
            entry = saved[name]
            self.load_state_for_resume(name, entry, path)
            if self._optims[name] is not None and entry.get("optimizer") is not None:
                self._optims[name].load_state_dict(entry["optimizer"])
            if self._scheds[name] is not None and entry.get("scheduler") is not None:
                self._scheds[name].load_state_dict(entry["scheduler"])
        self.load_extra_resume_state(dict(state.get("extra") or {}))
        if state.get("best_result") is not None:
            self.best_result = float(state["best_result"])
        self.best_epoch = state.get("best_epoch")
        self.epoch_log = [dict(r) for r in state.get("epoch_log") or []]
        epoch, done = int(state["epoch"]), int(state["batches_done"])
        rng_start = self._rank_entry(state.get("rng_epoch_start"), path)
        rng_now = self._rank_entry(state.get("rng_now"), path)
        logger.info("Resuming from %s: epoch %d/%d, %d of %d batches done", path, epoch + 1 if epoch < self.max_epoch
                    else epoch, self.max_epoch, done, int(state.get("num_batches") or 0))
        if epoch >= self.max_epoch:
            if rng_now is not None:
                restore_rng_state(rng_now, self._rng_generators())
            return epoch
        self._resume_point = {"epoch": epoch, "batches_done": done, "num_batches": int(state.get("num_batches") or 0),
                              "rng_epoch_start": rng_start, "rng_now": rng_now, "meters": state.get("meters") or {},
                              "path": path}
        return epoch

    @staticmethod
    def _rank_entry(per_rank: Any, path: str) -> Optional[Dict[str, Any]]:
        if not per_rank:
            return None
        if len(per_rank) != dist.get_world_size():
            logger.warning("Resumable state %s was written by %d process(es), this run has %d: RNG states are not "
                           "restored (the data order of the rest of the run differs)", path, len(per_rank),
                           dist.get_world_size())
            return None
        return per_rank[dist.get_rank()]

    def _begin_epoch_data(self) -> int:
        """Call after ``num_batches`` is set and before the epoch's loader iterators are created: records the
        epoch-start RNG states, or, when resuming into this epoch, restores them and returns the number of
        batches already trained (to replay without training)."""
        self._epoch_lr = self.get_current_lr()
        self._epoch_t0 = time.time()
        point, gens = self._resume_point, self._rng_generators()
        if point is None or point["epoch"] != self.epoch:
            self._resume_point = None
            self._rng_epoch_start = capture_rng_state(gens)
            return 0
        if point["num_batches"] and point["num_batches"] != self.num_batches:
            raise ValueError(
                f"Resumable state {point['path']} was saved with {point['num_batches']} batches per epoch but the "
                f"training loader now has {self.num_batches}: the data, batch size or world size changed. Resume with "
                "the same configuration, or pass --resume none to start from scratch"
            )
        if point["rng_epoch_start"] is not None:
            restore_rng_state(point["rng_epoch_start"], gens)
        self._rng_epoch_start = point["rng_epoch_start"] or capture_rng_state(gens)
        if point["batches_done"] == 0:
            self._finish_resume()
        return int(point["batches_done"])

    def _replay_batches(self, fetch: Any, count: int) -> None:
        """Draw ``count`` batches without training (same data order, same worker streams), then restore the
        RNG states and meters of the interrupted run at that point."""
        logger.info("Resuming epoch %d/%d at batch %d/%d: replaying the data loader over %d batch(es) without "
                    "training", self.epoch + 1, self.max_epoch, count + 1, self.num_batches, count)
        for _ in range(count):
            fetch()
        self._finish_resume()

    def _finish_resume(self) -> None:
        point, self._resume_point = self._resume_point, None
        if point is None:
            return
        if point["rng_now"] is not None:
            restore_rng_state(point["rng_now"], self._rng_generators())
        self._epoch_meters = self._meters_from_state(point["meters"])

    def _run_step(self, *batches: Any) -> Any:
        """``forward_backward`` plus the gradient norm in the summary when the trainer did not report it."""
        self.last_grad_norm = None
        summary = self.forward_backward(*batches)
        grad_norm = getattr(self, "last_grad_norm", None)
        if isinstance(summary, dict) and "grad_norm" not in summary and grad_norm is not None:
            summary = dict(summary)
            summary["grad_norm"] = grad_norm
        return summary

    def _after_train_step(self) -> None:
        """Mid-epoch resumable state every ``TRAIN.CHECKPOINT_STEPS`` global steps (the epoch-end state is
        written by :meth:`end_of_epoch`) and the test-only ``TRAIN.DEBUG_KILL_AT_STEP`` hook."""
        train_cfg = self.cfg.TRAIN
        step = self.epoch * self.num_batches + self.batch_idx + 1
        every = int(train_cfg.get("CHECKPOINT_STEPS", 0) or 0)
        if every > 0 and step % every == 0 and self.batch_idx + 1 < self.num_batches:
            self.save_resume_state(self.epoch, self.batch_idx + 1)
        self._check_preemption()
        kill_at = int(train_cfg.get("DEBUG_KILL_AT_STEP", 0) or 0)
        if kill_at > 0 and step == kill_at:
            logger.warning("TRAIN.DEBUG_KILL_AT_STEP = %d reached: killing this process (test hook)", kill_at)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    def _check_preemption(self) -> None:
        """SIGTERM / SIGUSR1 received (engine.run_guard): write the resumable state at this step and exit
        with status 75; the same command resumes exactly here."""
        signum = run_guard.preemption_requested()
        if dist.is_dist():  # every rank stops at the same step (one tiny all-reduce per step under DDP)
            anyone = float(dist.all_reduce_sum(1.0 if signum else 0.0))
            signum = signum if signum else (-1 if anyone > 0 else None)
        if signum is None:
            return
        self.save_resume_state(self.epoch, self.batch_idx + 1)
        name = signal.Signals(signum).name if signum > 0 else "a preemption signal"
        message = (f"{name} received: resumable state written to {self.resume_state_path} (epoch {self.epoch + 1}/"
                   f"{self.max_epoch}, {self.batch_idx + 1} of {self.num_batches} batches done); exiting with status "
                   f"{run_guard.PREEMPTED_EXIT_CODE}. Run the same command to resume")
        logger.warning(message)
        raise run_guard.Preempted(message)

    def _last_good_state_message(self) -> str:
        if self._last_saved_state is not None and osp.isfile(self.resume_state_path):
            epoch, done = self._last_saved_state
            where = f"after epoch {epoch}" if done == 0 else f"epoch {epoch + 1}, {done} batch(es) done"
            return (f"The last good resumable state is kept: {self.resume_state_path} ({where}); fix the cause "
                    "(e.g. lower OPTIM.LR) and run the same command with --resume-with-changes (the new LR schedule "
                    "replaces the saved one)")
        return ("No resumable state was saved before the failure (set TRAIN.CHECKPOINT_STEPS to save within "
                "epochs); earlier epoch checkpoints, if any, are untouched")

    # ------------------------------------------------------------------ epoch logs (metrics.csv, tensorboard)
    def log_epoch_scalar(self, name: str, value: float) -> None:
        """Add a scalar (e.g. a validation accuracy) to this epoch's row of metrics.csv / tensorboard."""
        self._epoch_scalars[name] = float(value)

    def end_of_epoch(self) -> None:
        """One row per epoch (LR used, mean of every loss term and of the gradient norm, logged scalars) to
        ``metrics.csv`` and tensorboard ``epoch/*``, then the epoch-end resumable state."""
        row: Dict[str, Any] = {"epoch": self.epoch + 1, "lr": getattr(self, "_epoch_lr", self.get_current_lr())}
        meters = getattr(self, "_epoch_meters", None)
        if meters is not None:
            meters.materialize()
            for k, m in meters.meters.items():
                row[k] = m.avg
        row.update(self._epoch_scalars)
        self._epoch_scalars = {}
        row["epoch_time_s"] = round(time.time() - getattr(self, "_epoch_t0", time.time()), 3)
        self.epoch_log = [r for r in self.epoch_log if r.get("epoch") != row["epoch"]] + [row]
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.write_scalar(f"epoch/{k}", v, self.epoch + 1)
        self._write_metrics_csv()
        self.save_resume_state(self.epoch + 1, 0)

    def update_epoch_row(self, values: Dict[str, float]) -> None:
        """Merge ``values`` (e.g. the final test accuracies) into the last epoch's row of metrics.csv."""
        if not self.epoch_log:
            return
        self.epoch_log[-1].update({k: float(v) for k, v in values.items() if isinstance(v, (int, float))})
        self._write_metrics_csv()

    def _write_metrics_csv(self) -> None:
        if not dist.is_main_process() or not self.epoch_log:
            return
        columns: List[str] = []
        for row in self.epoch_log:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.epoch_log:
            writer.writerow(row)
        atomic_write_text(osp.join(self.output_dir, METRICS_CSV_NAME), buf.getvalue())

    def _restore_epoch_log_from_csv(self, path: str, start_epoch: int) -> None:
        if not osp.isfile(path):
            return
        rows = []
        with open(path, "r", encoding="utf-8", newline="") as f:
            for raw in csv.DictReader(f):
                row: Dict[str, Any] = {}
                for k, v in raw.items():
                    if v in ("", None):
                        continue
                    try:
                        row[k] = int(v) if k == "epoch" else float(v)
                    except ValueError:
                        row[k] = v
                if isinstance(row.get("epoch"), int) and row["epoch"] <= start_epoch:
                    rows.append(row)
        self.epoch_log = rows

    # ------------------------------------------------------------------ helpers for run_epoch
    def _set_sampler_epoch(self, loader: Any) -> None:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)

    def _log_progress(self, losses: MetricMeter, batch_time: AverageMeter, data_time: AverageMeter, bar: Any) -> None:
        """Every ``TRAIN.PRINT_FREQ`` steps (every step when the epoch is shorter): the log line, the
        tensorboard ``train/*`` scalars and the progress-bar values. The loss values stay on the device in
        between (read here with one synchronisation), so a training step itself does not wait for the device."""
        if bar is not None and not bar.disable:
            bar.update(1)
        meet_freq = (self.batch_idx + 1) % self.cfg.TRAIN.PRINT_FREQ == 0
        only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
        if not (meet_freq or only_few_batches):
            return
        losses.materialize()
        nb_remain = self.num_batches - self.batch_idx - 1 + (self.max_epoch - self.epoch - 1) * self.num_batches
        eta = str(datetime.timedelta(seconds=int(batch_time.avg * nb_remain)))
        lr = self.get_current_lr()
        info = [
            f"epoch [{self.epoch + 1}/{self.max_epoch}]",
            f"batch [{self.batch_idx + 1}/{self.num_batches}]",
            f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
            f"data {data_time.val:.3f} ({data_time.avg:.3f})",
            f"{losses}",
            f"lr {lr:.4e}",
            f"eta {eta}",
        ]
        logger.info(" ".join(info))
        n_iter = self.epoch * self.num_batches + self.batch_idx
        for name, meter in losses.meters.items():
            self.write_scalar("train/" + name, meter.avg, n_iter)
        self.write_scalar("train/lr", lr, n_iter)
        if bar is not None and not bar.disable:
            postfix = OrderedDict((k, f"{m.avg:.4f}") for k, m in losses.meters.items())
            postfix["lr"] = f"{lr:.2e}"
            postfix["eta"] = eta
            bar.set_postfix(postfix, refresh=False)

    def _progress_bar(self, initial: int = 0) -> Any:
        return tqdm(
            total=self.num_batches,
            initial=initial,
            disable=not _progress_enabled(),
            leave=False,
            desc=f"epoch {self.epoch + 1}/{self.max_epoch}",
            dynamic_ncols=True,
        )


class TrainerXU(SimpleTrainer):
    """Trainer using labeled (train_x) and unlabeled (train_u) data; ``TRAIN.COUNT_ITER`` sets the epoch length."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = self._epoch_meters = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        if self.train_loader_u is None:
            raise ValueError(f"{type(self).__name__} needs unlabeled data (dataset.train_u), but the dataset has none")
        self._set_sampler_epoch(self.train_loader_x)
        self._set_sampler_epoch(self.train_loader_u)
        len_x = len(self.train_loader_x)
        len_u = len(self.train_loader_u)
        count_iter = self.cfg.TRAIN.COUNT_ITER
        if count_iter == "train_x":
            self.num_batches = len_x
        elif count_iter == "train_u":
            self.num_batches = len_u
        elif count_iter == "smaller_one":
            self.num_batches = min(len_x, len_u)
        else:
            raise ValueError(f"TRAIN.COUNT_ITER='{count_iter}' is unknown; use train_x, train_u or smaller_one")
        skip = self._begin_epoch_data()
        loaders = {"x": self.train_loader_x, "u": self.train_loader_u}
        iters = {k: iter(v) for k, v in loaders.items()}

        def fetch() -> List[Any]:
            out = []
            for key in ("x", "u"):
                try:
                    out.append(next(iters[key]))
                except StopIteration:
                    iters[key] = iter(loaders[key])
                    out.append(next(iters[key]))
            return out

        if skip:
            self._replay_batches(fetch, skip)
        losses = self._epoch_meters  # restored by a resume into this epoch
        bar = self._progress_bar(initial=skip)
        end = time.time()
        for self.batch_idx in range(skip, self.num_batches):
            batch_x, batch_u = fetch()
            data_time.update(time.time() - end)
            loss_summary = self._run_step(batch_x, batch_u)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._log_progress(losses, batch_time, data_time, bar)
            self._after_train_step()
            end = time.time()
        bar.close()

    def parse_batch_train(self, batch_x: Dict[str, Any], batch_u: Dict[str, Any]):  # type: ignore[override]
        input_x = batch_x["img"].to(self.device, non_blocking=True)
        label_x = batch_x["label"].to(self.device, non_blocking=True)
        input_u = batch_u["img"].to(self.device, non_blocking=True)
        return input_x, label_x, input_u


class TrainerX(SimpleTrainer):
    """Trainer using labeled data only (the base of every CLIP prompt trainer)."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = self._epoch_meters = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self._set_sampler_epoch(self.train_loader_x)
        self.num_batches = len(self.train_loader_x)
        skip = self._begin_epoch_data()
        iterator = iter(self.train_loader_x)
        if skip:
            self._replay_batches(lambda: next(iterator), skip)
        losses = self._epoch_meters  # restored by a resume into this epoch
        bar = self._progress_bar(initial=skip)
        end = time.time()
        for self.batch_idx in range(skip, self.num_batches):
            batch = next(iterator)
            data_time.update(time.time() - end)
            loss_summary = self._run_step(batch)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._log_progress(losses, batch_time, data_time, bar)
            self._after_train_step()
            end = time.time()
        bar.close()

    def parse_batch_train(self, batch: Dict[str, Any]):  # type: ignore[override]
        input = batch["img"].to(self.device, non_blocking=True)
        label = batch["label"].to(self.device, non_blocking=True)
        domain = batch["domain"].to(self.device, non_blocking=True)
        return input, label, domain


def build_trainer(cfg: Any) -> TrainerBase:
    """Instantiate the trainer registered as ``cfg.TRAINER.NAME`` (unknown names list the registered ones)."""
    name = cfg.TRAINER.NAME
    if not name:
        raise ValueError(
            f"TRAINER.NAME is empty: pass --trainer <Name>. Registered trainers: {sorted(TRAINER_REGISTRY.registered_names())}"
        )
    trainer_cls = TRAINER_REGISTRY.get(name)
    if cfg.VERBOSE:
        logger.info("Loading trainer: %s", name)
    return trainer_cls(cfg)
