"""Caltech-101, CoOp layout: ``caltech-101/101_ObjectCategories/<class>/*.jpg`` + ``split_zhou_Caltech101.json``.

100 classes (50 base / 50 novel): ``BACKGROUND_Google`` and ``Faces_easy`` are ignored and four folders
are renamed (airplanes -> airplane, Faces -> face, Leopards -> leopard, Motorbikes -> motorbike), as in
the reference. Without the split file a 50/20/30 split is generated and saved.
"""

from __future__ import annotations

import os
from typing import Any

from engine.api import DATASET_REGISTRY

from .base import BenchmarkDataset, FullSplits, require_dir, split_or_generate
from .utils import classnames_from_items, read_and_split_data

__all__ = ["Caltech101", "IGNORED", "NEW_CNAMES"]

IGNORED = ("BACKGROUND_Google", "Faces_easy")
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(BenchmarkDataset):
    """Caltech-101 object categories."""

    dataset_dir = "caltech-101"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "101_ObjectCategories")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_Caltech101.json")

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", "Extract 101_ObjectCategories.tar.gz into caltech-101/.")
        train, val, test = split_or_generate(
            self, self.split_path, self.image_dir,
            lambda: read_and_split_data(self.image_dir, ignored=IGNORED, new_cnames=NEW_CNAMES), "",
        )
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
