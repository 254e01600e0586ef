"""Aggregate ``results.json`` files of training/evaluation runs into the paper's tables (command line).

Usage (from the repository root)::

    python tools/results.py output/base2new/train_base                      # Table 1 style
    python tools/results.py output/evaluation --table cross --format csv --out out/  # Table 2 style
    python tools/results.py output/ablations/temperature --table ablation-temperature
    python tools/results.py output/ablations/table4 --table table4           # a paper ablation layout

Every run directory written by ``train.py`` holds a ``results.json`` (schema in docs/ARCHITECTURE.md).
Runs are grouped by (method label, dataset, config) and their seeds are aggregated: mean ± std over
seeds, the HM of the means, an Average row per method and the paper's numbers beside ours
(``tools/results_lib``, the library this command wraps, says how; the layouts and numbers are data in
``tools/paper_tables.json`` and ``tools/paper_numbers.json``).

The method label is the run's ``trainer`` plus its optional ``label`` field (``"PromptKD/my-label"``)
plus, for ablation tables or ``--vary``, the value of the varied config key read from the run's resolved
``config.yaml`` (``"PromptKD TEMPERATURE=0.5"``).

Reference-style base-to-novel baselines (train on base classes, then a separate ``--eval-only`` run
with ``DATASET.SUBSAMPLE_CLASSES new``) are supported too: single-accuracy runs whose subsample is
``base`` / ``new`` are paired by (method, dataset, config, seed) into one base/novel record.

Outputs: a Markdown (or CSV) table on stdout and, in ``--out`` (default: the first OUTPUT_DIR),
``results_<table>.md`` / ``.csv``, ``results_<table>.json`` (the aggregated table) and
``hm_<table>.png`` (bar chart of HM, or accuracy, per dataset and method; paper figures: ``<table>.png``,
a line plot). Files are written atomically.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script: the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.results_lib import *  # noqa: E402,F401,F403  (the library's names, for callers of this module)
from tools.results_lib import (DEFAULT_PAPER_FILE, LAYOUTS, TABLE_CHOICES, TABLES, aggregate,  # noqa: E402
                               aggregate_layout, collect_runs, load_paper_numbers, parse_aliases, render, write_table)

logger = logging.getLogger("tools.results")


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
    logging.getLogger("tools.results_lib").setLevel(logging.INFO)
    try:
        if args.table in LAYOUTS:  # table3 ... fig6: the paper's layout; figures also get a line plot
            aliases = parse_aliases(args.alias)
            runs = collect_runs(args.dirs)
            paper = None if args.no_paper else load_paper_numbers(args.paper)
            agg = aggregate_layout(runs, args.table, paper, aliases)
        else:
            vary = list(TABLES[args.table].vary) if args.table in TABLES else []
            vary += [k for k in args.vary if k not in vary]
            runs = collect_runs(args.dirs, vary)
            paper = None if args.no_paper else load_paper_numbers(args.paper)
            agg = aggregate(runs, args.table, paper)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(agg, args.format)
    print(text, end="")
    out = Path(args.out) if args.out else Path(args.dirs[0])
    if out.is_file():
        out = out.parent
    for path in write_table(agg, out, text, args.format, plot=not args.no_plot):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
