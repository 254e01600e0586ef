"""Oxford Flowers-102, CoOp layout: ``oxford_flowers/jpg/image_XXXXX.jpg``, ``imagelabels.mat``,
``cat_to_name.json``, ``split_zhou_OxfordFlowers.json``.

102 classes (51 base / 51 novel). Without the split file: per class 50/20/30 of the images listed in
``imagelabels.mat`` (1-based labels, names from ``cat_to_name.json``), as in the reference (needs scipy).
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from typing import Any

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, require_dir, require_file, split_or_generate
from .utils import DatasetError, classnames_from_items, load_json

__all__ = ["OxfordFlowers"]


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    """Oxford 102 flower categories."""

    dataset_dir = "oxford_flowers"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "jpg")
        self.label_file = os.path.join(self.dataset_dir, "imagelabels.mat")
        self.lab2cname_file = os.path.join(self.dataset_dir, "cat_to_name.json")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_OxfordFlowers.json")

    def _generate(self):
        hint = "Download imagelabels.mat and cat_to_name.json (see DATASETS.md)."
        require_file(self.label_file, self.name, "label file", hint)
        require_file(self.lab2cname_file, self.name, "class-name file", hint)
        try:
            from scipy.io import loadmat
        except ImportError as exc:
            raise DatasetError(f"reading {self.label_file} needs scipy (pip install scipy)") from exc
        labels = loadmat(self.label_file)["labels"][0]
        lab2cname = load_json(self.lab2cname_file, "class-name file")
        tracker: "OrderedDict[int, list]" = OrderedDict()
        for i, label in enumerate(labels):
            tracker.setdefault(int(label), []).append(os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg"))
        train, val, test = [], [], []
        for label, impaths in tracker.items():
            random.shuffle(impaths)
            n_total = len(impaths)
            n_train, n_val = round(n_total * 0.5), round(n_total * 0.2)
            if n_train <= 0 or n_val <= 0 or n_total - n_train - n_val <= 0:
                raise DatasetError(f"{self.label_file}: class {label} has {n_total} image(s), too few for a 50/20/30 split")
            if str(label) not in lab2cname:
                raise DatasetError(f"{self.lab2cname_file} has no name for class {label}")
            cname = lab2cname[str(label)]

            def collate(paths):
                return [Datum(impath=p, label=label - 1, classname=cname) for p in paths]

            train += collate(impaths[:n_train])
            val += collate(impaths[n_train : n_train + n_val])
            test += collate(impaths[n_train + n_val :])
        return train, val, test

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", "Extract 102flowers.tgz into oxford_flowers/ (gives jpg/).")
        train, val, test = split_or_generate(self, self.split_path, self.image_dir, self._generate, "")
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
