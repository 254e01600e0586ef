"""Knowledge-distillation losses, registered by name (``TRAINER.PROMPTKD.LOSS``).

Every loss takes ``(student_logits [B, C], teacher_logits [B, C], temperature)`` and returns a 0-d
fp32 tensor; logits are cast to fp32 before any softmax. Adding a loss is one decorated function::

    @register_kd_loss("my_loss")
    def my_loss(student_logits, teacher_logits, temperature): ...

Built-in losses:

- ``kl_reference`` (default): the official PromptKD loss (docs/REFERENCE.md T7)
  ``T^2 * sum_{b,c} p_t (log p_t - log p_s) / (B * C)`` with ``p = softmax(logits / T)``, i.e.
  ``F.kl_div(..., reduction="sum") / numel``. Its divisor includes the class count C, which is why the
  published KD_WEIGHT values (200 / 1000) are so large.
- ``kl_batchmean``: the textbook ``T^2 * KL(p_t || p_s)`` averaged over the batch
  (``reduction="batchmean"``), equal to ``C * kl_reference``.
- ``topk_skl`` (after KDPL, Mistretta et al., ECCV 2024): per image b, the teacher's top-K classes I_b
  (K = ``TRAINER.PROMPTKD.TOPK``, all classes when K >= C), both distributions renormalised over them
  (``p = softmax(logits[I_b] / T)``) and the symmetric KL ``KL(p_t || p_s) + KL(p_s || p_t)``;
  ``T^2 * sum_b SKL_b / (B * C)`` with the FULL class count C, the divisor of ``kl_reference``, so the
  dataset's KD_WEIGHT keeps its scale.

A loss with extra settings registers them with ``options``: config keys of ``TRAINER.PROMPTKD`` passed as the
lower-cased keyword (``options=("TOPK",)`` -> ``topk=cfg.TRAINER.PROMPTKD.TOPK``); :func:`bind_kd_loss` binds
them once, so the trainer always calls ``loss(student, teacher, temperature)``.

Feature losses (paper Table 4, "distillation form") compare the student's projected, L2-normalised
image feature with the teacher's L2-normalised image feature instead of logits. They are registered
with ``inputs="features"``, take ``(student_features [B, D], teacher_features [B, D], temperature)``
(the temperature is not used) and are averaged over all B * D elements, the same normalisation as
``kl_reference`` (divided by ``numel``), so KD_WEIGHT keeps a comparable scale:

- ``feature_l1``: ``mean |f_s - f_t|``;
- ``feature_mse``: ``mean (f_s - f_t)^2``.

``kd_loss_inputs(name)`` tells the trainer which pair ("logits" or "features") a loss takes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F


KDLoss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
KD_INPUTS = ("logits", "features")
_KD_LOSSES: Dict[str, KDLoss] = {}
_KD_INPUTS: Dict[str, str] = {}
_KD_OPTIONS: Dict[str, Sequence[str]] = {}


def register_kd_loss(name: str, inputs: str = "logits", options: Sequence[str] = ()) -> Callable[[KDLoss], KDLoss]:
    """Decorator registering a KD loss under ``name`` (duplicate names raise KeyError).

    ``inputs``: "logits" (the loss gets student / teacher logits [B, C]) or "features" (it gets the
    student's projected feature and the teacher's image feature [B, D], both L2-normalised).
    ``options``: ``TRAINER.PROMPTKD`` keys the loss takes as lower-cased keywords (see :func:`bind_kd_loss`).
    """
    if inputs not in KD_INPUTS:
        raise ValueError(f"register_kd_loss({name!r}): inputs must be one of {KD_INPUTS}, got {inputs!r}")

    def deco(fn: KDLoss) -> KDLoss:
        if name in _KD_LOSSES:
            raise KeyError(f"KD loss {name!r} is already registered")
        _KD_LOSSES[name] = fn
        _KD_INPUTS[name], _KD_OPTIONS[name] = inputs, tuple(options)
        return fn

    return deco


def kd_loss_names() -> List[str]:
    return sorted(_KD_LOSSES)


def get_kd_loss(name: str) -> KDLoss:
    """The loss registered as ``name``; unknown names raise with the list of registered losses."""
    if name not in _KD_LOSSES:
        raise KeyError(
            f"Unknown KD loss {name!r} (config key TRAINER.PROMPTKD.LOSS); registered: {', '.join(kd_loss_names())}"
        )
    return _KD_LOSSES[name]


def bind_kd_loss(name: str, node: Mapping[str, Any]) -> functools.partial:
    """The loss ``name`` with its registered ``options`` read from ``node`` (TRAINER.PROMPTKD) and bound as
    keywords (``.keywords``: what results.json records), called as ``loss(student, teacher, temperature)``."""
    return functools.partial(get_kd_loss(name), **{key.lower(): node[key] for key in _KD_OPTIONS[name]})


def kd_loss_inputs(name: str) -> str:
    """"logits" or "features": what the loss registered as ``name`` compares."""
    get_kd_loss(name)  # unknown names raise with the list of registered losses
    return _KD_INPUTS[name]


def _log_probs(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               index: Optional[torch.Tensor] = None):
    """log softmax(logits / T) of both, in fp32; with ``index`` [B, K] over those classes of each row only."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"KD loss: student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must have the same shape [B, C]"
        )
    if temperature <= 0:
        raise ValueError(f"KD temperature must be > 0 (TRAINER.PROMPTKD.TEMPERATURE), got {temperature}")
    if index is not None:
        student_logits, teacher_logits = student_logits.gather(1, index), teacher_logits.gather(1, index)
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return log_p_s, log_p_t


@register_kd_loss("kl_reference")
def kl_reference(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """docs/REFERENCE.md T7: ``T^2 * KL_sum(p_t || p_s) / (B * C)``."""
    log_p_s, log_p_t = _log_probs(student_logits, teacher_logits, temperature)
    kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True)
    return kl * (temperature ** 2) / student_logits.numel()


@register_kd_loss("kl_batchmean")
def kl_batchmean(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * KL(p_t || p_s)`` averaged over the batch (= C x ``kl_reference``)."""
    log_p_s, log_p_t = _log_probs(student_logits, teacher_logits, temperature)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * (temperature ** 2)


@register_kd_loss("topk_skl", options=("TOPK",))
def topk_skl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
             topk: int = 5) -> torch.Tensor:
    """KDPL's top-K symmetric KL: ``T^2 * sum_b sum_{c in I_b} (p_t - p_s)(log p_t - log p_s) / (B * C)``, where
    I_b = the teacher's ``topk`` largest logits of image b, ``p = softmax(logits[I_b] / T)`` (renormalised over
    I_b) and ``(p_t - p_s)(log p_t - log p_s)`` summed = ``KL(p_t || p_s) + KL(p_s || p_t)``. C is the full class
    count (the ``kl_reference`` divisor, so KD_WEIGHT keeps its scale); ``topk >= C`` = all classes."""
    if int(topk) < 1:
        raise ValueError(f"TRAINER.PROMPTKD.TOPK must be >= 1 (top-K classes of topk_skl), got {topk}")
    index = teacher_logits.float().topk(min(int(topk), teacher_logits.shape[-1]), dim=-1).indices
    log_p_s, log_p_t = _log_probs(student_logits, teacher_logits, temperature, index)
    skl = ((log_p_t.exp() - log_p_s.exp()) * (log_p_t - log_p_s)).sum()
    return skl * (temperature ** 2) / student_logits.numel()


def _check_features(student_features: torch.Tensor, teacher_features: torch.Tensor) -> None:
    if student_features.dim() != 2 or student_features.shape != teacher_features.shape:
        raise ValueError(
            f"feature KD loss: student features {tuple(student_features.shape)} and teacher features "
            f"{tuple(teacher_features.shape)} must have the same shape [B, D] (the projector maps the student "
            "feature to the teacher's dimension)"
        )


@register_kd_loss("feature_l1", inputs="features")
def feature_l1(student_features: torch.Tensor, teacher_features: torch.Tensor,
               temperature: float = 1.0) -> torch.Tensor:
    """Table 4 "feature L1": ``mean_{b,d} |f_s - f_t|`` (temperature unused)."""
    _check_features(student_features, teacher_features)
    return (student_features.float() - teacher_features.float()).abs().mean()


@register_kd_loss("feature_mse", inputs="features")
def feature_mse(student_features: torch.Tensor, teacher_features: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    """Table 4 "feature MSE": ``mean_{b,d} (f_s - f_t)^2`` (temperature unused)."""
    _check_features(student_features, teacher_features)
    return (student_features.float() - teacher_features.float()).pow(2).mean()
