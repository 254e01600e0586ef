"""ImageNet-R: 30,000 renditions of 200 ImageNet classes.

Layout: ``imagenet-rendition/imagenet-r/<wnid>/*`` + ``classnames.txt`` (ImageNet's). Labels follow the sorted wnid
folders; files next to the folders (README.txt) are ignored. Test-only.
"""

from __future__ import annotations

from engine.api import DATASET_REGISTRY

from .imagenet_variants import ImageNetVariant

__all__ = ["ImageNetR"]


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    """ImageNet-R: 30,000 renditions of 200 ImageNet classes."""

    dataset_dir = "imagenet-rendition"
    image_subdir = "imagenet-r"
