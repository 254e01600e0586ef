"""``BenchmarkDataset``: a ``DatasetBase`` whose subclasses only read their full splits.

A subclass sets ``dataset_dir`` (folder under ``DATASET.ROOT``) and implements
``read_full_splits(cfg) -> (train, val, test, all_classnames)`` over all classes. ``__init__`` then
runs :func:`datasets.protocol.apply_protocol` (few-shot, class subsampling, label dropping, eval sets),
checks that every used image exists, and calls ``DatasetBase.__init__(train_x, val, test)``.

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
from typing import Any, Callable, Dict, List, Sequence, Tuple

from engine.api import Datum, DatasetBase

from .catalog import CATALOG
from .config import validate_dataset_cfg
from .protocol import ProtocolSplits, apply_protocol
from .templates import dataset_display_name, dataset_template
from .utils import DatasetError, DatasetFileNotFoundError, verify_images_exist

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkDataset", "FullSplits"]

FullSplits = Tuple[List[Datum], List[Datum], List[Datum], List[str]]


class BenchmarkDataset(DatasetBase):
    """Base class of every benchmark dataset (see the module docstring)."""

    #: folder of the dataset under DATASET.ROOT
    dataset_dir: str = ""
    #: False for datasets without a val split (ImageNet and its variants): val is then []
    has_val: bool = True
    #: True for test-only datasets (ImageNet variants): train = test, NUM_SHOTS not applied
    test_only: bool = False

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
        self._warn_if_partial(classnames)
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
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        #: True when the reader built the lists from directory listings (files known to exist)
        self.images_listed = False
        #: description of where the image list came from, for error messages
        self.split_source = f"the {self.name} reader"
        #: folder the few-shot cache stores paths relative to
        self.path_prefix = self.dataset_dir
        if not os.path.isdir(self.dataset_dir):
            info = CATALOG.get(self.name)
            hint = info.download_hint if info else "see DATASETS.md"
            raise DatasetFileNotFoundError(
                f"{self.name}: dataset folder not found: {self.dataset_dir} (DATASET.ROOT={root}); {hint}"
            )
        self.setup_paths()

    def setup_paths(self) -> None:
        """Hook: set reader-specific paths (image folder, split file) from ``self.dataset_dir``."""

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
        """Return ``(train, val, test, all_classnames)`` over all classes (labels 0..N-1)."""
        raise DatasetError(f"{self.name} does not implement read_full_splits")

    def save_generated_split(self, save_fn: Callable[[], None], path: str) -> None:
        """Persist a split generated in the absence of the official split file (skipped by ``inspect``)."""
        if not self.write_enabled:
            return
        logger.warning(
            "%s: %s not found; generated a random split the way the reference does and saved it there. "
            "It is NOT the split of the papers: download the official file for comparable numbers.",
            self.name, path,
        )
        save_fn()

    def _warn_if_partial(self, classnames: Sequence[str]) -> None:
        info = CATALOG.get(self.name)
        if info is not None and len(classnames) != info.classes:
            logger.warning(
                "%s has %d classes under %s; the benchmark has %d: results are not comparable with the papers",
                self.name, len(classnames), self.dataset_dir, info.classes,
            )

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


def require_file(path: str, dataset: str, what: str, hint: str) -> str:
    """Return ``path`` if it is a file, else raise naming it, what it is and where it comes from."""
    if not os.path.isfile(path):
        raise DatasetFileNotFoundError(f"{dataset}: {what} not found: {path}. {hint}")
    return path


def require_dir(path: str, dataset: str, what: str, hint: str) -> str:
    """Return ``path`` if it is a folder, else raise naming it, what it is and where it comes from."""
    if not os.path.isdir(path):
        raise DatasetFileNotFoundError(f"{dataset}: {what} not found: {path}. {hint}")
    return path


def split_or_generate(
    ds: BenchmarkDataset,
    split_path: str,
    path_prefix: str,
    generate: Callable[[], Tuple[List[Datum], List[Datum], List[Datum]]],
    raw_hint: str,
) -> Tuple[List[Datum], List[Datum], List[Datum]]:
    """Read the official split file, or generate one with ``generate()`` (reference behaviour) and save it.

    ``generate`` returns ``(train, val, test)`` and raises ``DatasetFileNotFoundError`` when the raw
    annotation files are missing too; the error then names the split file and where it comes from.
    """
    from .utils import read_split, save_split

    info = CATALOG.get(ds.name)
    if os.path.isfile(split_path):
        ds.split_source = split_path
        return read_split(split_path, path_prefix)
    try:
        train, val, test = generate()
    except DatasetFileNotFoundError as exc:
        hint = info.download_hint if info else "see DATASETS.md"
        raise DatasetFileNotFoundError(
            f"{ds.name}: split file not found: {split_path} ({hint}); the raw annotations needed to generate "
            f"a split are missing too: {exc}. {raw_hint}"
        ) from exc
    ds.split_source = f"the generated split {split_path}"
    ds.save_generated_split(lambda: save_split(train, val, test, split_path, path_prefix), split_path)
    return train, val, test
