"""``BenchmarkDataset``: a ``DatasetBase`` whose subclasses only read their full splits.

A subclass sets ``dataset_dir`` (folder under ``DATASET.ROOT``) and implements
``read_full_splits(cfg) -> (train, val, test, all_classnames)`` over all classes. ``__init__`` then
runs :func:`datasets.protocol.apply_protocol` (few-shot, class subsampling, label dropping, eval sets),
checks that every used image exists, and calls ``DatasetBase.__init__(train_x, val, test)``.

The 15 benchmarks take their folder, image folder, split file and class-name fixes from their
``catalog.json`` entry (``info``); the default ``read_full_splits`` reads CoOp's split file over the image
folder, or generates the split with :meth:`BenchmarkDataset.generate_split` (reference behaviour) and saves it.

Extra attributes for trainers: ``template`` (the dataset's zero-shot prompt template),
``display_name`` (its name in results; ``DATASET.CUSTOM.NAME`` for custom data), ``eval_sets`` (name -> EvalSet), ``all_classnames``, ``protocol``
(``"base2novel"`` | ``"subsample"``) and ``protocol_splits`` (the full :class:`ProtocolSplits`).
Dassl's ``classnames`` / ``lab2cname`` / ``num_classes`` describe the training class set; they are
taken from the protocol rather than from ``train_x`` so that they stay right when training labels are
dropped (``DATASET.TRAIN_LABELS drop`` sets every train_x label to -1).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from engine.api import Datum, DatasetBase

from .catalog import CATALOG, DatasetInfo
from .config import validate_dataset_cfg
from .protocol import ProtocolSplits, apply_protocol
from .templates import dataset_display_name, dataset_template
from .utils import (DatasetError, DatasetFileNotFoundError, Splits, classnames_from_items, read_and_split_data, read_split,
                    save_split, verify_images_exist)

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkDataset", "FullSplits", "read_lines", "require_dir", "require_file"]

FullSplits = Tuple[List[Datum], List[Datum], List[Datum], List[str]]


class BenchmarkDataset(DatasetBase):
    """Base class of every benchmark dataset (see the module docstring)."""

    #: folder of the dataset under DATASET.ROOT (the catalog's ``folder`` for the benchmarks)
    dataset_dir: str = ""
    #: False for datasets without a val split (ImageNet and its variants): val is then []
    has_val: bool = True
    #: True for test-only datasets (ImageNet variants): train = test, NUM_SHOTS not applied
    test_only: bool = False
    #: the catalog entry of a benchmark (None for plug-in and custom datasets)
    info: Optional[DatasetInfo] = None
    #: where the data comes from, for "not found" errors
    download_hint: str = "see DATASETS.md"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        info = CATALOG.get(cls.__name__)
        if info is not None:
            cls.info, cls.dataset_dir, cls.download_hint = info, info.folder, info.download_hint

    def __init__(self, cfg: Any) -> None:
        validate_dataset_cfg(cfg)  # bad protocol keys fail before any file is read or written
        #: the zero-shot prompt template and the name used in outputs (datasets.templates)
        self.template: str = dataset_template(cfg)
        self.display_name: str = dataset_display_name(cfg)
        self._init_paths(self._root_from_cfg(cfg))
        self.write_enabled = True
        train, val, test, classnames = self.read_full_splits(cfg)
        splits = apply_protocol(
            cfg, self.dataset_dir, train, val, test, classnames,
            dataset_name=self.name, has_val=self.has_val, allow_fewshot=not self.test_only,
            path_prefix=self.path_prefix,
        )
        if not self.images_listed:
            used = [splits.train_x, splits.val, splits.test] + [e.items for e in splits.eval_sets.values()]
            verify_images_exist((it for items in used for it in items), self.split_source)
        if self.info is not None and len(classnames) != self.info.classes:
            logger.warning(
                "%s has %d classes under %s; the benchmark has %d: results are not comparable with the papers",
                self.name, len(classnames), self.dataset_dir, self.info.classes,
            )
        self.protocol_splits: ProtocolSplits = splits
        self.eval_sets = splits.eval_sets
        self.all_classnames = splits.all_classnames
        self.protocol = splits.protocol
        super().__init__(train_x=splits.train_x, val=splits.val, test=splits.test)

    # ------------------------------------------------------------------ paths

    @property
    def name(self) -> str:
        return type(self).__name__

    @staticmethod
    def _root_from_cfg(cfg: Any) -> str:
        root = cfg.DATASET.ROOT
        if not root:
            raise DatasetError(
                "DATASET.ROOT is empty: pass --root <DATA> (the folder holding dtd/, oxford_pets/, ...) or DATASET.ROOT"
            )
        return os.path.abspath(os.path.expanduser(root))

    def _init_paths(self, root: str) -> None:
        """Set ``self.root``, the absolute ``self.dataset_dir`` and reader-specific paths; check the folder."""
        self.root = root
        self.dataset_dir = os.path.join(root, type(self).dataset_dir)
        #: True when the reader built the lists from directory listings (files known to exist)
        self.images_listed = False
        #: description of where the image list came from, for error messages
        self.split_source = f"the {self.name} reader"
        #: folder the few-shot cache stores paths relative to
        self.path_prefix = self.dataset_dir
        if not os.path.isdir(self.dataset_dir):
            raise DatasetFileNotFoundError(
                f"{self.name}: dataset folder not found: {self.dataset_dir} (DATASET.ROOT={root}); {self.download_hint}"
            )
        self.setup_paths()

    def setup_paths(self) -> None:
        """Hook: set reader paths from ``self.dataset_dir``; by default the catalog's image folder
        (``image_dir``) and split file (``split_path``, None when the dataset has none)."""
        info = self.info
        self.image_dir = os.path.join(self.dataset_dir, info.images) if info and info.images else self.dataset_dir
        self.split_path = os.path.join(self.dataset_dir, info.split_file) if info and info.split_file else None

    @classmethod
    def inspect(cls, root: str, cfg: Any = None) -> FullSplits:
        """Read the full splits under ``root`` without the protocol and without writing anything.

        Used by ``tools/check_datasets.py``; raises the same errors as a normal construction.
        """
        obj = cls.__new__(cls)
        obj._init_paths(os.path.abspath(os.path.expanduser(root)))
        obj.write_enabled = False
        return obj.read_full_splits(cfg)

    # ------------------------------------------------------------------ reading

    def read_full_splits(self, cfg: Any) -> FullSplits:
        """Return ``(train, val, test, all_classnames)`` over all classes (labels 0..N-1).

        Default (catalog datasets): CoOp's split file over the image folder, or a split generated by
        :meth:`generate_split` when the file is absent (saved there, skipped by ``inspect``).
        """
        if self.info is None:
            raise DatasetError(f"{self.name} does not implement read_full_splits")
        require_dir(self.image_dir, self.name, "image folder", self.info.hint)
        if os.path.isfile(self.split_path):
            self.split_source = self.split_path
            train, val, test = read_split(self.split_path, self.image_dir)
        else:
            train, val, test = self._generate_and_save()
        return train, val, test, classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)

    def _generate_and_save(self) -> Splits:
        try:
            train, val, test = self.generate_split()
        except DatasetFileNotFoundError as exc:
            raise DatasetFileNotFoundError(
                f"{self.name}: split file not found: {self.split_path} ({self.download_hint}); the raw annotations "
                f"needed to generate a split are missing too: {exc}."
            ) from exc
        self.split_source = f"the generated split {self.split_path}"
        if self.write_enabled:
            logger.warning(
                "%s: %s not found; generated a random split the way the reference does and saved it there. "
                "It is NOT the split of the papers: download the official file for comparable numbers.",
                self.name, self.split_path,
            )
            save_split(train, val, test, self.split_path, self.image_dir)
        return train, val, test

    def generate_split(self) -> Splits:
        """The reference's split when the split file is absent; default: one folder per class, 50/20/30
        (``read_and_split_data`` with the catalog's ignored folders and class renames)."""
        return read_and_split_data(self.image_dir, ignored=self.info.ignored, new_cnames=self.info.renames)

    # --------------------------------------------- Dassl class metadata (training class set)

    @property
    def classnames(self) -> List[str]:
        return list(self.protocol_splits.train_classnames)

    @property
    def lab2cname(self) -> Dict[int, str]:
        return dict(enumerate(self.protocol_splits.train_classnames))

    @property
    def num_classes(self) -> int:
        return len(self.protocol_splits.train_classnames)


def require_dir(path: str, dataset: str, what: str, hint: str, check: Callable[[str], bool] = os.path.isdir) -> str:
    """Return ``path`` if it is a folder (``check``), else raise naming it, what it is and where it comes from."""
    if not check(path):
        raise DatasetFileNotFoundError(f"{dataset}: {what} not found: {path}. {hint}")
    return path


def require_file(path: str, dataset: str, what: str, hint: str) -> str:
    """Return ``path`` if it is a file, else raise naming it, what it is and where it comes from."""
    return require_dir(path, dataset, what, hint, check=os.path.isfile)


def read_lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number, stripped line)`` of the non-blank lines of a text file."""
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line.strip()
