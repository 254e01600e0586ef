"""``PromptTrainer``: the base class of every CLIP trainer (docs/ARCHITECTURE.md "Trainers").

A trainer implements only ``build_model()``, ``forward_backward(batch)``, ``model_inference(images)``
and ``set_eval_classnames(classnames)``. This class owns, on top of Dassl's ``TrainerX`` lifecycle:

- precision (``TRAINER.<NODE>.PREC``: fp32 | fp16 | amp | bf16, policy in :mod:`.precision`): :meth:`autocast`
  and a GradScaler for amp; on CPU, fp16/amp fall back to fp32 with a WARNING (unless the test-only
  switch of :mod:`.precision` is set). Trainable parameters stay fp32;
- the optimisation step :meth:`optimize` (zero_grad, scaler-aware backward, non-finite loss guard
  naming epoch/step/value, grad-norm over the trainable parameters, step);
- the LR schedule stepped once per epoch (Dassl's trainers call ``update_lr`` at the last batch);
- evaluation over ``dm.dataset.eval_sets`` (base / novel / HM or a single test set), with the
  ``set_eval_classnames`` hook before each set, and ``results.json``;
- model selection ``TEST.FINAL_MODEL``: ``last_step`` (default), ``best_val`` (the real val split)
  or ``best_test_reference`` (the reference's selection on base-class test accuracy, reference
  docs/REFERENCE.md D1 — available only under that explicit name and recorded in results.json);
- checkpoints with only the trainable tensors (+ buffers of trainable modules and trainer state such
  as PromptSRC's GPA accumulator), Dassl layout and names; strict loading where only class-name
  buffers may be skipped; resume from the latest epoch with the trainer state restored; the same
  content (+ GradScaler) in the engine's mid-epoch resumable state (docs/RELIABILITY.md);
- the collapse detector (:func:`collapse_report`: collapsed seeds, "best model at epoch 1") recorded in results.json.

Never wraps models in DataParallel (docs/REFERENCE.md D8).
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import logging
import math
import os
import os.path as osp
import re
import time
from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from typing import Any, ContextManager, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn
from tqdm import tqdm

from datasets.config import resolve_eval_protocol
from engine import dist
from engine.api import (TrainerX, build_data_loader, build_evaluator, build_lr_scheduler, build_optimizer,
                        build_transform, save_checkpoint)
from engine.checkpoint import load_checkpoint  # weights_only=True only, under either engine
from engine.run_header import class_lines
from engine.run_record import RESULTS_FILE, RunRecord, harmonic_mean, write_run_record
from engine.trainer import _progress_enabled  # progress bars on rank 0 and a terminal only (not in log files)

from .checkpoints import strict_load, trainable_state_dict
from .precision import PRECISIONS, resolve_precision

logger = logging.getLogger(__name__)

__all__ = ["PromptTrainer", "PRECISIONS", "FINAL_MODEL_CHOICES", "resolve_precision", "harmonic_mean",
           "collapse_report"]

FINAL_MODEL_CHOICES = ("last_step", "best_val", "best_test_reference")
BEST_NAME = "model-best.pth.tar"
_CKPT_RE = re.compile(r"^model\.pth\.tar-(\d+)$")


def collapse_report(eval_sets: Dict[str, Tuple[float, int]], epoch_losses: Sequence[float] = (),
                    best_epoch: Optional[int] = None, max_epoch: Optional[int] = None,
                    chance_factor: float = 1.5, loss_drop: float = 0.9) -> Dict[str, Any]:
    """Collapse detector (collapsed seeds, "best model at epoch 1").

    ``eval_sets`` maps a set name to (final accuracy in %, number of classes). Flags the run when an
    accuracy is below ``chance_factor`` x chance (100 / #classes), when the training loss of the last
    epoch is not below ``loss_drop`` x the first epoch's (needs >= 2 epochs), or when a best-epoch
    selection over several epochs picked epoch 1. Returns ``{"flagged", "reasons", "checks"}``.
    """
    reasons: List[str] = []
    for name, (acc, n_classes) in eval_sets.items():
        chance = 100.0 / max(int(n_classes), 1)
        if float(acc) < chance_factor * chance:
            reasons.append(f"{name} accuracy {float(acc):.2f}% is below {chance_factor:g} x chance "
                           f"({chance:.2f}% for {int(n_classes)} classes)")
    losses = [float(v) for v in epoch_losses if v is not None and math.isfinite(float(v))]
    if len(losses) >= 2 and not losses[-1] < loss_drop * losses[0]:
        reasons.append(f"training loss never dropped: last epoch {losses[-1]:.4g} is not below {loss_drop:g} x "
                       f"the first epoch's {losses[0]:.4g}")
    if best_epoch is not None and max_epoch is not None and int(max_epoch) > 1 and int(best_epoch) <= 1:
        reasons.append(f"the selected best epoch is {best_epoch} of {max_epoch}")
    checks = {"chance_factor": chance_factor, "loss_drop": loss_drop,
              "first_epoch_loss": losses[0] if losses else None, "last_epoch_loss": losses[-1] if losses else None}
    return {"flagged": bool(reasons), "reasons": reasons, "checks": checks}


class _ABCTrainerMeta(ABCMeta):
    """TrainerX uses ``type`` as metaclass; ABCMeta (a subclass of type) adds abstract-method checks."""


class PromptTrainer(TrainerX, metaclass=_ABCTrainerMeta):
    """Shared machinery of the CLIP prompt trainers (see the module docstring)."""

    #: config node under TRAINER holding this trainer's keys (e.g. "IVLP" -> cfg.TRAINER.IVLP.PREC)
    CFG_NODE: str = ""

    # ------------------------------------------------------------------ construction / config
    def check_cfg(self, cfg) -> None:
        node = self.CFG_NODE
        if node:
            if node not in cfg.TRAINER:
                raise KeyError(f"config has no TRAINER.{node} node; call trainers.extend_cfg(cfg) before merging yaml files")
            prec = cfg.TRAINER[node].PREC
            if prec not in PRECISIONS:
                raise ValueError(f"TRAINER.{node}.PREC = {prec!r} is not supported; use one of {list(PRECISIONS)}")
        final = cfg.TEST.FINAL_MODEL
        if final not in FINAL_MODEL_CHOICES:
            raise ValueError(
                f"TEST.FINAL_MODEL = {final!r} is not supported; use one of {list(FINAL_MODEL_CHOICES)} "
                "(best_test_reference reproduces the reference's selection on base-class test accuracy)"
            )

    @property
    def prec(self) -> str:
        """Resolved precision (fp16/amp fall back to fp32 on CPU)."""
        if getattr(self, "_prec", None) is None:
            raw = self.cfg.TRAINER[self.CFG_NODE].PREC if self.CFG_NODE else "fp32"
            self._prec = resolve_precision(raw, torch.device(self.device), f"TRAINER.{self.CFG_NODE}.PREC")
        return self._prec

    def autocast(self) -> ContextManager:
        """Autocast context for the forward pass: fp16 (amp) or bf16; a no-op for fp32 / pure fp16."""
        device_type = torch.device(self.device).type
        if self.prec == "amp":
            return torch.autocast(device_type=device_type, dtype=torch.float16)
        if self.prec == "bf16":
            return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def scaler(self) -> Optional[torch.amp.GradScaler]:
        if self.prec != "amp":
            return None
        if getattr(self, "_scaler", None) is None:
            self._scaler = torch.amp.GradScaler(torch.device(self.device).type)
        return self._scaler

    @property
    def train_classnames(self) -> List[str]:
        """Class names of the training set in label order (Dassl's ``dataset.classnames``)."""
        return list(self.dm.dataset.classnames)

    # ------------------------------------------------------------------ model registration
    def register_model(self, name: str = "model", model=None, optim=None, sched=None) -> None:
        """Dassl's register_model + a log of the trainable parameter names and counts (P22)."""
        super().register_model(name, model, optim, sched)
        if model is None:
            return
        trainable = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        total = sum(n for _, n in trainable)
        lines = [f"  {n}: {tuple(p.shape)} = {p.numel():,}" for n, p in model.named_parameters() if p.requires_grad]
        logger.info("Model %r: %s trainable parameters in %d tensors (%s frozen)\n%s",
                    name, f"{total:,}", len(trainable), f"{frozen:,}", "\n".join(lines))

    def build_optim_sched(self, params: Iterable[nn.Parameter]) -> Tuple[Any, Any]:
        """Optimizer + LR scheduler (OPTIM config) over the given trainable parameters only."""
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self).__name__}: no trainable parameters to optimise")
        optim = build_optimizer(params, self.cfg.OPTIM)
        sched = build_lr_scheduler(optim, self.cfg.OPTIM)
        return optim, sched

    def num_trainable_params(self) -> int:
        total = 0
        for name in self.get_model_names():
            total += sum(p.numel() for p in self._models[name].parameters() if p.requires_grad)
        return total

    # ------------------------------------------------------------------ optimisation
    def optimize(self, loss: torch.Tensor, names: Optional[Sequence[str]] = None) -> torch.Tensor:
        """One optimisation step on ``loss``: zero_grad, backward (GradScaler for amp), grad norm over the
        trainable parameters, NaN/Inf guard, step. Returns the grad norm as a 0-d tensor on the device
        (also ``self.last_grad_norm``), not read by the host: the guard is the step's only device-to-host
        synchronisation (amp's GradScaler adds its own inf check)."""
        names = self.get_model_names(names)
        for name in names:
            if self._optims[name] is not None:
                self._optims[name].zero_grad(set_to_none=True)
        scaler = self.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if dist.is_dist():
            self._all_reduce_grads(names)  # before unscale_, so every rank sees the same inf/NaN check
        if scaler is not None:
            for name in names:
                if self._optims[name] is not None:
                    scaler.unscale_(self._optims[name])
        grads = [p.grad.detach().float().norm() for name in names for p in self._models[name].parameters()
                 if p.requires_grad and p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else loss.new_zeros((), dtype=torch.float32)
        finite = torch.isfinite(loss.detach()).all()
        if scaler is None:  # amp: a non-finite gradient makes the GradScaler skip the step and lower its scale
            finite = finite & torch.isfinite(grad_norm)
        if not bool(finite):  # the one synchronisation of the step
            self._raise_non_finite(loss, grad_norm)
        for name in names:
            if self._optims[name] is None:
                continue
            if scaler is not None:
                scaler.step(self._optims[name])
            else:
                self._optims[name].step()
        if scaler is not None:
            scaler.update()
        self.last_grad_norm = grad_norm
        return grad_norm

    def _raise_non_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        where = (f"epoch {self.epoch + 1}/{self.max_epoch}, step {getattr(self, 'batch_idx', 0) + 1}/"
                 f"{getattr(self, 'num_batches', '?')}")
        value = float(loss.detach().float().item())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"Non-finite loss {value} at {where} (trainer {type(self).__name__}, PREC {self.prec}); "
                "lower the learning rate or use fp32/amp")
        raise FloatingPointError(
            f"Non-finite gradient norm {float(grad_norm)} at {where} (loss {value:.4g}, PREC {self.prec}); "
            "lower the learning rate or use fp32/amp")

    def wrap_model_ddp(self) -> None:
        """DDP for prompt trainers (docs/PERFORMANCE.md). The models are not wrapped (trainers call their
        encoders directly); instead, what DDP does is done explicitly on the trainable part only:
        rank 0's trainable parameters and their modules' buffers are broadcast once here, BatchNorm
        layers of the registered models become :class:`engine.dist.DistributedBatchNorm` (statistics
        over the global batch), and :meth:`optimize` averages the gradients with one coalesced all-reduce.
        Frozen towers are neither synchronised nor all-reduced."""
        if not dist.is_dist():
            return
        models = [self._models[n] for n in self.get_model_names()]
        n_bn = sum(dist.convert_sync_batchnorm(m) for m in models)
        n_synced = dist.broadcast_trainable_state(models)
        per_rank = int(self.cfg.DATALOADER.TRAIN_X.BATCH_SIZE)
        world = dist.get_world_size()
        logger.info(
            "Distributed run (world size %d): %d trainable tensors broadcast from rank 0, %d BatchNorm layer(s) "
            "synchronised, gradients all-reduced in optimize(). Global batch = %d x %d = %d at OPTIM.LR %g "
            "(linear scaling rule: lr = 0.005 x global batch / 8 for PromptKD, e.g. 0.16 at 256)",
            world, n_synced, n_bn, per_rank, world, per_rank * world, float(self.cfg.OPTIM.LR))

    def _all_reduce_grads(self, names: Sequence[str]) -> None:
        params = [p for name in names for p in self._models[name].parameters() if p.requires_grad]
        dist.all_reduce_gradients(params)

    # ------------------------------------------------------------------ epoch / train hooks
    def on_epoch_end(self) -> None:
        """Trainer hook run after the LR step at the end of each epoch, before selection and saving
        (PromptSRC accumulates GPA here)."""

    def before_train(self) -> None:
        final = self.cfg.TEST.FINAL_MODEL
        if final == "best_val" and not self.cfg.TEST.NO_TEST and self.val_loader is None:
            raise ValueError(
                f"TEST.FINAL_MODEL = best_val but dataset {self.cfg.DATASET.NAME} has no validation split "
                "(e.g. ImageNet); use last_step (or best_test_reference to reproduce the reference's test-set selection)"
            )
        self.best_epoch = None
        super().before_train()

    def after_epoch(self) -> None:
        """LR step (once per epoch, as Dassl's CLIP trainers), trainer hook, model selection, saving."""
        self.update_lr()
        self.on_epoch_end()
        last_epoch = (self.epoch + 1) == self.max_epoch
        final = self.cfg.TEST.FINAL_MODEL
        if not self.cfg.TEST.NO_TEST and final in ("best_val", "best_test_reference"):
            if final == "best_val":
                current = self.test(split="val")
            else:
                first = next(iter(self.dm.dataset.eval_sets))
                current = self.evaluate_eval_sets(names=[first])[first]["accuracy"]
            log_scalar = getattr(self, "log_epoch_scalar", None)  # engine epoch log (metrics.csv)
            if log_scalar is not None:
                log_scalar("val_accuracy" if final == "best_val" else f"{first}_test_accuracy", current)
            if current > self.best_result:
                self.best_result = current
                self.best_epoch = self.epoch + 1
                self.save_model(self.epoch, self.output_dir, val_result=current, model_name=BEST_NAME)
            self.set_model_mode("train")
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        meet_freq = freq > 0 and (self.epoch + 1) % freq == 0
        if meet_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir)

    def after_train(self) -> None:
        logger.info("Finish training")
        if not self.cfg.TEST.NO_TEST:
            final = self.cfg.TEST.FINAL_MODEL
            if final in ("best_val", "best_test_reference") and self.get_model_names():
                logger.info("Deploy the model with the best %s result (epoch %s)",
                            "validation" if final == "best_val" else "base-class TEST (reference selection)",
                            self.best_epoch)
                self.load_model(self.output_dir)
                self._selection = {"selection": final, "epoch": self.best_epoch}
            else:
                logger.info("Deploy the last-epoch model")
                self._selection = {"selection": "last_step", "epoch": self.max_epoch}
            self.test()
        elapsed = round(time.time() - getattr(self, "time_start", time.time()))
        logger.info("Elapsed: %s", datetime.timedelta(seconds=elapsed))
        close = getattr(self, "close_writer", None)
        if close is not None:
            close()

    def build_data_loader(self) -> None:
        """Dassl's loaders, then the class names in the log (base / novel halves, training classes, template)."""
        super().build_data_loader()
        logger.info("\n".join(class_lines(self.dm.dataset)))

    # ------------------------------------------------------------------ evaluation
    @abstractmethod
    def set_eval_classnames(self, classnames: Sequence[str]) -> None:
        """Switch the class set the logits are computed over (base / novel / all / training classes)."""

    def _eval_loader(self, name: str, items: Sequence[Any]):
        cache = getattr(self, "_eval_loaders", None)
        if cache is None:
            cache = self._eval_loaders = {}
        if name not in cache:
            tfm = getattr(self.dm, "tfm_test", None)
            if tfm is None:
                tfm = build_transform(self.cfg, is_train=False)
            cache[name] = build_data_loader(
                self.cfg,
                sampler_type=self.cfg.DATALOADER.TEST.SAMPLER,
                data_source=list(items),
                batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE,
                tfm=tfm,
                is_train=False,
            )
        return cache[name]

    @torch.no_grad()
    def _run_evaluation(self, loader, classnames: Sequence[str], tag: str) -> Dict[str, float]:
        self.set_eval_classnames(list(classnames))
        evaluator = build_evaluator(self.cfg, lab2cname={i: c for i, c in enumerate(classnames)})
        evaluator.reset()
        logger.info("Evaluate on the *%s* set (%d classes)", tag, len(classnames))
        seen = 0
        for batch in tqdm(loader, disable=not _progress_enabled(), leave=False, desc=f"eval {tag}", dynamic_ncols=True):
            images, labels = self.parse_batch_test(batch)
            with self.autocast():
                output = self.model_inference(images)
            evaluator.process(output.float(), labels)
            seen += int(labels.shape[0])
        expected = len(loader.dataset)
        seen = int(dist.all_reduce_sum(seen))  # every rank evaluates a disjoint shard (DDP)
        if seen != expected:
            raise RuntimeError(f"Evaluation of the *{tag}* set covered {seen} images but the set has {expected} "
                               f"(world size {dist.get_world_size()}); every image must be evaluated exactly once")
        results = evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{tag}/{k}", v, self.epoch)
        return dict(results)

    @torch.no_grad()
    def evaluate_eval_sets(self, names: Optional[Sequence[str]] = None) -> "OrderedDict[str, Dict[str, float]]":
        """Evaluate ``dm.dataset.eval_sets`` (or the named subset); restores the training class set."""
        self.set_model_mode("eval")
        eval_sets = self.dm.dataset.eval_sets
        names = list(eval_sets) if names is None else list(names)
        unknown = [n for n in names if n not in eval_sets]
        if unknown:
            raise KeyError(f"unknown evaluation set(s) {unknown}; the dataset provides {list(eval_sets)}")
        out: "OrderedDict[str, Dict[str, float]]" = OrderedDict()
        try:
            for name in names:
                es = eval_sets[name]
                metrics = self._run_evaluation(self._eval_loader(name, es.items), es.classnames, name)
                metrics["num_images"] = len(es.items)
                out[name] = metrics
        finally:
            self.set_eval_classnames(self.train_classnames)
        return out

    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """``split`` None / "test": evaluate every eval set, log base/novel/HM, write results.json and
        return the HM (base2novel) or the accuracy; "val": the validation split (for best_val)."""
        split = split or self.cfg.TEST.SPLIT
        if split == "val":
            if self.val_loader is None:
                raise ValueError(f"test(split='val'): dataset {self.cfg.DATASET.NAME} has no validation split")
            self.set_model_mode("eval")
            try:
                metrics = self._run_evaluation(self.val_loader, self.train_classnames, "val")
            finally:
                self.set_eval_classnames(self.train_classnames)
            return float(metrics["accuracy"])
        if split != "test":
            raise ValueError(f"test(split={split!r}): use 'test' (all evaluation sets) or 'val'")
        results = self.evaluate_eval_sets()
        summary = self._summarise(results)
        self._write_results(results, summary)
        return summary["hm"] if "hm" in summary else summary["accuracy"]

    def _summarise(self, results: "OrderedDict[str, Dict[str, float]]") -> Dict[str, float]:
        if "base" in results and "novel" in results:
            b, n = results["base"]["accuracy"], results["novel"]["accuracy"]
            hm = harmonic_mean(b, n)
            logger.info("=> base-to-novel result\n* base_acc: %.2f%%\n* novel_acc: %.2f%%\n* HM: %.2f%%", b, n, hm)
            for key, value in (("base_acc", b), ("novel_acc", n), ("hm", hm)):
                self.write_scalar(f"test/{key}", value, self.epoch)
            return {"base_acc": b, "novel_acc": n, "hm": hm}
        accs = [m["accuracy"] for m in results.values()]
        acc = accs[0] if len(accs) == 1 else sum(accs) / len(accs)
        return {"accuracy": acc}

    def teacher_identity(self) -> Optional[Dict[str, Any]]:
        """Identity of the teacher whose knowledge the model uses (PromptKD); None for other trainers."""
        return None

    def results_extra(self) -> Dict[str, Any]:
        """Trainer-specific entries merged into results.json (e.g. PromptKD's ``distillation``); none here."""
        return {}

    def _write_results(self, results: "OrderedDict[str, Dict[str, float]]", summary: Dict[str, float]) -> None:
        if not dist.is_main_process():
            return
        sel = getattr(self, "_selection", None)
        if sel is None:
            loaded = getattr(self, "_loaded_checkpoint", None)
            if loaded is not None:
                sel = {"selection": "loaded_checkpoint", "epoch": loaded.get("epoch"), "checkpoint": loaded.get("file")}
            elif not self.get_model_names():
                sel = {"selection": "none", "epoch": None}
            else:
                sel = {"selection": "current_weights", "epoch": None}
        record = RunRecord(
            trainer=self.cfg.TRAINER.NAME,
            dataset=getattr(self.dm.dataset, "display_name", None) or self.cfg.DATASET.NAME,
            seed=self.cfg.SEED,
            protocol=resolve_eval_protocol(self.cfg),
            subsample_classes=self.cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"),
            num_shots=self.cfg.DATASET.NUM_SHOTS,
            backbone=self.cfg.MODEL.BACKBONE.NAME,
            precision=self.prec if self.CFG_NODE else "fp32",
            **sel,
            metrics={k: {"accuracy": v["accuracy"], "macro_f1": v.get("macro_f1"), "num_images": v["num_images"]}
                     for k, v in results.items()},
            **summary,
            teacher=self.teacher_identity(),
            extra=self.results_extra(),  # written right after ``teacher``
            trainable_params=self.num_trainable_params(),
            # train.py may set ``trainer.config_file`` (the --config-file path); else a CONFIG_FILE key if any
            config=getattr(self, "config_file", None) or self.cfg.get("CONFIG_FILE", None) or None,
            output_dir=self.output_dir,
            collapse=self._collapse(results, sel),
            # recorded choices (train.py: --resume-with-changes, --eval-untrained)
            decisions=dict(self.run_decisions) if getattr(self, "run_decisions", None) else None,
        )
        update_row = getattr(self, "update_epoch_row", None)  # final accuracies in the last row of metrics.csv
        if update_row is not None:
            update_row({f"test_{k}": v for k, v in summary.items()})
        path = osp.join(self.output_dir, RESULTS_FILE)
        write_run_record(record, path)
        logger.info("Results written to %s", path)

    def _collapse(self, results: "OrderedDict[str, Dict[str, float]]", sel: Dict[str, Any]) -> Dict[str, Any]:
        """:func:`collapse_report` on the final accuracies and the per-epoch training loss; logged if flagged."""
        eval_sets = self.dm.dataset.eval_sets
        accs = {k: (v["accuracy"], len(eval_sets[k].classnames) if k in eval_sets else len(self.train_classnames))
                for k, v in results.items()}
        rows = getattr(self, "epoch_log", None) or []
        key = "loss" if any("loss" in r for r in rows) else next(
            (k for r in rows for k in r if k.startswith("loss")), None)
        losses = [r[key] for r in rows if key in r] if key else []
        best = sel.get("epoch") if sel.get("selection") in ("best_val", "best_test_reference") else None
        report = collapse_report(accs, losses, best_epoch=best, max_epoch=self.max_epoch if rows else None)
        if report["flagged"]:
            logger.warning("Collapse detector: this run looks degenerate (seed collapse?): %s",
                           "; ".join(report["reasons"]))
        return report

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_meta(self, name: str) -> Dict[str, Any]:
        """Metadata stored in every checkpoint (lets the PromptKD teacher rebuild a model from it)."""
        return {"trainer": self.cfg.TRAINER.NAME, "backbone": self.cfg.MODEL.BACKBONE.NAME,
                "dataset": self.cfg.DATASET.NAME, "classnames": self.train_classnames}

    def extra_checkpoint_state(self, name: str) -> Dict[str, Any]:
        """Trainer state saved next to the weights (e.g. PromptSRC's GPA accumulator)."""
        return {}

    def load_extra_checkpoint_state(self, name: str, checkpoint: Dict[str, Any], resume: bool) -> None:
        """Restore :meth:`extra_checkpoint_state` (``resume`` True when resuming training)."""

    def convert_checkpoint_state(self, name: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Map a foreign checkpoint layout (the reference's) onto this model's keys; identity by default."""
        return state_dict

    def after_load_model(self) -> None:
        """Hook after weights were loaded by :meth:`load_model` (e.g. drop cached text features)."""

    def save_model(self, epoch: int, directory: str, is_best: bool = False,
                   val_result: Optional[float] = None, model_name: str = "") -> None:
        """Dassl-layout save of the trainable tensors only (see :func:`checkpoints.checkpoint_keys`)."""
        for name in self.get_model_names() if dist.is_main_process() else []:
            model = self._models[name]
            optim, sched = self._optims[name], self._scheds[name]
            state = {
                "state_dict": trainable_state_dict(model),
                "epoch": epoch + 1,
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None,
                "val_result": val_result,
                "meta": self.checkpoint_meta(name),
            }
            state.update(self.extra_checkpoint_state(name))
            save_checkpoint(state, osp.join(directory, name), is_best=is_best, model_name=model_name)
        dist.barrier()

    @staticmethod
    def _numbered_checkpoints(folder: str) -> List[tuple]:
        found = []
        for f in glob.glob(osp.join(folder, "model.pth.tar-*")):
            m = _CKPT_RE.match(osp.basename(f))
            if m:
                found.append((int(m.group(1)), f))
        return sorted(found)

    def load_checkpoint_into(self, name: str, path: str, resume: bool = False) -> Dict[str, Any]:
        """Strictly load the checkpoint file ``path`` into the registered model ``name`` (``module.``
        prefixes stripped, released key layouts converted by ``convert_checkpoint_state``); trainer
        state such as PromptSRC's GPA is restored when ``resume``. Returns the checkpoint dict."""
        ckpt = load_checkpoint(path)
        if not isinstance(ckpt, dict):
            raise ValueError(f"{path}: expected a checkpoint dict, got {type(ckpt).__name__}")
        self._load_state_into(name, ckpt, path, resume)
        return ckpt

    def _load_state_into(self, name: str, ckpt: Dict[str, Any], source: str, resume: bool) -> None:
        state = ckpt.get("state_dict", ckpt)
        state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
        state = self.convert_checkpoint_state(name, state)
        strict_load(self._models[name], state, source)
        self.load_extra_checkpoint_state(name, ckpt, resume)

    # engine hooks of the mid-epoch resumable state: the checkpoint content (trainable tensors + trainer
    # state such as PromptSRC's GPA) and the GradScaler
    def state_for_resume(self, name: str) -> Dict[str, Any]:
        entry = {"state_dict": trainable_state_dict(self._models[name]), "meta": self.checkpoint_meta(name)}
        entry.update(self.extra_checkpoint_state(name))
        return entry

    def load_state_for_resume(self, name: str, entry: Dict[str, Any], source: str) -> None:
        self._load_state_into(name, entry, source, resume=True)

    def extra_resume_state(self) -> Dict[str, Any]:
        scaler = getattr(self, "_scaler", None)
        return {"scaler": scaler.state_dict()} if scaler is not None else {}

    def load_extra_resume_state(self, extra: Dict[str, Any]) -> None:
        if extra.get("scaler") is not None and self.scaler is not None:
            self.scaler.load_state_dict(extra["scaler"])

    def load_model(self, directory: str, epoch: Optional[int] = None, strict: bool = True) -> None:
        """Load ``model-best.pth.tar`` (epoch None; falls back to the latest ``model.pth.tar-N`` when there
        is no best file) or ``model.pth.tar-<epoch>``. Always strict (``strict=False`` is refused): only
        class-name buffers may be skipped."""
        if not strict:
            raise ValueError(f"{type(self).__name__}.load_model is always strict; mismatching checkpoints must be fixed, "
                             "not silently loaded")
        if not directory:
            logger.info("Note that load_model() is skipped as no pretrained model is given")
            return
        names = self.get_model_names()
        if not names:
            logger.warning("%s has no trainable weights: nothing is loaded from %s", type(self).__name__, directory)
            return
        for name in names:
            folder = osp.join(directory, name)
            if epoch is not None:
                path = osp.join(folder, f"model.pth.tar-{epoch}")
            else:
                path = osp.join(folder, BEST_NAME)
                if not osp.exists(path):
                    numbered = self._numbered_checkpoints(folder)
                    if numbered:
                        path = numbered[-1][1]
                        logger.info("No %s in %s: loading the latest %s", BEST_NAME, folder, osp.basename(path))
            if not osp.exists(path):
                available = sorted(os.listdir(folder)) if osp.isdir(folder) else []
                raise FileNotFoundError(
                    f'Model not found at "{path}" (files in {folder}: {available or "folder missing"}); '
                    "pass --model-dir <run output dir> and --load-epoch <N> of an existing model.pth.tar-N"
                )
            ckpt = self.load_checkpoint_into(name, path, resume=False)
            val_result = ckpt.get("val_result")
            logger.info('Load "%s" to %s (epoch=%s%s)', path, name, ckpt.get("epoch"),
                        f", val_result={val_result:.1f}" if isinstance(val_result, (int, float)) else "")
            self._loaded_checkpoint = {"file": path, "epoch": ckpt.get("epoch")}
        self.after_load_model()

    def resume_model_if_exist(self, directory: str) -> int:
        """Resume from the checkpoint with the highest epoch (never from model-best just because it was
        saved last, docs/REFERENCE.md D9); trainer state (GPA) is restored too."""
        names = self.get_model_names()
        if not names or any(not osp.isdir(osp.join(directory, n)) for n in names):
            logger.info("No checkpoint found, train from scratch")
            return 0
        start_epoch = 0
        for name in names:
            folder = osp.join(directory, name)
            numbered = self._numbered_checkpoints(folder)
            candidates = list(numbered)
            best = osp.join(folder, BEST_NAME)
            if osp.exists(best):
                best_ckpt = load_checkpoint(best)
                candidates.append((int(best_ckpt.get("epoch", 0)), best))
                if isinstance(best_ckpt.get("val_result"), (int, float)):
                    self.best_result = float(best_ckpt["val_result"])
                    self.best_epoch = int(best_ckpt.get("epoch", 0))
            if not candidates:
                logger.info("No checkpoint file in %s, train from scratch", folder)
                return 0
            _, path = max(candidates)
            logger.info("Resuming %s from %s", name, path)
            ckpt = self.load_checkpoint_into(name, path, resume=True)
            if self._optims[name] is not None and ckpt.get("optimizer") is not None:
                self._optims[name].load_state_dict(ckpt["optimizer"])
            if self._scheds[name] is not None and ckpt.get("scheduler") is not None:
                self._scheds[name].load_state_dict(ckpt["scheduler"])
            start_epoch = int(ckpt["epoch"])
        logger.info("Resumed at epoch %d", start_epoch)
        return start_epoch
