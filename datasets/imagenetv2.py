"""ImageNetV2 (matched frequency): ``imagenetv2/imagenetv2-matched-frequency-format-val/<0..999>/*``,
``classnames.txt``. Folder ``i`` holds class ``i`` of ``classnames.txt`` (file order). Test-only.
"""

from __future__ import annotations

from typing import Any

from engine.api import DATASET_REGISTRY

from .base import FullSplits
from .imagenet import read_wnid_folders, wnid_folders
from .imagenet_variants import ImageNetVariant
from .utils import DatasetError, read_wnid_classnames

__all__ = ["ImageNetV2"]


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    """ImageNetV2 matched-frequency test set (numeric class folders)."""

    dataset_dir = "imagenetv2"
    image_subdir = "imagenetv2-matched-frequency-format-val"

    def read_full_splits(self, cfg: Any) -> FullSplits:
        wnid2name = read_wnid_classnames(self.classnames_file, self._classnames_hint())
        names = list(wnid2name.values())
        present = set(wnid_folders(self.image_dir, self.name, "image", "Extract imagenetv2-matched-frequency.tar.gz into imagenetv2/."))
        expected = [str(i) for i in range(len(names))]
        missing = [f for f in expected if f not in present]
        extra = sorted(present - set(expected))
        if missing or extra:
            raise DatasetError(
                f"{self.name}: {self.image_dir} must hold folders 0..{len(names) - 1} (one per line of {self.classnames_file}); "
                f"missing {missing[:5]} ({len(missing)}), unexpected {extra[:5]} ({len(extra)})"
            )
        data = read_wnid_folders(self.image_dir, expected, names, self.name)
        self.images_listed = True
        self.split_source = self.image_dir
        return data, [], data, names
