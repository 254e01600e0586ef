"""Shared dataset helpers: split files, reference split generation, class subsets, file checks.

These follow the CoOp helper contract (docs/REFERENCE.md A3, the static methods of CoOp's
``OxfordPets``) with the defects fixed:

- ``read_split`` / ``save_split``: the ``split_zhou_*.json`` format ``{"train"|"val"|"test": [[relative
  impath, label, classname], ...]}``. Paths are stored relative to a prefix folder, always with ``/``.
  Saving is atomic (temp file + ``os.replace``).
- ``split_trainval`` and ``read_and_split_data`` generate a split exactly like the reference when the
  official json is absent (per-class shuffle with the *global* ``random`` state, which ``SEED``
  seeds before the dataset is built; rounding as in the reference) -- with directory listings sorted
  so the result does not depend on the file system's listing order.
- ``base_new_labels`` / ``relabel``: base = the first ``ceil(n/2)`` labels, new = the rest, relabelled
  from 0 (the extra class goes to base when ``n`` is odd), as the reference's ``subsample_classes``.
- ``verify_images_exist``: our ``Datum`` does not stat the file system, so readers check image
  existence here (one directory listing per folder instead of one ``stat`` per image) and raise an
  error naming the missing files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from engine.api import Datum, atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "DatasetError", "DatasetFileNotFoundError", "load_json", "to_relpath", "read_split", "entries", "save_split",
    "split_per_class", "split_trainval", "read_and_split_data", "base_new_labels", "relabel", "list_subdirs",
    "list_files", "verify_images_exist", "classnames_from_items", "split_fingerprint",
]

Splits = Tuple[List[Datum], List[Datum], List[Datum]]


class DatasetError(RuntimeError):
    """A dataset root, split file or split content is not what the reader expects."""


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """An expected dataset file or folder does not exist."""


def load_json(path: str, what: str = "JSON file") -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`DatasetError` naming it."""
    if not os.path.isfile(path):
        raise DatasetFileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{what} {path} is not valid JSON ({exc}); delete or re-download it") from exc


# ----------------------------------------------------------------------------------------------
# Split files (split_zhou_*.json)
# ----------------------------------------------------------------------------------------------


def to_relpath(impath: str, prefix: str) -> str:
    """``impath`` relative to ``prefix`` with ``/`` separators (the split-file convention)."""
    head = prefix.rstrip(os.sep) + os.sep
    if impath.startswith(head) and ".." not in impath:  # fast path (ImageNet: 1.3M paths)
        rel = impath[len(head):]
        return rel if os.sep == "/" else rel.replace(os.sep, "/")
    rel = os.path.relpath(impath, prefix)
    if rel.startswith(".."):
        raise DatasetError(f"image path {impath} is not inside {prefix}; cannot store it relative to it")
    return rel.replace(os.sep, "/")


def _parse_entries(entries: Any, split: str, filepath: str, path_prefix: str) -> List[Datum]:
    if not isinstance(entries, list):
        raise DatasetError(f"{filepath}: key '{split}' must be a list of [impath, label, classname] entries")
    out = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
            raise DatasetError(
                f"{filepath}: entry {i} of '{split}' is {entry!r}; expected [relative_impath, label, classname]"
            )
        impath, label, classname = entry
        try:
            label = int(label)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{filepath}: entry {i} of '{split}' has a non-integer label {label!r}") from exc
        out.append(Datum(impath=os.path.join(path_prefix, str(impath)), label=label, classname=str(classname)))
    return out


def read_split(filepath: str, path_prefix: str) -> Splits:
    """Read a ``split_zhou_*.json`` file; impaths are joined to ``path_prefix`` (reference ``read_split``)."""
    data = load_json(filepath, "split file")
    if not isinstance(data, dict):
        raise DatasetError(f"split file {filepath} must hold an object with keys train/val/test")
    missing = [k for k in ("train", "val", "test") if k not in data]
    if missing:
        raise DatasetError(f"split file {filepath} lacks key(s) {missing}; expected train/val/test")
    return tuple(_parse_entries(data[k], k, filepath, path_prefix) for k in ("train", "val", "test"))  # type: ignore[return-value]


def entries(items: Iterable[Datum], prefix: str) -> List[list]:
    """``[[relative impath, label, classname], ...]``: the stored form of a list (split and cache files)."""
    return [[to_relpath(it.impath, prefix), int(it.label), it.classname] for it in items]


def save_split(train: Sequence[Datum], val: Sequence[Datum], test: Sequence[Datum], filepath: str, path_prefix: str,
               extra: Optional[Mapping[str, Any]] = None) -> None:
    """Save a split in the ``split_zhou`` format (paths relative to ``path_prefix``), atomically.

    ``extra`` adds keys next to train/val/test (e.g. a provenance header); readers ignore them.
    """
    splits = {"train": train, "val": val, "test": test}
    atomic_write_json(filepath, {**(extra or {}), **{k: entries(v, path_prefix) for k, v in splits.items()}})
    logger.info("Saved split to %s", filepath)


# ----------------------------------------------------------------------------------------------
# Split generation (reference behaviour when the official split file is absent)
# ----------------------------------------------------------------------------------------------


def split_per_class(groups: Iterable[Tuple[str, List[Datum]]], ratios: Sequence[float], rng: Any = random,
                    advice: str = "") -> Splits:
    """Shuffle each ``(description, items of one class)`` group and cut it into train/val/test by ``ratios``.

    ``round(n * ratios[0])`` train, ``round(n * ratios[1])`` val, the rest test (reference rounding);
    every part must be non-empty (val only when ``ratios[1] > 0``), else the error names the group.
    """
    train: List[Datum] = []
    val: List[Datum] = []
    test: List[Datum] = []
    for what, group in groups:
        rng.shuffle(group)
        n = len(group)
        n_train, n_val = round(n * ratios[0]), round(n * ratios[1])
        if n_train <= 0 or n - n_train - n_val <= 0 or (ratios[1] > 0 and n_val <= 0):
            raise DatasetError(f"{what} has {n} image(s), too few for the {'/'.join(f'{r:g}' for r in ratios)} "
                               f"train/val/test split{advice}")
        train += group[:n_train]
        val += group[n_train : n_train + n_val]
        test += group[n_train + n_val :]
    return train, val, test


def split_trainval(trainval: Sequence[Datum], p_val: float = 0.2) -> Tuple[List[Datum], List[Datum]]:
    """Per class, shuffle and move the first ``round(n * p_val)`` items to val (reference ``split_trainval``).

    Uses the global ``random`` state. Classes are visited in first-seen order, as in the reference.
    Every class must get at least one val item.
    """
    tracker: Dict[int, List[int]] = {}
    for idx, item in enumerate(trainval):
        tracker.setdefault(item.label, []).append(idx)
    train, val = [], []
    for label, idxs in tracker.items():
        n_val = round(len(idxs) * p_val)
        if n_val <= 0:
            raise DatasetError(
                f"class {label} ('{trainval[idxs[0]].classname}') has only {len(idxs)} train+val image(s): a "
                f"{p_val:.0%} val split needs at least {math.ceil(0.5 / p_val)} (download the official split file instead)"
            )
        random.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def read_and_split_data(image_dir: str, p_trn: float = 0.5, p_val: float = 0.2, ignored: Sequence[str] = (),
                        new_cnames: Optional[Mapping[str, str]] = None) -> Splits:
    """One folder per class -> per-class 50/20/30 train/val/test split (reference ``read_and_split_data``).

    Labels are the index of the class folder in sorted order (minus ``ignored``); class names are
    renamed through ``new_cnames``. Files inside a class folder are sorted before the shuffle.
    """
    categories = [c for c in list_subdirs(image_dir) if c not in set(ignored)]
    if not categories:
        raise DatasetError(f"no class folders found in {image_dir}")
    groups = []
    for label, category in enumerate(categories):
        category_dir = os.path.join(image_dir, category)
        cname = (new_cnames or {}).get(category, category)
        images = [Datum(impath=os.path.join(category_dir, f), label=label, classname=cname) for f in list_files(category_dir)]
        if not images:
            raise DatasetError(f"empty class folder {category_dir}: every class needs images")
        groups.append((f"class folder {category_dir}", images))
    return split_per_class(groups, (p_trn, p_val, 1 - p_trn - p_val))


# ----------------------------------------------------------------------------------------------
# Base / new classes
# ----------------------------------------------------------------------------------------------


def base_new_labels(labels: Iterable[int]) -> Tuple[List[int], List[int]]:
    """Sorted label set split into base = first ``ceil(n/2)`` and new = the remaining ``floor(n/2)``."""
    ordered = sorted(set(labels))
    m = math.ceil(len(ordered) / 2)
    return ordered[:m], ordered[m:]


def relabel(items: Sequence[Datum], selected: Sequence[int]) -> List[Datum]:
    """Keep the items whose label is in ``selected`` and relabel them to their index in ``selected``.

    One pass; when the mapping is the identity the original ``Datum`` objects are reused (no copies).
    """
    mapping = {old: new for new, old in enumerate(selected)}
    if all(old == new for old, new in mapping.items()):
        return [it for it in items if it.label in mapping]
    return [Datum(impath=it.impath, label=mapping[it.label], domain=it.domain, classname=it.classname)
            for it in items if it.label in mapping]


# ----------------------------------------------------------------------------------------------
# File system helpers
# ----------------------------------------------------------------------------------------------


def list_subdirs(path: str) -> List[str]:
    """Sorted names of the non-hidden sub-folders of ``path`` (error naming ``path`` if it is missing)."""
    if not os.path.isdir(path):
        raise DatasetFileNotFoundError(f"folder not found: {path}")
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def list_files(path: str) -> List[str]:
    """Sorted names of the non-hidden regular files in ``path``."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_file())


def verify_images_exist(items: Iterable[Datum], context: str, max_listed: int = 5) -> None:
    """Raise :class:`DatasetFileNotFoundError` naming missing image files (``context`` says where they come from).

    Lists each parent folder once instead of stat-ing every image (ImageNet: ~2k listings, not 1.3M stats);
    the same image in several lists (test and its base/novel halves) counts once.
    """
    by_dir: Dict[str, set] = {}
    missing: List[str] = []
    for impath in dict.fromkeys(it.impath for it in items):
        folder, name = os.path.split(impath)
        if folder not in by_dir:
            try:
                with os.scandir(folder) as entries_:
                    by_dir[folder] = {e.name for e in entries_ if e.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                by_dir[folder] = set()
        if name not in by_dir[folder]:
            missing.append(impath)
    if missing:
        also = f" (also: {', '.join(missing[1:max_listed])})" if len(missing) > 1 and max_listed > 1 else ""
        raise DatasetFileNotFoundError(
            f"{len(missing)} image file(s) listed by {context} do not exist, e.g. {missing[0]}{also}"
            ". Check that the images were extracted into the expected folder (see DATASETS.md)."
        )


def classnames_from_items(splits: Mapping[str, Sequence[Datum]], context: str) -> List[str]:
    """Class names in label order from labelled items; labels must be 0..N-1 with one name each."""
    lab2cname: Dict[int, str] = {}
    for split, items in splits.items():
        for it in items:
            prev = lab2cname.setdefault(it.label, it.classname)
            if prev != it.classname:
                raise DatasetError(
                    f"{context}: label {it.label} is named both {prev!r} and {it.classname!r} "
                    f"(split '{split}', {it.impath}); the split file is inconsistent"
                )
    if not lab2cname:
        raise DatasetError(f"{context}: no labelled items")
    n = max(lab2cname) + 1
    gaps = [lab for lab in range(n) if lab not in lab2cname]
    if min(lab2cname) < 0 or gaps:
        raise DatasetError(f"{context}: labels must be 0..{n - 1} without gaps; missing {gaps[:10]}")
    return [lab2cname[i] for i in range(n)]


def split_fingerprint(splits: Mapping[str, Sequence[Datum]], prefix: str) -> str:
    """sha1 over each split's sorted (relative path, label) pairs: identifies the full split content."""
    h = hashlib.sha1()
    for name in sorted(splits):
        rows = sorted(f"{to_relpath(it.impath, prefix)}\t{int(it.label)}" for it in splits[name])
        h.update(f"[{name}]\n".encode() + "\n".join(rows).encode("utf-8") + b"\n")
    return h.hexdigest()
