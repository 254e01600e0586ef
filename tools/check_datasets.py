"""Check a $DATA root holding the CoOp benchmark datasets before training on it.

Usage (from the repository root)::

    python tools/check_datasets.py --root $DATA                      # all 15 datasets
    python tools/check_datasets.py --root $DATA --dataset dtd --dataset OxfordPets
    python tools/check_datasets.py --root $DATA --dataset dtd --skip-counts   # a subset / miniature copy
    python tools/check_datasets.py --dataset custom --root my_data                       # your data, folder mode
    python tools/check_datasets.py --dataset custom --root my_data --csv data.csv --classnames classnames.txt
    python tools/check_datasets.py --dataset configs/datasets/my_data.yaml --root my_data  # your dataset yaml

Per dataset: folder found or missing, the split file and required files, empty class folders, the
split read exactly as training reads it (nothing is written: no split file is generated, no cache is
saved), class count and split sizes against the expected numbers (PromptKD Table 8 / CoOp statistics,
``datasets/catalog.py``), every listed image present, and a sample of images opened with PIL. Prints a
table, then one actionable message per problem. Exit code 1 when any checked dataset has a problem.

A custom dataset (``ImageFolderCustom``, DATASETS.md "Custom datasets"; ``--root`` is the dataset folder
itself) is read with the same config keys as training (``configs/datasets/custom.yaml`` or your yaml,
then ``--csv`` / ``--classnames`` / ``--image-dir`` / ``--template``). Checked: the listing and split
(the generated split is computed but not written), every image opened, the class names (base and novel
halves listed), every class present in train and test, images listed twice and byte-identical images
under two paths (a train/test leak), the template.
"""

from __future__ import annotations

import argparse
import hashlib
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

__all__ = ["DatasetReport", "check_dataset", "check_custom", "check_root", "format_table", "main"]

CUSTOM_NAMES = ("custom", "imagefoldercustom")


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
    notes: List[str] = field(default_factory=list)  # facts printed under the table (custom datasets)

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
        report.problems += unreadable_images(rng.sample(unique, min(sample, len(unique))),
                                             "re-download or delete it from the split")
    if report.problems:
        report.status = "PROBLEM"
    return report


def unreadable_images(items, fix: str) -> List[str]:
    """One problem line per image (Datum) that PIL cannot decode fully, ending with ``fix``."""
    problems = []
    for it in items:
        try:
            with Image.open(it.impath) as img:
                img.convert("RGB").load()
        except Exception as exc:  # any decoder failure is a problem to report, not to raise
            problems.append(f"unreadable image {it.impath}: {exc}; {fix}")
    return problems


def custom_cfg(root: str, config_file: str = "", overrides: Optional[Dict[str, str]] = None):
    """The training config of a custom dataset: defaults -> dataset yaml (default custom.yaml) -> overrides."""
    from engine.api import get_cfg_default
    from engine.config import merge_from_file_checked

    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    merge_from_file_checked(cfg, config_file or os.path.join(repo, "configs", "datasets", "custom.yaml"))
    cfg.DATASET.ROOT = root
    for key, value in (overrides or {}).items():
        cfg.DATASET.CUSTOM[key] = value
    return cfg


def _file_digest(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _duplicate_problems(splits: Dict[str, list]) -> List[str]:
    """Images listed twice, and byte-identical files under two paths (named with their splits)."""
    problems = []
    where: Dict[str, List[str]] = {}
    for split, items in splits.items():
        for it in items:
            where.setdefault(it.impath, []).append(split)
    twice = {p: s for p, s in where.items() if len(s) > 1}
    if twice:
        path, in_splits = next(iter(twice.items()))
        problems.append(f"{len(twice)} image(s) listed more than once, e.g. {path} in {'+'.join(in_splits)}: "
                        "list every image once (one row, one split)")
    by_digest: Dict[str, List[str]] = {}
    for path in where:
        by_digest.setdefault(_file_digest(path), []).append(path)
    same = [paths for paths in by_digest.values() if len(paths) > 1]
    if same:
        a, b = same[0][:2]
        problems.append(f"{sum(len(p) - 1 for p in same)} image file(s) are byte-identical copies of another, e.g. "
                        f"{a} ({'+'.join(where[a])}) == {b} ({'+'.join(where[b])}): remove the copies "
                        "(a copy in train and test inflates the test accuracy)")
    return problems


def _short_list(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_custom(root: str, config_file: str = "", overrides: Optional[Dict[str, str]] = None) -> DatasetReport:
    """Check a custom dataset (``ImageFolderCustom``) in ``root`` as training will read it; nothing is written."""
    from datasets.custom import ImageFolderCustom
    from datasets.templates import dataset_display_name, dataset_template

    root = os.path.abspath(os.path.expanduser(root))
    report = DatasetReport(name="ImageFolderCustom", folder=root)
    try:
        cfg = custom_cfg(root, config_file, overrides)
        report.name = dataset_display_name(cfg)
        template = dataset_template(cfg)
        train, val, test, classnames = ImageFolderCustom.inspect(root, cfg)
    except (DatasetError, OSError, ValueError, KeyError) as exc:
        report.problems.append(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc))
        report.status = "MISSING" if not os.path.isdir(root) else "PROBLEM"
        return report
    splits = {"train": train, "val": val, "test": test}
    report.classes = len(classnames)
    base, novel = base_new_labels(range(len(classnames)))
    report.sizes = {k: len(v) for k, v in splits.items()}
    report.notes.append(f"template: {template!r} -> e.g. {template.format(classnames[0])!r}")
    report.notes.append(f"base classes ({len(base)}): {_short_list([classnames[i] for i in base])}")
    report.notes.append(f"novel classes ({len(novel)}): {_short_list([classnames[i] for i in novel])}")
    per_class = {k: [0] * len(classnames) for k in splits}
    for k, items in splits.items():
        for it in items:
            per_class[k][it.label] += 1
    report.notes.append("images per class: " + ", ".join(
        f"{k} {min(c)}-{max(c)}" for k, c in per_class.items() if sum(c)))
    if len(classnames) < 2:
        report.problems.append(f"{len(classnames)} class(es): base-to-novel needs at least 2 (one base, one novel)")
    for k in ("train", "test"):
        empty = [classnames[i] for i, c in enumerate(per_class[k]) if c == 0]
        if empty:
            report.problems.append(f"class(es) without {k} images: {_short_list(empty, 5)}; add images or fix the split")
    blank = [i for i, c in enumerate(classnames) if not c.strip()]
    if blank:
        report.problems.append(f"empty class name at label(s) {blank[:5]}: the text prompts need a name per class")
    try:
        verify_images_exist((it for items in splits.values() for it in items), f"the {report.name} listing")
    except DatasetError as exc:
        report.problems.append(str(exc))
    else:
        report.problems += _duplicate_problems(splits)
        report.problems += unreadable_images({it.impath: it for items in splits.values() for it in items}.values(),
                                             "replace or delete it")
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
    for r in reports:
        if r.notes:
            lines += ["", f"{r.name}:"] + [f"  {n}" for n in r.notes]
    problems = [(r.name, p) for r in reports for p in r.problems]
    if problems:
        lines += ["", "Problems:"]
        lines += [f"- {name}: {p}" for name, p in problems]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the $DATA folder (DATASET.ROOT); for a custom dataset its own folder")
    parser.add_argument("--dataset", action="append", default=None,
                        help="dataset to check: registered name (DescribableTextures) or config name (dtd); repeatable; "
                        "default all 15. 'custom' or the path of a dataset yaml: your own data in --root")
    custom = parser.add_argument_group("custom dataset (the DATASET.CUSTOM keys; default: the CUSTOM_* variables of "
                                       "scripts/common.sh, else the dataset yaml's values)")
    env = os.environ.get
    custom.add_argument("--csv", default=env("CUSTOM_CSV") or None,
                        help="CSV mode: path,label[,split] file relative to --root ('' = folder mode; $CUSTOM_CSV)")
    custom.add_argument("--classnames", default=env("CUSTOM_CLASSNAMES") or None,
                        help="class-name file (CLASSNAMES_FILE; $CUSTOM_CLASSNAMES)")
    custom.add_argument("--image-dir", default=None, help="image folder relative to --root (IMAGE_DIR, default images)")
    custom.add_argument("--template", default=env("CUSTOM_TEMPLATE") or None,
                        help="prompt template with {} (TEMPLATE; $CUSTOM_TEMPLATE)")
    custom.add_argument("--name", default=env("CUSTOM_NAME") or None, help="the dataset's name in results (NAME; $CUSTOM_NAME)")
    parser.add_argument("--sample", type=int, default=16, help="images opened with PIL per dataset (default 16)")
    parser.add_argument("--skip-counts", action="store_true",
                        help="do not compare class count and split sizes with the benchmark numbers (subsets, miniature copies)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"--root {args.root} is not a folder", file=sys.stderr)
        return 1
    wanted = args.dataset or list(CATALOG)
    custom_specs = [n for n in wanted if n.lower() in CUSTOM_NAMES or n.endswith((".yaml", ".yml"))]
    try:
        names = [lookup(n).name for n in wanted if n not in custom_specs]
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    overrides = {key: value for key, value in (("CSV", args.csv), ("CLASSNAMES_FILE", args.classnames),
                                               ("IMAGE_DIR", args.image_dir), ("TEMPLATE", args.template),
                                               ("NAME", args.name)) if value is not None}
    reports = check_root(args.root, names, sample=args.sample, check_counts=not args.skip_counts) if names else []
    for spec in custom_specs:
        if spec.endswith((".yaml", ".yml")) and not os.path.isfile(spec):
            print(f"--dataset {spec}: dataset yaml not found", file=sys.stderr)
            return 1
        reports.append(check_custom(args.root, "" if spec.lower() in CUSTOM_NAMES else spec, overrides))
    print(format_table(reports, check_counts=not args.skip_counts))
    bad = [r.name for r in reports if not r.ok]
    print("\nAll checked datasets are OK." if not bad else f"\n{len(bad)} dataset(s) with problems: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    from engine.cli_errors import run_cli

    sys.exit(run_cli(main, "check_datasets"))
