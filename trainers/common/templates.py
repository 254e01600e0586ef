"""Prompt templates used by the zero-shot baselines and by PromptSRC (docs/REFERENCE.md T1, T6).

These are data, kept in one place:

- ``dataset_template(cfg)``: the single template of the configured dataset used by ZeroshotCLIP and by
  the zero-shot CLIP teacher (PromptKD Table 6); defined with the datasets (``datasets.templates``):
  the benchmarks' hand-crafted templates, ``DATASET.CUSTOM.TEMPLATE`` for custom data.
- ``IMAGENET_TEMPLATES_SELECT``: the 7-template ensemble of ZeroshotCLIP2.
- ``IMAGENET_TEMPLATES``: the 60-template list of the PromptSRC repository (a re-ordered subset of
  CLIP's 80 ImageNet templates); PromptSRC's frozen text features are the mean over these.

:func:`template_text_features` is the one function that turns templates and class names into the frozen
CLIP's class text features (as open_clip's zero-shot classifier builder): ZeroshotCLIP / ZeroshotCLIP2,
PromptSRC's frozen features, the zero-shot PromptKD teacher and the KgCoOp plug-in all call it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, ContextManager, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import clip
from datasets.templates import dataset_template  # noqa: F401 (the trainers' import point)


# The 7-template ensemble of ZeroshotCLIP2 and the 60 templates of the PromptSRC repository
# (trainers/imagenet_templates.py there), in its order: data, in templates.json next to this file.
_DATA = json.loads(Path(__file__).with_name("templates.json").read_text(encoding="utf-8"))
IMAGENET_TEMPLATES_SELECT: List[str] = _DATA["IMAGENET_TEMPLATES_SELECT"]
IMAGENET_TEMPLATES: List[str] = _DATA["IMAGENET_TEMPLATES"]


def format_classname(name: str) -> str:
    """Class names are used with underscores replaced by spaces, as in every reference trainer."""
    return name.replace("_", " ")


@torch.no_grad()
def template_text_features(clip_model: nn.Module, classnames: Sequence[str], templates: Sequence[str],
                           normalize: bool = True, autocast: Optional[Callable[[], ContextManager]] = None,
                           classes_per_batch: Optional[int] = None) -> torch.Tensor:
    """Class text features [C, D] (fp32) of a frozen CLIP from hand-crafted templates.

    For each template, ``clip_model.encode_text`` of ``template.format(class name)`` (underscores ->
    spaces), ``classes_per_batch`` classes per pass (None: all at once). ``normalize`` True: CLIP's
    prompt ensemble, each template's features L2-normalised, averaged, renormalised (one template: the
    normalised features). ``normalize`` False: the mean of the UNnormalised features (PromptSRC's frozen
    T0; one template: the raw features). ``autocast`` returns the precision context of the forward pass.
    """
    ctx = autocast or contextlib.nullcontext
    context_length = clip.model_info(clip_model).context_length
    device = clip_model.token_embedding.weight.device
    names = [format_classname(c) for c in classnames]
    step = classes_per_batch or max(len(names), 1)
    feats = []
    for template in templates:
        chunks = []
        for start in range(0, len(names), step):
            ids = clip.tokenize([template.format(n) for n in names[start:start + step]], context_length).to(device)
            with ctx():
                chunks.append(clip_model.encode_text(ids).float())
        feats.append(torch.cat(chunks))
    if not normalize:
        return sum(feats[1:], feats[0]) / len(feats)
    return F.normalize(torch.stack([F.normalize(f, dim=-1) for f in feats]).mean(dim=0), dim=-1)
