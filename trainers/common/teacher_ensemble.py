"""Teacher ensemble for the PromptKD student (``TRAINER.PROMPTKD.ENSEMBLE``): the main teacher plus extra teachers,
each image's teachers weighted by their confidence (or uniformly).

Config (``TRAINER.PROMPTKD.ENSEMBLE``; empty ``TYPES`` = no ensemble, the single online teacher)::

    TYPES:         teacher types of the EXTRA teachers, each promptsrc | maple | zeroshot
    NAMES:         their CLIP names / weight files (like TEACHER_NAME)
    CKPTS:         their checkpoints (like TEACHER_CKPT; "" for zeroshot)
    CLASS_VECTORS: their class-vector files ("" = the default place; an empty list = all "")
    WEIGHTING:     confidence (default) | uniform

Every teacher k (k = 0: the main teacher of TEACHER_TYPE / TEACHER_NAME / TEACHER_CKPT, then the extra ones) is an
:class:`~trainers.common.teacher.OnlineTeacher` on a clone of the config with those four keys replaced, so loading,
class-vector files and their checks are the single teacher's. A zero-shot extra teacher's default file is
``class_vectors_<DATASET.NAME>_ensemble<i>.pt`` in OUTPUT_DIR (i = 1, 2, ...; the main zero-shot teacher's file is
``class_vectors_<DATASET.NAME>.pt``); two teachers resolving to the same file are an error.

The student's class vectors are the MAIN teacher's (the space the projector maps into); extra teachers contribute
only their distributions, each over its OWN class vectors for the same class names (during training the trainer's
training classes ``trainer.train_classnames``, in that order). For image x over those classes:

    p_k = softmax(q_k),  q_k = s_k u_k(x) W_k^T          (teacher k's logit scale, image feature, class vectors)
    confidence: w_k(x) = c_k(x) / sum_j c_j(x),  c_k(x) = max_c p_k(c | x)      uniform: w_k = 1 / K
    p_ens = sum_k w_k p_k;   logits() = log(max(p_ens, tiny))

The KD loss treats log(p_ens) as teacher logits: at TEMPERATURE 1 it sees exactly p_ens; at T != 1 it sees
p_ens^(1/T) renormalised (the mixture sharpened or flattened, not a mixture of T-softened teachers).
"""

from __future__ import annotations

import logging
import os.path as osp
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence

import torch
from yacs.config import CfgNode as CN

from .class_vectors import ClassVectors
from .kd import kd_loss_inputs
from .teacher import TEACHER_TYPES, OnlineTeacher
from .teacher_paths import resolve_teacher_path

logger = logging.getLogger(__name__)

WEIGHTINGS = ("confidence", "uniform")
_KEY = "TRAINER.PROMPTKD.ENSEMBLE"


def add_config(pk: CN) -> None:
    """Add ``ENSEMBLE`` under the ``TRAINER.PROMPTKD`` node."""
    en = CN()
    en.TYPES = []  # teacher types of the EXTRA teachers (promptsrc | maple | zeroshot); [] = no ensemble
    en.NAMES = []  # their CLIP names / weight files (like TEACHER_NAME)
    en.CKPTS = []  # their checkpoint files / run folders (like TEACHER_CKPT; "" for zeroshot)
    en.CLASS_VECTORS = []  # their class-vector files ("" = default place; [] = all default)
    en.WEIGHTING = "confidence"  # confidence (per image, by each teacher's top-1 probability) | uniform
    pk.ENSEMBLE = en


def check_cfg(cfg: Any) -> None:
    """Equal list lengths, known types and weighting, and no option the ensemble cannot serve."""
    pk = cfg.TRAINER.PROMPTKD
    en = pk.ENSEMBLE
    lengths = {k: len(en[k]) for k in ("TYPES", "NAMES", "CKPTS", "CLASS_VECTORS") if k != "CLASS_VECTORS" or en[k]}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{_KEY}: TYPES, NAMES, CKPTS and CLASS_VECTORS (or []) need one entry per extra teacher, "
                         f"got lengths {lengths}")
    if not en.TYPES:
        return
    bad = [t for t in en.TYPES if t not in TEACHER_TYPES]
    if bad or en.WEIGHTING not in WEIGHTINGS:
        raise ValueError(f"{_KEY}: TYPES entries must be in {list(TEACHER_TYPES)} (got {bad}) and WEIGHTING in "
                         f"{list(WEIGHTINGS)} (got {en.WEIGHTING!r})")
    if kd_loss_inputs(pk.LOSS) == "features" or pk.TEACHER_CACHE.MODE != "off" or pk.CLASS_VECTORS_SOURCE != "teacher":
        raise ValueError(f"{_KEY}.TYPES is set: the ensemble mixes the teachers' distributions over the training "
                         "classes, so it needs a logit loss (not feature_l1/feature_mse), TEACHER_CACHE.MODE off "
                         "(the cache stores one teacher's logits) and CLASS_VECTORS_SOURCE teacher "
                         f"(got LOSS {pk.LOSS}, TEACHER_CACHE.MODE {pk.TEACHER_CACHE.MODE}, "
                         f"CLASS_VECTORS_SOURCE {pk.CLASS_VECTORS_SOURCE})")


def member_cfg(cfg: Any, i: int) -> Any:
    """A clone of ``cfg`` describing extra teacher ``i`` (0-based) as the single teacher."""
    en, out = cfg.TRAINER.PROMPTKD.ENSEMBLE, cfg.clone()
    out.defrost()
    pk = out.TRAINER.PROMPTKD
    pk.TEACHER_TYPE, pk.TEACHER_NAME, pk.TEACHER_CKPT = en.TYPES[i], en.NAMES[i], en.CKPTS[i]
    pk.CLASS_VECTORS = en.CLASS_VECTORS[i] if en.CLASS_VECTORS else ""
    if not pk.CLASS_VECTORS and pk.TEACHER_TYPE == "zeroshot":
        pk.CLASS_VECTORS = osp.join(cfg.OUTPUT_DIR, f"class_vectors_{cfg.DATASET.NAME}_ensemble{i + 1}.pt")
    out.freeze()
    return out


class EnsembleTeacher:
    """The main teacher + extra teachers with :class:`OnlineTeacher`'s interface (see the module docstring)."""

    mode = "off"  # TRAINER.PROMPTKD.TEACHER_CACHE.MODE (the ensemble runs online)

    def __init__(self, trainer: Any) -> None:
        cfg = trainer.cfg
        self.cfg, self.weighting = cfg, cfg.TRAINER.PROMPTKD.ENSEMBLE.WEIGHTING
        cfgs = [cfg] + [member_cfg(cfg, i) for i in range(len(cfg.TRAINER.PROMPTKD.ENSEMBLE.TYPES))]
        self.members = [OnlineTeacher(c, trainer.device, trainer.prec, trainer.autocast) for c in cfgs]
        paths = [osp.abspath(t.class_vectors_path()) for t in self.members]
        if len(set(paths)) < len(paths):
            raise ValueError(f"{_KEY}: two teachers would share one class-vectors file ({paths}); give each its own "
                             f"file with {_KEY}.CLASS_VECTORS (or TRAINER.PROMPTKD.CLASS_VECTORS for the main teacher)")
        self.weights: List[torch.Tensor] = []  # W_k over the training classes (extra teachers), set by start()

    def class_vectors(self, classnames: Sequence[str]) -> ClassVectors:
        """The MAIN teacher's class vectors: the student's logits use them (extra teachers' are read in start())."""
        return self.members[0].class_vectors(classnames)

    def start(self, trainer: Any) -> None:
        """Start every teacher (each checked against its own class vectors); keep the extra teachers' rows of the
        training classes, in the order of ``trainer.train_classnames``."""
        self.members[0].start(trainer)
        self.weights = []
        for teacher in self.members[1:]:
            cv = teacher.class_vectors(trainer.dm.dataset.all_classnames)
            teacher.start(SimpleNamespace(class_vectors=cv))  # start() reads only the class vectors
            self.weights.append(cv.select(list(trainer.train_classnames)).to(trainer.device))
        logger.info("Teacher ensemble (%s weighting): %s", self.weighting,
                    ", ".join(f"{t.cfg.TRAINER.PROMPTKD.TEACHER_TYPE} {t.cfg.TRAINER.PROMPTKD.TEACHER_NAME}"
                              for t in self.members))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The main teacher's image features (feature losses are refused with an ensemble)."""
        return self.members[0].features(images)

    @torch.no_grad()
    def logits(self, images: torch.Tensor, class_weights: torch.Tensor,
               batch: Optional[Dict[str, Any]] = None) -> torch.Tensor:
        """log p_ens [B, C] fp32 over the training classes (``class_weights``: the main teacher's rows of them)."""
        if any(w.shape[0] != class_weights.shape[0] for w in self.weights):
            raise RuntimeError(f"Teacher ensemble: {class_weights.shape[0]} classes requested, but the extra teachers "
                               "hold the training classes only")
        q = [self.members[0].logits(images, class_weights)]
        q += [t.logits(images, w) for t, w in zip(self.members[1:], self.weights)]
        p = torch.stack(q).softmax(dim=-1)  # [K, B, C]
        if self.weighting == "confidence":
            conf = p.amax(dim=-1, keepdim=True)  # c_k(x) [K, B, 1]
            w = conf / conf.sum(dim=0, keepdim=True)
        else:
            w = torch.full_like(p[:, :, :1], 1.0 / len(q))
        return (w * p).sum(dim=0).clamp_min(torch.finfo(p.dtype).tiny).log()

    def end_epoch(self, trainer: Any) -> None:
        """After each training epoch: every teacher's hook (online teachers: nothing)."""
        for teacher in self.members:
            teacher.end_epoch(trainer)

    def identity(self) -> Dict[str, Any]:
        """The ``ensemble`` entry of the teacher record: weighting and the extra teachers (type, model, resolved
        checkpoint for checkpoint teachers, class-vectors file)."""
        extra = []
        for t in self.members[1:]:
            pk = t.cfg.TRAINER.PROMPTKD
            ckpt = {} if pk.TEACHER_TYPE == "zeroshot" else {
                "checkpoint": resolve_teacher_path(pk.TEACHER_CKPT, self.cfg.DATASET.NAME, self.cfg.DATASET.ROOT)}
            extra.append({"type": pk.TEACHER_TYPE, "model": pk.TEACHER_NAME, **ckpt,
                          "class_vectors": t.class_vectors_path()})
        return {"weighting": self.weighting, "teachers": extra}
