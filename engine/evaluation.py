"""Evaluators (Dassl ``dassl.evaluation``) and ``compute_accuracy`` (``dassl.metrics``), docs/REFERENCE.md A7.

``Classification`` accumulates argmax predictions and reports accuracy, error rate and macro-F1
(over the labels present in ``y_true``, as sklearn's ``f1_score(average="macro", labels=unique(y_true))``
does, computed here with numpy), plus per-class accuracy (``TEST.PER_CLASS_RESULT``) and a
row-normalised confusion matrix (``TEST.COMPUTE_CMAT``). The log lines are Dassl's
("=> result", "* accuracy: X.X%", ...) so ``parse_test_res.py``-style tools keep working.

Distributed runs: ``evaluate()`` all-reduces correct/total and gathers y_true/y_pred from every
rank, so each rank returns the metrics of the whole evaluation set.
"""

from __future__ import annotations

import logging
import os.path as osp
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from engine import dist
from engine.fileio import atomic_torch_save
from engine.registry import Registry

logger = logging.getLogger(__name__)

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator", "EvaluatorBase", "Classification", "compute_accuracy",
           "macro_f1_score", "confusion_matrix"]

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def compute_accuracy(output: Union[torch.Tensor, Sequence[torch.Tensor]], target: torch.Tensor,
                     topk: Tuple[int, ...] = (1,)) -> List[torch.Tensor]:
    """Top-k accuracies in percent (Dassl semantics: a list of one-element tensors, one per k).

    ``output`` may be a tuple/list, in which case its first element holds the logits.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / target.size(0)) for k in topk]


def macro_f1_score(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Macro-averaged F1 in [0, 1] over the labels present in ``y_true`` (F1 = 2TP / (2TP + FP + FN))."""
    yt = np.asarray(y_true, dtype=np.int64)
    yp = np.asarray(y_pred, dtype=np.int64)
    if yt.size == 0:
        return 0.0
    # 2TP + FP + FN = (TP + FP) + (TP + FN): predicted plus true count; > 0 as the label occurs in y_true
    return float(np.mean([2.0 * np.sum((yp == c) & (yt == c)) / (np.sum(yp == c) + np.sum(yt == c))
                          for c in np.unique(yt)]))


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int],
                     normalize: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Confusion matrix over the sorted union of labels (rows: true, columns: predicted).

    With ``normalize`` each row is divided by its total (sklearn ``normalize="true"``). Returns
    ``(matrix, labels)``.
    """
    yt = np.asarray(y_true, dtype=np.int64)
    yp = np.asarray(y_pred, dtype=np.int64)
    labels = np.unique(np.concatenate([yt, yp]))
    cmat = np.zeros((len(labels), len(labels)), dtype=np.float64)
    np.add.at(cmat, (np.searchsorted(labels, yt), np.searchsorted(labels, yp)), 1)
    if normalize:
        rows = cmat.sum(axis=1, keepdims=True)
        cmat = np.divide(cmat, rows, out=np.zeros_like(cmat), where=rows > 0)
    return cmat, labels


class EvaluatorBase(ABC):
    """Base evaluator: ``reset()``, ``process(model_output, gt)``, ``evaluate() -> OrderedDict``."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @abstractmethod
    def reset(self) -> None:
        """Clear the accumulated state."""

    @abstractmethod
    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        """Accumulate one batch of model outputs and ground truth."""

    @abstractmethod
    def evaluate(self) -> Dict[str, float]:
        """Return the metrics (first key is the one ``test()`` returns)."""


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Evaluator for classification (accuracy, error rate, macro-F1, optional per-class and cmat)."""

    def __init__(self, cfg: Any, lab2cname: Optional[Dict[int, str]] = None, **kwargs: Any) -> None:
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._per_class = bool(cfg.TEST.PER_CLASS_RESULT)
        if self._per_class and lab2cname is None:
            raise ValueError(
                "TEST.PER_CLASS_RESULT=True needs lab2cname (label -> class name) to be given to the evaluator"
            )
        self.reset()

    def reset(self) -> None:
        self._y_true: List[int] = []
        self._y_pred: List[int] = []

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        """Accumulate one batch: ``mo`` logits [B, C], ``gt`` labels [B]."""
        if mo.dim() != 2 or gt.dim() != 1 or mo.shape[0] != gt.shape[0]:
            raise ValueError(f"Classification.process expects logits [B, C] and labels [B], got {tuple(mo.shape)} "
                             f"and {tuple(gt.shape)}")
        self._y_true.extend(gt.detach().cpu().tolist())
        self._y_pred.extend(mo.max(1)[1].detach().cpu().tolist())

    def evaluate(self) -> Dict[str, float]:
        """Return ``OrderedDict(accuracy, error_rate, macro_f1[, perclass_accuracy])`` in percent and log them."""
        parts = dist.all_gather_object((self._y_true, self._y_pred))  # every rank's (labels, predictions)
        y_true, y_pred = [y for yt, _ in parts for y in yt], [y for _, yp in parts for y in yp]
        correct, total = sum(t == p for t, p in zip(y_true, y_pred)), len(y_true)
        if total == 0:
            raise ValueError("Classification.evaluate: no samples were processed (empty evaluation loader?)")
        acc = 100.0 * correct / total
        results: Dict[str, float] = OrderedDict(accuracy=acc, error_rate=100.0 - acc,
                                                macro_f1=100.0 * macro_f1_score(y_true, y_pred))
        logger.info("=> result\n* total: %s\n* correct: %s\n* accuracy: %.1f%%\n* error: %.1f%%\n* macro_f1: %.1f%%",
                    f"{total:,}", f"{correct:,}", acc, results["error_rate"], results["macro_f1"])

        if self._per_class:
            yt = np.asarray(y_true)
            yp = np.asarray(y_pred)
            lines = ["=> per-class result"]
            accs = []
            for label in sorted(set(y_true)):
                mask = yt == label
                n, c = int(mask.sum()), int((yp[mask] == label).sum())
                accs.append(100.0 * c / n)
                lines.append(f"* class: {label} ({self._lab2cname.get(label, '?')})\ttotal: {n:,}\tcorrect: {c:,}\t"
                             f"acc: {accs[-1]:.1f}%")
            mean_acc = float(np.mean(accs))
            lines.append(f"* average: {mean_acc:.1f}%")
            logger.info("\n".join(lines))
            results["perclass_accuracy"] = mean_acc

        if self.cfg.TEST.COMPUTE_CMAT:
            cmat, _labels = confusion_matrix(y_true, y_pred)
            if dist.is_main_process():
                save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
                atomic_torch_save(cmat, save_path)
                logger.info("Confusion matrix is saved to %s", save_path)
        return results


def build_evaluator(cfg: Any, **kwargs: Any) -> EvaluatorBase:
    """Instantiate the evaluator registered as ``cfg.TEST.EVALUATOR`` (extra kwargs, e.g. ``lab2cname``, are passed on)."""
    evaluator_cls = EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)
    if cfg.VERBOSE:
        logger.info("Loading evaluator: %s", cfg.TEST.EVALUATOR)
    return evaluator_cls(cfg, **kwargs)
