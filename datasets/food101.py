"""Food-101, CoOp layout: ``food-101/images/<class>/*.jpg`` + ``split_zhou_Food101.json``.

101 classes (51 base / 50 novel). Without the split file, a 50/20/30 split per class folder is
generated as in the reference and saved.
"""

from __future__ import annotations

import os
from typing import Any

from engine.api import DATASET_REGISTRY

from .base import BenchmarkDataset, FullSplits, require_dir, split_or_generate
from .utils import classnames_from_items, read_and_split_data

__all__ = ["Food101"]


@DATASET_REGISTRY.register()
class Food101(BenchmarkDataset):
    """Food-101: dish classes named by their folder (e.g. ``apple_pie``)."""

    dataset_dir = "food-101"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "images")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_Food101.json")

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", "Extract food-101.tar.gz under DATASET.ROOT.")
        train, val, test = split_or_generate(
            self, self.split_path, self.image_dir, lambda: read_and_split_data(self.image_dir), ""
        )
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
