"""The class-vectors file: the teacher's L2-normalised text features for every class of a dataset.

PromptKD (paper Sec. 3.2, "pre-stored" teacher text features; reference issue #33) shares the teacher's
class vectors W [N, D] with the student. We compute them ONCE from the trained teacher and store them
in a small file so that the student's training and evaluation never run a text encoder.

File content (a ``torch.save`` dict, loadable with ``weights_only=True``)::

    {"format": "promptkd-class-vectors", "version": 1,
     "features": fp32 [N, D] (rows L2-normalised), "classnames": [N names in label order],
     "teacher": {model name, checkpoint sha256, prompt settings, ...}, "logit_scale": float}

Loading checks the class names (order included) and the feature dimension against what the student
run expects and fails with a message that shows the first differing names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

from engine.fileio import atomic_torch_save
from engine.safe_load import safe_torch_load

logger = logging.getLogger(__name__)

__all__ = ["ClassVectors", "save_class_vectors", "load_class_vectors", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "promptkd-class-vectors"
FORMAT_VERSION = 1
_NORM_TOL = 1e-3


@dataclass
class ClassVectors:
    """In-memory class vectors: ``features[i]`` is the normalised teacher text feature of ``classnames[i]``."""

    features: torch.Tensor
    classnames: List[str]
    teacher: Dict[str, Any] = field(default_factory=dict)
    logit_scale: float = 100.0
    path: Optional[str] = None

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return len(self.classnames)

    def select(self, names: Sequence[str]) -> torch.Tensor:
        """Rows for ``names`` (in that order), e.g. the base or novel class subset of an evaluation set."""
        index = {n: i for i, n in enumerate(self.classnames)}
        missing = [n for n in names if n not in index]
        if missing:
            where = f" ({self.path})" if self.path else ""
            raise KeyError(
                f"{len(missing)} class name(s) are not in the class-vectors file{where}: {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}; the file holds {len(self.classnames)} classes, e.g. "
                f"{self.classnames[:5]}. Recompute the class vectors for this dataset "
                f"(tools/make_class_vectors.py) or fix TRAINER.PROMPTKD.CLASS_VECTORS."
            )
        return self.features[[index[n] for n in names]]


def _check_features(features: torch.Tensor, classnames: Sequence[str], what: str) -> None:
    if features.ndim != 2:
        raise ValueError(f"{what}: features must be a 2-D tensor [N, D], got shape {tuple(features.shape)}")
    if features.shape[0] != len(classnames):
        raise ValueError(f"{what}: {features.shape[0]} feature rows but {len(classnames)} class names")
    if len(set(classnames)) != len(classnames):
        dup = sorted({n for n in classnames if list(classnames).count(n) > 1})
        raise ValueError(f"{what}: duplicate class names {dup[:5]}")
    if not torch.isfinite(features).all():
        raise ValueError(f"{what}: features contain NaN/Inf values")
    norms = features.float().norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=_NORM_TOL):
        raise ValueError(
            f"{what}: rows must be L2-normalised (norms in [{norms.min():.4f}, {norms.max():.4f}]); "
            "normalise the teacher text features before saving"
        )


def save_class_vectors(
    path: str,
    features: torch.Tensor,
    classnames: Sequence[str],
    teacher_identity: Dict[str, Any],
    logit_scale: float,
) -> ClassVectors:
    """Write the class-vectors file atomically (temp file + ``os.replace``) and return its content."""
    classnames = [str(n) for n in classnames]
    features = features.detach().float().cpu().contiguous()
    _check_features(features, classnames, f"save_class_vectors({path})")
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "features": features,
        "classnames": classnames,
        "teacher": dict(teacher_identity),
        "logit_scale": float(logit_scale),
    }
    atomic_torch_save(payload, path)
    logger.info("Wrote class vectors %s: %d classes x %d dims (teacher: %s)",
                path, features.shape[0], features.shape[1], teacher_identity.get("model", "?"))
    return ClassVectors(features, classnames, dict(teacher_identity), float(logit_scale), path)


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at index {i}: file has {x!r}, expected {y!r}"
    return f"the shorter list is a prefix of the longer one (lengths {len(a)} vs {len(b)})"


def load_class_vectors(
    path: str,
    expected_classnames: Optional[Sequence[str]] = None,
    expected_dim: Optional[int] = None,
) -> ClassVectors:
    """Read a class-vectors file and check it against the run.

    Raises FileNotFoundError if missing, ValueError if the file is not a class-vectors file, if the
    class names differ from ``expected_classnames`` (order matters: row i must be label i), or if the
    feature dimension differs from ``expected_dim``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Class-vectors file not found: {path}. Create it with tools/make_class_vectors.py or by training "
            "the teacher with the PromptSRCTeacher trainer, or set TRAINER.PROMPTKD.CLASS_VECTORS."
        )
    payload = safe_torch_load(path, "class-vectors file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path} is not a class-vectors file (expected a dict with format={FORMAT_NAME!r}); "
            "write it with trainers.common.class_vectors.save_class_vectors or tools/make_class_vectors.py"
        )
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported class-vectors format version {payload.get('version')!r} "
                         f"(this code reads version {FORMAT_VERSION})")
    for key in ("features", "classnames", "teacher", "logit_scale"):
        if key not in payload:
            raise ValueError(f"{path}: class-vectors file lacks the key {key!r}")
    features = payload["features"].float()
    classnames = list(payload["classnames"])
    _check_features(features, classnames, path)
    if expected_classnames is not None:
        expected = [str(n) for n in expected_classnames]
        if classnames != expected:
            raise ValueError(
                f"Class-vectors file {path} does not match the dataset: it lists {len(classnames)} classes, the "
                f"dataset has {len(expected)}; {_first_difference(classnames, expected)}. It was computed for another "
                "dataset or class order: delete it to recompute it from the teacher, or point "
                "TRAINER.PROMPTKD.CLASS_VECTORS to the file made for this dataset."
            )
    if expected_dim is not None and features.shape[1] != expected_dim:
        raise ValueError(
            f"Class-vectors file {path} has {features.shape[1]}-d features but {expected_dim} are expected "
            "(the teacher's embedding dimension); it was made by another teacher model."
        )
    return ClassVectors(features, classnames, dict(payload["teacher"]), float(payload["logit_scale"]), path)


def class_vectors_digest(features: torch.Tensor) -> str:
    """sha256 of the class vectors' fp32 values (identifies the teacher a student was distilled with)."""
    import hashlib

    data = features.detach().float().cpu().contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()
