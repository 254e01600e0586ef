"""ImageNet-A: 7,500 natural adversarial images of 200 ImageNet classes.

Layout: ``imagenet-adversarial/imagenet-a/<wnid>/*`` + ``classnames.txt`` (ImageNet's). Labels follow the sorted wnid
folders; files next to the folders (README.txt) are ignored. Test-only.
"""

from __future__ import annotations

from engine.api import DATASET_REGISTRY

from .imagenet_variants import ImageNetVariant

__all__ = ["ImageNetA"]


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    """ImageNet-A: 7,500 natural adversarial images of 200 ImageNet classes."""

    dataset_dir = "imagenet-adversarial"
    image_subdir = "imagenet-a"
