"""Prompt templates used by the zero-shot baselines and by PromptSRC (docs/REFERENCE.md T1, T6).

These are data, kept in one place:

- ``dataset_template(cfg)``: the single template of the configured dataset used by ZeroshotCLIP and by
  the zero-shot CLIP teacher (PromptKD Table 6); defined with the datasets (``datasets.templates``):
  the benchmarks' hand-crafted templates (``CUSTOM_TEMPLATES``), ``DATASET.CUSTOM.TEMPLATE`` for custom data.
- ``IMAGENET_TEMPLATES_SELECT``: the 7-template ensemble of ZeroshotCLIP2.
- ``IMAGENET_TEMPLATES``: the 60-template list of the PromptSRC repository (a re-ordered subset of
  CLIP's 80 ImageNet templates); PromptSRC's frozen text features are the mean over these.
"""

from __future__ import annotations

import logging
from typing import Dict, List

from datasets.templates import DEFAULT_TEMPLATE, TEMPLATES, dataset_template

logger = logging.getLogger(__name__)

__all__ = [
    "CUSTOM_TEMPLATES",
    "IMAGENET_TEMPLATES",
    "IMAGENET_TEMPLATES_SELECT",
    "DEFAULT_TEMPLATE",
    "dataset_template",
    "format_classname",
]

# The single template per dataset is a property of the dataset (datasets/templates.py: the benchmarks'
# hand-crafted templates, DATASET.CUSTOM.TEMPLATE for custom data); re-exported here for existing imports.
CUSTOM_TEMPLATES: Dict[str, str] = TEMPLATES

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
