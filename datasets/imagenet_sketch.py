"""ImageNet-Sketch: 50,889 sketches of the 1000 ImageNet classes.

Layout: ``imagenet-sketch/images/<wnid>/*`` + ``classnames.txt`` (ImageNet's). Labels follow the sorted wnid
folders; files next to the folders (README.txt) are ignored. Test-only.
"""

from __future__ import annotations

from engine.api import DATASET_REGISTRY

from .imagenet_variants import ImageNetVariant

__all__ = ["ImageNetSketch"]


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    """ImageNet-Sketch: 50,889 sketches of the 1000 ImageNet classes."""

    dataset_dir = "imagenet-sketch"
    image_subdir = "images"
