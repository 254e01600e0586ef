"""Optimiser and LR-scheduler builders (Dassl ``dassl.optim``), docs/REFERENCE.md A6.

``build_optimizer`` supports adam, amsgrad, sgd, rmsprop, radam (torch's RAdam) and adamw with
Dassl's hyper-parameter keys (OPTIM.*) and STAGED_LR. ``build_lr_scheduler`` builds single_step,
multi_step or cosine (stepped once per epoch by the trainers) and wraps it in a constant or linear
warm-up when ``WARMUP_EPOCH > 0``. The stepping semantics are Dassl's, so the PromptKD config
(lr 0.005, 20 epochs, constant warm-up 1 epoch at 1e-5) gives exactly the reference's per-epoch
LRs: 1e-5, then ``lr * (1 + cos(pi * (k - 2) / 20)) / 2`` for epoch k >= 2.

Fix over Dassl: the warm-up scheduler's ``state_dict`` stores the successor's *state* (Dassl
pickled the successor object, optimizer included, so a resumed run kept stepping a stale copy).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Dict, Iterable, List, Optional, Union

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)

__all__ = ["build_optimizer", "build_lr_scheduler", "ConstantWarmupScheduler", "LinearWarmupScheduler", "AVAI_OPTIMS",
           "AVAI_SCHEDS"]

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]
AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]


def _staged_param_groups(model: Any, optim_cfg: Any) -> List[Dict[str, Any]]:
    """OPTIM.STAGED_LR: the children named in NEW_LAYERS train at LR, the others at LR * BASE_LR_MULT."""
    if not isinstance(model, nn.Module):
        raise TypeError("OPTIM.STAGED_LR=True needs an nn.Module passed to build_optimizer, not an iterable of "
                        "parameters")
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    new_layers = optim_cfg.NEW_LAYERS
    new_layers = [new_layers] if isinstance(new_layers, str) else new_layers
    if not new_layers:
        warnings.warn("OPTIM.NEW_LAYERS is empty, so OPTIM.STAGED_LR has no effect")
    child_names = [n for n, _ in model.named_children()]
    unknown = [n for n in new_layers if n not in child_names]
    if unknown:
        raise ValueError(f"OPTIM.NEW_LAYERS {unknown} are not children of the model; children: {child_names}")
    base_params: List[nn.Parameter] = []
    new_params: List[nn.Parameter] = []
    for child_name, module in model.named_children():
        (new_params if child_name in new_layers else base_params).extend(module.parameters())
    return [{"params": base_params, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT}, {"params": new_params}]


def build_optimizer(model: Union[nn.Module, Iterable[Any]], optim_cfg: Any,
                    param_groups: Optional[Iterable[Any]] = None) -> torch.optim.Optimizer:
    """Build the optimiser named ``optim_cfg.NAME`` over a module's parameters, an iterable of
    parameters, or explicit ``param_groups`` (which take precedence; STAGED_LR is then ignored).

    With a module, *all* its parameters are passed (Dassl behaviour); frozen ones have no gradient
    and are skipped by the optimiser.
    """
    name = optim_cfg.NAME
    lr = optim_cfg.LR
    if name not in AVAI_OPTIMS:
        raise ValueError(f"OPTIM.NAME: unsupported optimizer '{name}'. Must be one of {AVAI_OPTIMS}")
    if param_groups is not None and optim_cfg.STAGED_LR:
        warnings.warn("OPTIM.STAGED_LR is ignored because explicit param_groups were given to build_optimizer")
    if param_groups is None and optim_cfg.STAGED_LR:
        param_groups = _staged_param_groups(model, optim_cfg)
    elif param_groups is None:
        param_groups = model.parameters() if isinstance(model, nn.Module) else model
    wd = optim_cfg.WEIGHT_DECAY
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                               dampening=optim_cfg.SGD_DAMPNING, nesterov=optim_cfg.SGD_NESTEROV)
    if name == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                                   alpha=optim_cfg.RMSPROP_ALPHA)
    adam_family = {"adam": torch.optim.Adam, "amsgrad": torch.optim.Adam, "radam": torch.optim.RAdam,
                   "adamw": torch.optim.AdamW}
    return adam_family[name](param_groups, lr=lr, weight_decay=wd, betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2),
                             **({"amsgrad": True} if name == "amsgrad" else {}))


class _BaseWarmupScheduler(LRScheduler):
    """Warm-up wrapper: own LR rule for ``warmup_epoch`` steps, then delegates to ``successor``.

    Subclasses define ``warmup_lr()``. Stepping follows Dassl exactly: while ``last_epoch < warmup_epoch`` the wrapper steps itself
    (and at ``last_epoch == warmup_epoch`` returns the successor's current LR); afterwards each
    ``step()`` steps the successor.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, successor: LRScheduler, warmup_epoch: int,
                 last_epoch: int = -1) -> None:
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        if self.last_epoch >= self.warmup_epoch:
            return list(self.successor.get_last_lr())
        return self.warmup_lr()

    def step(self, epoch: Optional[int] = None) -> None:
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)

    def state_dict(self) -> Dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        state = dict(state_dict)
        # a state dict: a Dassl checkpoint's pickled successor object is refused by the weights-only loading
        successor_state = state.pop("successor", None)
        self.__dict__.update(state)
        if successor_state is not None:
            self.successor.load_state_dict(successor_state)


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    """Constant LR ``cons_lr`` during warm-up."""

    def __init__(self, optimizer: torch.optim.Optimizer, successor: LRScheduler, warmup_epoch: int, cons_lr: float,
                 last_epoch: int = -1) -> None:
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self) -> List[float]:
        return [self.cons_lr for _ in self.base_lrs]


class LinearWarmupScheduler(_BaseWarmupScheduler):
    """Linear warm-up: ``min_lr`` at step 0, then ``base_lr * last_epoch / warmup_epoch``."""

    def __init__(self, optimizer: torch.optim.Optimizer, successor: LRScheduler, warmup_epoch: int, min_lr: float,
                 last_epoch: int = -1) -> None:
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self) -> List[float]:
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [lr * self.last_epoch / self.warmup_epoch for lr in self.base_lrs]


def build_lr_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: Any) -> LRScheduler:
    """Build ``optim_cfg.LR_SCHEDULER`` (single_step | multi_step | cosine), wrapped in a warm-up
    scheduler when ``WARMUP_EPOCH > 0`` (Dassl semantics, see module docstring)."""
    name = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    gamma = optim_cfg.GAMMA
    if name not in AVAI_SCHEDS:
        raise ValueError(f"OPTIM.LR_SCHEDULER: unsupported scheduler '{name}'. Must be one of {AVAI_SCHEDS}")

    if name == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise TypeError(f"OPTIM.STEPSIZE for single_step must be an integer, got {stepsize!r}")
        if stepsize <= 0:
            stepsize = optim_cfg.MAX_EPOCH
        scheduler: LRScheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepsize, gamma=gamma)
    elif name == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(f"OPTIM.STEPSIZE for multi_step must be a list of epochs, got {stepsize!r}")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(stepsize), gamma=gamma)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(optim_cfg.MAX_EPOCH))

    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
        if optim_cfg.WARMUP_TYPE == "constant":
            scheduler = ConstantWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_CONS_LR)
        elif optim_cfg.WARMUP_TYPE == "linear":
            scheduler = LinearWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_MIN_LR)
        else:
            raise ValueError(f"OPTIM.WARMUP_TYPE: unknown warm-up type '{optim_cfg.WARMUP_TYPE}'. Must be 'constant' "
                             "or 'linear'")
    return scheduler
