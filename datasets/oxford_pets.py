"""Oxford-IIIT Pets, CoOp layout: ``oxford_pets/images/*.jpg``, ``annotations/{trainval,test}.txt``,
``split_zhou_OxfordPets.json``.

37 classes (19 base / 18 novel); the class name is the lower-cased file-name prefix (breed). Without
the split file: official trainval split 80/20 into train/val per class (reference ``split_trainval``)
+ the official test list, saved as the split file.
"""

from __future__ import annotations

import os
from typing import Any, List

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, require_dir, require_file, split_or_generate
from .utils import DatasetError, classnames_from_items, split_trainval

__all__ = ["OxfordPets"]


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    """Oxford-IIIT Pets breeds."""

    dataset_dir = "oxford_pets"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "images")
        self.anno_dir = os.path.join(self.dataset_dir, "annotations")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_OxfordPets.json")

    def read_annotations(self, name: str) -> List[Datum]:
        """Parse ``annotations/<name>`` lines ``"<image> <class id> <species> <breed id>"`` (1-based class id)."""
        path = require_file(os.path.join(self.anno_dir, name), self.name, "annotation file",
                            "Extract annotations.tar.gz into oxford_pets/.")
        items = []
        with open(path, "r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) < 2:
                    raise DatasetError(f"{path}:{lineno}: expected '<image> <class id> <species> <breed id>', got {line!r}")
                imname, label = parts[0], int(parts[1]) - 1
                breed = "_".join(imname.split("_")[:-1]).lower()
                items.append(Datum(impath=os.path.join(self.image_dir, imname + ".jpg"), label=label, classname=breed))
        return items

    def _generate(self):
        trainval = self.read_annotations("trainval.txt")
        test = self.read_annotations("test.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", "Extract images.tar.gz into oxford_pets/.")
        train, val, test = split_or_generate(self, self.split_path, self.image_dir, self._generate, "")
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
