"""Shared reader of the test-only ImageNet variants (ImageNetV2, -Sketch, -A, -R).

Each has a folder per class and a copy of ImageNet's ``classnames.txt``. The whole dataset is the
test split and also ``train_x`` (reference behaviour: ``train_x = test = data``; the PromptKD student
distils on these unlabeled target images in the domain-generalisation setting). There is no val
split and ``NUM_SHOTS`` is not applied.
"""

from __future__ import annotations

import os
from typing import Any, List

from .base import BenchmarkDataset, FullSplits
from .imagenet import names_for, read_wnid_folders, wnid_folders
from .utils import read_wnid_classnames

__all__ = ["ImageNetVariant"]


class ImageNetVariant(BenchmarkDataset):
    """Test-only ImageNet variant whose class folders are wnids (subclasses set ``image_subdir``)."""

    has_val = False
    test_only = True
    image_subdir: str = ""

    def setup_paths(self) -> None:
        self.image_dir = os.path.join(self.dataset_dir, self.image_subdir)
        self.classnames_file = os.path.join(self.dataset_dir, "classnames.txt")

    def _classnames_hint(self) -> str:
        return f"Copy imagenet/classnames.txt into {type(self).dataset_dir}/ (see DATASETS.md)."

    def class_folders(self) -> List[str]:
        """Sorted class folders (files such as README.txt are ignored)."""
        return wnid_folders(self.image_dir, self.name, "image", f"Extract the {self.name} archive (see DATASETS.md).")

    def read_full_splits(self, cfg: Any) -> FullSplits:
        wnid2name = read_wnid_classnames(self.classnames_file, self._classnames_hint())
        folders = self.class_folders()
        names = names_for(folders, wnid2name, self.classnames_file, self.image_dir, self.name)
        data = read_wnid_folders(self.image_dir, folders, names, self.name)
        self.images_listed = True
        self.split_source = self.image_dir
        return data, [], data, names
