"""The ``results.json`` record of a run: one typed schema for its writer and every reader.

``trainers/common/base.py`` writes it when a run is evaluated (schema in docs/ARCHITECTURE.md);
``tools/results.py`` reads it to build the tables; ``proving_ground/pipeline.py`` adds a row ``label``.
They all go through :class:`RunRecord`, so a key is spelled, typed and checked in one place.

The base-to-novel summary is the harmonic mean of base and novel accuracy, HM = 2BN / (B + N) (the
paper's Table 1 metric, :func:`harmonic_mean`); every module that needs it imports it from here.
This module uses only the standard library and :mod:`engine.fileio`, so tools can import it without
importing torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from engine.fileio import atomic_write_json

__all__ = ["RESULTS_FILE", "RunRecord", "harmonic_mean", "read_run_record", "write_run_record"]

#: file name of the record in a run's OUTPUT_DIR
RESULTS_FILE = "results.json"

# keys left out of the file when they are None (a writer sets them only in some runs); every other key is
# always written, as null when unknown
_OMIT_WHEN_NONE = ("checkpoint", "base_acc", "novel_acc", "hm", "accuracy", "decisions", "label")


def harmonic_mean(base: float, novel: float) -> float:
    """HM = 2BN / (B + N) (0 when both are 0), the paper's base-to-novel summary."""
    return 0.0 if base + novel == 0 else 2.0 * base * novel / (base + novel)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"{where}: expected a finite number (percent), got {value!r}")
    return float(value)


@dataclass
class RunRecord:
    """One run's ``results.json``. Field order is the file's key order.

    Accuracies are percentages. A base-to-novel run sets ``base_acc``, ``novel_acc`` and ``hm``; a run
    with one evaluation set sets ``accuracy``. ``metrics`` holds every evaluation set
    (``{"base": {"accuracy", "macro_f1", "num_images"}, ...}``). ``label`` (optional) separates two
    configurations of one trainer in the tables. Trainer-specific entries (PromptKD's
    ``distillation``) and any key this class does not know are kept in ``extra``, written after ``teacher``.
    """

    trainer: str
    dataset: str
    seed: Optional[int] = None
    protocol: Optional[str] = None
    subsample_classes: Optional[str] = None
    num_shots: Optional[int] = None
    backbone: Optional[str] = None
    precision: Optional[str] = None
    selection: Optional[str] = None
    epoch: Optional[int] = None
    checkpoint: Optional[str] = None
    metrics: Dict[str, Any] = field(default_factory=dict)
    base_acc: Optional[float] = None
    novel_acc: Optional[float] = None
    hm: Optional[float] = None
    accuracy: Optional[float] = None
    teacher: Optional[Dict[str, Any]] = None
    trainable_params: Optional[int] = None
    config: Optional[str] = None
    output_dir: Optional[str] = None
    collapse: Optional[Dict[str, Any]] = None
    decisions: Optional[Dict[str, Any]] = None
    label: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object written to ``results.json`` (``extra`` entries right after ``teacher``)."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and f.name in _OMIT_WHEN_NONE):
                continue
            out[f.name] = value
            if f.name == "teacher":
                out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "RunRecord":
        """Check and read a parsed ``results.json`` object; errors name ``where`` and the key.

        ``subsample`` is accepted as an older spelling of ``subsample_classes``.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        for key in ("trainer", "dataset"):
            if not isinstance(data.get(key), str) or not data.get(key):
                raise ValueError(f"{where}: missing or empty string key '{key}' (schema in docs/ARCHITECTURE.md)")
        metrics = data.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise ValueError(f"{where}: 'metrics' must be an object, got {type(metrics).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("base_acc", "novel_acc", "hm", "accuracy"):
            if data.get(key) is not None:
                values[key] = _number(data[key], f"{where}: {key}")
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{where}: 'seed' must be an integer, got {seed!r}")
        label = data.get("label") or None
        if label is not None and not isinstance(label, str):
            raise ValueError(f"{where}: 'label' must be a string, got {label!r}")
        values.update(metrics=metrics, seed=seed, label=label)
        if values.get("subsample_classes") is None and data.get("subsample") is not None:
            values["subsample_classes"] = data["subsample"]
        extra = {k: v for k, v in data.items() if k not in known and k != "subsample"}
        return cls(**values, extra=extra)

    def set_accuracy(self, name: str, where: str) -> Optional[float]:
        """Accuracy of evaluation set ``name`` from ``metrics`` (None when the set is absent)."""
        entry = self.metrics.get(name)
        if entry is None:
            return None
        if isinstance(entry, dict):
            if "accuracy" not in entry:
                raise ValueError(f"{where}: metrics.{name} has no 'accuracy' key")
            return _number(entry["accuracy"], f"{where}: metrics.{name}.accuracy")
        return _number(entry, f"{where}: metrics.{name}")


def read_run_record(path: os.PathLike) -> RunRecord:
    """Read and check one ``results.json``; an unreadable file raises an error naming it and the fix."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); the run may have been interrupted while "
                         f"writing it - re-run its evaluation (train.py --eval-only)") from exc
    return RunRecord.from_dict(data, path)


def write_run_record(record: RunRecord, path: os.PathLike) -> None:
    """Write ``record`` to ``path`` atomically (JSON, indent 4)."""
    atomic_write_json(os.fspath(path), record.to_dict(), indent=4)
