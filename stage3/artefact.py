"""The exported student artefact: one ``torch.save`` file of plain tensors, numbers, strings and lists,
readable with ``torch.load(..., weights_only=True)`` (nothing in it is executed).

Keys (version 2):

- ``format`` / ``version``: ``"promptkd-student"`` / 2;
- ``vision``: the student image tower's open_clip architecture (``embed_dim``, ``quick_gelu``,
  ``vision_cfg``), ``visual_state``: its weights (fp32, or fp16 with ``export --dtype fp16``);
- ``prompts``: the learned visual prompts, one [n_ctx, width] tensor per prompted layer (empty when the
  student was trained without prompts);
- ``projector``: the layers (``linear`` / ``batchnorm1d`` / ``relu`` with their sizes) and
  ``projector_state``: their weights and BatchNorm statistics;
- ``class_vectors`` [C, D] (the teacher's normalised text features), ``classnames``, ``class_subsets``
  (all / base / novel / train), ``logit_scale`` (the student's exp(logit_scale));
- ``preprocessing``: the run's ``INPUT`` config node; ``backbone``: the backbone's display name (no
  local path); ``teacher``, ``source`` (run / checkpoint names, checkpoint sha256), ``results``.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List

import torch
from torch import nn

__all__ = ["ARTEFACT_FORMAT", "ARTEFACT_VERSION", "REQUIRED_KEYS", "build_projector", "load_artefact",
           "projector_layers"]

ARTEFACT_FORMAT = "promptkd-student"
ARTEFACT_VERSION = 2
REQUIRED_KEYS = ("vision", "visual_state", "prompts", "projector", "projector_state", "class_vectors", "classnames",
                 "logit_scale", "preprocessing")


def projector_layers(projector: nn.Sequential) -> List[Dict[str, Any]]:
    """Describe a projector made of Linear / BatchNorm1d / ReLU layers as plain values."""
    layers: List[Dict[str, Any]] = []
    for i, layer in enumerate(projector):
        if isinstance(layer, nn.Linear):
            layers.append({"type": "linear", "in": layer.in_features, "out": layer.out_features,
                           "bias": layer.bias is not None})
        elif isinstance(layer, nn.BatchNorm1d):
            layers.append({"type": "batchnorm1d", "features": layer.num_features, "eps": float(layer.eps),
                           "affine": bool(layer.affine)})
        elif isinstance(layer, nn.ReLU):
            layers.append({"type": "relu"})
        else:
            raise ValueError(f"projector layer {i} is a {type(layer).__name__}; the artefact describes Linear, "
                             "BatchNorm1d and ReLU layers only")
    return layers


def build_projector(layers: List[Dict[str, Any]]) -> nn.Sequential:
    """The projector described by :func:`projector_layers` (weights not loaded)."""
    modules: List[nn.Module] = []
    for i, spec in enumerate(layers):
        kind = spec.get("type")
        if kind == "linear":
            modules.append(nn.Linear(int(spec["in"]), int(spec["out"]), bias=bool(spec.get("bias", True))))
        elif kind == "batchnorm1d":
            modules.append(nn.BatchNorm1d(int(spec["features"]), eps=float(spec.get("eps", 1e-5)),
                                          affine=bool(spec.get("affine", True))))
        elif kind == "relu":
            modules.append(nn.ReLU())
        else:
            raise ValueError(f"projector layer {i}: unknown type {kind!r} (expected linear, batchnorm1d or relu)")
    return nn.Sequential(*modules)


def load_artefact(path: str) -> Dict[str, Any]:
    """Read and check an artefact written by tools/export_student.py (``weights_only=True``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"Student artefact not found: {path} (write it with tools/export_student.py RUN_DIR OUT_FILE)")
    from engine.safe_load import safe_torch_load  # weights_only=True; a pickled object is a named error

    art = safe_torch_load(path, "student artefact")
    if not isinstance(art, dict) or art.get("format") != ARTEFACT_FORMAT:
        raise ValueError(f"{path} is not a PromptKD student artefact (expected format {ARTEFACT_FORMAT!r}); "
                         "write it with tools/export_student.py")
    if art.get("version") != ARTEFACT_VERSION:
        raise ValueError(f"{path}: artefact version {art.get('version')!r} is not supported (this code reads version "
                         f"{ARTEFACT_VERSION}, which holds the image tower's weights); re-export the run with "
                         "tools/export_student.py")
    missing = [k for k in REQUIRED_KEYS if k not in art]
    if missing:
        raise ValueError(f"{path}: the artefact lacks {missing}; re-export the run with tools/export_student.py")
    return art
