"""Prompt templates used by the zero-shot baselines and by PromptSRC (reference §3.1, §3.6).

These are data, kept in one place:

- ``CUSTOM_TEMPLATES``: the single hand-crafted template per dataset used by ZeroshotCLIP and by the
  zero-shot CLIP teacher (PromptKD Table 6).
- ``IMAGENET_TEMPLATES_SELECT``: the 7-template ensemble of ZeroshotCLIP2.
- ``IMAGENET_TEMPLATES``: the 60-template list of the PromptSRC repository (a re-ordered subset of
  CLIP's 80 ImageNet templates); PromptSRC's frozen text features are the mean over these.
"""

from __future__ import annotations

import logging
from typing import Dict, List

logger = logging.getLogger(__name__)

__all__ = [
    "CUSTOM_TEMPLATES",
    "IMAGENET_TEMPLATES",
    "IMAGENET_TEMPLATES_SELECT",
    "DEFAULT_TEMPLATE",
    "dataset_template",
    "format_classname",
]

DEFAULT_TEMPLATE = "a photo of a {}."

CUSTOM_TEMPLATES: Dict[str, str] = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
}

IMAGENET_TEMPLATES_SELECT: List[str] = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]

# The 60 templates of the PromptSRC repository (trainers/imagenet_templates.py), in its order.
IMAGENET_TEMPLATES: List[str] = [
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
]


def format_classname(name: str) -> str:
    """Class names are used with underscores replaced by spaces, as in every reference trainer."""
    return name.replace("_", " ")


def dataset_template(dataset_name: str) -> str:
    """The single zero-shot template of a dataset (``CUSTOM_TEMPLATES``).

    Datasets outside the 15 benchmarks (custom datasets) use ``"a photo of a {}."``; this is logged
    so that the choice is visible in the run log.
    """
    if dataset_name in CUSTOM_TEMPLATES:
        return CUSTOM_TEMPLATES[dataset_name]
    logger.warning(
        "No hand-crafted template for dataset %r (known: %s); using %r",
        dataset_name, ", ".join(sorted(CUSTOM_TEMPLATES)), DEFAULT_TEMPLATE,
    )
    return DEFAULT_TEMPLATE
