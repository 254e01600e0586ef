"""The exported student as one module: image -> logits over the artefact's classes (paper stage III).

    logits = s * norm(P(f_s(x; prompts))) @ norm(W)^T

with f_s the frozen student image tower run with the learned deep visual prompts (:func:`clip.encode_image`),
P the projector into the teacher's embedding space, W the teacher's class vectors and s the student's
logit scale: the computation of ``PromptKDStudentModel`` + ``cosine_logits`` in the trainer's evaluation
(tests/test_export_predict.py checks them equal).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import clip

from .artefact import build_projector

__all__ = ["PRECISIONS", "StudentClassifier", "from_artefact"]

PRECISIONS = ("fp32", "fp16", "bf16")


class StudentClassifier(nn.Module):
    """Frozen student image tower + prompts + projector + class vectors; ``forward(images)`` -> fp32 logits [B, C].

    ``precision`` fp16 / bf16 stores the tower's matmul weights in half precision (LayerNorms in fp32, as
    the trainer's ``PREC fp16``); prompts are cast to the tower's dtype, the projector and the logits are fp32.
    """

    def __init__(self, visual: nn.Module, prompts: Sequence[torch.Tensor], projector: nn.Sequential,
                 class_vectors: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        self.visual = visual.requires_grad_(False)
        self.n_prompts = len(prompts)
        for i, p in enumerate(prompts):
            self.register_buffer(f"prompt{i}", p.detach().float().clone())
        self.projector = projector.requires_grad_(False)
        self.register_buffer("class_vectors", F.normalize(class_vectors.detach().float(), dim=-1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        self.eval()

    def prompts(self) -> Optional[List[torch.Tensor]]:
        return [getattr(self, f"prompt{i}") for i in range(self.n_prompts)] or None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """norm(P(f_s(x))) [B, D] in fp32."""
        dtype = self.visual.conv1.weight.dtype
        prompts = self.prompts()
        feats = clip.encode_image(self.visual, images.to(dtype),
                                  prompts=None if prompts is None else [p.to(dtype) for p in prompts])
        return F.normalize(self.projector(feats.float()), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * self.features(images) @ self.class_vectors.t()


def from_artefact(art: Dict[str, Any], precision: str = "fp32", device: str | torch.device = "cpu",
                  subset: str = "all", source: str = "artefact") -> StudentClassifier:
    """Build the :class:`StudentClassifier` of an artefact (see :mod:`stage3.artefact`) for the classes of
    ``subset`` (all | base | novel | train, as stored)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {list(PRECISIONS)}")
    # built in the target precision (fp16 / bf16: LayerNormFp32, matmul weights converted); loading copies
    # the stored values into those dtypes
    visual = clip.build_vision_tower(art["vision"], precision=precision)
    try:
        visual.load_state_dict(art["visual_state"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{source}: the image tower's weights do not fit its architecture: {exc}") from exc
    projector = build_projector(art["projector"])
    try:
        projector.load_state_dict(art["projector_state"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{source}: the projector's weights do not fit its layers: {exc}") from exc

    subsets = art.get("class_subsets") or {"all": list(art["classnames"])}
    if subset not in subsets:
        raise KeyError(f"--subset {subset!r}: the artefact provides {sorted(subsets)}")
    names = list(subsets[subset])
    index = {c: i for i, c in enumerate(art["classnames"])}
    weights = art["class_vectors"].float()[[index[c] for c in names]]
    model = StudentClassifier(visual, list(art["prompts"]), projector, weights, float(art["logit_scale"]))
    model.classnames = names
    return model.to(device).eval()
