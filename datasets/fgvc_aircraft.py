"""FGVC-Aircraft (2013b ``data/`` folder renamed ``fgvc_aircraft/``): ``images/*.jpg``, ``variants.txt``,
``images_variant_{train,val,test}.txt``.

100 variant classes (50 base / 50 novel) in ``variants.txt`` order; the official train/val/test lists
are used directly (no split json, as in the reference).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, require_dir, require_file
from .utils import DatasetError

__all__ = ["FGVCAircraft"]

_HINT = "Extract fgvc-aircraft-2013b.tar.gz and rename its data/ folder to fgvc_aircraft/ (see DATASETS.md)."


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    """FGVC-Aircraft variants."""

    dataset_dir = "fgvc_aircraft"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "images")

    def read_list(self, cname2lab: Dict[str, int], name: str) -> List[Datum]:
        """Parse ``<name>`` lines ``"<image id> <variant name>"``."""
        path = require_file(os.path.join(self.dataset_dir, name), self.name, "split list", _HINT)
        items = []
        with open(path, "r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.strip().split(" ")
                if not parts[0]:
                    continue
                classname = " ".join(parts[1:])
                if classname not in cname2lab:
                    raise DatasetError(f"{path}:{lineno}: variant {classname!r} is not listed in variants.txt")
                items.append(Datum(impath=os.path.join(self.image_dir, parts[0] + ".jpg"),
                                   label=cname2lab[classname], classname=classname))
        return items

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", _HINT)
        variants = require_file(os.path.join(self.dataset_dir, "variants.txt"), self.name, "class list", _HINT)
        with open(variants, "r", encoding="utf-8") as f:
            classnames = [line.strip() for line in f if line.strip()]
        if len(set(classnames)) != len(classnames):
            raise DatasetError(f"{variants} lists a class twice")
        cname2lab = {c: i for i, c in enumerate(classnames)}
        self.split_source = os.path.join(self.dataset_dir, "images_variant_*.txt")
        train = self.read_list(cname2lab, "images_variant_train.txt")
        val = self.read_list(cname2lab, "images_variant_val.txt")
        test = self.read_list(cname2lab, "images_variant_test.txt")
        return train, val, test, classnames
