"""Check a $DATA root holding the CoOp benchmark datasets before training on it.

Usage (from the repository root)::

    python tools/check_datasets.py --root $DATA                      # all 15 datasets
    python tools/check_datasets.py --root $DATA --dataset dtd --dataset OxfordPets
    python tools/check_datasets.py --root $DATA --dataset dtd --skip-counts   # a subset / miniature copy

Per dataset: folder found or missing, the split file and required files, empty class folders, the
split read exactly as training reads it (nothing is written: no split file is generated, no cache is
saved), class count and split sizes against the expected numbers (PromptKD Table 8 / CoOp statistics,
``datasets/catalog.py``), every listed image present, and a sample of images opened with PIL. Prints a
table, then one actionable message per problem. Exit code 1 when any checked dataset has a problem.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PIL import Image  # noqa: E402

import datasets  # noqa: E402,F401  (registers the datasets)
from datasets.catalog import CATALOG, DatasetInfo, lookup  # noqa: E402
from datasets.utils import DatasetError, base_new_labels, verify_images_exist  # noqa: E402
from engine.api import DATASET_REGISTRY  # noqa: E402

__all__ = ["DatasetReport", "check_dataset", "check_root", "format_table", "main"]


@dataclass
class DatasetReport:
    """What the checker found for one dataset."""

    name: str
    folder: str
    status: str = "OK"  # OK | MISSING | PROBLEM
    classes: Optional[int] = None
    sizes: Dict[str, int] = field(default_factory=dict)
    expected: Optional[DatasetInfo] = None
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _structure_problems(info: DatasetInfo, ddir: str) -> List[str]:
    problems = []
    if info.split_file and not os.path.isfile(os.path.join(ddir, info.split_file)):
        where = info.mirror or "the CoOp DATASETS.md link"
        problems.append(
            f"{info.split_file} missing: download it from {where} into {ddir} "
            "(without it a random split is generated, which is not the split of the papers)"
        )
    for rel in info.required:
        if not os.path.exists(os.path.join(ddir, rel)):
            problems.append(f"{info.folder}/{rel} missing: {info.download_hint}")
    for rel in info.class_dirs:
        cdir = os.path.join(ddir, rel)
        if not os.path.isdir(cdir):
            continue
        with os.scandir(cdir) as it:
            subdirs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        for sub in subdirs:
            with os.scandir(os.path.join(cdir, sub)) as it:
                if not any(e.is_file() and not e.name.startswith(".") for e in it):
                    problems.append(f"empty class folder {os.path.join(cdir, sub)}: re-extract the archive")
    return problems


def _count_problems(info: DatasetInfo, classes: int, sizes: Dict[str, int]) -> List[str]:
    keys = [k for k in ("train", "val", "test", "test_base", "test_novel") if getattr(info, k) is not None and k in sizes]
    wrong = [k for k in keys if sizes[k] != getattr(info, k)]
    problems = []
    if classes != info.classes:
        problems.append(f"{classes} classes found, expected {info.classes}: an incomplete download or a wrong class list?")
    if wrong:
        got = "/".join(f"{sizes[k]:,}" for k in keys)
        want = "/".join(f"{getattr(info, k):,}" for k in keys)
        problems.append(
            f"split sizes {'/'.join(keys)} = {got}, expected {want} (PromptKD Table 8 / CoOp statistics): "
            "an incomplete download or a different split file?"
        )
    return problems


def check_dataset(
    name: str,
    root: str,
    expected: Optional[DatasetInfo] = None,
    sample: int = 16,
    check_counts: bool = True,
) -> DatasetReport:
    """Check one dataset under ``root``; ``expected`` overrides the catalog's expected counts."""
    info = lookup(name)
    expected = expected or info
    report = DatasetReport(name=info.name, folder=info.folder, expected=expected)
    ddir = os.path.join(os.path.abspath(os.path.expanduser(root)), info.folder)
    if not os.path.isdir(ddir):
        report.status = "MISSING"
        report.problems.append(f"{info.folder}/ not found under {root}: {info.download_hint}")
        return report
    report.problems += _structure_problems(info, ddir)

    cls = DATASET_REGISTRY.get(info.name)
    try:
        train, val, test, classnames = cls.inspect(root)
    except (DatasetError, OSError, ValueError, KeyError) as exc:
        report.problems.append(str(exc))
        report.status = "PROBLEM"
        return report

    report.classes = len(classnames)
    base, novel = base_new_labels(range(len(classnames)))
    base_set = set(base)
    report.sizes = {"train": len(train), "val": len(val), "test": len(test),
                    "test_base": sum(1 for it in test if it.label in base_set)}
    report.sizes["test_novel"] = len(test) - report.sizes["test_base"]
    if check_counts:
        report.problems += _count_problems(expected, report.classes, report.sizes)

    unique = list({it.impath: it for it in (*train, *val, *test)}.values())
    try:
        verify_images_exist(unique, f"the {info.name} split")
    except DatasetError as exc:
        report.problems.append(str(exc))
    else:
        rng = random.Random(0)
        for it in rng.sample(unique, min(sample, len(unique))):
            try:
                with Image.open(it.impath) as img:
                    img.convert("RGB").load()
            except Exception as exc:  # any decoder failure is a problem to report, not to raise
                report.problems.append(f"unreadable image {it.impath}: {exc}; re-download or delete it from the split")
    if report.problems:
        report.status = "PROBLEM"
    return report


def check_root(root: str, names: Optional[Sequence[str]] = None, sample: int = 16, check_counts: bool = True) -> List[DatasetReport]:
    """Check every dataset in ``names`` (default: all 15) under ``root``."""
    return [check_dataset(n, root, sample=sample, check_counts=check_counts) for n in (names or list(CATALOG))]


def _fmt(value: Optional[int], want: Optional[int], check: bool) -> str:
    if value is None:
        return "-"
    if not check or want is None or value == want:
        return f"{value:,}"
    return f"{value:,} (exp {want:,})"


def format_table(reports: Sequence[DatasetReport], check_counts: bool = True) -> str:
    """A plain-text table (one row per dataset) followed by the problems."""
    header = ["dataset", "folder", "status", "classes", "train", "val", "test"]
    rows = [header]
    for r in reports:
        e = r.expected
        rows.append([
            r.name, r.folder + "/", r.status,
            _fmt(r.classes, e.classes if e else None, check_counts),
            _fmt(r.sizes.get("train"), e.train if e else None, check_counts),
            _fmt(r.sizes.get("val"), e.val if e else None, check_counts),
            _fmt(r.sizes.get("test"), e.test if e else None, check_counts),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    problems = [(r.name, p) for r in reports for p in r.problems]
    if problems:
        lines += ["", "Problems:"]
        lines += [f"- {name}: {p}" for name, p in problems]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the $DATA folder (DATASET.ROOT)")
    parser.add_argument("--dataset", action="append", default=None,
                        help="dataset to check: registered name (DescribableTextures) or config name (dtd); repeatable; default all 15")
    parser.add_argument("--sample", type=int, default=16, help="images opened with PIL per dataset (default 16)")
    parser.add_argument("--skip-counts", action="store_true",
                        help="do not compare class count and split sizes with the benchmark numbers (subsets, miniature copies)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"--root {args.root} is not a folder", file=sys.stderr)
        return 1
    try:
        names = [lookup(n).name for n in args.dataset] if args.dataset else list(CATALOG)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    reports = check_root(args.root, names, sample=args.sample, check_counts=not args.skip_counts)
    print(format_table(reports, check_counts=not args.skip_counts))
    bad = [r.name for r in reports if not r.ok]
    print("\nAll checked datasets are OK." if not bad else f"\n{len(bad)} dataset(s) with problems: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    from engine.cli_errors import run_cli

    sys.exit(run_cli(main, "check_datasets"))
