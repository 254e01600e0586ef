"""Stanford Cars, CoOp layout: ``stanford_cars/{cars_train,cars_test}/``, ``devkit/cars_train_annos.mat``,
``devkit/cars_meta.mat``, ``cars_test_annos_withlabels.mat``, ``split_zhou_StanfordCars.json``.

196 classes (98 base / 98 novel). Split-file paths are relative to ``stanford_cars/`` itself (e.g.
``cars_train/00001.jpg``). Class names move the year to the front ("2012 Tesla Model S Sedan").
Without the split file: official train split 80/20 into train/val + official test (needs scipy).
"""

from __future__ import annotations

import os
from typing import Any, List

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, require_file, split_or_generate
from .utils import DatasetError, classnames_from_items, split_trainval

__all__ = ["StanfordCars", "year_first"]


def year_first(name: str) -> str:
    """Move the trailing year of a Stanford Cars class name to the front (reference renaming)."""
    words = name.split(" ")
    return " ".join([words[-1]] + words[:-1])


def _loadmat(path: str):
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise DatasetError(f"reading {path} needs scipy (pip install scipy), or download split_zhou_StanfordCars.json") from exc
    return loadmat(path)


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    """Stanford Cars make/model/year classes."""

    dataset_dir = "stanford_cars"

    def setup_paths(self) -> None:
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_StanfordCars.json")

    def read_annotations(self, image_dir: str, anno_file: str, meta_file: str) -> List[Datum]:
        """Items of one official split from the devkit ``.mat`` annotation and meta files."""
        hint = "Download car_devkit.tgz and cars_test_annos_withlabels.mat (see DATASETS.md)."
        anno_path = require_file(os.path.join(self.dataset_dir, anno_file), self.name, "annotation file", hint)
        meta_path = require_file(os.path.join(self.dataset_dir, meta_file), self.name, "class-name file", hint)
        annos = _loadmat(anno_path)["annotations"][0]
        meta = _loadmat(meta_path)["class_names"][0]
        items = []
        for anno in annos:
            imname = str(anno["fname"][0])
            label = int(anno["class"][0, 0]) - 1
            classname = year_first(str(meta[label][0]))
            items.append(Datum(impath=os.path.join(self.dataset_dir, image_dir, imname), label=label, classname=classname))
        return items

    def _generate(self):
        trainval = self.read_annotations("cars_train", "devkit/cars_train_annos.mat", "devkit/cars_meta.mat")
        test = self.read_annotations("cars_test", "cars_test_annos_withlabels.mat", "devkit/cars_meta.mat")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_full_splits(self, cfg: Any) -> FullSplits:
        train, val, test = split_or_generate(self, self.split_path, self.dataset_dir, self._generate, "")
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
