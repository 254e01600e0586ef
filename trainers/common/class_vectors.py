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

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

from engine.fileio import atomic_torch_save
from engine.safe_load import safe_torch_load

logger = logging.getLogger(__name__)


FORMAT_NAME = "promptkd-class-vectors"
FORMAT_VERSION = 1


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
    if features.ndim != 2 or features.shape[0] != len(classnames):
        raise ValueError(f"{what}: features must be a 2-D tensor [N, D] with one row per class name, got shape "
                         f"{tuple(features.shape)} for {len(classnames)} class names")
    if len(set(classnames)) != len(classnames):
        dup = sorted({n for n in classnames if list(classnames).count(n) > 1})
        raise ValueError(f"{what}: duplicate class names {dup[:5]}")
    if not torch.isfinite(features).all():
        raise ValueError(f"{what}: features contain NaN/Inf values")
    norms = features.float().norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        raise ValueError(f"{what}: rows must be L2-normalised (norms in [{norms.min():.4f}, {norms.max():.4f}]); "
                         "normalise the teacher text features before saving")


def save_class_vectors(path: str, features: torch.Tensor, classnames: Sequence[str],
                       teacher_identity: Dict[str, Any], logit_scale: float) -> ClassVectors:
    """Write the class-vectors file atomically (temp file + ``os.replace``) and return its content.
    ``teacher_identity``: the teacher's record (``TeacherIdentity.as_dict()``)."""
    cv = ClassVectors(features.detach().float().cpu().contiguous(), [str(n) for n in classnames],
                      dict(teacher_identity), float(logit_scale), path)
    _check_features(cv.features, cv.classnames, f"save_class_vectors({path})")
    atomic_torch_save({"format": FORMAT_NAME, "version": FORMAT_VERSION, "features": cv.features,
                       "classnames": cv.classnames, "teacher": cv.teacher, "logit_scale": cv.logit_scale}, path)
    logger.info("Wrote class vectors %s: %d classes x %d dims (teacher: %s)", path, len(cv), cv.dim,
                cv.teacher.get("model", "?"))
    return cv


def load_class_vectors(path: str, expected_classnames: Optional[Sequence[str]] = None,
                       expected_dim: Optional[int] = None) -> ClassVectors:
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
    missing = [k for k in ("features", "classnames", "teacher", "logit_scale") if k not in payload]
    if payload.get("version") != FORMAT_VERSION or missing:
        raise ValueError(f"{path}: unsupported class-vectors format version {payload.get('version')!r} or missing "
                         f"keys {missing} (this code reads version {FORMAT_VERSION})")
    cv = ClassVectors(payload["features"].float(), list(payload["classnames"]), dict(payload["teacher"]),
                      float(payload["logit_scale"]), path)
    _check_features(cv.features, cv.classnames, path)
    expected = None if expected_classnames is None else [str(n) for n in expected_classnames]
    if expected is not None and cv.classnames != expected:
        i = next((i for i, (x, y) in enumerate(zip(cv.classnames, expected)) if x != y), None)
        where = (f"first difference at index {i}: file has {cv.classnames[i]!r}, expected {expected[i]!r}"
                 if i is not None else "the shorter list is a prefix of the longer one")
        raise ValueError(
            f"Class-vectors file {path} does not match the dataset: it lists {len(cv)} classes, the dataset has "
            f"{len(expected)}; {where}. It was computed for another dataset or class order: delete it to recompute "
            "it from the teacher, or point TRAINER.PROMPTKD.CLASS_VECTORS to the file made for this dataset."
        )
    if expected_dim is not None and cv.dim != expected_dim:
        raise ValueError(
            f"Class-vectors file {path} has {cv.dim}-d features but {expected_dim} are expected "
            "(the teacher's embedding dimension); it was made by another teacher model."
        )
    return cv


def class_vectors_digest(features: torch.Tensor) -> str:
    """sha256 of the class vectors' fp32 values (identifies the teacher a student was distilled with)."""
    return hashlib.sha256(features.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()
