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
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

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
                                    "promptsrc_readme_base2novel_average", "table3_flowers_unlabeled",
                                    "kgcoop_base2novel_average"),
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
TABLE_CHOICES = ["auto"] + list(TABLES)  # the paper-layout kinds (LAYOUTS) are added below


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
    if table in LAYOUTS:
        raise ValueError(f"'{table}' is a paper layout: aggregate it with aggregate_layout()")
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
    # paper columns and the paper-table caption only where some row has a paper number (not on custom data)
    with_paper = paper is not None and (any(r.get("paper") for r in rows)
                                        or any(a.get("paper") and a.get("complete") for a in averages))
    return {"table": table, "caption": data_caption(spec.caption, rows, with_paper), "metric": spec.metric,
            "rows": rows, "average": averages, "notes": notes, "paper_included": with_paper}


def data_caption(caption: str, rows: Sequence[Dict[str, Any]], with_paper: bool) -> str:
    """The table's caption; without paper numbers, its paper reference is replaced by the datasets shown."""
    if with_paper or not caption:
        return caption
    names: List[str] = []
    for r in rows:
        if r["dataset"] not in names:
            names.append(r["dataset"])
    base = re.sub(r"\s*\(paper [^)]*\)", "", caption).strip()
    shown = ", ".join(names) if len(names) <= 4 else f"{len(names)} datasets"
    return f"{base}: {shown}" if shown else base


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


def _save_png(fig: Any, path: os.PathLike) -> Path:
    """Render a matplotlib figure to PNG (120 dpi), close it and write the file atomically."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    path = Path(path)
    _atomic_write_bytes(path, buf.getvalue())
    return path


def write_text_atomic(path: os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file + ``os.replace``."""
    path = Path(path)
    _atomic_write_bytes(path, text.encode("utf-8"))
    return path


def plot_hm_bars(agg: Dict[str, Any], path: os.PathLike) -> Path:
    """Grouped bar chart (PNG) of HM (base-to-novel) or accuracy per dataset and method.

    Paper values, when included, are drawn as black markers on top of the matching bars.
    """
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
    drawn: List[float] = []
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(datasets) * max(1, len(series)) ** 0.5 + 2) + 2.5, 4.5))
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
        bars = ax.bar(xs, ys, width=width * 0.95, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        spread = [(x, y, e) for x, y, e in zip(xs, ys, errs) if e and e > 0]  # no zero-size error bars
        if spread:
            ax.errorbar([x for x, _, _ in spread], [y for _, y, _ in spread], yerr=[e for _, _, e in spread],
                        fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        drawn += [y + e for y, e in zip(ys, errs)] + [y - e for y, e in zip(ys, errs)] + py
        if px:
            ax.scatter(px, py, marker="D", s=18, color="black", zorder=3,
                       label="paper" if not paper_labelled else None)
            paper_labelled = True
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, rotation=30, ha="right")
    ax.set_ylabel("HM (%)" if bnh else "accuracy (%)")
    if drawn:  # the axis spans the values, not 0-100: the differences between methods stay visible
        lo, hi = min(drawn), max(drawn)
        pad = max(2.0, 0.15 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
    ax.set_title(agg["caption"] or agg["table"], fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save_png(fig, path)


# ----------------------------------------------------------------------------------------------------
# Paper layouts of the ablation tables and figures (Tables 3-6, 12-14; Figures 4-6)
# ----------------------------------------------------------------------------------------------------
PROMPTKD_TRAINERS = ("PromptKD", "PromptKDStudent")
KL_LOSSES = ("kl_reference", "kl_batchmean")
_NAME_KEYS = ("MODEL.BACKBONE.NAME", "TRAINER.PROMPTKD.TEACHER_NAME")


@dataclass(frozen=True)
class LayoutRow:
    """One row of a paper table (or one point of a paper figure) and the runs that reproduce it.

    ``paper``: the row's name in ``paper_numbers.json`` (also our label). ``trainers``: trainer names whose
    runs can fill it; empty = a published row this harness does not implement (shown from the paper for
    reference). ``match``: (resolved-config key, accepted values) pairs a run must satisfy.
    """

    paper: str
    trainers: Tuple[str, ...] = ()
    match: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    series: str = ""
    x: Any = None


@dataclass(frozen=True)
class PaperLayout:
    """How one ablation table / figure of the paper is laid out.

    Sweeps (``x_key`` set) take their rows from the paper table's ``vary`` map (config value -> paper
    row) and add a row for every other value our runs used; ``fixed`` constrains the other keys.
    """

    paper_table: str
    caption: str
    kind: str = "table"                         # "table" | "figure" (line plot)
    rows: Tuple[LayoutRow, ...] = ()
    x_key: str = ""
    x_label: str = ""
    trainers: Tuple[str, ...] = PROMPTKD_TRAINERS   # sweeps: trainers of the swept runs
    fixed: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    metrics: Tuple[str, ...] = ("base", "novel", "hm")  # what the paper prints


def _m(**kv: Any) -> Tuple[Tuple[str, Tuple[Any, ...]], ...]:
    """Short match spec: ``_m(LOSS=("a", "b"))`` -> ((TRAINER.PROMPTKD.LOSS, ("a", "b")),); keys with a
    dot are taken as they are (``**{"MODEL.BACKBONE.NAME": ...}``)."""
    out = []
    for k, v in kv.items():
        key = k if "." in k else f"TRAINER.PROMPTKD.{k}"
        out.append((key, tuple(v) if isinstance(v, (tuple, list)) else (v,)))
    return tuple(out)


_DEFAULT_KD = dict(LOSS=KL_LOSSES, TRAIN_MODE="prompts_projector", CLASS_VECTORS_SOURCE="teacher")
_BB = "MODEL.BACKBONE.NAME"

LAYOUTS: Dict[str, PaperLayout] = {
    "table3": PaperLayout("table3_flowers_unlabeled", "Table 3: Flowers102, methods using unlabeled data", rows=(
        LayoutRow("CLIP", ("ZeroshotCLIP", "ZeroshotCLIP2")),
        LayoutRow("PromptSRC", ("PromptSRC",)),
        LayoutRow("CLIP-PR"), LayoutRow("UPL"), LayoutRow("LaFTer"), LayoutRow("FPL"), LayoutRow("IFPL"),
        LayoutRow("GRIP"),
        LayoutRow("PromptKD", PROMPTKD_TRAINERS, _m(**_DEFAULT_KD)),
    )),
    "table4": PaperLayout("table4_distillation_form", "Table 4: distillation form", rows=(
        LayoutRow("Feature L1", PROMPTKD_TRAINERS, _m(LOSS="feature_l1")),
        LayoutRow("Feature MSE", PROMPTKD_TRAINERS, _m(LOSS="feature_mse")),
        LayoutRow("Logit KL (PromptKD)", PROMPTKD_TRAINERS, _m(LOSS=KL_LOSSES)),
    )),
    "table5": PaperLayout("table5_distillation_variants", "Table 5: what the student trains / shares", rows=(
        LayoutRow("CLIP", ("ZeroshotCLIP", "ZeroshotCLIP2")),
        LayoutRow("Projector only (no prompts)", PROMPTKD_TRAINERS,
                  _m(TRAIN_MODE="projector_only", CLASS_VECTORS_SOURCE="teacher")),
        LayoutRow("Full fine-tune (CLIP-KD style)", PROMPTKD_TRAINERS,
                  _m(TRAIN_MODE="full_finetune", CLASS_VECTORS_SOURCE="teacher")),
        LayoutRow("Without shared teacher text features", PROMPTKD_TRAINERS,
                  _m(TRAIN_MODE="prompts_projector", CLASS_VECTORS_SOURCE="student_text")),
        LayoutRow("PromptKD", PROMPTKD_TRAINERS, _m(**_DEFAULT_KD)),
    )),
    "table6": PaperLayout("table6_teacher_type", "Table 6: teacher pre-training method (ViT-L/14 -> ViT-B/16)", rows=(
        LayoutRow("CLIP (ViT-B/16)", ("ZeroshotCLIP", "ZeroshotCLIP2"), _m(**{_BB: "ViT-B/16"})),
        LayoutRow("PromptSRC (ViT-B/16)", ("PromptSRC",), _m(**{_BB: "ViT-B/16"})),
        LayoutRow("Teacher: CLIP zero-shot (ViT-L/14)", ("ZeroshotCLIP", "ZeroshotCLIP2"), _m(**{_BB: "ViT-L/14"})),
        LayoutRow("PromptKD student of CLIP zero-shot teacher", PROMPTKD_TRAINERS,
                  _m(TEACHER_TYPE="zeroshot", TEACHER_NAME="ViT-L/14")),
        LayoutRow("Teacher: MaPLe (ViT-L/14)", ("MaPLe",), _m(**{_BB: "ViT-L/14"})),
        LayoutRow("PromptKD student of MaPLe teacher", PROMPTKD_TRAINERS,
                  _m(TEACHER_TYPE="maple", TEACHER_NAME="ViT-L/14")),
        LayoutRow("Teacher: PromptSRC (ViT-L/14)", ("PromptSRCTeacher", "PromptSRC"), _m(**{_BB: "ViT-L/14"})),
        LayoutRow("PromptKD student of PromptSRC teacher", PROMPTKD_TRAINERS,
                  _m(TEACHER_TYPE="promptsrc", TEACHER_NAME="ViT-L/14")),
    )),
    "table12": PaperLayout("table12_projector_depth", "Table 12: projector depth",
                           x_key="TRAINER.PROMPTKD.PROJECT_LAYER", x_label="projector layers"),
    "table13": PaperLayout("table13_student_size", "Table 13: student size (teacher ViT-L/14)", rows=(
        LayoutRow("CLIP ViT-B/32", ("ZeroshotCLIP", "ZeroshotCLIP2"), _m(**{_BB: "ViT-B/32"})),
        LayoutRow("PromptKD ViT-B/32 student", PROMPTKD_TRAINERS, _m(**{_BB: "ViT-B/32"})),
        LayoutRow("CLIP ViT-B/16", ("ZeroshotCLIP", "ZeroshotCLIP2"), _m(**{_BB: "ViT-B/16"})),
        LayoutRow("PromptKD ViT-B/16 student", PROMPTKD_TRAINERS, _m(**{_BB: "ViT-B/16"})),
        # the teacher of the students (the script passes its run folder only); any backbone name
        LayoutRow("PromptSRC teacher (ViT-L/14)", ("PromptSRCTeacher",)),
    )),
    "table14": PaperLayout("table14_epochs", "Table 14: training epochs", x_key="OPTIM.MAX_EPOCH", x_label="epochs"),
    "fig4": PaperLayout("fig4_images_per_class", "Figure 4: unlabeled images per class", kind="figure",
                        x_key="DATASET.MAX_IMAGES_PER_CLASS", x_label="unlabeled images per class"),
    "fig5": PaperLayout("fig5_teacher_capacity", "Figure 5: teacher capacity (student ViT-B/16)", kind="figure",
                        x_label="teacher", metrics=("hm",), rows=tuple(
        row for name in ("ViT-B/32", "ViT-B/16", "ViT-L/14") for row in (
            LayoutRow(f"Teacher {name}", ("PromptSRCTeacher", "PromptSRC"), _m(**{_BB: name}), "teacher", name),
            LayoutRow(f"PromptKD (teacher {name})", PROMPTKD_TRAINERS,
                      _m(TEACHER_TYPE="promptsrc", TEACHER_NAME=name), "student", name)))),
    "fig6": PaperLayout("fig6_temperature", "Figure 6: KD temperature", kind="figure",
                        x_key="TRAINER.PROMPTKD.TEMPERATURE", x_label="temperature"),
}


TABLE_CHOICES += [k for k in LAYOUTS if k not in TABLE_CHOICES]


def _sweep_key(x: Any) -> Tuple[int, float, str]:
    """Sort order of sweep values: numbers ascending, -1 ("all") last, then anything else."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return (2, 0.0, str(x))
    return (1, 0.0, "") if v == -1 else (0, v, "")


def _layout_rows(layout: PaperLayout, paper: Optional[Dict[str, Any]], sweep_values: Iterable[Any]) -> List[LayoutRow]:
    """The layout's rows; for sweeps, one row per paper value (named as in the paper) and per extra value."""
    if not layout.x_key:
        return list(layout.rows)
    table = (paper or {}).get("tables", {}).get(layout.paper_table) or {}
    vary = table.get("vary") or {}
    if not paper:  # no paper file: the names still come from the shipped one when it is readable
        try:
            vary = load_paper_numbers()["tables"].get(layout.paper_table, {}).get("vary") or {}
        except (FileNotFoundError, ValueError):
            vary = {}
    rows: List[LayoutRow] = []
    for name, value in (vary.get("values") or {}).items():
        rows.append(LayoutRow(name, layout.trainers, layout.fixed + ((layout.x_key, (value,)),), "PromptKD", value))
    short = layout.x_key.rsplit(".", 1)[-1]
    for value in sweep_values:
        if not any(_values_equal(value, r.x) for r in rows):
            rows.append(LayoutRow(f"PromptKD ({short}={_format_value(value)})", layout.trainers,
                                  layout.fixed + ((layout.x_key, (value,)),), "PromptKD", value))
    return sorted(rows, key=lambda r: _sweep_key(r.x))


def _row_matches(row: LayoutRow, trainer: str, cfg: Dict[str, Any], aliases: Dict[str, str]) -> bool:
    if trainer not in row.trainers:
        return False
    for key, accepted in row.match:
        try:
            value = _lookup_dotted(cfg, key)
        except KeyError:
            return False
        if key in _NAME_KEYS:
            value = aliases.get(str(value), value)
        if not any(_values_equal(value, a) for a in accepted):
            return False
    return True


def _paper_dataset(paper: Optional[Dict[str, Any]], table_key: str) -> Optional[str]:
    data = ((paper or {}).get("tables", {}).get(table_key) or {}).get("data") or {}
    return next(iter(data), None)


def aggregate_layout(runs: Sequence[Run], table: str, paper: Optional[Dict[str, Any]] = None,
                     aliases: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Aggregate runs over seeds into the rows of a paper ablation table/figure (``LAYOUTS[table]``).

    Runs are assigned to rows by trainer and resolved-config values (``config.yaml`` beside each
    results.json); ``aliases`` maps our CLIP names to the paper's (e.g. ``tiny-vit-teacher`` ->
    ``ViT-L/14`` in smoke runs) for MODEL.BACKBONE.NAME / TEACHER_NAME. Per dataset of our runs, every
    layout row gets our mean ± std over seeds (HM of the means) and the paper's number (from the
    paper's dataset; Δ only when it is the same dataset). Runs matching no row are listed in ``notes``.
    """
    if table not in LAYOUTS:
        raise ValueError(f"unknown paper layout '{table}'; choose one of {', '.join(LAYOUTS)}")
    layout = LAYOUTS[table]
    aliases = dict(aliases or {})
    if not runs:
        raise ValueError("no runs to aggregate: no results.json was found (runs write it when they finish)")
    # runs with base and novel are used as they are (the rows tell them apart, not method/config/seed);
    # reference-style base-only / new-only evaluations are paired as in the other tables
    records = [r for r in runs if r.has_base_novel]
    paired, notes = _merge_base_novel([r for r in runs if not r.has_base_novel])
    records += paired
    configs: Dict[Path, Dict[str, Any]] = {}
    for r in records:
        cfg = _load_run_config(r.path.parent)
        if cfg is None:
            raise ValueError(f"{r.path.parent / CONFIG_FILE} is missing: the {table} layout assigns runs to rows by "
                             f"their resolved config; re-run the evaluation (train.py writes config.yaml)")
        configs[r.path] = cfg
    sweep_values: List[Any] = []
    if layout.x_key:
        for r in records:
            if r.trainer in layout.trainers:
                try:
                    v = _lookup_dotted(configs[r.path], layout.x_key)
                except KeyError:
                    raise ValueError(f"{r.path.parent / CONFIG_FILE}: has no key '{layout.x_key}'") from None
                if not any(_values_equal(v, s) for s in sweep_values):
                    sweep_values.append(v)
    rows = _layout_rows(layout, paper, sweep_values)
    paper_rows = ((paper or {}).get("tables", {}).get(layout.paper_table) or {}).get("data") or {}
    paper_ds = _paper_dataset(paper, layout.paper_table)
    assigned: Dict[Tuple[str, str], List[Run]] = {}
    for r in records:
        hits = [row for row in rows if _row_matches(row, r.trainer, configs[r.path], aliases)]
        if not hits:
            notes.append(f"ignored {r.path}: trainer {r.trainer} with this config matches no row of {table}")
            continue
        if len(hits) > 1:
            raise ValueError(f"{r.path} matches several rows of {table} ({[h.paper for h in hits]}); pass "
                             f"--alias or fewer directories")
        assigned.setdefault((r.dataset, hits[0].paper), []).append(r)
    datasets = sorted({ds for ds, _ in assigned}, key=_dataset_sort_key)
    blocks = []
    for ds in datasets:
        out_rows = []
        for row in rows:
            members = sorted(assigned.get((ds, row.paper), []), key=lambda m: (m.seed is None, m.seed or 0))
            seeds = [m.seed for m in members]
            dupes = sorted({s for s in seeds if s is not None and seeds.count(s) > 1})
            if dupes:
                raise ValueError(f"{table} / {ds} / {row.paper}: seed(s) {dupes} appear more than once "
                                 f"({', '.join(str(m.path) for m in members if m.seed in dupes)})")
            ours = None
            if members:
                bases = [m.base for m in members if m.base is not None]
                novels = [m.novel for m in members if m.novel is not None]
                hms = [m.hm for m in members if m.hm is not None]
                ours = {"n": len(members), "seeds": seeds, "runs": [str(m.path) for m in members],
                        "base": _mean_std(bases) if bases else None, "novel": _mean_std(novels) if novels else None,
                        "hm": (harmonic_mean(_mean_std(bases)["mean"], _mean_std(novels)["mean"])
                               if bases and novels else None),
                        "hm_per_seed": _mean_std(hms) if hms else None}
            p = paper_rows.get(paper_ds, {}).get(row.paper) if paper_ds else None
            delta = None
            if ours and p and ds == paper_ds:
                mine = {"base": ours["base"]["mean"] if ours["base"] else None,
                        "novel": ours["novel"]["mean"] if ours["novel"] else None, "hm": ours["hm"]}
                delta = {k: mine[k] - p[k] for k in layout.metrics if mine.get(k) is not None
                         and isinstance(p.get(k), (int, float))} or None
            out_rows.append({"row": row.paper, "series": row.series, "x": row.x,
                             "reference_only": not row.trainers, "ours": ours,
                             "paper": dict(p) if p else None, "delta": delta})
        blocks.append({"dataset": ds, "rows": out_rows})
    for note in notes:
        logger.warning(note)
    return {"table": table, "caption": layout.caption, "kind": layout.kind, "paper_table": layout.paper_table,
            "paper_dataset": paper_ds, "x_key": layout.x_key, "x_label": layout.x_label,
            "metrics": list(layout.metrics), "aliases": aliases, "datasets": blocks, "notes": notes,
            "paper_included": paper is not None}


def render_layout_markdown(agg: Dict[str, Any]) -> str:
    """The paper's table layout: its rows in its order, our Base / Novel / HM (mean ± std over seeds) beside
    the paper's numbers; published rows this harness does not run are marked "paper only"."""
    show_paper = agg.get("paper_included", False)
    metrics = agg["metrics"]
    lines: List[str] = []
    for block in agg["datasets"]:
        ds = block["dataset"]
        where = f"ours: {ds}"
        if show_paper and agg.get("paper_dataset"):
            where += f"; paper: {agg['paper_dataset']}"
        lines += [f"### {agg['caption']} ({where})", ""]
        header = ["Method", "Base", "Novel", "HM", "Seeds"]
        if show_paper:
            header += ["Paper " + " / ".join(m.capitalize() if m != "hm" else "HM" for m in metrics), "Δ HM"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in block["rows"]:
            o = row["ours"]
            if o:
                cells = [row["row"], _pm(o["base"]), _pm(o["novel"]), _f(o["hm"]), _seeds(o)]
            elif row["reference_only"]:
                cells = [row["row"] + " (paper only)", "", "", "", ""]
            else:
                cells = [row["row"], "-", "-", "-", ""]
            if show_paper:
                p, d = row["paper"], row["delta"]
                cells.append("-" if not p else " / ".join(_f(p.get(m)) for m in metrics))
                cells.append("-" if not d or "hm" not in d else _signed(d["hm"]))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Mean ± std over seeds (population std); HM of the mean base and novel accuracy.")
    if show_paper:
        lines.append("Paper numbers from tools/paper_numbers.json; Δ = ours - paper, only when our dataset is the "
                     "paper's.")
    if agg.get("aliases"):
        lines.append("Model names matched as: " + ", ".join(f"{k} = {v}" for k, v in agg["aliases"].items()))
    for note in agg.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def render_layout_csv(agg: Dict[str, Any]) -> str:
    """One CSV line per (dataset, row): ours (mean, std) and the paper's numbers, unrounded."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "row", "series", "x", "n_seeds", "seeds", "base_mean", "base_std", "novel_mean",
                "novel_std", "hm", "paper_dataset", "paper_base", "paper_novel", "paper_hm", "delta_hm"])

    def num(x: Any) -> str:
        return "" if x is None else repr(float(x))

    for block in agg["datasets"]:
        for row in block["rows"]:
            o, p, d = row["ours"] or {}, row["paper"] or {}, row["delta"] or {}
            w.writerow([block["dataset"], row["row"], row["series"], "" if row["x"] is None else row["x"],
                        o.get("n", 0), ",".join(str(s) for s in o.get("seeds", [])),
                        num((o.get("base") or {}).get("mean")), num((o.get("base") or {}).get("std")),
                        num((o.get("novel") or {}).get("mean")), num((o.get("novel") or {}).get("std")),
                        num(o.get("hm")), agg.get("paper_dataset") or "", num(p.get("base")), num(p.get("novel")),
                        num(p.get("hm")), num(d.get("hm"))])
    return buf.getvalue()


def _x_tick(agg: Dict[str, Any], x: Any) -> str:
    """Tick label of a figure's x value (-1 images per class = "all")."""
    if agg.get("x_key") == "DATASET.MAX_IMAGES_PER_CLASS" and _values_equal(x, -1):
        return "all"
    return _format_value(x)


def _point(ours: Dict[str, Any], metric: str) -> Tuple[Optional[float], float]:
    """(value, std over seeds) of one of our rows for a plotted metric (HM: HM of the means, per-seed std)."""
    if metric == "hm":
        return ours["hm"], (ours.get("hm_per_seed") or {}).get("std", 0.0)
    stat = ours.get(metric) or {}
    return stat.get("mean"), stat.get("std", 0.0)


def plot_layout_lines(agg: Dict[str, Any], path: os.PathLike) -> Path:
    """Line plot in the figure's layout: x = the swept value (or the teacher for Fig. 5), one panel per
    metric the paper plots; ours solid (± std), the paper's dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not agg["datasets"]:
        raise ValueError("nothing to plot: no run matched a row of the figure")
    metrics = agg["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for block in agg["datasets"]:
            rows = block["rows"]
            series = []
            for r in rows:
                if r["series"] not in series:
                    series.append(r["series"])
            xs_all: List[str] = []
            for r in rows:
                if _x_tick(agg, r["x"]) not in xs_all:
                    xs_all.append(_x_tick(agg, r["x"]))
            pos = {x: i for i, x in enumerate(xs_all)}
            for s in series:
                pts = [r for r in rows if r["series"] == s]
                values = [(pos[_x_tick(agg, r["x"])],) + _point(r["ours"], metric) for r in pts if r["ours"]]
                values = [v for v in values if v[1] is not None]
                if values:
                    ax.errorbar([v[0] for v in values], [v[1] for v in values], yerr=[v[2] for v in values],
                                marker="o", capsize=3, label=f"{s or 'ours'} ({block['dataset']})")
                if block is agg["datasets"][0]:
                    pp = [(pos[_x_tick(agg, r["x"])], r["paper"].get(metric)) for r in pts
                          if r["paper"] and isinstance(r["paper"].get(metric), (int, float))]
                    if pp:
                        ax.plot([v[0] for v in pp], [v[1] for v in pp], "--", marker="s", alpha=0.7,
                                label=f"{s or 'PromptKD'} (paper, {agg.get('paper_dataset')})")
            ax.set_xticks(range(len(xs_all)))
            ax.set_xticklabels(xs_all)
        ax.set_xlabel(agg["x_label"] or "")
        ax.set_ylabel(f"{'HM' if metric == 'hm' else metric} accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(agg["caption"], fontsize=10)
    fig.tight_layout()
    return _save_png(fig, path)


def parse_aliases(items: Sequence[str]) -> Dict[str, str]:
    """``["tiny-vit-teacher=ViT-L/14", ...]`` -> dict; malformed items raise ValueError."""
    out: Dict[str, str] = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            raise ValueError(f"--alias {item!r}: expected OUR_NAME=PAPER_NAME, e.g. tiny-vit-teacher=ViT-L/14")
        out[ours] = theirs
    return out


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
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG bar chart / line plot")
    p.add_argument("--alias", action="append", default=[], metavar="OURS=PAPER",
                   help="paper layouts: match our CLIP name OURS as the paper's PAPER (MODEL.BACKBONE.NAME, "
                        "TRAINER.PROMPTKD.TEACHER_NAME), e.g. tiny-vit-teacher=ViT-L/14 in smoke runs (repeatable)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)
    if args.table in LAYOUTS:
        return _main_layout(args)
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
    plot = None if args.no_plot else (plot_hm_bars, f"hm_{agg['table']}.png")
    return _write_outputs(args, agg, text, plot)


def _main_layout(args: argparse.Namespace) -> int:
    """--table table3 ... fig6: the paper's layout (LAYOUTS); figures also get a line plot."""
    try:
        aliases = parse_aliases(args.alias)
        runs = collect_runs(args.dirs)
        paper = None if args.no_paper else load_paper_numbers(args.paper)
        agg = aggregate_layout(runs, args.table, paper, aliases)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render_layout_markdown(agg) if args.format == "md" else render_layout_csv(agg)
    figure = agg["kind"] == "figure" and not args.no_plot and agg["datasets"]
    plot = (plot_layout_lines, f"{agg['table']}.png") if figure else None
    return _write_outputs(args, agg, text, plot)


def _write_outputs(args: argparse.Namespace, agg: Dict[str, Any], text: str,
                   plot: Optional[Tuple[Callable[[Dict[str, Any], Path], Path], str]]) -> int:
    """Print the rendered table and write it, the aggregate JSON and (``plot`` = (function, file name)) the
    plot into ``--out`` (default: the first OUTPUT_DIR, or its folder when it is a file); list what was written."""
    print(text, end="")
    out = Path(args.out) if args.out else Path(args.dirs[0])
    if out.is_file():
        out = out.parent
    name = agg["table"]
    written = [write_text_atomic(out / f"results_{name}.{args.format}", text),
               write_text_atomic(out / f"results_{name}.json", json.dumps(agg, indent=1) + "\n")]
    if plot is not None:
        plot_fn, file_name = plot
        written.append(plot_fn(agg, out / file_name))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
