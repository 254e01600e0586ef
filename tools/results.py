"""Aggregate ``results.json`` files of training/evaluation runs into the paper's tables.

Usage (from the repository root)::

    python tools/results.py output/base2new/train_base                      # Table 1 style
    python tools/results.py output/evaluation --table cross --format csv --out out/  # Table 2 style
    python tools/results.py output/ablations/temperature --table ablation-temperature

Every run directory written by ``train.py`` holds a ``results.json`` (schema in docs/ARCHITECTURE.md).
Runs are grouped by (method label, dataset, config) and their seeds are aggregated:

- per dataset and method: mean and standard deviation over seeds of base and novel accuracy (or of
  the single accuracy for cross-dataset / domain-generalisation tables); the HM is computed from the
  MEANS, as the paper does (``HM = 2BN / (B + N)``), and the mean of the per-seed HMs is reported
  beside it for reference;
- an "Average" row per method: mean of the per-dataset base means, mean of the novel means, and the
  HM of those two means (the paper's Table 1 convention);
- the paper's number beside each of ours with the difference (ours - paper), from
  ``tools/paper_numbers.json``.

Standard deviations are population standard deviations over seeds (``ddof=0``), as printed by the
CoOp/Dassl ``parse_test_res.py`` tool.

The method label is the run's ``trainer`` plus its optional ``label`` field (``"PromptKD/my-label"``)
plus, for ablation tables or ``--vary``, the value of the varied config key read from the run's resolved
``config.yaml`` (``"PromptKD TEMPERATURE=0.5"``).

Reference-style base-to-novel baselines (train on base classes, then a separate ``--eval-only`` run
with ``DATASET.SUBSAMPLE_CLASSES new``) are supported too: single-accuracy runs whose subsample is
``base`` / ``new`` are paired by (method, dataset, config, seed) into one base/novel record.

Outputs: a Markdown (or CSV) table on stdout and, in ``--out`` (default: the first OUTPUT_DIR),
``results_<table>.md`` / ``.csv``, ``results_<table>.json`` (the aggregated table) and
``hm_<table>.png`` (bar chart of HM, or accuracy, per dataset and method). Files are written atomically.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.yaml"
DEFAULT_PAPER_FILE = Path(__file__).with_name("paper_numbers.json")

# DATASET.NAME registry names in the paper's column order, then the ImageNet variants.
DATASET_ORDER = [
    "ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "FGVCAircraft",
    "SUN397", "DescribableTextures", "EuroSAT", "UCF101",
    "ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR",
]
DG_DATASETS = ("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR")
# Other spellings seen in configs, scripts and the paper -> registry name.
DATASET_ALIASES = {
    "imagenet": "ImageNet", "caltech101": "Caltech101", "caltech-101": "Caltech101",
    "oxford_pets": "OxfordPets", "oxfordpets": "OxfordPets", "stanford_cars": "StanfordCars",
    "stanfordcars": "StanfordCars", "oxford_flowers": "OxfordFlowers", "oxfordflowers": "OxfordFlowers",
    "flowers102": "OxfordFlowers", "food101": "Food101", "food-101": "Food101",
    "fgvc_aircraft": "FGVCAircraft", "fgvcaircraft": "FGVCAircraft", "sun397": "SUN397",
    "dtd": "DescribableTextures", "describabletextures": "DescribableTextures", "eurosat": "EuroSAT",
    "ucf101": "UCF101", "imagenetv2": "ImageNetV2", "imagenet-v2": "ImageNetV2",
    "imagenet_sketch": "ImageNetSketch", "imagenetsketch": "ImageNetSketch", "imagenet-sketch": "ImageNetSketch",
    "imagenet_a": "ImageNetA", "imageneta": "ImageNetA", "imagenet-a": "ImageNetA",
    "imagenet_r": "ImageNetR", "imagenetr": "ImageNetR", "imagenet-r": "ImageNetR",
}

PAPER_TEACHER = "PromptSRC teacher (ViT-L/14)"
# Trainer names of this code base -> method names used in the paper's tables.
TRAINER_TO_PAPER = {
    "ZeroshotCLIP": "CLIP",
    "ZeroshotCLIP2": "CLIP",
    "PromptKDStudent": "PromptKD",
    "PromptSRCTeacher": PAPER_TEACHER,
}


@dataclass(frozen=True)
class TableSpec:
    """How one ``--table`` kind is aggregated and which paper tables it is compared with."""

    metric: str                      # "bnh" (base / novel / HM) or "acc" (single accuracy)
    paper_tables: Tuple[str, ...]    # keys of paper_numbers.json["tables"], searched in order
    vary: Tuple[str, ...] = ()       # config keys whose values become part of the method label
    caption: str = ""


TABLES: Dict[str, TableSpec] = {
    "base2novel": TableSpec("bnh", ("table1_base2novel", "table10_teacher_base2novel",
                                    "promptsrc_readme_base2novel_average", "table3_flowers_unlabeled"),
                            caption="Base-to-novel generalisation (paper Table 1; teachers: Table 10)"),
    "cross": TableSpec("acc", ("table2_cross_dataset", "table11_teacher_cross"),
                       caption="Cross-dataset transfer from ImageNet (paper Table 2; teacher: Table 11)"),
    "dg": TableSpec("acc", ("table9_domain_generalization",),
                    caption="Domain generalisation from ImageNet (paper Table 9)"),
    "ablation-temperature": TableSpec("bnh", ("fig6_temperature",), ("TRAINER.PROMPTKD.TEMPERATURE",),
                                      caption="KD temperature (paper Fig. 6)"),
    "ablation-projector-depth": TableSpec("bnh", ("table12_projector_depth",), ("TRAINER.PROMPTKD.PROJECT_LAYER",),
                                          caption="Projector depth (paper Table 12)"),
    "ablation-teacher-type": TableSpec("bnh", ("table6_teacher_type", "fig5_teacher_capacity"),
                                       ("TRAINER.PROMPTKD.TEACHER_TYPE", "TRAINER.PROMPTKD.TEACHER_NAME"),
                                       caption="Teacher type and capacity (paper Table 6 and Fig. 5)"),
    "ablation-epochs": TableSpec("bnh", ("table14_epochs",), ("OPTIM.MAX_EPOCH",),
                                 caption="Training epochs (paper Table 14)"),
    "ablation-images-per-class": TableSpec("bnh", ("fig4_images_per_class",), ("DATASET.MAX_IMAGES_PER_CLASS",),
                                           caption="Unlabeled images per class (paper Fig. 4)"),
    "ablation-student-size": TableSpec("bnh", ("table13_student_size",), ("MODEL.BACKBONE.NAME",),
                                       caption="Student size (paper Table 13)"),
}
TABLE_CHOICES = ["auto"] + list(TABLES)


# ----------------------------------------------------------------------------------------------------
# Collecting runs
# ----------------------------------------------------------------------------------------------------
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


def harmonic_mean(base: float, novel: float) -> float:
    """HM = 2BN / (B + N) (0 when both are 0), the paper's base-to-novel summary."""
    return 0.0 if base + novel == 0 else 2.0 * base * novel / (base + novel)


def canonical_dataset(name: str) -> str:
    """Registry name for a dataset spelling (``dtd`` -> ``DescribableTextures``); unknown names unchanged."""
    if name in DATASET_ORDER:
        return name
    return DATASET_ALIASES.get(name.lower(), name)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"{where}: expected a finite number (percent), got {value!r}")
    return float(value)


def _config_label(config: Any) -> str:
    """Short config label: the trainer yaml's file stem (``vit_b16_c2_ep20_batch8_4+4ctx``)."""
    if not config:
        return ""
    if isinstance(config, str):
        return Path(config).stem if config.endswith((".yaml", ".yml")) else config
    return str(config)


def _lookup_dotted(cfg: Dict[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _load_run_config(run_dir: Path) -> Optional[Dict[str, Any]]:
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


def _metrics_accuracy(metrics: Dict[str, Any], name: str, where: str) -> Optional[float]:
    entry = metrics.get(name)
    if entry is None:
        return None
    if isinstance(entry, dict):
        if "accuracy" not in entry:
            raise ValueError(f"{where}: metrics.{name} has no 'accuracy' key")
        return _number(entry["accuracy"], f"{where}: metrics.{name}.accuracy")
    return _number(entry, f"{where}: metrics.{name}")


def parse_results_file(path: Path, vary_keys: Sequence[str] = ()) -> Run:
    """Read one ``results.json`` into a :class:`Run` (clear errors naming the file and key)."""
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); the run may have been interrupted while "
                         f"writing it - re-run its evaluation (train.py --eval-only)") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("trainer", "dataset"):
        if not isinstance(data.get(key), str) or not data.get(key):
            raise ValueError(f"{path}: missing or empty string key '{key}' (schema in docs/ARCHITECTURE.md)")
    where = str(path)
    metrics = data.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ValueError(f"{where}: 'metrics' must be an object, got {type(metrics).__name__}")

    base = data.get("base_acc")
    novel = data.get("novel_acc")
    base = _number(base, f"{where}: base_acc") if base is not None else _metrics_accuracy(metrics, "base", where)
    novel = _number(novel, f"{where}: novel_acc") if novel is not None else _metrics_accuracy(metrics, "novel", where)
    hm = _number(data["hm"], f"{where}: hm") if data.get("hm") is not None else None
    accuracy: Optional[float] = None
    if data.get("accuracy") is not None:
        accuracy = _number(data["accuracy"], f"{where}: accuracy")
    elif base is None and novel is None and metrics:
        if "test" in metrics:
            accuracy = _metrics_accuracy(metrics, "test", where)
        elif len(metrics) == 1:
            accuracy = _metrics_accuracy(metrics, next(iter(metrics)), where)
    if (base is None) != (novel is None) and accuracy is None:
        raise ValueError(f"{where}: has only one of base/novel accuracy; a base-to-novel result needs both "
                         f"'base_acc' and 'novel_acc'")
    if base is None and novel is None and accuracy is None:
        raise ValueError(f"{where}: no accuracy found: expected 'base_acc' + 'novel_acc' (base-to-novel) or "
                         f"'accuracy' (single evaluation set), or a 'metrics' object with them")
    if base is not None and novel is not None and hm is None:
        hm = harmonic_mean(base, novel)

    seed = data.get("seed")
    if seed is None:
        seed = _seed_from_path(path)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{where}: 'seed' must be an integer, got {seed!r}")
    label = data.get("label") or None
    if label is not None and not isinstance(label, str):
        raise ValueError(f"{where}: 'label' must be a string, got {label!r}")

    run_cfg: Optional[Dict[str, Any]] = None
    subsample = data.get("subsample_classes", data.get("subsample"))
    if subsample is None or vary_keys:
        run_cfg = _load_run_config(path.parent)
    if subsample is None and run_cfg is not None:
        try:
            subsample = _lookup_dotted(run_cfg, "DATASET.SUBSAMPLE_CLASSES")
        except KeyError:
            subsample = None
    vary: Dict[str, Any] = {}
    for key in vary_keys:
        if run_cfg is None:
            raise ValueError(f"{where}: grouping by '{key}' needs the resolved config beside it "
                             f"({path.parent / CONFIG_FILE}), which is missing; pass a 'label' in "
                             f"results.json or drop --vary")
        try:
            vary[key] = _lookup_dotted(run_cfg, key)
        except KeyError:
            raise ValueError(f"{path.parent / CONFIG_FILE}: has no key '{key}' (needed by --vary / the "
                             f"ablation table); check the key spelling") from None

    trainer = data["trainer"]
    method = trainer if label is None else f"{trainer}/{label}"
    for key, value in vary.items():
        method += f" {key.rsplit('.', 1)[-1]}={_format_value(value)}"
    return Run(path=path, trainer=trainer, method=method, dataset=canonical_dataset(data["dataset"]),
               config=_config_label(data.get("config")), seed=seed, protocol=str(data.get("protocol") or ""),
               subsample=str(subsample) if subsample is not None else None, base=base, novel=novel, hm=hm,
               accuracy=accuracy, label=label, vary=vary)


def _format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


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


# ----------------------------------------------------------------------------------------------------
# Aggregation
# ----------------------------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> Dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return {"mean": mean, "std": std, "values": list(values)}


def load_paper_numbers(path: Optional[os.PathLike] = None) -> Dict[str, Any]:
    """Load ``tools/paper_numbers.json`` (or ``path``), checking its top-level layout."""
    path = Path(path) if path is not None else DEFAULT_PAPER_FILE
    try:
        with open(path, "r", encoding="utf-8") as f:
            paper = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: paper numbers file not found; pass --paper FILE or --no-paper") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(paper, dict) or not isinstance(paper.get("tables"), dict):
        raise ValueError(f"{path}: expected an object with a 'tables' mapping "
                         f"(tables.<table>.data.<dataset>.<method>)")
    return paper


def _values_equal(ours: Any, theirs: Any) -> bool:
    try:
        return math.isclose(float(ours), float(theirs), rel_tol=1e-9, abs_tol=1e-9)
    except (TypeError, ValueError):
        return str(ours).strip().lower() == str(theirs).strip().lower()


def _paper_method_candidates(run_like: Dict[str, Any]) -> List[str]:
    cands: List[str] = []
    if run_like.get("label"):
        cands.append(run_like["label"])
    trainer = run_like["trainer"]
    if trainer in ("PromptSRC", "PromptSRCTeacher") and "vit_l14" in (run_like.get("config") or ""):
        cands.append(PAPER_TEACHER)
    cands.append(TRAINER_TO_PAPER.get(trainer, trainer))
    cands.append(trainer)
    return cands


def paper_entry(paper: Optional[Dict[str, Any]], spec: TableSpec, dataset: str,
                run_like: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The paper's numbers for one (dataset, method) row, or None when the paper has no such row.

    Ablation rows are matched through the table's ``vary`` map (config key and value -> paper row).
    """
    if paper is None:
        return None
    tables = paper["tables"]
    for table_key in spec.paper_tables:
        table = tables.get(table_key)
        if table is None:
            continue
        rows = table.get("data", {}).get(dataset)
        if not rows:
            continue
        vary = table.get("vary")
        if vary:
            # ablation rows: match the run's values of the varied config key(s)
            keys = list(vary.get("keys") or [vary.get("key")])
            ours = run_like.get("vary") or {}
            if not all(k in ours for k in keys):
                continue
            for method, value in vary.get("values", {}).items():
                values = list(value) if len(keys) > 1 else [value]
                if method in rows and all(_values_equal(ours[k], v) for k, v in zip(keys, values)):
                    return {"table": table_key, "method": method, **rows[method]}
            continue
        for cand in _paper_method_candidates(run_like):
            if cand in rows:
                return {"table": table_key, "method": cand, **rows[cand]}
    return None


def _paper_table_datasets(paper: Optional[Dict[str, Any]], table_key: str, method: str) -> List[str]:
    if paper is None:
        return []
    data = paper["tables"].get(table_key, {}).get("data", {})
    return [d for d, rows in data.items() if d != "Average" and method in rows]


def _dataset_sort_key(name: str) -> Tuple[int, str]:
    return (DATASET_ORDER.index(name), "") if name in DATASET_ORDER else (len(DATASET_ORDER), name)


def _merge_base_novel(runs: List[Run]) -> Tuple[List[Run], List[str]]:
    """Base-to-novel records per (method, dataset, config, seed); pairs reference-style partial runs."""
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


def aggregate(runs: Sequence[Run], table: str = "auto", paper: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Aggregate runs over seeds into rows per (dataset, method, config) plus an Average row per method.

    ``table``: one of ``TABLE_CHOICES``; "auto" picks base2novel when any run has base/novel results,
    dg when every run is on an ImageNet variant, else cross. ``paper``: loaded paper numbers (``load_paper_numbers()``) or None to leave them out.
    Returns a JSON-serialisable dict (see ``render_markdown`` / ``render_csv``).
    """
    if table not in TABLE_CHOICES:
        raise ValueError(f"unknown table '{table}'; choose one of {', '.join(TABLE_CHOICES)}")
    if not runs:
        raise ValueError("no runs to aggregate: no results.json was found (runs write it when they finish)")
    if table == "auto":
        if any(r.has_base_novel or r.subsample in ("base", "new") for r in runs):
            table = "base2novel"
        elif all(r.dataset in DG_DATASETS for r in runs):
            table = "dg"
        else:
            table = "cross"
    spec = TABLES[table]
    notes: List[str] = []

    if spec.metric == "bnh":
        records, notes = _merge_base_novel(list(runs))
    else:
        records = []
        for r in runs:
            if r.accuracy is None:
                notes.append(f"ignored {r.path}: base-to-novel run in a single-accuracy table; use --table base2novel")
            else:
                records.append(r)
    for note in notes:
        logger.warning(note)

    groups: Dict[Tuple[str, str, str], List[Run]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.method, r.config), []).append(r)
    for (dataset, method, config), members in groups.items():
        seeds = [m.seed for m in members]
        dupes = sorted({s for s in seeds if seeds.count(s) > 1 and s is not None})
        if dupes:
            paths = [str(m.path) for m in members if m.seed in dupes]
            raise ValueError(f"{method} / {dataset} / {config}: seed(s) {dupes} appear more than once "
                             f"({', '.join(paths)}); pass only one of the directories or label the runs")

    rows: List[Dict[str, Any]] = []
    for (dataset, method, config) in sorted(groups, key=lambda k: (_dataset_sort_key(k[0]), k[1], k[2])):
        members = sorted(groups[(dataset, method, config)], key=lambda m: (m.seed is None, m.seed or 0))
        first = members[0]
        row: Dict[str, Any] = {
            "dataset": dataset, "method": method, "trainer": first.trainer, "label": first.label,
            "config": config, "vary": first.vary, "seeds": [m.seed for m in members], "n": len(members),
            "runs": [str(m.path) for m in members],
        }
        if spec.metric == "bnh":
            bases = [m.base for m in members if m.base is not None]
            novels = [m.novel for m in members if m.novel is not None]
            row["base"] = _mean_std(bases) if bases else None
            row["novel"] = _mean_std(novels) if novels else None
            hms = [m.hm for m in members if m.hm is not None]
            row["hm"] = (harmonic_mean(row["base"]["mean"], row["novel"]["mean"])
                         if row["base"] and row["novel"] else None)
            row["hm_per_seed"] = _mean_std(hms) if hms else None
        else:
            row["accuracy"] = _mean_std([m.accuracy for m in members])
        row["paper"] = paper_entry(paper, spec, dataset, row)
        row["delta"] = _delta(row, row["paper"], spec.metric)
        rows.append(row)

    averages = _average_rows(rows, spec, paper)
    return {"table": table, "caption": spec.caption, "metric": spec.metric, "rows": rows,
            "average": averages, "notes": notes, "paper_included": paper is not None}


def _row_values(row: Dict[str, Any], metric: str) -> Dict[str, Optional[float]]:
    if metric == "bnh":
        return {"base": row["base"]["mean"] if row.get("base") else None,
                "novel": row["novel"]["mean"] if row.get("novel") else None,
                "hm": row.get("hm")}
    return {"accuracy": row["accuracy"]["mean"]}


def _delta(row: Dict[str, Any], paper: Optional[Dict[str, Any]], metric: str) -> Optional[Dict[str, float]]:
    if not paper:
        return None
    ours = _row_values(row, metric)
    delta = {k: v - paper[k] for k, v in ours.items() if v is not None and isinstance(paper.get(k), (int, float))}
    return delta or None


def _average_rows(rows: List[Dict[str, Any]], spec: TableSpec, paper: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (method, config): mean over datasets of the per-dataset means; HM of the mean base and novel."""
    by_method: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault((row["method"], row["config"]), []).append(row)
    out: List[Dict[str, Any]] = []
    for (method, config), members in by_method.items():
        if len(members) < 2:
            continue
        first = members[0]
        avg: Dict[str, Any] = {"dataset": "Average", "method": method, "trainer": first["trainer"],
                               "label": first["label"], "config": config, "vary": first["vary"],
                               "datasets": [m["dataset"] for m in members], "n": len(members)}
        if spec.metric == "bnh":
            usable = [m for m in members if m["base"] and m["novel"]]
            if not usable:
                continue
            avg["base"] = sum(m["base"]["mean"] for m in usable) / len(usable)
            avg["novel"] = sum(m["novel"]["mean"] for m in usable) / len(usable)
            avg["hm"] = harmonic_mean(avg["base"], avg["novel"])
            avg["datasets"] = [m["dataset"] for m in usable]
            avg["n"] = len(usable)
            ours = {"base": avg["base"], "novel": avg["novel"], "hm": avg["hm"]}
        else:
            avg["accuracy"] = sum(m["accuracy"]["mean"] for m in members) / len(members)
            ours = {"accuracy": avg["accuracy"]}
        entry = paper_entry(paper, spec, "Average", avg)
        complete = False
        if entry is not None:
            expected = _paper_table_datasets(paper, entry["table"], entry["method"])
            complete = bool(expected) and set(expected) == set(avg["datasets"])
            if not expected:  # the paper table only has the average (e.g. the PromptSRC README)
                complete = len(avg["datasets"]) == 11
        avg["paper"] = entry
        avg["complete"] = complete
        avg["delta"] = ({k: v - entry[k] for k, v in ours.items() if isinstance(entry.get(k), (int, float))}
                        if entry and complete else None)
        out.append(avg)
    return out


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------
def _f(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}"


def _pm(stat: Optional[Dict[str, Any]]) -> str:
    return "-" if not stat else f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def _signed(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:+.2f}"


def _seeds(row: Dict[str, Any]) -> str:
    return ",".join("?" if s is None else str(s) for s in row["seeds"])


def render_markdown(agg: Dict[str, Any]) -> str:
    """Markdown table (+ Average rows, paper column and deltas when the paper numbers were included)."""
    bnh = agg["metric"] == "bnh"
    show_paper = agg.get("paper_included", False)
    lines = [f"### {agg['caption'] or agg['table']}", ""]
    if bnh:
        header = ["Dataset", "Method", "Config", "Seeds", "Base", "Novel", "HM", "HM (per-seed mean)"]
        if show_paper:
            header += ["Paper B / N / HM", "Δ B / N / HM"]
    else:
        header = ["Dataset", "Method", "Config", "Seeds", "Accuracy"]
        if show_paper:
            header += ["Paper", "Δ"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")

    def paper_cells(row: Dict[str, Any]) -> List[str]:
        p, d = row.get("paper"), row.get("delta")
        if bnh:
            pc = "-" if not p else " / ".join(_f(p.get(k)) for k in ("base", "novel", "hm"))
            dc = "-" if not d else " / ".join(_signed(d.get(k)) for k in ("base", "novel", "hm"))
        else:
            pc = "-" if not p else _f(p.get("accuracy"))
            dc = "-" if not d else _signed(d.get("accuracy"))
        return [pc, dc]

    for row in agg["rows"]:
        cells = [row["dataset"], row["method"], row["config"] or "-", _seeds(row)]
        if bnh:
            cells += [_pm(row["base"]), _pm(row["novel"]), _f(row["hm"]), _pm(row["hm_per_seed"])]
        else:
            cells += [_pm(row["accuracy"])]
        if show_paper:
            cells += paper_cells(row)
        lines.append("| " + " | ".join(cells) + " |")
    for avg in agg["average"]:
        name = f"**Average** ({avg['n']} datasets)"
        cells = [name, avg["method"], avg["config"] or "-", ""]
        if bnh:
            cells += [_f(avg["base"]), _f(avg["novel"]), _f(avg["hm"]), ""]
        else:
            cells += [_f(avg["accuracy"])]
        if show_paper:
            pc = paper_cells(avg)
            if avg.get("paper") and not avg.get("complete"):
                pc[1] = "n/a (dataset set differs from the paper's)"
            cells += pc
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if bnh:
        lines.append("Mean ± std over seeds (population std). HM is the harmonic mean of the mean base and "
                     "mean novel accuracy (as in the paper); the per-seed HM mean is given for reference.")
    else:
        lines.append("Mean ± std over seeds (population std).")
    if show_paper:
        lines.append("Δ = ours - paper.")
    for note in agg.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def render_csv(agg: Dict[str, Any]) -> str:
    """CSV with one line per (dataset, method, config) and per Average row; numbers unrounded."""
    import csv
    import io

    bnh = agg["metric"] == "bnh"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if bnh:
        cols = ["dataset", "method", "config", "n_seeds", "seeds", "base_mean", "base_std", "novel_mean",
                "novel_std", "hm", "hm_seed_mean", "hm_seed_std", "paper_base", "paper_novel", "paper_hm",
                "delta_base", "delta_novel", "delta_hm"]
    else:
        cols = ["dataset", "method", "config", "n_seeds", "seeds", "acc_mean", "acc_std", "paper_acc", "delta_acc"]
    w.writerow(cols)

    def num(x: Any) -> str:
        return "" if x is None else repr(float(x))

    def stat(s: Optional[Dict[str, Any]], k: str) -> str:
        return "" if not s else num(s[k])

    for row in agg["rows"]:
        p, d = row.get("paper") or {}, row.get("delta") or {}
        line = [row["dataset"], row["method"], row["config"], row["n"], _seeds(row)]
        if bnh:
            line += [stat(row["base"], "mean"), stat(row["base"], "std"), stat(row["novel"], "mean"),
                     stat(row["novel"], "std"), num(row["hm"]), stat(row["hm_per_seed"], "mean"),
                     stat(row["hm_per_seed"], "std"), num(p.get("base")), num(p.get("novel")), num(p.get("hm")),
                     num(d.get("base")), num(d.get("novel")), num(d.get("hm"))]
        else:
            line += [stat(row["accuracy"], "mean"), stat(row["accuracy"], "std"), num(p.get("accuracy")),
                     num(d.get("accuracy"))]
        w.writerow(line)
    for avg in agg["average"]:
        p, d = avg.get("paper") or {}, avg.get("delta") or {}
        line = ["Average", avg["method"], avg["config"], avg["n"], ""]
        if bnh:
            line += [num(avg["base"]), "", num(avg["novel"]), "", num(avg["hm"]), "", "",
                     num(p.get("base")), num(p.get("novel")), num(p.get("hm")),
                     num(d.get("base")), num(d.get("novel")), num(d.get("hm"))]
        else:
            line += [num(avg["accuracy"]), "", num(p.get("accuracy")), num(d.get("accuracy"))]
        w.writerow(line)
    return buf.getvalue()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file + ``os.replace``."""
    path = Path(path)
    _atomic_write_bytes(path, text.encode("utf-8"))
    return path


def plot_hm_bars(agg: Dict[str, Any], path: os.PathLike) -> Path:
    """Grouped bar chart (PNG) of HM (base-to-novel) or accuracy per dataset and method.

    Paper values, when included, are drawn as black markers on top of the matching bars.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bnh = agg["metric"] == "bnh"
    rows = list(agg["rows"]) + list(agg["average"])
    if not rows:
        raise ValueError("nothing to plot: the aggregated table has no rows")
    datasets: List[str] = []
    for r in rows:
        if r["dataset"] not in datasets:
            datasets.append(r["dataset"])
    series: List[Tuple[str, str]] = []
    for r in rows:
        key = (r["method"], r["config"])
        if key not in series:
            series.append(key)
    width = 0.8 / len(series)
    paper_labelled = False
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(datasets) * max(1, len(series)) ** 0.5 + 2), 4.5))
    for i, (method, config) in enumerate(series):
        xs, ys, errs, px, py = [], [], [], [], []
        for j, ds in enumerate(datasets):
            match = [r for r in rows if r["dataset"] == ds and r["method"] == method and r["config"] == config]
            if not match:
                continue
            r = match[0]
            value = r["hm"] if bnh else (r["accuracy"]["mean"] if isinstance(r["accuracy"], dict) else r["accuracy"])
            if value is None:
                continue
            x = j - 0.4 + width * (i + 0.5)
            xs.append(x)
            ys.append(value)
            if ds != "Average" and not bnh:
                errs.append(r["accuracy"]["std"])
            elif ds != "Average" and r.get("hm_per_seed"):
                errs.append(r["hm_per_seed"]["std"])
            else:
                errs.append(0.0)
            p = r.get("paper") or {}
            pv = p.get("hm") if bnh else p.get("accuracy")
            if isinstance(pv, (int, float)) and (ds != "Average" or r.get("complete")):
                px.append(x)
                py.append(pv)
        label = method if len({c for _, c in series}) == 1 else f"{method} [{config}]"
        ax.bar(xs, ys, width=width * 0.95, yerr=errs, capsize=2, label=label)
        if px:
            ax.scatter(px, py, marker="D", s=18, color="black", zorder=3,
                       label="paper" if not paper_labelled else None)
            paper_labelled = True
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, rotation=30, ha="right")
    ax.set_ylabel("HM (%)" if bnh else "accuracy (%)")
    ax.set_title(agg["caption"] or agg["table"])
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    path = Path(path)
    _atomic_write_bytes(path, buf.getvalue())
    return path


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Aggregate results.json files over seeds into the paper's tables.")
    p.add_argument("dirs", nargs="+", metavar="OUTPUT_DIR", help="output directories to search recursively")
    p.add_argument("--table", default="auto", choices=TABLE_CHOICES, help="table layout and paper numbers")
    p.add_argument("--format", default="md", choices=["md", "csv"], help="stdout / file format")
    p.add_argument("--out", default=None, help="folder for the table, JSON and PNG (default: first OUTPUT_DIR)")
    p.add_argument("--no-paper", action="store_true", help="leave out the paper's numbers and the deltas")
    p.add_argument("--paper", default=None, help=f"paper numbers file (default: {DEFAULT_PAPER_FILE.name})")
    p.add_argument("--vary", action="append", default=[], metavar="CFG.KEY",
                   help="add this resolved-config value to the method label (repeatable)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG bar chart")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)
    try:
        kind = args.table
        vary = list(TABLES[kind].vary) if kind in TABLES else []
        vary += [k for k in args.vary if k not in vary]
        runs = collect_runs(args.dirs, vary)
        paper = None if args.no_paper else load_paper_numbers(args.paper)
        agg = aggregate(runs, kind, paper)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render_markdown(agg) if args.format == "md" else render_csv(agg)
    print(text, end="")
    out = Path(args.out) if args.out else Path(args.dirs[0])
    if out.is_file():
        out = out.parent
    name = agg["table"]
    written = [write_text_atomic(out / f"results_{name}.{args.format}", text),
               write_text_atomic(out / f"results_{name}.json", json.dumps(agg, indent=1) + "\n")]
    if not args.no_plot:
        written.append(plot_hm_bars(agg, out / f"hm_{name}.png"))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
