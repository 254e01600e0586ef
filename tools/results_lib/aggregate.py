"""Aggregation over seeds on pandas: one table of runs, grouped by (dataset, method, config) or by
(dataset, paper row), with mean and population std over seeds, the HM of the means and Average rows.

The reductions are pandas' per-group ``Series.mean`` / ``Series.std(ddof=0)`` (plain numpy sums).
The grouped fast paths (``GroupBy.mean``/``std``) use compensated / online summation, which moves the
last digit of the unrounded numbers written to the CSV and JSON files; the per-group reductions give
the same numbers as ``sum(values) / n`` and the two-pass std of the CoOp/Dassl ``parse_test_res.py``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd

from engine.run_record import harmonic_mean

from .runs import CONFIG_FILE, Run, load_run_config, lookup_dotted, merge_base_novel
from .spec import (DG_DATASETS, LAYOUTS, NAME_KEYS, TABLE_CHOICES, TABLES, LayoutRow, PaperLayout, TableSpec,
                   dataset_sort_key, format_value, load_paper_numbers, paper_entry, paper_table_datasets,
                   values_equal)

logger = logging.getLogger(__name__)

METRICS = ("base", "novel", "hm", "accuracy")


def runs_frame(runs: Sequence[Run], **columns: Sequence[Any]) -> pd.DataFrame:
    """The runs as a table (one row per run, in seed order within a group; extra ``columns`` appended)."""
    order = sorted(range(len(runs)), key=lambda i: (runs[i].seed is None, runs[i].seed or 0))
    frame = pd.DataFrame({
        "run": [runs[i] for i in order], "path": [str(runs[i].path) for i in order],
        "dataset": [runs[i].dataset for i in order], "method": [runs[i].method for i in order],
        "config": [runs[i].config for i in order], "seed": pd.Series([runs[i].seed for i in order], dtype=object),
        **{m: pd.Series([getattr(runs[i], m) for i in order], dtype=float) for m in METRICS},
        **{k: [v[i] for i in order] for k, v in columns.items()},
    })
    return frame


def _stat(values: pd.Series) -> Optional[Dict[str, Any]]:
    """mean and population std over seeds of the non-missing values (None when there are none)."""
    values = values.dropna()
    if values.empty:
        return None
    return {"mean": float(values.mean()), "std": float(values.std(ddof=0)), "values": values.tolist()}


def seed_groups(frame: pd.DataFrame, keys: List[str], where: str, fix: str = "") -> List[Tuple[Tuple, pd.DataFrame]]:
    """Groups of ``frame`` by ``keys`` in first-seen order; a seed seen twice in a group is an error
    naming the group (``where`` formatted with the group's key) and the files."""
    groups = list(frame.groupby(keys, sort=False))
    for key, members in groups:
        seeds = members["seed"][members["seed"].notna()]
        dupes = sorted(set(seeds[seeds.duplicated()]))
        if dupes:
            paths = ", ".join(members["path"][members["seed"].isin(dupes)])
            raise ValueError(f"{where.format(*key)}: seed(s) {dupes} appear more than once ({paths}){fix}")
    return groups


def seed_statistics(members: pd.DataFrame) -> Dict[str, Any]:
    """Seeds, run files and mean ± std over seeds of base / novel / per-seed HM / accuracy of one group."""
    base, novel = _stat(members["base"]), _stat(members["novel"])
    return {"seeds": members["seed"].tolist(), "n": len(members), "runs": members["path"].tolist(),
            "base": base, "novel": novel, "hm": harmonic_mean(base["mean"], novel["mean"]) if base and novel else None,
            "hm_per_seed": _stat(members["hm"]), "accuracy": _stat(members["accuracy"])}


def _pick_table(runs: Sequence[Run], table: str) -> str:
    if table == "auto":
        if any(r.has_base_novel or r.subsample in ("base", "new") for r in runs):
            return "base2novel"
        return "dg" if all(r.dataset in DG_DATASETS for r in runs) else "cross"
    return table


def aggregate(runs: Sequence[Run], table: str = "auto", paper: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Aggregate runs over seeds into rows per (dataset, method, config) plus an Average row per method.

    ``table``: one of ``TABLE_CHOICES``; "auto" picks base2novel when any run has base/novel results,
    dg when every run is on an ImageNet variant, else cross. ``paper``: loaded paper numbers
    (``load_paper_numbers()``) or None to leave them out.
    Returns a JSON-serialisable dict (see ``render_markdown`` / ``render_csv``).
    """
    if table not in TABLE_CHOICES:
        raise ValueError(f"unknown table '{table}'; choose one of {', '.join(TABLE_CHOICES)}")
    if table in LAYOUTS:
        raise ValueError(f"'{table}' is a paper layout: aggregate it with aggregate_layout()")
    if not runs:
        raise ValueError("no runs to aggregate: no results.json was found (runs write it when they finish)")
    table = _pick_table(runs, table)
    spec = TABLES[table]
    if spec.metric == "bnh":
        records, notes = merge_base_novel(list(runs))
    else:
        records = [r for r in runs if r.accuracy is not None]
        notes = [f"ignored {r.path}: base-to-novel run in a single-accuracy table; use --table base2novel"
                 for r in runs if r.accuracy is None]
    for note in notes:
        logger.warning(note)

    groups = seed_groups(runs_frame(records), ["dataset", "method", "config"], "{1} / {0} / {2}",
                         "; pass only one of the directories or label the runs")
    rows: List[Dict[str, Any]] = []
    for (dataset, method, config), members in sorted(groups, key=lambda g: (dataset_sort_key(g[0][0]),) + g[0][1:]):
        first: Run = members["run"].iloc[0]
        stats = seed_statistics(members)
        row: Dict[str, Any] = {"dataset": dataset, "method": method, "trainer": first.trainer, "label": first.label,
                               "config": config, "vary": first.vary, "seeds": stats["seeds"], "n": stats["n"],
                               "runs": stats["runs"]}
        if spec.metric == "bnh":
            row.update({k: stats[k] for k in ("base", "novel", "hm", "hm_per_seed")})
        else:
            row["accuracy"] = stats["accuracy"]
        row["paper"] = paper_entry(paper, spec, dataset, row)
        row["delta"] = _delta(_row_values(row, spec.metric), row["paper"])
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
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    base = re.sub(r"\s*\(paper [^)]*\)", "", caption).strip()
    shown = ", ".join(names) if len(names) <= 4 else f"{len(names)} datasets"
    return f"{base}: {shown}" if shown else base


def _row_values(row: Dict[str, Any], metric: str) -> Dict[str, Optional[float]]:
    if metric == "bnh":
        return {"base": row["base"]["mean"] if row.get("base") else None,
                "novel": row["novel"]["mean"] if row.get("novel") else None,
                "hm": row.get("hm")}
    return {"accuracy": row["accuracy"]["mean"]}


def _delta(ours: Dict[str, Optional[float]], paper: Optional[Dict[str, Any]]) -> Optional[Dict[str, float]]:
    """ours - paper for every metric both have (None without a paper row)."""
    if not paper:
        return None
    delta = {k: v - paper[k] for k, v in ours.items() if v is not None and isinstance(paper.get(k), (int, float))}
    return delta or None


def _average_rows(rows: List[Dict[str, Any]], spec: TableSpec, paper: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (method, config) over >= 2 datasets: mean over datasets of the per-dataset means; for base-to-novel,
    the HM of the mean base and mean novel accuracy (the paper's Table 1 Average row)."""
    if not rows:
        return []
    bnh = spec.metric == "bnh"
    frame = pd.DataFrame({
        "row": rows, "method": [r["method"] for r in rows], "config": [r["config"] for r in rows],
        "dataset": [r["dataset"] for r in rows],
        "base": pd.Series([r["base"]["mean"] if bnh and r["base"] and r["novel"] else None for r in rows], dtype=float),
        "novel": pd.Series([r["novel"]["mean"] if bnh and r["base"] and r["novel"] else None for r in rows], dtype=float),
        "accuracy": pd.Series([None if bnh else r["accuracy"]["mean"] for r in rows], dtype=float),
    })
    out: List[Dict[str, Any]] = []
    for (method, config), members in frame.groupby(["method", "config"], sort=False):
        if len(members) < 2:
            continue
        first = members["row"].iloc[0]
        avg: Dict[str, Any] = {"dataset": "Average", "method": method, "trainer": first["trainer"],
                               "label": first["label"], "config": config, "vary": first["vary"]}
        if bnh:
            usable = members.dropna(subset=["base", "novel"])
            if usable.empty:
                continue
            avg.update(datasets=usable["dataset"].tolist(), n=len(usable), base=float(usable["base"].mean()),
                       novel=float(usable["novel"].mean()))
            avg["hm"] = harmonic_mean(avg["base"], avg["novel"])
            ours = {"base": avg["base"], "novel": avg["novel"], "hm": avg["hm"]}
        else:
            avg.update(datasets=members["dataset"].tolist(), n=len(members),
                       accuracy=float(members["accuracy"].mean()))
            ours = {"accuracy": avg["accuracy"]}
        entry = paper_entry(paper, spec, "Average", avg)
        complete = False
        if entry is not None:
            expected = paper_table_datasets(paper, entry["table"], entry["method"])
            complete = bool(expected) and set(expected) == set(avg["datasets"])
            if not expected:  # the paper table only has the average (e.g. the PromptSRC README)
                complete = len(avg["datasets"]) == 11
        avg["paper"] = entry
        avg["complete"] = complete
        avg["delta"] = _delta(ours, entry) if complete else None
        out.append(avg)
    return out


# ----------------------------------------------------------------------------------------------------
# Paper layouts of the ablation tables and figures (Tables 3-6, 12-14; Figures 4-6)
# ----------------------------------------------------------------------------------------------------
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
        if not any(values_equal(value, r.x) for r in rows):
            rows.append(LayoutRow(f"PromptKD ({short}={format_value(value)})", layout.trainers,
                                  layout.fixed + ((layout.x_key, (value,)),), "PromptKD", value))
    return sorted(rows, key=lambda r: _sweep_key(r.x))


def _row_matches(row: LayoutRow, trainer: str, cfg: Dict[str, Any], aliases: Dict[str, str]) -> bool:
    if trainer not in row.trainers:
        return False
    for key, accepted in row.match:
        try:
            value = lookup_dotted(cfg, key)
        except KeyError:
            return False
        if key in NAME_KEYS:
            value = aliases.get(str(value), value)
        if not any(values_equal(value, a) for a in accepted):
            return False
    return True


def _assign_rows(records: List[Run], layout: PaperLayout, table: str, paper: Optional[Dict[str, Any]],
                 aliases: Dict[str, str], notes: List[str]) -> Tuple[List[LayoutRow], List[Tuple[Run, str]]]:
    """The layout's rows and (run, row name) for every run that fills one (others are noted)."""
    configs: Dict[Path, Dict[str, Any]] = {}
    for r in records:
        cfg = load_run_config(r.path.parent)
        if cfg is None:
            raise ValueError(f"{r.path.parent / CONFIG_FILE} is missing: the {table} layout assigns runs to rows by "
                             f"their resolved config; re-run the evaluation (train.py writes config.yaml)")
        configs[r.path] = cfg
    sweep_values: List[Any] = []
    if layout.x_key:
        for r in records:
            if r.trainer in layout.trainers:
                try:
                    v = lookup_dotted(configs[r.path], layout.x_key)
                except KeyError:
                    raise ValueError(f"{r.path.parent / CONFIG_FILE}: has no key '{layout.x_key}'") from None
                if not any(values_equal(v, s) for s in sweep_values):
                    sweep_values.append(v)
    rows = _layout_rows(layout, paper, sweep_values)
    assigned: List[Tuple[Run, str]] = []
    for r in records:
        hits = [row for row in rows if _row_matches(row, r.trainer, configs[r.path], aliases)]
        if not hits:
            notes.append(f"ignored {r.path}: trainer {r.trainer} with this config matches no row of {table}")
        elif len(hits) > 1:
            raise ValueError(f"{r.path} matches several rows of {table} ({[h.paper for h in hits]}); pass "
                             f"--alias or fewer directories")
        else:
            assigned.append((r, hits[0].paper))
    return rows, assigned


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
    paired, notes = merge_base_novel([r for r in runs if not r.has_base_novel])
    records += paired
    rows, assigned = _assign_rows(records, layout, table, paper, aliases, notes)
    paper_rows = ((paper or {}).get("tables", {}).get(layout.paper_table) or {}).get("data") or {}
    paper_ds = next(iter(paper_rows), None)
    frame = runs_frame([r for r, _ in assigned], row=[name for _, name in assigned])
    groups = dict(seed_groups(frame, ["dataset", "row"], f"{table} / {{0}} / {{1}}")) if assigned else {}
    blocks = []
    for ds in sorted({ds for ds, _ in groups}, key=dataset_sort_key):
        out_rows = []
        for row in rows:
            ours = None
            if (ds, row.paper) in groups:
                stats = seed_statistics(groups[(ds, row.paper)])
                ours = {k: stats[k] for k in ("n", "seeds", "runs", "base", "novel", "hm", "hm_per_seed")}
            p = paper_rows.get(paper_ds, {}).get(row.paper) if paper_ds else None
            delta = None
            if ours and p and ds == paper_ds:
                mine = {"base": ours["base"]["mean"] if ours["base"] else None,
                        "novel": ours["novel"]["mean"] if ours["novel"] else None, "hm": ours["hm"]}
                delta = _delta({k: mine[k] for k in layout.metrics}, p)
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
