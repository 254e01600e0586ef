"""UCF101 middle frames, CoOp layout: ``ucf101/UCF-101-midframes/<Split_Camel_Case>/*.jpg``,
``ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt``, ``split_zhou_UCF101.json``.

101 action classes (51 base / 50 novel) named by the CamelCase action split on capitals and joined
with ``_`` (``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup``), which is also the frame folder name. Without
the split file: trainlist01 split 80/20 into train/val + testlist01.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, require_dir, require_file, split_or_generate
from .utils import DatasetError, classnames_from_items, split_trainval

__all__ = ["UCF101", "split_camel_case"]

_HINT = "Extract UCFTrainTestlist (ucfTrainTestlist/classInd.txt, trainlist01.txt, testlist01.txt) into ucf101/."


def split_camel_case(action: str) -> str:
    """``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup`` (reference renaming)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    """UCF101 actions (one middle frame per video)."""

    dataset_dir = "ucf101"

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, "UCF-101-midframes")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_UCF101.json")

    def read_list(self, cname2lab: Dict[str, int], name: str) -> List[Datum]:
        """Parse ``<Action>/v_<Action>_gXX_cYY.avi[ <label>]`` lines into middle-frame items."""
        path = require_file(os.path.join(self.dataset_dir, "ucfTrainTestlist", name), self.name, "split list", _HINT)
        items = []
        with open(path, "r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                entry = line.strip().split(" ")[0]
                if not entry:
                    continue
                action, filename = entry.split("/")
                if action not in cname2lab:
                    raise DatasetError(f"{path}:{lineno}: action {action!r} is not listed in classInd.txt")
                renamed = split_camel_case(action)
                items.append(Datum(impath=os.path.join(self.image_dir, renamed, filename.replace(".avi", ".jpg")),
                                   label=cname2lab[action], classname=renamed))
        return items

    def _generate(self):
        path = require_file(os.path.join(self.dataset_dir, "ucfTrainTestlist", "classInd.txt"), self.name, "class list", _HINT)
        cname2lab = {}
        with open(path, "r", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    label, classname = line.strip().split(" ")
                    cname2lab[classname] = int(label) - 1
        trainval = self.read_list(cname2lab, "trainlist01.txt")
        test = self.read_list(cname2lab, "testlist01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "frame folder", "Extract UCF-101-midframes.zip into ucf101/.")
        train, val, test = split_or_generate(self, self.split_path, self.image_dir, self._generate, "")
        names = classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
        return train, val, test, names
