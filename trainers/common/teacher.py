"""The PromptKD teacher (docs/REFERENCE.md T7, paper Sec. 3.2): a frozen large CLIP with PromptSRC prompts.

Three sources (``TRAINER.PROMPTKD.TEACHER_TYPE`` / checkpoint content):

(a) a checkpoint of OUR PromptSRCTeacher / PromptSRC / IVLP trainer: ``state_dict`` holds only
    ``text_prompts.layer{i}`` / ``image_prompts.layer{i}``; ``meta`` names the backbone it was trained
    on and its CTX_INIT;
(b) an officially released PromptSRC / PromptKD-teacher checkpoint (whole CustomCLIP, docs/REFERENCE.md M6 layout):
    its prompts AND its CLIP tower weights are loaded; the token embedding (not part of the released
    files) comes from ``TEACHER_NAME``, whose architecture must match the checkpoint's;
(c) vanilla zero-shot CLIP (``TEACHER_TYPE zeroshot``, paper Table 6), one template per dataset;
(d) a MaPLe checkpoint (``TEACHER_TYPE maple``, paper Table 6), ours (``text_prompts.layer{i}`` +
    ``couplings.{i}``) or a released one (whole CustomCLIP, mapped by ``trainers.maple``): its text
    prompts give the class vectors and its coupled visual prompts (``couplings[i](text layer i)``,
    constant once the teacher is frozen) prompt its image tower.

The architecture is read from the checkpoint keys (Nt/Jt/Nv/Jv from the prompt shapes and the
VPT_shallow indices) instead of being hard-coded (fixes docs/REFERENCE.md D4), and loading is strict: any key
that is not consumed, other than class-name buffers and PromptSRC's ``ZS_image_encoder`` copy, is an
error that lists the missing/unexpected keys.

The teacher's text branch is run by :func:`compute_class_vectors` once, after the weights are loaded
(the reference issue #33 trap), for every class of the dataset; afterwards only
:class:`TeacherImageEncoder` (frozen tower + trained visual prompts) is needed for distillation.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Callable, ContextManager, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

import clip
from engine.safe_load import safe_torch_load

from .backbone import build_clip, freeze
from .checkpoints import (
    CheckpointKeyError,
    file_sha256,
    format_keys,
    is_reference_vl_state,
    prompt_layout,
    split_reference_vl_state,
    strict_load,
)
from .prompts import VisualPromptStack
from .teacher_paths import find_teacher_checkpoint, resolve_teacher_path
from .templates import dataset_template, format_classname
from .vl_model import VLPromptCLIP, cast_prompts, tower_dtype

logger = logging.getLogger(__name__)

__all__ = [
    "TEACHER_TYPES",
    "REGISTERED_NAME",
    "Teacher",
    "TeacherImageEncoder",
    "resolve_teacher_path",
    "find_teacher_checkpoint",
    "load_teacher_checkpoint",
    "build_zeroshot_teacher",
    "load_maple_teacher_checkpoint",
    "build_teacher",
    "compute_class_vectors",
]

TEACHER_TYPES = ("promptsrc", "maple", "zeroshot")
REGISTERED_NAME = "VLPromptLearner"


class TeacherImageEncoder(nn.Module):
    """Frozen teacher image tower + its trained visual prompts; ``forward`` -> L2-normalised fp32 features."""

    def __init__(self, visual: nn.Module, image_prompts: Optional[VisualPromptStack] = None) -> None:
        super().__init__()
        self.visual = visual
        self.image_prompts = image_prompts
        freeze(self)

    def train(self, mode: bool = True) -> "TeacherImageEncoder":
        return super().train(False)  # always eval: the teacher is never trained

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        dtype = tower_dtype(self.visual)
        prompts = cast_prompts(self.image_prompts(), dtype) if self.image_prompts is not None else None
        feats = clip.encode_image(self.visual, images.to(dtype), prompts=prompts)
        return F.normalize(feats.float(), dim=-1)


class Teacher:
    """A loaded teacher: frozen CLIP (+ prompts for PromptSRC teachers) and its identity.

    Created by the loaders of this module (after the weights are in place) or by PromptSRCTeacher
    around its own trained model.
    """

    def __init__(self, kind: str, clip_model: nn.Module, identity: Dict[str, Any],
                 vl_model: Optional[VLPromptCLIP] = None, template: Optional[str] = None) -> None:
        if kind not in TEACHER_TYPES:
            raise ValueError(f"teacher kind must be one of {TEACHER_TYPES}, got {kind!r}")
        self.kind = kind
        self.clip_model = clip_model
        self.vl_model = vl_model
        self.template = template
        self.identity = identity
        info = clip.model_info(clip_model)
        self.embed_dim = int(info.embed_dim)
        self.loaded = True

    @property
    def logit_scale(self) -> float:
        return float(self.clip_model.logit_scale.detach().float().exp().item())

    def image_encoder(self) -> TeacherImageEncoder:
        prompts = None
        if self.vl_model is not None:
            prompts = getattr(self.vl_model, "image_prompts", None)
            if prompts is None:  # MaPLe: the visual prompts are the couplings of the (frozen) text prompts
                prompts = frozen_prompt_stack(self.vl_model.visual_prompts())
        return TeacherImageEncoder(self.clip_model.visual, prompts)


@torch.no_grad()
def frozen_prompt_stack(prompts: Sequence[torch.Tensor]) -> VisualPromptStack:
    """A :class:`VisualPromptStack` holding copies of fixed per-layer visual prompts [Nv, W] (e.g. MaPLe's
    coupled prompts of a frozen teacher, which no longer change once its weights are loaded)."""
    prompts = [p.detach().float() for p in prompts]
    if not prompts or len({tuple(p.shape) for p in prompts}) != 1:
        raise ValueError(f"frozen_prompt_stack: need >= 1 prompt of one shape [Nv, W], got "
                         f"{[tuple(p.shape) for p in prompts]}")
    n_ctx, width = prompts[0].shape
    stack = VisualPromptStack(int(n_ctx), len(prompts), int(width)).to(prompts[0].device)
    for i, p in enumerate(prompts):
        getattr(stack, f"layer{i}").copy_(p)
    return stack.requires_grad_(False)


# ------------------------------------------------------------------------------------------------
# locating checkpoints
# ------------------------------------------------------------------------------------------------
# resolve_teacher_path / find_teacher_checkpoint: trainers/common/teacher_paths.py (released layout,
# Dassl checkpoint pointer, highest epoch; the not-found error lists what was tried)


def _read_checkpoint(path: str) -> Dict[str, Any]:
    """Read a teacher checkpoint with ``weights_only=True`` only (named errors from :mod:`engine.safe_load`)."""
    ckpt = safe_torch_load(path, "teacher checkpoint (TRAINER.PROMPTKD.TEACHER_CKPT)")
    if not isinstance(ckpt, dict):
        raise ValueError(f"Teacher checkpoint {path}: expected a dict, got {type(ckpt).__name__}")
    return ckpt


# ------------------------------------------------------------------------------------------------
# loaders
# ------------------------------------------------------------------------------------------------
def _open_teacher_checkpoint(cfg, path: str,
                             teacher_name: Optional[str]) -> Tuple[str, Dict[str, Any], Dict[str, Any], str]:
    """Locate (file or run directory) and read a teacher checkpoint: ``(file, state_dict, meta, CLIP name)``,
    the CLIP name being ``teacher_name`` or ``TRAINER.PROMPTKD.TEACHER_NAME``."""
    path = find_teacher_checkpoint(path)
    ckpt = _read_checkpoint(path)
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not state:
        raise ValueError(f"Teacher checkpoint {path}: no state_dict")
    meta = ckpt.get("meta", {}) or {}
    return path, state, meta, teacher_name or cfg.TRAINER.PROMPTKD.TEACHER_NAME


def _our_checkpoint_backbone(cfg, path: str, meta: Mapping[str, Any], teacher_name: Optional[str]) -> str:
    """CLIP of a checkpoint of ours: ``teacher_name``, else the backbone its meta names (which wins over
    ``TRAINER.PROMPTKD.TEACHER_NAME``, with a warning), else TEACHER_NAME."""
    configured = cfg.TRAINER.PROMPTKD.TEACHER_NAME
    if teacher_name is None and meta.get("backbone") and meta["backbone"] != configured:
        logger.warning("Teacher checkpoint %s was trained on %r; TRAINER.PROMPTKD.TEACHER_NAME %r is ignored",
                       path, meta["backbone"], configured)
    return teacher_name or meta.get("backbone") or configured


def _load_backbone_weights(backbone: nn.Module, state: Mapping[str, torch.Tensor], path: str, teacher_name: str) -> int:
    """Strictly load the CLIP tower weights of a released checkpoint into ``backbone``.

    Every backbone tensor except ``token_embedding.weight`` (not saved by the reference) must be present.
    """
    own = backbone.state_dict()
    expected = set(own) - {"token_embedding.weight"}
    got = set(state)
    missing, unexpected = sorted(expected - got), sorted(got - set(own))
    if missing or unexpected:
        raise CheckpointKeyError(
            f"Teacher checkpoint {path}: its CLIP weights do not match the architecture of TEACHER_NAME "
            f"{teacher_name!r}.\n  missing: {format_keys(missing)}\n  unexpected: {format_keys(unexpected)}\n"
            "Set TRAINER.PROMPTKD.TEACHER_NAME to the teacher's CLIP (the released teachers are ViT-L/14)."
        )
    for k in got:
        if tuple(own[k].shape) != tuple(state[k].shape):
            raise ValueError(
                f"Teacher checkpoint {path}: {k} has shape {tuple(state[k].shape)} but TEACHER_NAME {teacher_name!r} "
                f"has {tuple(own[k].shape)}; set TRAINER.PROMPTKD.TEACHER_NAME to the teacher's CLIP architecture"
            )
    backbone.load_state_dict(dict(state), strict=False)
    return len(got)


def _check_teacher_depth(layout: Any, meta: Mapping[str, Any], fmt: str, path: str, pk: Any) -> None:
    """Strict teacher loading checks the prompt depths read from the keys against what the checkpoint says it
    is (its ``meta.prompt``, written by our trainers) or, for released files, the expected layout
    (``TRAINER.PROMPTKD.TEACHER_PROMPT_DEPTH_TEXT/VISION`` when set, and image prompts present): a file missing
    its last prompt layers would otherwise load as a shallower teacher."""
    declared = dict(meta.get("prompt") or {}) if isinstance(meta.get("prompt"), dict) else {}
    expected_text = int(declared.get("depth_text", 0) or pk.get("TEACHER_PROMPT_DEPTH_TEXT", 0) or 0)
    expected_vision = int(declared.get("depth_vision", 0) or pk.get("TEACHER_PROMPT_DEPTH_VISION", 0) or 0)
    source = "its meta" if declared else "TRAINER.PROMPTKD.TEACHER_PROMPT_DEPTH_TEXT/VISION"
    problems = []
    if expected_text and layout.depth_text != expected_text:
        problems.append(f"{layout.depth_text} text prompt layer(s), {source} says {expected_text}")
    if expected_vision and layout.depth_vision != expected_vision:
        problems.append(f"{layout.depth_vision} image prompt layer(s), {source} says {expected_vision}")
    if layout.depth_vision == 0 and not (declared and int(declared.get("depth_vision", -1)) == 0):
        problems.append("no image prompts at all (image_encoder.VPT / image_prompts.layer0 missing); a PromptSRC "
                        "teacher has deep visual prompts")
    if problems:
        raise CheckpointKeyError(
            f"Teacher checkpoint {path} ({fmt} layout) is incomplete: {'; '.join(problems)}. It would load as a "
            "shallower teacher. Use the complete file (download or copy it again)"
        )


def load_teacher_checkpoint(
    cfg,
    path: str,
    device: torch.device | str,
    prec: str = "fp32",
    teacher_name: Optional[str] = None,
    ctx_init: Optional[str] = None,
    classnames: Sequence[str] = ("object",),
) -> Teacher:
    """Build a PromptSRC teacher from a checkpoint of ours (a) or a released one (b); strict.

    ``teacher_name`` (default ``TRAINER.PROMPTKD.TEACHER_NAME``) provides the CLIP weights that the
    checkpoint does not contain; ``ctx_init`` (default from our checkpoint's meta, else
    ``TRAINER.PROMPTKD.CTX_INIT``) matters only when Nt is smaller than its number of words.
    """
    path, state, meta, configured_name = _open_teacher_checkpoint(cfg, path, teacher_name)
    pk = cfg.TRAINER.PROMPTKD

    if is_reference_vl_state(state):
        fmt = "reference"
        ref = split_reference_vl_state(state)
        if ref.unexpected:
            raise CheckpointKeyError(
                f"Teacher checkpoint {path} (PromptSRC layout): unexpected keys {format_keys(ref.unexpected)}; this is "
                "not a PromptSRC/IVLP teacher checkpoint (a PromptKD student or MaPLe checkpoint?)"
            )
        if ref.skipped:
            zs = [k for k in ref.skipped if "ZS_image_encoder" in k]
            logger.info("Teacher checkpoint: skipped %d class-name buffers and %d ZS_image_encoder tensors "
                        "(PromptSRC's frozen duplicate of the visual tower)", len(ref.skipped) - len(zs), len(zs))
        prompts, backbone_state = ref.prompts, ref.backbone
        backbone_name = configured_name
        ctx = ctx_init if ctx_init is not None else pk.CTX_INIT
    else:
        fmt = "ours"
        bad = sorted(k for k in state if not k.startswith(("text_prompts.layer", "image_prompts.layer")))
        if bad:
            hint = (" It looks like a MaPLe checkpoint: set TRAINER.PROMPTKD.TEACHER_TYPE maple."
                    if any(k.startswith("couplings.") for k in bad) else "")
            raise CheckpointKeyError(
                f"Teacher checkpoint {path}: unexpected keys {format_keys(bad)}; a teacher checkpoint holds only "
                f"text_prompts.layer* / image_prompts.layer* (PromptSRCTeacher / PromptSRC / IVLP runs).{hint}"
            )
        prompts, backbone_state = dict(state), {}
        backbone_name = _our_checkpoint_backbone(cfg, path, meta, teacher_name)
        ctx = ctx_init if ctx_init is not None else meta.get("ctx_init", pk.CTX_INIT)

    layout = prompt_layout(prompts, f"Teacher checkpoint {path}")
    _check_teacher_depth(layout, meta, fmt, path, pk)
    backbone = build_clip(cfg, name=backbone_name, prec=prec, device=device, what="TRAINER.PROMPTKD.TEACHER_NAME")
    n_backbone = 0
    if backbone_state:
        n_backbone = _load_backbone_weights(backbone, backbone_state, path, backbone_name)
        logger.info("Teacher: %d CLIP tensors loaded from the checkpoint, token embedding from %s",
                    n_backbone, backbone_name)
    info = clip.model_info(backbone)
    if layout.text_width != info.text_width or (layout.depth_vision and layout.vision_width != info.vision_width):
        raise ValueError(
            f"Teacher checkpoint {path}: prompt widths (text {layout.text_width}, vision {layout.vision_width}) do not "
            f"match the CLIP {backbone_name!r} (text {info.text_width}, vision {info.vision_width}); set "
            "TRAINER.PROMPTKD.TEACHER_NAME to the teacher's architecture"
        )
    model = VLPromptCLIP(backbone, list(classnames), layout.n_ctx_text, layout.depth_text, ctx,
                         max(layout.n_ctx_vision, 1), layout.depth_vision).to(device)
    strict_load(model, prompts, f"Teacher checkpoint {path}",
                expected=[k for k, _ in model.named_parameters() if k.startswith(("text_prompts.", "image_prompts."))])
    freeze(model)
    identity = {
        "type": "promptsrc",
        "format": fmt,
        "model": backbone_name,
        "checkpoint": path,
        "checkpoint_sha256": file_sha256(path),
        "prompt": {**layout.as_dict(), "ctx_init": model.text_prompts.ctx_init},
        "embed_dim": int(info.embed_dim),
        "trainer": meta.get("trainer", "reference PromptSRC"),
        "dataset": meta.get("dataset"),
    }
    logger.info("Teacher loaded from %s (%s layout): %s, text %d ctx x depth %d, vision %d ctx x depth %d",
                path, fmt, backbone_name, layout.n_ctx_text, layout.depth_text,
                layout.n_ctx_vision, layout.depth_vision)
    return Teacher("promptsrc", backbone, identity, vl_model=model)


def build_zeroshot_teacher(cfg, device: torch.device | str, prec: str = "fp32",
                           teacher_name: Optional[str] = None) -> Teacher:
    """Vanilla CLIP as teacher (paper Table 6): no prompts, the dataset's single template."""
    name = teacher_name or cfg.TRAINER.PROMPTKD.TEACHER_NAME
    backbone = build_clip(cfg, name=name, prec=prec, device=device, what="TRAINER.PROMPTKD.TEACHER_NAME")
    template = dataset_template(cfg)  # the dataset's template (DATASET.CUSTOM.TEMPLATE for custom data)
    info = clip.model_info(backbone)
    identity = {"type": "zeroshot", "model": name, "template": template, "embed_dim": int(info.embed_dim)}
    logger.info("Zero-shot CLIP teacher %s with template %r", name, template)
    return Teacher("zeroshot", backbone, identity, template=template)


_MAPLE_TEXT = re.compile(r"^text_prompts\.layer(\d+)$")
_MAPLE_COUPLING = re.compile(r"^couplings\.(\d+)\.(weight|bias)$")


def _maple_layout(prompts: Mapping[str, torch.Tensor], what: str) -> Dict[str, int]:
    """(n_ctx, depth, text width, vision width) of MaPLe prompts, checking that layers 0..J-1 are all there."""
    text = {int(m.group(1)): v for k, v in prompts.items() if (m := _MAPLE_TEXT.match(k))}
    couplings = {(int(m.group(1)), m.group(2)): v for k, v in prompts.items() if (m := _MAPLE_COUPLING.match(k))}
    depth = len(text)
    if depth == 0 or sorted(text) != list(range(depth)):
        raise CheckpointKeyError(f"{what}: MaPLe text prompts must be text_prompts.layer0..layer{{J-1}}, "
                                 f"found layers {sorted(text)}")
    expected = {(i, part) for i in range(depth) for part in ("weight", "bias")}
    if set(couplings) != expected:
        missing = sorted(f"couplings.{i}.{p}" for i, p in expected - set(couplings))
        extra = sorted(f"couplings.{i}.{p}" for i, p in set(couplings) - expected)
        raise CheckpointKeyError(f"{what}: MaPLe needs one coupling per text prompt layer (J = {depth}); "
                                 f"missing {format_keys(missing)}, unexpected {format_keys(extra)}")
    n_ctx, text_width = text[0].shape
    vision_width = couplings[(0, "weight")].shape[0]
    return {"n_ctx": int(n_ctx), "depth": depth, "text_width": int(text_width), "vision_width": int(vision_width)}


def load_maple_teacher_checkpoint(
    cfg,
    path: str,
    device: torch.device | str,
    prec: str = "fp32",
    teacher_name: Optional[str] = None,
    ctx_init: Optional[str] = None,
    classnames: Sequence[str] = ("object",),
) -> Teacher:
    """Build a MaPLe teacher (paper Table 6) from a MaPLe checkpoint of ours or a released one; strict.

    The prompt shape (N_CTX, depth) is read from the keys; the CLIP comes from the checkpoint's meta
    (ours) or ``TRAINER.PROMPTKD.TEACHER_NAME`` (released files also carry the tower weights, which are
    loaded and must fit that architecture).
    """
    from ..maple import MaPLeCLIP, is_maple_reference_state, map_maple_reference_state  # no import cycle

    path, state, meta, configured_name = _open_teacher_checkpoint(cfg, path, teacher_name)
    pk = cfg.TRAINER.PROMPTKD
    what = f"MaPLe teacher checkpoint {path}"
    if is_maple_reference_state(state):
        fmt = "reference"
        ref = map_maple_reference_state(state)
        if ref.unexpected:
            raise CheckpointKeyError(f"{what} (reference layout): unexpected keys {format_keys(ref.unexpected)}; this "
                                     "is not a MaPLe checkpoint (TRAINER.PROMPTKD.TEACHER_TYPE promptsrc for "
                                     "PromptSRC/IVLP)")
        prompts, backbone_state = dict(ref.prompts), ref.backbone
        backbone_name = configured_name
    else:
        fmt = "ours"
        bad = sorted(k for k in state if not k.startswith(("text_prompts.layer", "couplings.")))
        if bad:
            raise CheckpointKeyError(
                f"{what}: unexpected keys {format_keys(bad)}; a MaPLe checkpoint holds only text_prompts.layer* and "
                "couplings.* (for PromptSRC/IVLP teachers set TRAINER.PROMPTKD.TEACHER_TYPE promptsrc)"
            )
        prompts, backbone_state = dict(state), {}
        backbone_name = _our_checkpoint_backbone(cfg, path, meta, teacher_name)
    ctx = ctx_init if ctx_init is not None else meta.get("ctx_init", pk.CTX_INIT)
    layout = _maple_layout(prompts, what)
    backbone = build_clip(cfg, name=backbone_name, prec=prec, device=device, what="TRAINER.PROMPTKD.TEACHER_NAME")
    if backbone_state:
        n = _load_backbone_weights(backbone, backbone_state, path, backbone_name)
        logger.info("MaPLe teacher: %d CLIP tensors loaded from the checkpoint, token embedding from %s",
                    n, backbone_name)
    info = clip.model_info(backbone)
    if layout["text_width"] != info.text_width or layout["vision_width"] != info.vision_width:
        raise ValueError(
            f"{what}: prompt widths (text {layout['text_width']}, vision {layout['vision_width']}) do not match the "
            f"CLIP {backbone_name!r} (text {info.text_width}, vision {info.vision_width}); set "
            "TRAINER.PROMPTKD.TEACHER_NAME to the teacher's architecture"
        )
    model = MaPLeCLIP(backbone, list(classnames), layout["n_ctx"], layout["depth"], ctx).to(device)
    strict_load(model, prompts, what, expected=[k for k, p in model.named_parameters() if p.requires_grad])
    freeze(model)
    identity = {
        "type": "maple",
        "format": fmt,
        "model": backbone_name,
        "checkpoint": path,
        "checkpoint_sha256": file_sha256(path),
        "prompt": {"n_ctx": layout["n_ctx"], "depth": layout["depth"], "ctx_init": model.text_prompts.ctx_init},
        "embed_dim": int(info.embed_dim),
        "trainer": meta.get("trainer", "reference MaPLe"),
        "dataset": meta.get("dataset"),
    }
    logger.info("MaPLe teacher loaded from %s (%s layout): %s, %d ctx x depth %d (coupled visual prompts)",
                path, fmt, backbone_name, layout["n_ctx"], layout["depth"])
    return Teacher("maple", backbone, identity, vl_model=model)


def build_teacher(cfg, device: torch.device | str, prec: str = "fp32") -> Teacher:
    """The teacher described by ``TRAINER.PROMPTKD`` (TEACHER_TYPE, TEACHER_CKPT, TEACHER_NAME)."""
    pk = cfg.TRAINER.PROMPTKD
    kind = pk.TEACHER_TYPE
    if kind not in TEACHER_TYPES:
        raise ValueError(f"TRAINER.PROMPTKD.TEACHER_TYPE = {kind!r}; expected one of {list(TEACHER_TYPES)}")
    if kind == "zeroshot":
        return build_zeroshot_teacher(cfg, device, prec)
    path = resolve_teacher_path(pk.TEACHER_CKPT, cfg.DATASET.NAME, cfg.DATASET.ROOT)
    if kind == "maple":
        return load_maple_teacher_checkpoint(cfg, path, device, prec)
    return load_teacher_checkpoint(cfg, path, device, prec)


# ------------------------------------------------------------------------------------------------
# class vectors
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def compute_class_vectors(
    teacher: Teacher,
    classnames: Sequence[str],
    batch_size: int = 256,
    autocast: Optional[Callable[[], ContextManager]] = None,
) -> torch.Tensor:
    """Run the teacher's text branch once over ``classnames`` (batched) -> L2-normalised [N, D] fp32.

    Must be called after the teacher weights are loaded (every :class:`Teacher` is; the flag guards
    against misuse). PromptSRC / MaPLe teachers use their trained deep text prompts; zero-shot teachers
    the dataset template.
    """
    if not getattr(teacher, "loaded", False):
        raise RuntimeError("compute_class_vectors called before the teacher weights were loaded (reference issue #33)")
    classnames = list(classnames)
    if not classnames:
        raise ValueError("compute_class_vectors: empty class list")
    ctx = autocast or contextlib.nullcontext
    out: List[torch.Tensor] = []
    if teacher.vl_model is not None:  # PromptSRC (VLPromptCLIP) or MaPLe (MaPLeCLIP): same text API
        model = teacher.vl_model
        previous = list(model.classnames)
        try:
            for start in range(0, len(classnames), batch_size):
                model.set_classnames(classnames[start:start + batch_size])
                with ctx():
                    out.append(model.encode_text().float())
        finally:
            model.set_classnames(previous)
    else:
        backbone = teacher.clip_model
        info = clip.model_info(backbone)
        device = backbone.token_embedding.weight.device
        for start in range(0, len(classnames), batch_size):
            texts = [teacher.template.format(format_classname(n)) for n in classnames[start:start + batch_size]]
            ids = clip.tokenize(texts, info.context_length).to(device)
            with ctx():
                out.append(backbone.encode_text(ids).float())
    feats = F.normalize(torch.cat(out, dim=0), dim=-1)
    if not torch.isfinite(feats).all():
        raise FloatingPointError("Teacher class vectors contain NaN/Inf (check the teacher checkpoint and PREC)")
    return feats
