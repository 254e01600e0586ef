"""``ImageFolderCustom``: your own images through the same protocol as the benchmarks.

``DATASET.NAME ImageFolderCustom``, ``DATASET.ROOT <folder>`` and the ``DATASET.CUSTOM`` node
(see :func:`datasets.config.extend_cfg`). Two input modes:

- **folder mode** (``CUSTOM.CSV`` empty): ``<ROOT>/<IMAGE_DIR>/<class>/<image>``; classes are the
  sorted sub-folders; names are the folder names with ``_`` -> space, or come from
  ``CLASSNAMES_FILE`` lines ``"<folder> <class name>"``.
- **CSV mode**: ``<ROOT>/<CSV>`` with a header ``path,label[,split]``; ``path`` is relative to
  ``IMAGE_DIR`` (or absolute); ``label`` is a 0-based index into ``CLASSNAMES_FILE`` (one class name
  per line) or an exact class name; ``split`` is train / val / test.

Without a split column, a per-class ``SPLIT_RATIOS`` (default 50/20/30) split is drawn with a
dedicated RNG (``SPLIT_SEED``) and saved to ``<ROOT>/<SPLIT_FILE>`` in the ``split_zhou`` format,
together with a fingerprint of the source listing; it is reused while the data is unchanged and
regenerated (with a warning) when images or classes change. Base/new classes, few-shot sampling,
label dropping and the evaluation sets then come from :mod:`datasets.protocol`, as for the benchmarks.
``self.template`` holds ``CUSTOM.TEMPLATE`` for text-side trainers and ``self.display_name`` holds
``CUSTOM.NAME`` (default: the name of the ``DATASET.ROOT`` folder), the dataset's name in results.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
from typing import Any, Dict, List, Optional, Tuple

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, read_lines, require_dir, require_file
from .utils import (DatasetError, Splits, classnames_from_items, list_files, list_subdirs, load_json, read_split, save_split,
                    split_per_class, to_relpath)

logger = logging.getLogger(__name__)

__all__ = ["ImageFolderCustom", "IMG_EXTENSIONS"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")


def _resolve(root: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(root, path)


def _check_distinct_names(names: List[str], source: str) -> None:
    """Two classes whose names read the same to the text encoder (``red_fox`` / ``red fox`` / ``Red Fox``)
    would be trained as two indistinguishable classes: refused in every input mode."""
    seen: Dict[str, str] = {}
    for name in names:
        key = " ".join(name.replace("_", " ").split()).lower()
        if key in seen:
            raise DatasetError(
                f"{source}: classes {seen[key]!r} and {name!r} have the same class name after normalisation "
                f"({key!r}: '_' -> space, case and spacing ignored); merge them or rename one (folder name, or a "
                "DATASET.CUSTOM.CLASSNAMES_FILE line)"
            )
        seen[key] = name


@DATASET_REGISTRY.register()
class ImageFolderCustom(BenchmarkDataset):
    """A user dataset from a class-per-folder tree or a CSV file (module docstring)."""

    dataset_dir = ""  # the dataset folder is DATASET.ROOT itself

    def __init__(self, cfg: Any) -> None:
        if "CUSTOM" not in cfg.DATASET:
            raise DatasetError("ImageFolderCustom needs the DATASET.CUSTOM config node: call datasets.extend_cfg(cfg)")
        super().__init__(cfg)  # sets self.template = DATASET.CUSTOM.TEMPLATE (checked, datasets.templates)

    # ------------------------------------------------------------------ sources

    def _folder_items(self, c: Any) -> Tuple[List[Datum], List[str]]:
        folders = list_subdirs(self.image_dir)
        if not folders:
            raise DatasetError(
                f"{self.name}: no class folders in {self.image_dir}; expected <IMAGE_DIR>/<class>/<image> "
                "(or set DATASET.CUSTOM.CSV)"
            )
        rename: Dict[str, str] = {}
        if c.CLASSNAMES_FILE:
            path = require_file(_resolve(self.dataset_dir, c.CLASSNAMES_FILE), self.name, "class-name file",
                                "Set DATASET.CUSTOM.CLASSNAMES_FILE to a file of '<folder> <class name>' lines.")
            for lineno, line in read_lines(path):
                parts = line.split(maxsplit=1)
                if len(parts) != 2:
                    raise DatasetError(f"{path}:{lineno}: expected '<folder> <class name>', got {line!r}")
                rename[parts[0]] = parts[1]
            unknown = [f for f in folders if f not in rename]
            if unknown:
                raise DatasetError(f"{path} has no name for class folder(s) {unknown[:5]} of {self.image_dir}")
        names = [rename.get(f, f.replace("_", " ")) for f in folders]
        items: List[Datum] = []
        ignored = 0
        for label, folder in enumerate(folders):
            folder_dir = os.path.join(self.image_dir, folder)
            files = list_files(folder_dir)
            images = [f for f in files if f.lower().endswith(IMG_EXTENSIONS)]
            ignored += len(files) - len(images)
            if not images:
                raise DatasetError(f"{self.name}: empty class folder {folder_dir} (no {'/'.join(IMG_EXTENSIONS)} files)")
            items.extend(Datum(impath=os.path.join(folder_dir, f), label=label, classname=names[label]) for f in images)
        if ignored:
            logger.warning("%s: ignored %d non-image file(s) under %s", self.name, ignored, self.image_dir)
        return items, names

    def _csv_items(self, c: Any) -> Tuple[List[Datum], List[str], Optional[Dict[str, List[Datum]]]]:
        csv_path = require_file(_resolve(self.dataset_dir, c.CSV), self.name, "CSV file",
                                "DATASET.CUSTOM.CSV must name a 'path,label[,split]' file (relative to DATASET.ROOT).")
        if not c.CLASSNAMES_FILE:
            raise DatasetError(f"{self.name}: CSV mode needs DATASET.CUSTOM.CLASSNAMES_FILE (one class name per line)")
        names_path = require_file(_resolve(self.dataset_dir, c.CLASSNAMES_FILE), self.name, "class-name file",
                                  "Set DATASET.CUSTOM.CLASSNAMES_FILE to a file with one class name per line.")
        names = [line for _, line in read_lines(names_path)]
        if not names or len(set(names)) != len(names):
            raise DatasetError(f"class-name file {names_path} " + ("lists a class name twice" if names else "is empty"))
        name2idx = {n: i for i, n in enumerate(names)}
        items: List[Datum] = []
        by_split: Dict[str, List[Datum]] = {s: [] for s in SPLITS}
        with open(csv_path, "r", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            fields = [h.strip() for h in (reader.fieldnames or [])]
            if "path" not in fields or "label" not in fields:
                raise DatasetError(f"{csv_path}: the first line must be a header with columns path,label[,split]; got {fields}")
            reader.fieldnames = fields
            for lineno, row in enumerate(reader, 2):
                path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
                if not path or not label:
                    raise DatasetError(f"{csv_path}:{lineno}: empty path or label")
                idx = name2idx.get(label, int(label) if label.lstrip("-").isdigit() else None)
                if idx is None:
                    raise DatasetError(f"{csv_path}:{lineno}: label {label!r} is neither an index nor a class name of {names_path}")
                if not 0 <= idx < len(names):
                    raise DatasetError(f"{csv_path}:{lineno}: label {idx} is out of range 0..{len(names) - 1} ({names_path})")
                items.append(Datum(impath=_resolve(self.image_dir, path), label=idx, classname=names[idx]))
                split = (row.get("split") or "").strip().lower()
                if "split" in fields and split not in SPLITS:
                    raise DatasetError(f"{csv_path}:{lineno}: split {split!r} must be one of {list(SPLITS)}")
                by_split.get(split, []).append(items[-1])
        if not items:
            raise DatasetError(f"{csv_path} has no rows")
        self.split_source = csv_path
        return items, names, (by_split if "split" in fields else None)

    # ------------------------------------------------------------------ split

    def _source_fingerprint(self, items: List[Datum], names: List[str], ratios: Tuple[float, ...], seed: int) -> str:
        h = hashlib.sha1()
        h.update(repr((list(names), [float(r) for r in ratios], int(seed))).encode("utf-8"))
        for row in sorted(f"{to_relpath(it.impath, self.image_dir)}\t{it.label}" for it in items):
            h.update(row.encode("utf-8") + b"\n")
        return h.hexdigest()

    def _generated_split(self, c: Any, items: List[Datum], names: List[str]) -> Splits:
        """The saved split of ``SPLIT_FILE`` while the data is unchanged, else a fresh per-class split (saved)."""
        ratios, seed = tuple(c.SPLIT_RATIOS), int(c.SPLIT_SEED)
        split_path = _resolve(self.dataset_dir, c.SPLIT_FILE)
        fingerprint = self._source_fingerprint(items, names, ratios, seed)
        if os.path.isfile(split_path):
            data = load_json(split_path, "split file")
            if isinstance(data, dict) and data.get("source_fingerprint") == fingerprint:
                logger.info("%s: using the split in %s", self.name, split_path)
                return read_split(split_path, self.image_dir)
            logger.warning("%s: %s was made from other data or settings: regenerating it", self.name, split_path)
        groups: Dict[int, List[Datum]] = {}
        for it in sorted(items, key=lambda d: d.impath):
            groups.setdefault(it.label, []).append(it)
        train, val, test = split_per_class(
            ((f"{self.name}: class {groups[lab][0].classname!r}", groups[lab]) for lab in sorted(groups)), ratios,
            random.Random(f"promptkd|custom-split|seed={seed}"), "; add images or give a split column")
        if self.write_enabled:
            save_split(train, val, test, split_path, self.image_dir,
                       extra={"source_fingerprint": fingerprint, "split_ratios": list(ratios), "split_seed": seed})
        return train, val, test

    def read_full_splits(self, cfg: Any) -> FullSplits:
        if cfg is None or "CUSTOM" not in cfg.DATASET:
            raise DatasetError("ImageFolderCustom needs a config with the DATASET.CUSTOM node (datasets.extend_cfg)")
        c = cfg.DATASET.CUSTOM
        self.image_dir = _resolve(self.dataset_dir, c.IMAGE_DIR)
        require_dir(self.image_dir, self.name, "image folder (DATASET.CUSTOM.IMAGE_DIR)",
                    "Point DATASET.ROOT / DATASET.CUSTOM.IMAGE_DIR at your images.")
        self.path_prefix = self.image_dir
        if c.CSV:
            items, names, by_split = self._csv_items(c)
        else:
            (items, names), by_split = self._folder_items(c), None
            self.split_source = self.image_dir
        _check_distinct_names(names, self.split_source)
        if by_split is not None:
            train, val, test = by_split["train"], by_split["val"], by_split["test"]
        else:
            train, val, test = self._generated_split(c, items, names)
        if not val:
            logger.info("%s: no val split (selection on val is unavailable)", self.name)
            self.has_val = False
        classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
