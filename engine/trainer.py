"""Trainer classes (Dassl ``dassl.engine``): ``TrainerBase`` -> ``SimpleTrainer`` -> ``TrainerX`` /
``TrainerXU``, ``TRAINER_REGISTRY`` and ``build_trainer`` (lifecycle of reference §1.5).

Every method of Dassl's trainers exists with the same name and meaning, so Dassl-style trainers
(CoOp, CoCoOp, MaPLe, IVLP, PromptSRC, PromptKD) subclass ``TrainerX`` unchanged. Differences:
- device: ``cuda`` (the local rank's GPU under torchrun) when available and ``USE_CUDA``, else CPU;
  never ``nn.DataParallel`` (reference defect §5.8); under torchrun ``self.model`` is wrapped in
  DDP when it has trainable parameters (``wrap_model_ddp``, overridable);
- ``load_model`` works with ``val_result=None`` (defect §5.10) and loads strictly by default,
  reporting missing/unexpected keys;
- only rank 0 writes checkpoints, tensorboard and logs; evaluation is distributed-aware;
- progress: a tqdm bar over batches (rank 0, TTY only) plus Dassl's periodic log line.
"""

from __future__ import annotations

import datetime
import logging
import os
import os.path as osp
import sys
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from engine import dist
from engine.checkpoint import (
    BEST_NAME,
    load_checkpoint,
    load_pretrained_weights,
    read_checkpoint_pointer,
    resume_from_checkpoint,
    save_checkpoint,
)
from engine.data.data_manager import DataManager
from engine.evaluation import build_evaluator
from engine.optim import build_lr_scheduler, build_optimizer
from engine.registry import Registry
from engine.utils import AverageMeter, MetricMeter, count_num_param, mkdir_if_missing, tolist_if_not

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
]

TRAINER_REGISTRY = Registry("TRAINER")


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
        if not torch.isfinite(loss).all():
            raise FloatingPointError("Loss is infinite or NaN!")

    def model_zero_grad(self, names: Optional[Union[str, List[str]]] = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names: Optional[Union[str, List[str]]] = None) -> None:
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
        self.after_train()

    def before_train(self) -> None:
        """Hook called once before the first epoch."""

    def after_train(self) -> None:
        """Hook called once after the last epoch."""

    def before_epoch(self) -> None:
        """Hook called before each epoch."""

    def after_epoch(self) -> None:
        """Hook called after each epoch."""

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
        self.build_data_loader()
        self.build_model()
        self.wrap_model_ddp()
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
        dm = DataManager(self.cfg)
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

    def train(self) -> None:  # type: ignore[override]
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self) -> None:
        directory = self.cfg.RESUME or self.cfg.OUTPUT_DIR
        self.start_epoch = self.resume_model_if_exist(directory)
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
            self.test()
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

    # ------------------------------------------------------------------ helpers for run_epoch
    def _set_sampler_epoch(self, loader: Any) -> None:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)

    def _log_progress(self, losses: MetricMeter, batch_time: AverageMeter, data_time: AverageMeter, bar: Any) -> None:
        nb_remain = self.num_batches - self.batch_idx - 1 + (self.max_epoch - self.epoch - 1) * self.num_batches
        eta = str(datetime.timedelta(seconds=int(batch_time.avg * nb_remain)))
        lr = self.get_current_lr()
        meet_freq = (self.batch_idx + 1) % self.cfg.TRAIN.PRINT_FREQ == 0
        only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
        if meet_freq or only_few_batches:
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
            bar.update(1)

    def _progress_bar(self) -> Any:
        return tqdm(
            total=self.num_batches,
            disable=not _progress_enabled(),
            leave=False,
            desc=f"epoch {self.epoch + 1}/{self.max_epoch}",
            dynamic_ncols=True,
        )


class TrainerXU(SimpleTrainer):
    """Trainer using labeled (train_x) and unlabeled (train_u) data; ``TRAIN.COUNT_ITER`` sets the epoch length."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = MetricMeter()
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
        iter_x = iter(self.train_loader_x)
        iter_u = iter(self.train_loader_u)
        bar = self._progress_bar()
        end = time.time()
        for self.batch_idx in range(self.num_batches):
            try:
                batch_x = next(iter_x)
            except StopIteration:
                iter_x = iter(self.train_loader_x)
                batch_x = next(iter_x)
            try:
                batch_u = next(iter_u)
            except StopIteration:
                iter_u = iter(self.train_loader_u)
                batch_u = next(iter_u)
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch_x, batch_u)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._log_progress(losses, batch_time, data_time, bar)
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
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self._set_sampler_epoch(self.train_loader_x)
        self.num_batches = len(self.train_loader_x)
        bar = self._progress_bar()
        end = time.time()
        for self.batch_idx, batch in enumerate(self.train_loader_x):
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            self._log_progress(losses, batch_time, data_time, bar)
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
