"""Describable Textures (DTD), CoOp layout: ``dtd/images/<class>/*.jpg`` + ``split_zhou_DescribableTextures.json``.

47 classes (24 base / 23 novel). Without the split file, a 50/20/30 split per class folder is
generated as in the reference (``read_and_split_data``) and saved.
"""

from __future__ import annotations

import os
from typing import Any

from engine.api import DATASET_REGISTRY

from .base import BenchmarkDataset, FullSplits, require_dir, split_or_generate
from .utils import classnames_from_items, read_and_split_data

__all__ = ["DescribableTextures"]


@DATASET_REGISTRY.register()
class DescribableTextures(BenchmarkDataset):
    """DTD: texture classes named by their folder."""

    dataset_dir = "dtd"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "images")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_DescribableTextures.json")

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", "Extract dtd-r1.0.1.tar.gz under DATASET.ROOT.")
        train, val, test = split_or_generate(
            self, self.split_path, self.image_dir, lambda: read_and_split_data(self.image_dir), ""
        )
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
