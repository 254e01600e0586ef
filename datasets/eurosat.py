"""EuroSAT (RGB), CoOp layout: ``eurosat/2750/<class>/*.jpg`` + ``split_zhou_EuroSAT.json``.

10 classes (5 base / 5 novel) with the reference's descriptive class names (AnnualCrop -> "Annual Crop
Land", ...). Without the split file a 50/20/30 split is generated and saved.
"""

from __future__ import annotations

import os
from typing import Any

from engine.api import DATASET_REGISTRY

from .base import BenchmarkDataset, FullSplits, require_dir, split_or_generate
from .utils import classnames_from_items, read_and_split_data

__all__ = ["EuroSAT", "NEW_CNAMES"]

NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(BenchmarkDataset):
    """EuroSAT land-use classes."""

    dataset_dir = "eurosat"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "2750")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_EuroSAT.json")

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", "Extract EuroSAT.zip (RGB) so that eurosat/2750/<class>/ exists.")
        train, val, test = split_or_generate(
            self, self.split_path, self.image_dir,
            lambda: read_and_split_data(self.image_dir, new_cnames=NEW_CNAMES), "",
        )
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
