"""Collecting runs: every ``results.json`` under the given folders, read through :class:`engine.run_record.RunRecord`.

A :class:`Run` is the record seen by the tables: its method label (trainer, optional ``label``, varied
config values), its canonical dataset name, its config label and its base / novel / HM or accuracy.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from engine.run_record import RESULTS_FILE, harmonic_mean, read_run_record

from .spec import canonical_dataset, format_value

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"


@dataclass
class Run:
    """One ``results.json``: a (method, dataset, config, seed) evaluation."""

    path: Path
    trainer: str
    method: str
    dataset: str
    config: str
    seed: Optional[int]
    protocol: str = ""
    subsample: Optional[str] = None
    base: Optional[float] = None
    novel: Optional[float] = None
    hm: Optional[float] = None
    accuracy: Optional[float] = None
    label: Optional[str] = None
    vary: Dict[str, Any] = field(default_factory=dict)

    @property
    def has_base_novel(self) -> bool:
        return self.base is not None and self.novel is not None


def _config_label(config: Any) -> str:
    """Short config label: the trainer yaml's file stem (``vit_b16_c2_ep20_batch8_4+4ctx``)."""
    if not config:
        return ""
    if isinstance(config, str):
        return Path(config).stem if config.endswith((".yaml", ".yml")) else config
    return str(config)


def lookup_dotted(cfg: Dict[str, Any], key: str) -> Any:
    """``cfg["A"]["B"]`` for ``key`` ``"A.B"``; KeyError when a level is missing."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def load_run_config(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The resolved ``config.yaml`` written beside results.json, or None when absent."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    import yaml  # PyYAML ships with yacs

    try:
        with open(path, "r", encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc}); re-run the evaluation to rewrite it") from exc
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping of config nodes, got {type(cfg).__name__}")
    return cfg


def _seed_from_path(path: Path) -> Optional[int]:
    for part in reversed(path.parts[:-1]):
        m = re.fullmatch(r"seed_?(\d+)", part)
        if m:
            return int(m.group(1))
    return None


def parse_results_file(path: Path, vary_keys: Sequence[str] = ()) -> Run:
    """Read one ``results.json`` into a :class:`Run` (clear errors naming the file and key)."""
    path = Path(path)
    where = str(path)
    rec = read_run_record(path)
    base = rec.base_acc if rec.base_acc is not None else rec.set_accuracy("base", where)
    novel = rec.novel_acc if rec.novel_acc is not None else rec.set_accuracy("novel", where)
    hm, accuracy = rec.hm, rec.accuracy
    if accuracy is None and base is None and novel is None and rec.metrics:
        if "test" in rec.metrics:
            accuracy = rec.set_accuracy("test", where)
        elif len(rec.metrics) == 1:
            accuracy = rec.set_accuracy(next(iter(rec.metrics)), where)
    if (base is None) != (novel is None) and accuracy is None:
        raise ValueError(f"{where}: has only one of base/novel accuracy; a base-to-novel result needs both "
                         f"'base_acc' and 'novel_acc'")
    if base is None and novel is None and accuracy is None:
        raise ValueError(f"{where}: no accuracy found: expected 'base_acc' + 'novel_acc' (base-to-novel) or "
                         f"'accuracy' (single evaluation set), or a 'metrics' object with them")
    if base is not None and novel is not None and hm is None:
        hm = harmonic_mean(base, novel)
    seed = rec.seed if rec.seed is not None else _seed_from_path(path)

    run_cfg: Optional[Dict[str, Any]] = None
    subsample = rec.subsample_classes
    if subsample is None or vary_keys:
        run_cfg = load_run_config(path.parent)
    if subsample is None and run_cfg is not None:
        try:
            subsample = lookup_dotted(run_cfg, "DATASET.SUBSAMPLE_CLASSES")
        except KeyError:
            subsample = None
    vary: Dict[str, Any] = {}
    for key in vary_keys:
        if run_cfg is None:
            raise ValueError(f"{where}: grouping by '{key}' needs the resolved config beside it "
                             f"({path.parent / CONFIG_FILE}), which is missing; pass a 'label' in "
                             f"results.json or drop --vary")
        try:
            vary[key] = lookup_dotted(run_cfg, key)
        except KeyError:
            raise ValueError(f"{path.parent / CONFIG_FILE}: has no key '{key}' (needed by --vary / the "
                             f"ablation table); check the key spelling") from None

    method = rec.trainer if rec.label is None else f"{rec.trainer}/{rec.label}"
    for key, value in vary.items():
        method += f" {key.rsplit('.', 1)[-1]}={format_value(value)}"
    return Run(path=path, trainer=rec.trainer, method=method, dataset=canonical_dataset(rec.dataset),
               config=_config_label(rec.config), seed=seed, protocol=str(rec.protocol or ""),
               subsample=str(subsample) if subsample is not None else None, base=base, novel=novel, hm=hm,
               accuracy=accuracy, label=rec.label, vary=vary)


def collect_runs(dirs: Iterable[os.PathLike], vary_keys: Sequence[str] = ()) -> List[Run]:
    """Walk ``dirs`` recursively for ``results.json`` files and parse them (sorted, de-duplicated)."""
    runs: List[Run] = []
    seen: set = set()
    for d in dirs:
        root = Path(d)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such output directory; pass the OUTPUT_DIR of finished runs "
                                    f"(e.g. output/base2new/train_base)")
        files = [root] if root.is_file() else sorted(
            Path(dp) / fn for dp, _, fns in os.walk(root) for fn in fns if fn == RESULTS_FILE)
        for f in files:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            runs.append(parse_results_file(f, vary_keys))
    logger.info("collected %d results.json files", len(runs))
    return runs


def merge_base_novel(runs: List[Run]) -> Tuple[List[Run], List[str]]:
    """Base-to-novel records per (method, dataset, config, seed); pairs reference-style partial runs
    (a base-class training run and a separate ``SUBSAMPLE_CLASSES new`` evaluation)."""
    notes: List[str] = []
    full: Dict[Tuple, Run] = {}
    partial: Dict[Tuple, Dict[str, Run]] = {}
    for r in runs:
        key = (r.method, r.dataset, r.config, r.seed)
        if r.has_base_novel:
            if key in full:
                raise ValueError(f"two base-to-novel results for {r.method} / {r.dataset} / {r.config} / seed "
                                 f"{r.seed}: {full[key].path} and {r.path}; pass only one of the directories "
                                 f"or give the runs different 'label's")
            full[key] = r
        elif r.accuracy is not None and r.subsample in ("base", "new"):
            slot = partial.setdefault(key, {})
            if r.subsample in slot:
                raise ValueError(f"two SUBSAMPLE_CLASSES={r.subsample} results for {r.method} / {r.dataset} / "
                                 f"seed {r.seed}: {slot[r.subsample].path} and {r.path}")
            slot[r.subsample] = r
        else:
            notes.append(f"ignored {r.path}: single-accuracy run (subsample {r.subsample or 'unknown'}) in a "
                         f"base-to-novel table; use --table cross/dg for it")
    merged = list(full.values())
    for key, slot in partial.items():
        if key in full:
            notes.append(f"ignored reference-style {'/'.join(sorted(slot))} evaluation(s) of {key[0]} / {key[1]} "
                         f"/ seed {key[3]}: the run {full[key].path} already has base and novel")
            continue
        b, n = slot.get("base"), slot.get("new")
        proto = b or n
        merged.append(Run(path=proto.path, trainer=proto.trainer, method=proto.method, dataset=proto.dataset,
                          config=proto.config, seed=proto.seed, protocol="base+new runs", subsample=None,
                          base=b.accuracy if b else None, novel=n.accuracy if n else None,
                          hm=harmonic_mean(b.accuracy, n.accuracy) if b and n else None,
                          label=proto.label, vary=proto.vary))
    return merged, notes
