"""Results tables as a library: ``results.json`` files of runs -> the paper's tables (``tools/results.py`` is its CLI).

Runs are grouped by (method label, dataset, config) and their seeds are aggregated:

- per dataset and method: mean and standard deviation over seeds of base and novel accuracy (or of
  the single accuracy for cross-dataset / domain-generalisation tables); the HM is computed from the
  MEANS, as the paper does (``HM = 2BN / (B + N)``), and the mean of the per-seed HMs is reported
  beside it for reference;
- an "Average" row per method: mean of the per-dataset base means, mean of the novel means, and the
  HM of those two means (the paper's Table 1 convention);
- the paper's number beside each of ours with the difference (ours - paper), from
  ``tools/paper_numbers.json``; the table layouts (which paper tables a kind is compared with, the rows
  of the ablation tables and figures, dataset spellings) are data in ``tools/paper_tables.json``.

Standard deviations are population standard deviations over seeds (``ddof=0``), as printed by the
CoOp/Dassl ``parse_test_res.py`` tool.

Why pandas: the work here is grouping runs (by dataset / method / config, or by dataset / paper row),
reducing each group over seeds and then over datasets; a DataFrame ``groupby`` says that in one line
where hand-written dictionaries of lists took a page, and the same frame feeds both table kinds.

Modules: :mod:`.spec` (layouts and paper numbers), :mod:`.runs` (reading runs), :mod:`.aggregate`
(grouping and statistics), :mod:`.render` (Markdown / CSV), :mod:`.plots` (PNG).

Library use (the proving-ground pipeline does this)::

    from tools.results_lib import aggregate, collect_runs, load_paper_numbers, render, write_table
    table = aggregate(collect_runs(["output/base2new"]), "base2novel", load_paper_numbers())
    write_table(table, "output/tables", render(table))
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Sequence

from engine.fileio import atomic_write_text
from engine.run_record import harmonic_mean

from .aggregate import aggregate, aggregate_layout, data_caption, runs_frame, seed_statistics
from .plots import plot_hm_bars, plot_layout_lines
from .render import render_csv, render_layout_csv, render_layout_markdown, render_markdown
from .runs import CONFIG_FILE, Run, collect_runs, parse_results_file
from .spec import (DATASET_ALIASES, DATASET_ORDER, DEFAULT_PAPER_FILE, DG_DATASETS, LAYOUTS, PAPER_TEACHER,
                   PROMPTKD_TRAINERS, TABLE_CHOICES, TABLES, TABLES_FILE, TRAINER_TO_PAPER, LayoutRow, PaperLayout,
                   TableSpec, canonical_dataset, load_paper_numbers, paper_entry)

__all__ = [
    "CONFIG_FILE", "DATASET_ALIASES", "DATASET_ORDER", "DEFAULT_PAPER_FILE", "DG_DATASETS", "LAYOUTS", "PAPER_TEACHER",
    "PROMPTKD_TRAINERS", "TABLE_CHOICES", "TABLES", "TABLES_FILE", "TRAINER_TO_PAPER", "LayoutRow", "PaperLayout",
    "Run", "TableSpec", "aggregate", "aggregate_layout", "canonical_dataset", "collect_runs", "data_caption",
    "harmonic_mean", "load_paper_numbers", "paper_entry", "parse_aliases", "parse_results_file", "plot_hm_bars",
    "plot_layout_lines", "render", "render_csv", "render_layout_csv", "render_layout_markdown", "render_markdown",
    "runs_frame", "seed_statistics", "write_table", "write_text_atomic",
]


def parse_aliases(items: Sequence[str]) -> Dict[str, str]:
    """``["tiny-vit-teacher=ViT-L/14", ...]`` -> dict; malformed items raise ValueError."""
    out: Dict[str, str] = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            raise ValueError(f"--alias {item!r}: expected OUR_NAME=PAPER_NAME, e.g. tiny-vit-teacher=ViT-L/14")
        out[ours] = theirs
    return out


def write_text_atomic(path: os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`engine.fileio.atomic_write_text`)."""
    atomic_write_text(os.fspath(path), text)
    return Path(path)


def render(agg: Dict, fmt: str = "md") -> str:
    """The aggregated table (``aggregate`` or ``aggregate_layout``) as Markdown (``md``) or CSV (``csv``)."""
    if agg["table"] in LAYOUTS:
        return render_layout_markdown(agg) if fmt == "md" else render_layout_csv(agg)
    return render_markdown(agg) if fmt == "md" else render_csv(agg)


def write_table(agg: Dict, out: os.PathLike, text: str, fmt: str = "md", plot: bool = True) -> List[Path]:
    """Write ``text`` (the rendered table) as ``results_<table>.<fmt>``, the aggregate as ``results_<table>.json``
    and, with ``plot``, its PNG (``hm_<table>.png`` bar chart, or ``<table>.png`` line plot for a paper figure)
    into the folder ``out``; returns the paths written."""
    out, name = Path(out), agg["table"]
    written = [write_text_atomic(out / f"results_{name}.{fmt}", text),
               write_text_atomic(out / f"results_{name}.json", json.dumps(agg, indent=1) + "\n")]
    if plot and name in LAYOUTS:
        if agg["kind"] == "figure" and agg["datasets"]:
            written.append(plot_layout_lines(agg, out / f"{name}.png"))
    elif plot:
        written.append(plot_hm_bars(agg, out / f"hm_{name}.png"))
    return written
