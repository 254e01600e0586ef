"""``ProvingGround``: the target domain of the procedural proving-ground world, in CoOp's layout.

On disk (written by ``tools/build_proving_ground.py`` / :func:`proving_ground.dataset.write_dataset`)::

    <DATASET.ROOT>/proving_ground/images/<colour>_<shape>/<split>_<index>.png
    <DATASET.ROOT>/proving_ground/split_zhou_ProvingGround.json   # {"train"|"val"|"test": [[relpath, label, classname], ...]}
    <DATASET.ROOT>/proving_ground/world.json                      # the world config that rendered it (+ "name")

Class names are ``"<colour> <shape>"`` (e.g. ``"red triangle"``), ordered so that base (first
ceil(N/2) labels) and novel classes both contain every colour and every shape. The reader only reads
the split file, as for the real benchmarks; the protocol (few-shot, base/novel, eval sets) is applied
by :class:`datasets.base.BenchmarkDataset`. The same reader serves the cross-dataset and domain-generalisation
datasets of ``proving_ground/protocols.py`` (one data root each); ``world.json``'s "name" is then the dataset's
name in results.json and tables.
"""

from __future__ import annotations

import json
import os

from engine.api import DATASET_REGISTRY

from .base import BenchmarkDataset, FullSplits, require_dir, require_file
from .utils import classnames_from_items, read_split

__all__ = ["ProvingGround"]

_HINT = (
    "Generate it with `python tools/build_proving_ground.py` and pass the data root it prints as "
    "--root (DATASET.ROOT)"
)


@DATASET_REGISTRY.register()
class ProvingGround(BenchmarkDataset):
    """Target domain of the offline proving-ground world (64 colour x shape classes by default)."""

    dataset_dir = "proving_ground"
    download_hint = _HINT + "."
    #: zero-shot / teacher prompt template (CLIP's generic one; the world's captions name the class the same way)
    template = "a photo of a {}."

    def read_full_splits(self, cfg) -> FullSplits:
        image_dir = require_dir(os.path.join(self.dataset_dir, "images"), self.name, "image folder", _HINT + ".")
        self.split_source = require_file(os.path.join(self.dataset_dir, "split_zhou_ProvingGround.json"), self.name,
                                         "split file", _HINT + "; an interrupted build leaves no split file.")
        world_file = os.path.join(self.dataset_dir, "world.json")
        if os.path.isfile(world_file):
            with open(world_file, "r", encoding="utf-8") as f:
                self.display_name = json.load(f).get("name") or self.display_name
        train, val, test = read_split(self.split_source, image_dir)
        return train, val, test, classnames_from_items({"train": train, "val": val, "test": test}, self.split_source)
