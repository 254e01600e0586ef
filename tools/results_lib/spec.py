"""The paper's table layouts (``tools/paper_tables.json``) and numbers (``tools/paper_numbers.json``).

Both files are data: a new table kind, paper row or dataset spelling is an edit there, not here. This
module loads the layouts into typed objects and answers "which paper number belongs beside this row".
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

TOOLS_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PAPER_FILE = TOOLS_DIR / "paper_numbers.json"
TABLES_FILE = TOOLS_DIR / "paper_tables.json"

Match = Tuple[Tuple[str, Tuple[Any, ...]], ...]


@dataclass(frozen=True)
class TableSpec:
    """How one ``--table`` kind is aggregated and which paper tables it is compared with."""

    metric: str                      # "bnh" (base / novel / HM) or "acc" (single accuracy)
    paper_tables: Tuple[str, ...]    # keys of paper_numbers.json["tables"], searched in order
    vary: Tuple[str, ...] = ()       # config keys whose values become part of the method label
    caption: str = ""


@dataclass(frozen=True)
class LayoutRow:
    """One row of a paper table (or one point of a paper figure) and the runs that reproduce it.

    ``paper``: the row's name in ``paper_numbers.json`` (also our label). ``trainers``: trainer names whose
    runs can fill it; empty = a published row this harness does not implement (shown from the paper for
    reference). ``match``: (resolved-config key, accepted values) pairs a run must satisfy.
    """

    paper: str
    trainers: Tuple[str, ...] = ()
    match: Match = ()
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
    trainers: Tuple[str, ...] = ()              # sweeps: trainers of the swept runs
    fixed: Match = ()
    metrics: Tuple[str, ...] = ("base", "novel", "hm")  # what the paper prints


def _match(spec: Optional[Dict[str, List[Any]]]) -> Match:
    return tuple((key, tuple(values)) for key, values in (spec or {}).items())


def _load_tables(path: Path = TABLES_FILE) -> Dict[str, Any]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    for key in ("datasets", "paper_methods", "sweep_trainers", "name_keys", "tables", "layouts"):
        if key not in data:
            raise ValueError(f"{path}: missing top-level key '{key}' (see its '_about' entry)")
    return data


_DATA = _load_tables()
DATASET_ORDER: List[str] = list(_DATA["datasets"]["order"])
DG_DATASETS: Tuple[str, ...] = tuple(_DATA["datasets"]["domain_generalisation"])
DATASET_ALIASES: Dict[str, str] = dict(_DATA["datasets"]["aliases"])
PAPER_TEACHER: str = _DATA["paper_methods"]["teacher"]
TRAINER_TO_PAPER: Dict[str, str] = dict(_DATA["paper_methods"]["trainers"])
PROMPTKD_TRAINERS: Tuple[str, ...] = tuple(_DATA["sweep_trainers"])
NAME_KEYS: Tuple[str, ...] = tuple(_DATA["name_keys"])

TABLES: Dict[str, TableSpec] = {
    name: TableSpec(t["metric"], tuple(t["paper_tables"]), tuple(t.get("vary", ())), t.get("caption", ""))
    for name, t in _DATA["tables"].items()
}
LAYOUTS: Dict[str, PaperLayout] = {
    name: PaperLayout(
        paper_table=t["paper_table"], caption=t["caption"], kind=t.get("kind", "table"),
        rows=tuple(LayoutRow(r["paper"], tuple(r.get("trainers", ())), _match(r.get("match")), r.get("series", ""),
                             r.get("x")) for r in t.get("rows", ())),
        x_key=t.get("x_key", ""), x_label=t.get("x_label", ""),
        trainers=tuple(t.get("trainers", PROMPTKD_TRAINERS)), fixed=_match(t.get("fixed")),
        metrics=tuple(t.get("metrics", ("base", "novel", "hm"))))
    for name, t in _DATA["layouts"].items()
}
TABLE_CHOICES: List[str] = ["auto"] + list(TABLES) + [k for k in LAYOUTS if k not in TABLES]


def canonical_dataset(name: str) -> str:
    """Registry name for a dataset spelling (``dtd`` -> ``DescribableTextures``); unknown names unchanged."""
    if name in DATASET_ORDER:
        return name
    return DATASET_ALIASES.get(name.lower(), name)


def dataset_sort_key(name: str) -> Tuple[int, str]:
    """The paper's column order, then other datasets by name."""
    return (DATASET_ORDER.index(name), "") if name in DATASET_ORDER else (len(DATASET_ORDER), name)


def values_equal(ours: Any, theirs: Any) -> bool:
    """Config values compared as numbers when both are numbers, else as case-insensitive strings."""
    try:
        return math.isclose(float(ours), float(theirs), rel_tol=1e-9, abs_tol=1e-9)
    except (TypeError, ValueError):
        return str(ours).strip().lower() == str(theirs).strip().lower()


def format_value(value: Any) -> str:
    """A config value as it appears in a method label (``1.0`` -> ``1``)."""
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


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
                if method in rows and all(values_equal(ours[k], v) for k, v in zip(keys, values)):
                    return {"table": table_key, "method": method, **rows[method]}
            continue
        for cand in _paper_method_candidates(run_like):
            if cand in rows:
                return {"table": table_key, "method": cand, **rows[cand]}
    return None


def paper_table_datasets(paper: Optional[Dict[str, Any]], table_key: str, method: str) -> List[str]:
    """The datasets (not the Average) on which a paper table reports ``method``."""
    if paper is None:
        return []
    data = paper["tables"].get(table_key, {}).get("data", {})
    return [d for d, rows in data.items() if d != "Average" and method in rows]
