"""ImageNet and its four test-only variants: one folder of images per class, named by ImageNet's ``classnames.txt``.

ImageNet (ILSVRC-2012), CoOp layout: ``imagenet/images/{train,val}/<wnid>/*``, ``classnames.txt``. 1000 classes
(500 base / 500 novel) named by CLIP's class names (``classnames.txt``: ``"<wnid> <name>"``). The official val
set is the test split; there is no val split. Labels are the index of the wnid folder in sorted order, as in
the reference (the train and val folder sets must be identical).

The parsed file lists are cached in ``preprocessed.json`` (instead of the reference's pickle with
absolute paths): one ``[wnid, [file names]]`` pair per class, so paths are relative and the cache
survives moving the dataset. The header stores a hash of ``classnames.txt`` and the class folders;
the cache is rebuilt with a warning when they changed or a sampled file has disappeared.
Datum lists are built once (no triple relabelling pass over 1.28M items, docs/REFERENCE.md D23).

The variants (ImageNetV2, -Sketch, -A, -R; folders in ``catalog.json``) each have a folder per class and a copy
of ImageNet's ``classnames.txt``. The whole dataset is the test split and also ``train_x`` (reference
behaviour: ``train_x = test = data``; the PromptKD student distils on these unlabeled target images in the
domain-generalisation setting). There is no val split and ``NUM_SHOTS`` is not applied. Sketch, A and R name
their class folders by wnid (sorted; files next to them such as README.txt are ignored; A and R hold 200 of the
classes); ImageNetV2 (matched frequency) has folders ``0..999``, folder ``i`` holding class ``i`` of
``classnames.txt`` (file order).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from engine.api import DATASET_REGISTRY, Datum, atomic_write_text

from .base import BenchmarkDataset, FullSplits, read_lines
from .utils import DatasetError, DatasetFileNotFoundError, list_files, list_subdirs

logger = logging.getLogger(__name__)

__all__ = ["ImageNet", "ImageNetA", "ImageNetR", "ImageNetSketch", "ImageNetV2", "read_wnid_classnames"]

CACHE_FORMAT = "promptkd-imagenet-index"
CACHE_VERSION = 1
_SPLITS = (("train", "train"), ("test", "val"))  # (split, folder under images/)


def read_wnid_classnames(path: str, source_hint: str) -> Dict[str, str]:
    """Read an ImageNet-style ``classnames.txt`` (``"<wnid> <class name words>"`` per line) in file order."""
    if not os.path.isfile(path):
        raise DatasetFileNotFoundError(f"class-name file not found: {path}. {source_hint}")
    out: Dict[str, str] = {}
    for lineno, line in read_lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DatasetError(f"{path}:{lineno}: expected '<wnid> <class name>', got {line!r}")
        if parts[0] in out:
            raise DatasetError(f"{path}:{lineno}: duplicate folder id {parts[0]!r}")
        out[parts[0]] = parts[1]
    if not out:
        raise DatasetError(f"class-name file {path} is empty")
    return out


def wnid_folders(split_dir: str, dataset: str, what: str, hint: str) -> List[str]:
    """Sorted class folders of ``split_dir``; errors say what is wrong (missing, flat, empty)."""
    if not os.path.isdir(split_dir):
        raise DatasetFileNotFoundError(f"{dataset}: {what} folder not found: {split_dir}. {hint}")
    folders = list_subdirs(split_dir)
    if not folders and list_files(split_dir):
        raise DatasetError(
            f"{dataset}: {split_dir} has files but no class folders: run valprep.sh (from the ImageNet "
            "tooling, e.g. the PyTorch ImageNet example) inside it to sort the images into <wnid>/ folders"
        )
    if not folders:
        raise DatasetError(f"{dataset}: {split_dir} is empty; expected one folder per class. {hint}")
    return folders


def names_for(folders: Sequence[str], wnid2name: Dict[str, str], classnames_file: str, split_dir: str, dataset: str) -> List[str]:
    """Class names of wnid ``folders``; folders unknown to ``classnames.txt`` are an error."""
    unknown = [f for f in folders if f not in wnid2name]
    if unknown:
        raise DatasetError(
            f"{dataset}: {len(unknown)} folder(s) in {split_dir} are not listed in {classnames_file} "
            f"(e.g. {unknown[:3]}); use the CoOp classnames.txt and keep only class folders there"
        )
    return [wnid2name[f] for f in folders]


def read_folders(split_dir: str, folders: Sequence[str], names: Sequence[str], dataset: str,
                 listing: Optional[Sequence[Sequence[str]]] = None) -> List[Datum]:
    """Items of ``split_dir/<folder>/*`` with label = position in ``folders`` and class ``names[label]``
    (file names from ``listing[label]`` when given, else listed now)."""
    items: List[Datum] = []
    for label, (folder, name) in enumerate(zip(folders, names)):
        folder_dir = os.path.join(split_dir, folder)
        files = listing[label] if listing is not None else list_files(folder_dir)
        if not files:
            raise DatasetError(f"{dataset}: empty class folder {folder_dir}")
        items.extend(Datum(impath=os.path.join(folder_dir, f), label=label, classname=name) for f in files)
    return items


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    """ImageNet-1k: official train set + official val set used as test."""

    has_val = False

    def _folders(self) -> List[str]:
        train_f, val_f = (wnid_folders(os.path.join(self.image_dir, sub), self.name, f"{sub} image", self.info.hint)
                          for sub in ("train", "val"))
        if train_f != val_f:
            only_t, only_v = sorted(set(train_f) - set(val_f)), sorted(set(val_f) - set(train_f))
            raise DatasetError(
                f"{self.name}: images/train and images/val hold different class folders "
                f"(only in train: {only_t[:3]} ({len(only_t)}), only in val: {only_v[:3]} ({len(only_v)})) under {self.image_dir}"
            )
        return train_f

    def _load_index(self, path: str, header: Dict[str, Any]) -> Dict[str, List[list]]:
        """The ``preprocessed.json`` entries per split; ``ValueError`` says why the file does not fit."""
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
        stored = data.get("header", {}) if isinstance(data, dict) else {}
        for key, value in header.items():
            if stored.get(key) != value:
                raise ValueError(f"header field '{key}' does not match the dataset on disk")
        for split, sub in _SPLITS:
            entries = data.get(split)
            if not isinstance(entries, list) or [e[0] for e in entries] != header["folders"]:
                raise ValueError(f"'{split}' does not list the class folders in order")
            for folder, files in entries:
                if not files:
                    raise ValueError(f"'{split}' lists no file for {folder}")
                for probe in {files[0], files[-1]}:
                    if not os.path.isfile(os.path.join(self.image_dir, sub, folder, probe)):
                        raise ValueError(f"image {sub}/{folder}/{probe} no longer exists")
        return data

    def read_full_splits(self, cfg: Any) -> FullSplits:
        classnames_file = os.path.join(self.dataset_dir, "classnames.txt")
        wnid2name = read_wnid_classnames(classnames_file, "Download classnames.txt (CLIP's ImageNet class names) "
                                         "from the CoOp DATASETS.md link into imagenet/.")
        with open(classnames_file, "rb") as f:
            header = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "classnames_sha1": hashlib.sha1(f.read()).hexdigest()}
        folders = header["folders"] = self._folders()
        names = names_for(folders, wnid2name, classnames_file, self.image_dir, self.name)
        path = os.path.join(self.dataset_dir, "preprocessed.json")
        self.split_source, index = f"{self.image_dir}/{{train,val}}", None
        if os.path.exists(path):
            try:
                index = self._load_index(path, header)
                logger.info("Loaded the ImageNet file index from %s", path)
                self.split_source = path
            except (OSError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
                logger.warning("%s is stale or corrupt (%s): rebuilding it", path, exc)
        if index is None:
            listing = {split: [list_files(os.path.join(self.image_dir, sub, f)) for f in folders] for split, sub in _SPLITS}
        else:
            listing = {split: [files for _, files in index[split]] for split, _ in _SPLITS}
        train, test = (read_folders(os.path.join(self.image_dir, sub), folders, names, self.name, listing[split])
                       for split, sub in _SPLITS)
        if index is None:
            self.images_listed = True
            if self.write_enabled:
                splits = {split: [[f, files] for f, files in zip(folders, listing[split])] for split, _ in _SPLITS}
                self._save_index(path, {"header": header, **splits})
        return train, [], test, names

    @staticmethod
    def _save_index(path: str, payload: Dict[str, Any]) -> None:
        try:
            atomic_write_text(path, json.dumps(payload, separators=(",", ":")) + "\n")
            logger.info("Saved the ImageNet file index to %s", path)
        except OSError as exc:
            logger.warning("Could not write %s (%s); the folders will be listed again next time", path, exc)


class _ImageNetVariant(BenchmarkDataset):
    """Test-only ImageNet variant whose class folders are wnids (module docstring)."""

    has_val = False
    test_only = True

    def read_classnames(self) -> Tuple[str, Dict[str, str]]:
        path = os.path.join(self.dataset_dir, "classnames.txt")
        return path, read_wnid_classnames(path, f"Copy imagenet/classnames.txt into {type(self).dataset_dir}/ (see DATASETS.md).")

    def class_folders(self) -> Tuple[List[str], List[str]]:
        """``(class folders, class names)`` in label order."""
        path, wnid2name = self.read_classnames()
        folders = wnid_folders(self.image_dir, self.name, "image", self.info.hint)
        return folders, names_for(folders, wnid2name, path, self.image_dir, self.name)

    def read_full_splits(self, cfg: Any) -> FullSplits:
        folders, names = self.class_folders()
        data = read_folders(self.image_dir, folders, names, self.name)
        self.images_listed = True
        self.split_source = self.image_dir
        return data, [], data, names


@DATASET_REGISTRY.register()
class ImageNetSketch(_ImageNetVariant):
    """ImageNet-Sketch: 50,889 sketches of the 1000 ImageNet classes."""


@DATASET_REGISTRY.register()
class ImageNetA(_ImageNetVariant):
    """ImageNet-A: 7,500 natural adversarial images of 200 ImageNet classes."""


@DATASET_REGISTRY.register()
class ImageNetR(_ImageNetVariant):
    """ImageNet-R: 30,000 renditions of 200 ImageNet classes."""


@DATASET_REGISTRY.register()
class ImageNetV2(_ImageNetVariant):
    """ImageNetV2 matched-frequency test set (numeric class folders ``0..999``)."""

    def class_folders(self) -> Tuple[List[str], List[str]]:
        path, wnid2name = self.read_classnames()
        names = list(wnid2name.values())
        present = set(wnid_folders(self.image_dir, self.name, "image", self.info.hint))
        expected = [str(i) for i in range(len(names))]
        missing, extra = [f for f in expected if f not in present], sorted(present - set(expected))
        if missing or extra:
            raise DatasetError(
                f"{self.name}: {self.image_dir} must hold folders 0..{len(names) - 1} (one per line of {path}); "
                f"missing {missing[:5]} ({len(missing)}), unexpected {extra[:5]} ({len(extra)})"
            )
        return expected, names
