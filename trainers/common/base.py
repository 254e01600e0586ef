"""``PromptTrainer``: the base class of every CLIP trainer (docs/ARCHITECTURE.md "Trainers").

A trainer implements ``build_model()``; by default it is a prompt learner on a frozen CLIP: ``self.model`` is a
:class:`~trainers.common.vl_model.FrozenCLIPModel` (CoOp, CoCoOp, MaPLe, IVLP, PromptSRC; docs/REFERENCE.md
T2-T6) whose trainable part is registered under the reference's name ``REGISTERED_NAME``
(:meth:`register_trainable`), trained with the reference's cross-entropy on ``exp(logit_scale) * cos`` logits
and evaluated with the prompted text features computed once per class set (they do not depend on the image).
Other trainers (zero-shot CLIP, the PromptKD student) override ``forward_backward(batch)``,
``model_inference(images)`` and ``set_eval_classnames(classnames)``. This class owns, on top of Dassl's
``TrainerX`` lifecycle:

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
- results.json and the collapse detector (:mod:`.run_results`).

Never wraps models in DataParallel (docs/REFERENCE.md D8).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import os.path as osp
import time
from collections import OrderedDict
from typing import Any, ContextManager, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from engine import dist
from engine.api import TrainerX, build_data_loader, build_evaluator, build_lr_scheduler, build_optimizer, save_checkpoint
# weights_only=True only, under either engine; the one place that knows Dassl's epoch file names
from engine.checkpoint import (BEST_NAME, load_checkpoint, numbered_checkpoint_name, numbered_checkpoints,
                               strip_module_prefix)
from engine.run_header import class_lines
from engine.epoch_log import progress_enabled  # progress bars on rank 0 and a terminal only (not in log files)

from .backbone import build_clip, check_input_size
from .checkpoints import strict_load, trainable_state_dict
from .precision import PRECISIONS, resolve_precision
from .run_results import summarise, write_results

logger = logging.getLogger(__name__)


FINAL_MODEL_CHOICES = ("last_step", "best_val", "best_test_reference")


class PromptTrainer(TrainerX):
    """Shared machinery of the CLIP prompt trainers (see the module docstring)."""

    #: config node under TRAINER holding this trainer's keys (e.g. "IVLP" -> cfg.TRAINER.IVLP.PREC)
    CFG_NODE: str = ""
    #: name the trainable module is registered (and checkpointed) under, as in the reference
    REGISTERED_NAME: str = ""
    #: text features of the current class set for evaluation (None: recompute on the next inference)
    _text_cache: Optional[torch.Tensor] = None
    #: amp's GradScaler (created on first use)
    _scaler: Optional[torch.amp.GradScaler] = None
    #: the checkpoint :meth:`load_model` loaded last ({"file", "epoch"}) and how the final model was selected
    _loaded_checkpoint: Optional[Dict[str, Any]] = None
    _selection: Optional[Dict[str, Any]] = None

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
        dtype = {"amp": torch.float16, "bf16": torch.bfloat16}.get(self.prec)
        return torch.autocast(torch.device(self.device).type, dtype=dtype) if dtype else contextlib.nullcontext()

    @property
    def scaler(self) -> Optional[torch.amp.GradScaler]:
        if self.prec == "amp" and self._scaler is None:
            self._scaler = torch.amp.GradScaler(torch.device(self.device).type)
        return self._scaler

    @property
    def train_classnames(self) -> List[str]:
        """Class names of the training set in label order (Dassl's ``dataset.classnames``)."""
        return list(self.dm.dataset.classnames)

    # ------------------------------------------------------------------ model registration
    def register_model(self, name: str = "model", model=None, optim=None, sched=None) -> None:
        """Dassl's register_model + a log of the trainable parameter names and counts."""
        super().register_model(name, model, optim, sched)
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        logger.info("Model %r: %s trainable parameters in %d tensors (%s frozen)\n%s",
                    name, f"{sum(p.numel() for _, p in trainable):,}", len(trainable), f"{frozen:,}",
                    "\n".join(f"  {n}: {tuple(p.shape)} = {p.numel():,}" for n, p in trainable))

    def build_optim_sched(self, params: Iterable[nn.Parameter]) -> Tuple[Any, Any]:
        """Optimizer + LR scheduler (OPTIM config) over the given trainable parameters only."""
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self).__name__}: no trainable parameters to optimise")
        optim = build_optimizer(params, self.cfg.OPTIM)
        return optim, build_lr_scheduler(optim, self.cfg.OPTIM)

    def num_trainable_params(self) -> int:
        return sum(p.numel() for model in self._models.values() for p in model.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ prompted frozen CLIP (the default model)
    def build_backbone(self) -> nn.Module:
        """The frozen CLIP of ``MODEL.BACKBONE.NAME`` at the trainer's precision, checked against INPUT.SIZE."""
        clip_model = build_clip(self.cfg, prec=self.prec, device=self.device)
        check_input_size(self.cfg, clip_model, self.cfg.MODEL.BACKBONE.NAME)
        return clip_model

    def register_trainable(self, module: nn.Module) -> None:
        """Optimiser + scheduler over ``module``'s trainable parameters; register it as ``REGISTERED_NAME``."""
        self.optim, self.sched = self.build_optim_sched(module.parameters())
        self.register_model(self.REGISTERED_NAME, module, self.optim, self.sched)

    def load_init_weights(self) -> None:
        """``MODEL.INIT_WEIGHTS``: strictly load a checkpoint file into ``REGISTERED_NAME`` before training
        (the reference's ``load_pretrained_weights``, without its silent key skipping)."""
        path = self.cfg.MODEL.INIT_WEIGHTS
        if path:
            self.load_checkpoint_into(self.REGISTERED_NAME, path)
            logger.info("Initialised %s from MODEL.INIT_WEIGHTS = %s", self.REGISTERED_NAME, path)

    def parse_batch_train(self, batch: Dict) -> Tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def forward_backward(self, batch) -> Dict[str, torch.Tensor]:
        """L = CE(exp(logit_scale) * cos(image, text), y) (CoOp / CoCoOp / MaPLe / IVLP)."""
        images, labels = self.parse_batch_train(batch)
        with self.autocast():
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels)
        grad_norm = self.optimize(loss)
        acc = (logits.detach().argmax(dim=1) == labels).float().mean() * 100.0
        return {"loss": loss.detach(), "acc": acc, "grad_norm": grad_norm}  # device tensors, read at PRINT_FREQ

    def set_eval_classnames(self, classnames: Sequence[str]) -> None:
        """Switch the class set the logits are computed over (base / novel / all / training classes)."""
        if list(classnames) != self.model.classnames:
            self.model.set_classnames(classnames)
        self._text_cache = None

    def set_model_mode(self, mode: str = "train", names=None) -> None:
        super().set_model_mode(mode, names)
        self._text_cache = None  # the prompts may have changed: recompute text features for evaluation

    @torch.no_grad()
    def model_inference(self, images: torch.Tensor) -> torch.Tensor:
        if self._text_cache is None:
            self._text_cache = self.model.encode_text()
        return self.model(images, text_features=self._text_cache)

    # ------------------------------------------------------------------ optimisation
    def optimize(self, loss: torch.Tensor, names: Optional[Sequence[str]] = None) -> torch.Tensor:
        """One optimisation step on ``loss``: zero_grad, backward (GradScaler for amp), grad norm over the
        trainable parameters, NaN/Inf guard, step. Returns the grad norm as a 0-d tensor on the device
        (also ``self.last_grad_norm``), not read by the host: the guard is the step's only device-to-host
        synchronisation (amp's GradScaler adds its own inf check)."""
        names, optims, scaler = self.get_model_names(names), self._optimizers(names), self.scaler
        for optim in optims:
            optim.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        params = [p for name in names for p in self._models[name].parameters() if p.requires_grad]
        if dist.is_dist():
            dist.all_reduce_gradients(params)  # before unscale_, so every rank sees the same inf/NaN check
        for optim in optims if scaler is not None else []:
            scaler.unscale_(optim)
        grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else loss.new_zeros((), dtype=torch.float32)
        finite = torch.isfinite(loss.detach()).all()
        if scaler is None:  # amp: a non-finite gradient makes the GradScaler skip the step and lower its scale
            finite = finite & torch.isfinite(grad_norm)
        if not bool(finite):  # the one synchronisation of the step
            self._raise_non_finite(loss, grad_norm)
        for optim in optims:
            scaler.step(optim) if scaler is not None else optim.step()
        if scaler is not None:
            scaler.update()
        self.last_grad_norm = grad_norm
        return grad_norm

    def _raise_non_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        where = (f"epoch {self.epoch + 1}/{self.max_epoch}, step {getattr(self, 'batch_idx', 0) + 1}/"
                 f"{getattr(self, 'num_batches', '?')}")
        value = float(loss.detach().float().item())
        what, detail = ((f"loss {value}", f"trainer {type(self).__name__}") if not math.isfinite(value)
                        else (f"gradient norm {float(grad_norm)}", f"loss {value:.4g}"))
        raise FloatingPointError(f"Non-finite {what} at {where} ({detail}, PREC {self.prec}); "
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
        super().before_train()

    def after_epoch(self) -> None:
        """LR step (once per epoch, as Dassl's CLIP trainers), trainer hook, the reference's selection on the
        first evaluation set's test accuracy (``best_test_reference``), then the engine's: ``best_val``
        selection (our :meth:`test` on the val split) and the epoch checkpoints."""
        self.update_lr()
        self.on_epoch_end()
        if self.cfg.TEST.FINAL_MODEL == "best_test_reference" and not self.cfg.TEST.NO_TEST:
            first = next(iter(self.dm.dataset.eval_sets))
            current = self.evaluate_eval_sets(names=[first])[first]["accuracy"]
            self.log_epoch_scalar(f"{first}_test_accuracy", current)
            if current > self.best_result:
                self.best_result, self.best_epoch = current, self.epoch + 1
                self.save_model(self.epoch, self.output_dir, val_result=current, model_name=BEST_NAME)
        super().after_epoch()

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
        logger.info("Elapsed: %s", datetime.timedelta(seconds=round(time.time() - self.time_start)))
        self.close_writer()

    def build_data_loader(self) -> None:
        """Dassl's loaders, then the class names in the log (base / novel halves, training classes, template)."""
        super().build_data_loader()
        logger.info("\n".join(class_lines(self.dm.dataset)))

    # ------------------------------------------------------------------ evaluation
    def _eval_loader(self, name: str, items: Sequence[Any]):
        cache = self.__dict__.setdefault("_eval_loaders", {})
        if name not in cache:
            cache[name] = build_data_loader(self.cfg, sampler_type=self.cfg.DATALOADER.TEST.SAMPLER,
                                            data_source=list(items), batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE,
                                            tfm=self.dm.tfm_test, is_train=False)
        return cache[name]

    @torch.no_grad()
    def _run_evaluation(self, loader, classnames: Sequence[str], tag: str) -> Dict[str, float]:
        self.set_eval_classnames(list(classnames))
        evaluator = build_evaluator(self.cfg, lab2cname={i: c for i, c in enumerate(classnames)})
        evaluator.reset()
        logger.info("Evaluate on the *%s* set (%d classes)", tag, len(classnames))
        seen = 0
        for batch in tqdm(loader, disable=not progress_enabled(), leave=False, desc=f"eval {tag}", dynamic_ncols=True):
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
        return dict(results, num_images=expected)

    def _evaluate(self, sets: Iterable[Tuple[str, Any, Sequence[str]]]) -> "OrderedDict[str, Dict[str, float]]":
        """Evaluate ``(tag, loader, classnames)`` sets in eval mode; restores the training class set."""
        self.set_model_mode("eval")
        try:
            return OrderedDict((tag, self._run_evaluation(loader, names, tag)) for tag, loader, names in sets)
        finally:
            self.set_eval_classnames(self.train_classnames)

    def evaluate_eval_sets(self, names: Optional[Sequence[str]] = None) -> "OrderedDict[str, Dict[str, float]]":
        """Evaluate ``dm.dataset.eval_sets`` (or the named subset); restores the training class set."""
        sets = self.dm.dataset.eval_sets
        return self._evaluate((n, self._eval_loader(n, sets[n].items), sets[n].classnames) for n in names or sets)

    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """``split`` None / "test": evaluate every eval set, log base/novel/HM, write results.json and
        return the HM (base2novel) or the accuracy; "val": the validation split (for best_val)."""
        split = split or self.cfg.TEST.SPLIT
        if split == "val":
            if self.val_loader is None:
                raise ValueError(f"test(split='val'): dataset {self.cfg.DATASET.NAME} has no validation split")
            return float(self._evaluate([("val", self.val_loader, self.train_classnames)])["val"]["accuracy"])
        if split != "test":
            raise ValueError(f"test(split={split!r}): use 'test' (all evaluation sets) or 'val'")
        results = self.evaluate_eval_sets()
        summary = summarise(self, results)
        write_results(self, results, summary)
        return summary["hm"] if "hm" in summary else summary["accuracy"]

    def teacher_identity(self) -> Optional[Dict[str, Any]]:
        """Identity of the teacher whose knowledge the model uses (PromptKD); None for other trainers."""
        return None

    def results_extra(self) -> Dict[str, Any]:
        """Trainer-specific entries merged into results.json (e.g. PromptKD's ``distillation``); none here."""
        return {}

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

    def save_model(self, epoch: int, directory: str, is_best: bool = False,
                   val_result: Optional[float] = None, model_name: str = "") -> None:
        """Dassl-layout save of the trainable tensors only (see :func:`checkpoints.checkpoint_keys`)."""
        for name in self.get_model_names() if dist.is_main_process() else []:
            entry = self.state_for_resume(name)  # state_dict, meta, trainer state: after Dassl's keys
            optim, sched = self._optims[name], self._scheds[name]
            state = {"state_dict": entry.pop("state_dict"), "epoch": epoch + 1,
                     "optimizer": optim.state_dict() if optim is not None else None,
                     "scheduler": sched.state_dict() if sched is not None else None, "val_result": val_result, **entry}
            save_checkpoint(state, osp.join(directory, name), is_best=is_best, model_name=model_name)
        dist.barrier()

    def load_checkpoint_into(self, name: str, path: str, resume: bool = False,
                             ckpt: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Strictly load the checkpoint file ``path`` (or its already read content ``ckpt``) into the registered
        model ``name`` (``module.`` prefixes stripped, released key layouts converted by
        ``convert_checkpoint_state``); trainer state such as PromptSRC's GPA is restored when ``resume``.
        Returns the checkpoint dict."""
        ckpt = load_checkpoint(path) if ckpt is None else ckpt
        if not isinstance(ckpt, dict):
            raise ValueError(f"{path}: expected a checkpoint dict, got {type(ckpt).__name__}")
        state = self.convert_checkpoint_state(name, strip_module_prefix(ckpt.get("state_dict", ckpt)))
        strict_load(self._models[name], state, path)
        self.load_extra_checkpoint_state(name, ckpt, resume)
        return ckpt

    # engine hooks of the mid-epoch resumable state: the checkpoint content (trainable tensors + trainer
    # state such as PromptSRC's GPA) and the GradScaler
    def state_for_resume(self, name: str) -> Dict[str, Any]:
        return {"state_dict": trainable_state_dict(self._models[name]), "meta": self.checkpoint_meta(name),
                **self.extra_checkpoint_state(name)}

    def load_state_for_resume(self, name: str, entry: Dict[str, Any], source: str) -> None:
        self.load_checkpoint_into(name, source, resume=True, ckpt=entry)

    def extra_resume_state(self) -> Dict[str, Any]:
        return {"scaler": self._scaler.state_dict()} if self._scaler is not None else {}

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
            path = osp.join(folder, BEST_NAME if epoch is None else numbered_checkpoint_name(epoch))
            numbered = numbered_checkpoints(folder)
            if epoch is None and not osp.exists(path) and numbered:
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
        self._text_cache = None

    def resume_model_if_exist(self, directory: str) -> int:
        """Resume from the checkpoint with the highest epoch (never from model-best just because it was
        saved last, docs/REFERENCE.md D9); trainer state (GPA) is restored too."""
        names, start_epoch = self.get_model_names(), 0
        for name in names:
            folder = osp.join(directory, name)
            candidates = numbered_checkpoints(folder)
            best = osp.join(folder, BEST_NAME)
            if osp.exists(best):
                best_ckpt = load_checkpoint(best)
                candidates.append((int(best_ckpt.get("epoch", 0)), best))
                if isinstance(best_ckpt.get("val_result"), (int, float)):
                    self.best_result = float(best_ckpt["val_result"])
                    self.best_epoch = int(best_ckpt.get("epoch", 0))
            if not candidates:
                logger.info("No checkpoint found in %s, train from scratch", folder)
                return 0
            _, path = max(candidates)
            logger.info("Resuming %s from %s", name, path)
            ckpt = self.load_checkpoint_into(name, path, resume=True)
            for obj, key in ((self._optims[name], "optimizer"), (self._scheds[name], "scheduler")):
                if obj is not None and ckpt.get(key) is not None:
                    obj.load_state_dict(ckpt[key])
            start_epoch = int(ckpt["epoch"])
        if names:
            logger.info("Resumed at epoch %d", start_epoch)
        return start_epoch
