"""Facts about the 15 benchmark datasets (``catalog.json``): folder, split file, sources, expected sizes,
zero-shot template and the reader's per-dataset data.

Expected sizes: train / test-base / test-novel from PromptKD's paper (Table 8, supplementary; reference
docs/REFERENCE.md C2), val and test totals from CoOp's dataset statistics (test = test-base + test-novel). The
ImageNet variants are test-only: their "train" is the test set (reference behaviour). Used by the readers
(:mod:`datasets.benchmarks`, :mod:`datasets.imagenet`), ``tools/check_datasets.py`` and to warn when a
dataset is not the full benchmark.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

__all__ = ["DatasetInfo", "CATALOG", "CONFIG_NAMES", "HF_MIRROR", "lookup"]

#: Hugging Face mirror of the 14 non-ImageNet datasets with their split_zhou_*.json files.
HF_MIRROR = "https://huggingface.co/datasets/zhengli97/prompt_learning_dataset"


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of one benchmark dataset (``None`` = not applicable / not checked)."""

    name: str
    folder: str
    config: str  # configs/datasets/<config>.yaml
    classes: int
    train: int
    val: Optional[int]
    test: int
    test_base: Optional[int] = None
    test_novel: Optional[int] = None
    split_file: Optional[str] = None
    source: str = ""
    mirror: str = HF_MIRROR
    #: files or folders (relative to the dataset folder) that must exist when the split file is present
    required: Tuple[str, ...] = ()
    #: folders whose sub-folders are class folders (checked for emptiness)
    class_dirs: Tuple[str, ...] = ()
    #: the dataset's hand-crafted zero-shot prompt template (CoOp/PromptSRC choice; "{}" = class name)
    template: str = "a photo of a {}."
    #: reader data: the image folder (relative to the dataset folder) and how to fix a missing one
    images: str = ""
    hint: str = ""
    #: class folders a folder-per-class reader skips, and folder -> class name fixes (reference renames)
    ignored: Tuple[str, ...] = ()
    renames: Mapping[str, str] = field(default_factory=dict)

    @property
    def download_hint(self) -> str:
        mirror = f"; mirror: {self.mirror}" if self.mirror else ""
        return f"download from {self.source}{mirror} (see DATASETS.md, section {self.name})"


with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog.json"), encoding="utf-8") as _f:
    CATALOG: Dict[str, DatasetInfo] = {
        row["name"]: DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})
        for row in json.load(_f)
    }

#: configs/datasets/<stem>.yaml -> registered dataset name (docs/REFERENCE.md C2)
CONFIG_NAMES: Dict[str, str] = {info.config: info.name for info in CATALOG.values()}


def lookup(name: str) -> DatasetInfo:
    """Find a dataset by registered name, config stem (``dtd``) or folder, case-insensitively."""
    key = name.strip().lower()
    for info in CATALOG.values():
        if key in (info.name.lower(), info.config.lower(), info.folder.lower()):
            return info
    known = ", ".join(sorted(CATALOG))
    raise KeyError(f"unknown dataset {name!r}; known: {known} (or their config names, e.g. dtd, oxford_pets)")
