"""Shared dataset helpers: split files, reference split generation, class subsampling, file checks.

These follow the CoOp helper contract (docs/REFERENCE.md A3, the static methods of CoOp's
``OxfordPets``) with the defects fixed:

- ``read_split`` / ``save_split``: the ``split_zhou_*.json`` format ``{"train"|"val"|"test": [[relative
  impath, label, classname], ...]}``. Paths are stored relative to a prefix folder, always with ``/``.
  Saving is atomic (temp file + ``os.replace``).
- ``split_trainval`` and ``read_and_split_data`` generate a split exactly like the reference when the
  official json is absent (per-class shuffle with the *global* ``random`` state, which ``SEED``
  seeds before the dataset is built; rounding as in the reference) -- with directory listings sorted
  so the result does not depend on the file system's listing order.
- ``subsample_classes``: base = the first ``ceil(n/2)`` labels of the first list, new = the rest,
  relabelled from 0 (the extra class goes to base when ``n`` is odd).
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
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from engine.api import Datum, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "DatasetError",
    "DatasetFileNotFoundError",
    "HF_MIRROR",
    "atomic_write_json",
    "load_json",
    "to_relpath",
    "read_split",
    "save_split",
    "split_trainval",
    "read_and_split_data",
    "subsample_classes",
    "base_new_labels",
    "relabel",
    "list_subdirs",
    "list_files",
    "verify_images_exist",
    "read_wnid_classnames",
    "classnames_from_items",
    "split_fingerprint",
]

#: Hugging Face mirror of the 14 non-ImageNet datasets with their split_zhou_*.json files.
HF_MIRROR = "https://huggingface.co/datasets/zhengli97/prompt_learning_dataset"


class DatasetError(RuntimeError):
    """A dataset root, split file or split content is not what the reader expects."""


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """An expected dataset file or folder does not exist."""


# ----------------------------------------------------------------------------------------------
# JSON I/O
# ----------------------------------------------------------------------------------------------


def atomic_write_json(path: str, obj: Any, indent: Optional[int] = 4) -> None:
    """Write ``obj`` as JSON to ``path`` through a temp file in the same folder + ``os.replace``
    (:func:`engine.fileio.atomic_write_text`); ``indent=None`` writes compact JSON.

    A crash mid-write leaves the previous file (or no file), never a truncated one.
    """
    text = json.dumps(obj, indent=indent, separators=(",", ": ") if indent else (",", ":"))
    atomic_write_text(path, text + "\n")


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


def read_split(filepath: str, path_prefix: str) -> Tuple[List[Datum], List[Datum], List[Datum]]:
    """Read a ``split_zhou_*.json`` file; impaths are joined to ``path_prefix`` (reference ``read_split``)."""
    data = load_json(filepath, "split file")
    if not isinstance(data, dict):
        raise DatasetError(f"split file {filepath} must hold an object with keys train/val/test")
    missing = [k for k in ("train", "val", "test") if k not in data]
    if missing:
        raise DatasetError(f"split file {filepath} lacks key(s) {missing}; expected train/val/test")
    return tuple(_parse_entries(data[k], k, filepath, path_prefix) for k in ("train", "val", "test"))  # type: ignore[return-value]


def _entries(items: Iterable[Datum], prefix: str) -> List[list]:
    return [[to_relpath(it.impath, prefix), int(it.label), it.classname] for it in items]


def save_split(
    train: Sequence[Datum],
    val: Sequence[Datum],
    test: Sequence[Datum],
    filepath: str,
    path_prefix: str,
    extra: Optional[Mapping[str, Any]] = None,
) -> None:
    """Save a split in the ``split_zhou`` format (paths relative to ``path_prefix``), atomically.

    ``extra`` adds keys next to train/val/test (e.g. a provenance header); readers ignore them.
    """
    obj: Dict[str, Any] = {}
    if extra:
        obj.update(extra)
    obj.update({"train": _entries(train, path_prefix), "val": _entries(val, path_prefix), "test": _entries(test, path_prefix)})
    atomic_write_json(filepath, obj)
    logger.info("Saved split to %s", filepath)


# ----------------------------------------------------------------------------------------------
# Split generation (reference behaviour when the official split file is absent)
# ----------------------------------------------------------------------------------------------


def split_trainval(trainval: Sequence[Datum], p_val: float = 0.2, rng: Optional[random.Random] = None) -> Tuple[List[Datum], List[Datum]]:
    """Per class, shuffle and move the first ``round(n * p_val)`` items to val (reference ``split_trainval``).

    Uses the global ``random`` state unless ``rng`` is given. Classes are visited in first-seen
    order, as in the reference. Every class must get at least one val item.
    """
    rand = rng if rng is not None else random
    tracker: "OrderedDict[int, List[int]]" = OrderedDict()
    for idx, item in enumerate(trainval):
        tracker.setdefault(item.label, []).append(idx)
    train, val = [], []
    for label, idxs in tracker.items():
        n_val = round(len(idxs) * p_val)
        if n_val <= 0:
            cname = trainval[idxs[0]].classname
            raise DatasetError(
                f"class {label} ('{cname}') has only {len(idxs)} train+val image(s): a {p_val:.0%} val split "
                f"needs at least {math.ceil(0.5 / p_val)} (download the official split file instead)"
            )
        rand.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def read_and_split_data(
    image_dir: str,
    p_trn: float = 0.5,
    p_val: float = 0.2,
    ignored: Sequence[str] = (),
    new_cnames: Optional[Mapping[str, str]] = None,
    rng: Optional[random.Random] = None,
) -> Tuple[List[Datum], List[Datum], List[Datum]]:
    """One folder per class -> per-class 50/20/30 train/val/test split (reference ``read_and_split_data``).

    Labels are the index of the class folder in sorted order (minus ``ignored``); class names are
    renamed through ``new_cnames``. Files inside a class folder are sorted before the shuffle.
    """
    rand = rng if rng is not None else random
    categories = [c for c in list_subdirs(image_dir) if c not in set(ignored)]
    if not categories:
        raise DatasetError(f"no class folders found in {image_dir}")
    train, val, test = [], [], []
    for label, category in enumerate(categories):
        category_dir = os.path.join(image_dir, category)
        images = [os.path.join(category_dir, f) for f in list_files(category_dir)]
        if not images:
            raise DatasetError(f"empty class folder {category_dir}: every class needs images")
        rand.shuffle(images)
        n_total = len(images)
        n_train = round(n_total * p_trn)
        n_val = round(n_total * p_val)
        n_test = n_total - n_train - n_val
        if n_train <= 0 or n_val <= 0 or n_test <= 0:
            raise DatasetError(
                f"class folder {category_dir} has {n_total} image(s), too few for a "
                f"{p_trn:g}/{p_val:g}/{1 - p_trn - p_val:g} train/val/test split"
            )
        cname = new_cnames.get(category, category) if new_cnames else category
        train += [Datum(impath=p, label=label, classname=cname) for p in images[:n_train]]
        val += [Datum(impath=p, label=label, classname=cname) for p in images[n_train : n_train + n_val]]
        test += [Datum(impath=p, label=label, classname=cname) for p in images[n_train + n_val :]]
    return train, val, test


# ----------------------------------------------------------------------------------------------
# Base / new class subsampling
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
    identity = all(old == new for old, new in mapping.items())
    out = []
    for it in items:
        new = mapping.get(it.label)
        if new is None:
            continue
        out.append(it if identity else Datum(impath=it.impath, label=new, domain=it.domain, classname=it.classname))
    return out


def subsample_classes(*datasets: Sequence[Datum], subsample: str = "all") -> List[List[Datum]]:
    """Reference ``subsample_classes``: select base/new classes of the first list and relabel every list."""
    if subsample not in ("all", "base", "new"):
        raise ValueError(f"subsample must be 'all', 'base' or 'new', got {subsample!r}")
    if subsample == "all":
        return [list(d) for d in datasets]
    base, new = base_new_labels(it.label for it in datasets[0])
    selected = base if subsample == "base" else new
    logger.info("Subsampling %s classes (%d of %d)", subsample.upper(), len(selected), len(base) + len(new))
    return [relabel(d, selected) for d in datasets]


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

    Lists each parent folder once instead of stat-ing every image (ImageNet: ~2k listings, not 1.3M stats).
    """
    by_dir: Dict[str, set] = {}
    missing: List[str] = []
    n_missing = 0
    seen: set = set()
    for it in items:
        if it.impath in seen:  # the same image in several lists (test and its base/novel halves) counts once
            continue
        seen.add(it.impath)
        d, name = os.path.split(it.impath)
        names = by_dir.get(d)
        if names is None:
            try:
                with os.scandir(d) as entries:
                    names = {e.name for e in entries if e.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                names = set()
            by_dir[d] = names
        if name not in names:
            n_missing += 1
            if len(missing) < max_listed:
                missing.append(it.impath)
    if n_missing:
        raise DatasetFileNotFoundError(
            f"{n_missing} image file(s) listed by {context} do not exist, e.g. {missing[0]}"
            + (f" (also: {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + ". Check that the images were extracted into the expected folder (see DATASETS.md)."
        )


def read_wnid_classnames(path: str, source_hint: str = "") -> "OrderedDict[str, str]":
    """Read an ImageNet-style ``classnames.txt`` (``"<wnid> <class name words>"`` per line) in file order."""
    if not os.path.isfile(path):
        raise DatasetFileNotFoundError(
            f"class-name file not found: {path}. "
            + (source_hint or "It holds one '<wnid> <class name>' line per class (CLIP's ImageNet class names); see DATASETS.md.")
        )
    out: "OrderedDict[str, str]" = OrderedDict()
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise DatasetError(f"{path}:{lineno}: expected '<wnid> <class name>', got {line!r}")
            wnid, name = parts
            if wnid in out:
                raise DatasetError(f"{path}:{lineno}: duplicate folder id {wnid!r}")
            out[wnid] = name
    if not out:
        raise DatasetError(f"class-name file {path} is empty")
    return out


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
        h.update(f"[{name}]\n".encode())
        rows = sorted(f"{to_relpath(it.impath, prefix)}\t{int(it.label)}" for it in splits[name])
        h.update("\n".join(rows).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
