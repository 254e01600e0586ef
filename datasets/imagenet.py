"""ImageNet (ILSVRC-2012), CoOp layout: ``imagenet/images/{train,val}/<wnid>/*``, ``classnames.txt``.

1000 classes (500 base / 500 novel) named by CLIP's class names (``classnames.txt``: ``"<wnid> <name>"``).
The official val set is the test split; there is no val split. Labels are the index of the wnid folder
in sorted order, as in the reference (the train and val folder sets must be identical).

The parsed file lists are cached in ``preprocessed.json`` (instead of the reference's pickle with
absolute paths): one ``[wnid, [file names]]`` pair per class, so paths are relative and the cache
survives moving the dataset. The header stores a hash of ``classnames.txt`` and the class folders;
the cache is rebuilt with a warning when they changed or a sampled file has disappeared.
Datum lists are built once (no triple relabelling pass over 1.28M items, docs/REFERENCE.md D23).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Tuple

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits
from .utils import (
    DatasetError,
    DatasetFileNotFoundError,
    atomic_write_json,
    list_files,
    list_subdirs,
    read_wnid_classnames,
)

logger = logging.getLogger(__name__)

__all__ = ["ImageNet", "read_wnid_folders", "wnid_folders"]

CACHE_FORMAT = "promptkd-imagenet-index"
CACHE_VERSION = 1
_CLASSNAMES_HINT = "Download classnames.txt (CLIP's ImageNet class names) from the CoOp DATASETS.md link into imagenet/."


def wnid_folders(split_dir: str, dataset: str, what: str, hint: str = "") -> List[str]:
    """Sorted class folders of ``split_dir``; errors say what is wrong (missing, flat, empty)."""
    if not os.path.isdir(split_dir):
        raise DatasetFileNotFoundError(f"{dataset}: {what} folder not found: {split_dir}. {hint}".rstrip())
    folders = list_subdirs(split_dir)
    if not folders:
        if list_files(split_dir):
            raise DatasetError(
                f"{dataset}: {split_dir} has files but no class folders: run valprep.sh (from the ImageNet "
                "tooling, e.g. the PyTorch ImageNet example) inside it to sort the images into <wnid>/ folders"
            )
        raise DatasetError(f"{dataset}: {split_dir} is empty; expected one folder per class. {hint}".rstrip())
    return folders


def read_wnid_folders(split_dir: str, folders: Sequence[str], names: Sequence[str], dataset: str) -> List[Datum]:
    """Items of ``split_dir/<folder>/*`` with label = position in ``folders`` and class ``names[label]``."""
    items: List[Datum] = []
    for label, (folder, name) in enumerate(zip(folders, names)):
        folder_dir = os.path.join(split_dir, folder)
        files = list_files(folder_dir)
        if not files:
            raise DatasetError(f"{dataset}: empty class folder {folder_dir}")
        items.extend(Datum(impath=os.path.join(folder_dir, f), label=label, classname=name) for f in files)
    return items


def names_for(folders: Sequence[str], wnid2name: Dict[str, str], classnames_file: str, split_dir: str, dataset: str) -> List[str]:
    """Class names of wnid ``folders``; folders unknown to ``classnames.txt`` are an error."""
    unknown = [f for f in folders if f not in wnid2name]
    if unknown:
        raise DatasetError(
            f"{dataset}: {len(unknown)} folder(s) in {split_dir} are not listed in {classnames_file} "
            f"(e.g. {unknown[:3]}); use the CoOp classnames.txt and keep only class folders there"
        )
    return [wnid2name[f] for f in folders]


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    """ImageNet-1k: official train set + official val set used as test."""

    dataset_dir = "imagenet"
    has_val = False

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "images")
        self.classnames_file = os.path.join(self.dataset_dir, "classnames.txt")
        self.preprocessed = os.path.join(self.dataset_dir, "preprocessed.json")

    def _folders(self) -> Tuple[List[str], List[str]]:
        hint = "Extract the ILSVRC-2012 train and val sets into imagenet/images/ (see DATASETS.md)."
        train_dir, val_dir = os.path.join(self.image_dir, "train"), os.path.join(self.image_dir, "val")
        train_f = wnid_folders(train_dir, self.name, "train image", hint)
        val_f = wnid_folders(val_dir, self.name, "val image", hint)
        if train_f != val_f:
            only_t, only_v = sorted(set(train_f) - set(val_f)), sorted(set(val_f) - set(train_f))
            raise DatasetError(
                f"{self.name}: images/train and images/val hold different class folders "
                f"(only in train: {only_t[:3]} ({len(only_t)}), only in val: {only_v[:3]} ({len(only_v)})) under {self.image_dir}"
            )
        return train_f, val_f

    def _load_cache(self, classnames_sha1: str, folders: List[str]):
        with open(self.preprocessed, "r", encoding="utf-8") as f:
            data = json.load(f)
        header = data.get("header", {}) if isinstance(data, dict) else {}
        expected = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "classnames_sha1": classnames_sha1, "folders": folders}
        for key, value in expected.items():
            if header.get(key) != value:
                raise ValueError(f"header field '{key}' does not match the dataset on disk")
        out = {}
        for split, sub in (("train", "train"), ("test", "val")):
            entries = data.get(split)
            if not isinstance(entries, list) or [e[0] for e in entries] != folders:
                raise ValueError(f"'{split}' does not list the class folders in order")
            for folder, files in entries:
                if not files:
                    raise ValueError(f"'{split}' lists no file for {folder}")
                for probe in {files[0], files[-1]}:
                    if not os.path.isfile(os.path.join(self.image_dir, sub, folder, probe)):
                        raise ValueError(f"image {sub}/{folder}/{probe} no longer exists")
            out[split] = entries
        return out

    def read_full_splits(self, cfg: Any) -> FullSplits:
        wnid2name = read_wnid_classnames(self.classnames_file, _CLASSNAMES_HINT)
        with open(self.classnames_file, "rb") as f:
            classnames_sha1 = hashlib.sha1(f.read()).hexdigest()
        folders, _ = self._folders()
        names = names_for(folders, wnid2name, self.classnames_file, self.image_dir, self.name)
        self.split_source = f"{self.image_dir}/{{train,val}}"

        entries = None
        if os.path.exists(self.preprocessed):
            try:
                entries = self._load_cache(classnames_sha1, folders)
                logger.info("Loaded the ImageNet file index from %s", self.preprocessed)
                self.split_source = self.preprocessed
            except (OSError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
                logger.warning("%s is stale or corrupt (%s): rebuilding it", self.preprocessed, exc)
        if entries is not None:
            splits = {}
            for split, sub in (("train", "train"), ("test", "val")):
                items = []
                for label, (folder, files) in enumerate(entries[split]):
                    base = os.path.join(self.image_dir, sub, folder)
                    items.extend(Datum(impath=os.path.join(base, f), label=label, classname=names[label]) for f in files)
                splits[split] = items
            return splits["train"], [], splits["test"], names

        train = read_wnid_folders(os.path.join(self.image_dir, "train"), folders, names, self.name)
        test = read_wnid_folders(os.path.join(self.image_dir, "val"), folders, names, self.name)
        self.images_listed = True
        if self.write_enabled:
            payload = {
                "header": {"format": CACHE_FORMAT, "version": CACHE_VERSION, "classnames_sha1": classnames_sha1, "folders": folders},
            }
            for split, items in (("train", train), ("test", test)):
                grouped: "OrderedDict[str, List[str]]" = OrderedDict((f, []) for f in folders)
                for it in items:
                    grouped[folders[it.label]].append(os.path.basename(it.impath))
                payload[split] = [[f, files] for f, files in grouped.items()]
            try:
                atomic_write_json(self.preprocessed, payload, indent=None)
                logger.info("Saved the ImageNet file index to %s", self.preprocessed)
            except OSError as exc:
                logger.warning("Could not write %s (%s); the folders will be listed again next time", self.preprocessed, exc)
        return train, [], test, names
