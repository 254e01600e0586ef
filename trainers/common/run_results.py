"""The final record of a trainer's run: the base / novel / HM summary, ``results.json`` and the collapse detector.

:func:`write_results` builds the :class:`engine.run_record.RunRecord` of a :class:`~trainers.common.base.PromptTrainer`
run (how the evaluated model was selected, the metrics of every evaluation set, the teacher of a PromptKD
student, the trainable parameter count, the collapse report) and writes it next to the run's logs;
:func:`collapse_report` flags degenerate runs (collapsed seeds, "best model at epoch 1").
"""

from __future__ import annotations

import logging
import math
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from datasets.config import resolve_eval_protocol
from engine import dist
from engine.run_record import RESULTS_FILE, RunRecord, harmonic_mean, write_run_record

logger = logging.getLogger(__name__)


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


def summarise(trainer, results: Mapping[str, Dict[str, float]]) -> Dict[str, float]:
    """base / novel / HM (logged and written as scalars) for base-to-novel sets; else the (mean) accuracy."""
    if "base" in results and "novel" in results:
        b, n = results["base"]["accuracy"], results["novel"]["accuracy"]
        hm = harmonic_mean(b, n)
        logger.info("=> base-to-novel result\n* base_acc: %.2f%%\n* novel_acc: %.2f%%\n* HM: %.2f%%", b, n, hm)
        for key, value in (("base_acc", b), ("novel_acc", n), ("hm", hm)):
            trainer.write_scalar(f"test/{key}", value, trainer.epoch)
        return {"base_acc": b, "novel_acc": n, "hm": hm}
    accs = [m["accuracy"] for m in results.values()]
    return {"accuracy": accs[0] if len(accs) == 1 else sum(accs) / len(accs)}


def _selection(trainer) -> Dict[str, Any]:
    """How the evaluated weights were chosen: the trainer's selection, a loaded checkpoint, or the current ones."""
    if trainer._selection is not None:
        return trainer._selection
    loaded = trainer._loaded_checkpoint
    if loaded is not None:
        return {"selection": "loaded_checkpoint", "epoch": loaded.get("epoch"), "checkpoint": loaded.get("file")}
    return {"selection": "current_weights" if trainer.get_model_names() else "none", "epoch": None}


def write_results(trainer, results: Mapping[str, Dict[str, float]], summary: Dict[str, float]) -> None:
    """``results.json`` of the run (rank 0 only); the final accuracies also go to the last row of metrics.csv."""
    if not dist.is_main_process():
        return
    cfg = trainer.cfg
    sel = _selection(trainer)
    record = RunRecord(
        trainer=cfg.TRAINER.NAME,
        dataset=getattr(trainer.dm.dataset, "display_name", None) or cfg.DATASET.NAME,
        seed=cfg.SEED,
        protocol=resolve_eval_protocol(cfg),
        subsample_classes=cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"),
        num_shots=cfg.DATASET.NUM_SHOTS,
        backbone=cfg.MODEL.BACKBONE.NAME,
        precision=trainer.prec if trainer.CFG_NODE else "fp32",
        **sel,
        metrics={k: {"accuracy": v["accuracy"], "macro_f1": v.get("macro_f1"), "num_images": v["num_images"]}
                 for k, v in results.items()},
        **summary,
        teacher=trainer.teacher_identity(),
        extra=trainer.results_extra(),  # written right after ``teacher``
        trainable_params=trainer.num_trainable_params(),
        # train.py may set ``trainer.config_file`` (the --config-file path); else a CONFIG_FILE key if any
        config=getattr(trainer, "config_file", None) or cfg.get("CONFIG_FILE", None) or None,
        output_dir=trainer.output_dir,
        collapse=_collapse(trainer, results, sel),
        # recorded choices (train.py: --resume-with-changes, --eval-untrained)
        decisions=dict(trainer.run_decisions) if getattr(trainer, "run_decisions", None) else None,
    )
    trainer.update_epoch_row({f"test_{k}": v for k, v in summary.items()})  # final accuracies in metrics.csv
    path = osp.join(trainer.output_dir, RESULTS_FILE)
    write_run_record(record, path)
    logger.info("Results written to %s", path)


def _collapse(trainer, results: Mapping[str, Dict[str, float]], sel: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`collapse_report` on the final accuracies and the per-epoch training loss; logged if flagged."""
    eval_sets = trainer.dm.dataset.eval_sets
    accs = {k: (v["accuracy"], len(eval_sets[k].classnames) if k in eval_sets else len(trainer.train_classnames))
            for k, v in results.items()}
    rows = trainer.epoch_log
    key = "loss" if any("loss" in r for r in rows) else next(
        (k for r in rows for k in r if k.startswith("loss")), None)
    losses = [r[key] for r in rows if key in r] if key else []
    best = sel.get("epoch") if sel.get("selection") in ("best_val", "best_test_reference") else None
    report = collapse_report(accs, losses, best_epoch=best, max_epoch=trainer.max_epoch if rows else None)
    if report["flagged"]:
        logger.warning("Collapse detector: this run looks degenerate (seed collapse?): %s",
                       "; ".join(report["reasons"]))
    return report
