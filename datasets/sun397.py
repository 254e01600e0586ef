"""SUN397, CoOp layout: ``sun397/SUN397/<letter>/<class...>/*.jpg``, ``ClassName.txt``, ``Training_01.txt``,
``Testing_01.txt``, ``split_zhou_SUN397.json``.

397 classes (199 base / 198 novel). Class name = the path parts after the letter, reversed and
space-joined (``/b/bedroom`` -> "bedroom", ``/a/apartment_building/outdoor`` -> "outdoor
apartment_building"). Without the split file: Training_01 split 80/20 into train/val + Testing_01.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, require_dir, require_file, split_or_generate
from .utils import DatasetError, classnames_from_items, split_trainval

__all__ = ["SUN397", "sun_classname"]

_HINT = "Extract Partitions.zip into sun397/ (ClassName.txt, Training_01.txt, Testing_01.txt)."


def sun_classname(class_dir: str) -> str:
    """``a/apartment_building/outdoor`` -> ``outdoor apartment_building`` (reference naming)."""
    return " ".join(class_dir.split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    """SUN397 scene categories."""

    dataset_dir = "sun397"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "SUN397")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_SUN397.json")

    def read_list(self, cname2lab: Dict[str, int], name: str) -> List[Datum]:
        """Parse a partition file of ``/<letter>/<class...>/<image>`` lines."""
        path = require_file(os.path.join(self.dataset_dir, name), self.name, "partition file", _HINT)
        items = []
        with open(path, "r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                imname = line.strip()[1:]
                if not imname:
                    continue
                class_dir = os.path.dirname(imname)
                if class_dir not in cname2lab:
                    raise DatasetError(f"{path}:{lineno}: class folder {class_dir!r} is not listed in ClassName.txt")
                items.append(Datum(impath=os.path.join(self.image_dir, imname), label=cname2lab[class_dir],
                                   classname=sun_classname(class_dir)))
        return items

    def _generate(self):
        path = require_file(os.path.join(self.dataset_dir, "ClassName.txt"), self.name, "class list", _HINT)
        with open(path, "r", encoding="utf-8") as f:
            classdirs = [line.strip()[1:] for line in f if line.strip()]
        cname2lab = {c: i for i, c in enumerate(classdirs)}
        trainval = self.read_list(cname2lab, "Training_01.txt")
        test = self.read_list(cname2lab, "Testing_01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", "Extract SUN397.tar.gz into sun397/.")
        train, val, test = split_or_generate(self, self.split_path, self.image_dir, self._generate, "")
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
