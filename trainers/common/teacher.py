"""The PromptKD teacher (docs/REFERENCE.md T7, paper Sec. 3.2): a frozen large CLIP, prompted by a trained checkpoint.

One path: resolve the source (``TRAINER.PROMPTKD.TEACHER_CKPT``, :mod:`trainers.common.teacher_paths`) -> read
its layout -> build the model -> load it strictly -> class vectors. ``TEACHER_TYPE`` and the checkpoint content
give four layouts:

(a) PromptSRC, ours: a checkpoint of our PromptSRCTeacher / PromptSRC / IVLP trainer; ``state_dict`` holds only
    ``text_prompts.layer{i}`` / ``image_prompts.layer{i}``; ``meta`` names the backbone it was trained on and
    its CTX_INIT;
(b) PromptSRC, released (PromptSRC / PromptKD-teacher files, whole CustomCLIP, docs/REFERENCE.md M6 layout): its
    prompts AND its CLIP tower weights are loaded; the token embedding (not part of the released files) comes
    from ``TEACHER_NAME``, whose architecture must match the checkpoint's;
(c) MaPLe (``TEACHER_TYPE maple``, paper Table 6), ours (``text_prompts.layer{i}`` + ``couplings.{i}``) or
    released (whole CustomCLIP, mapped by :mod:`trainers.common.maple_model`): its text prompts give the class
    vectors and its coupled visual prompts (``couplings[i](text layer i)``, constant once the teacher is
    frozen) prompt its image tower;
(d) vanilla zero-shot CLIP (``TEACHER_TYPE zeroshot``, paper Table 6), one template per dataset.

The prompt shape is read from the checkpoint keys (Nt/Jt/Nv/Jv from the prompt shapes and the VPT_shallow
indices) instead of being hard-coded (fixes docs/REFERENCE.md D4), and loading is strict: any key that is not
consumed, other than class-name buffers and PromptSRC's ``ZS_image_encoder`` copy, is an error that lists the
missing/unexpected keys.

The teacher's text branch is run by :func:`compute_class_vectors` once, after the weights are loaded (the
reference issue #33 trap), for every class of the dataset; afterwards only :class:`TeacherImageEncoder` (frozen
tower + trained visual prompts) is needed for distillation. :class:`OnlineTeacher` is the teacher as the PromptKD
student sees it (class vectors, then per batch the teacher's image features or logits); the teacher-output cache
(:mod:`trainers.common.teacher_cache`) is the same object replaying recorded outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os.path as osp
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import clip
from engine import dist
from engine.safe_load import safe_torch_load

from .backbone import build_clip, freeze
from .checkpoints import (CheckpointKeyError, file_sha256, format_keys, is_reference_vl_state, prompt_layout,
                          split_reference_vl_state, strict_load)
from .class_vectors import ClassVectors, load_class_vectors, save_class_vectors
from .maple_model import MaPLeCLIP, is_maple_reference_state, map_maple_reference_state
from .prompts import VisualPromptStack
from .teacher_paths import find_teacher_checkpoint, resolve_teacher_path
from .templates import dataset_template, template_text_features
from .vl_model import VLPromptCLIP, cast_prompts, cosine_logits, tower_dtype

logger = logging.getLogger(__name__)

TEACHER_TYPES = ("promptsrc", "maple", "zeroshot")
#: TEACHER_TYPE -> (our checkpoint keys, released-layout test, its key map, what the checkpoint must be)
_LAYOUTS = {
    "promptsrc": (("text_prompts.layer", "image_prompts.layer"), is_reference_vl_state, split_reference_vl_state,
                  "a PromptSRCTeacher / PromptSRC / IVLP run; not a PromptKD student, and for a MaPLe checkpoint "
                  "set TRAINER.PROMPTKD.TEACHER_TYPE maple"),
    "maple": (("text_prompts.layer", "couplings."), is_maple_reference_state, map_maple_reference_state,
              "a MaPLe run; for PromptSRC/IVLP teachers set TRAINER.PROMPTKD.TEACHER_TYPE promptsrc"),
}


@dataclass
class TeacherIdentity:
    """Who the teacher is; stored (:meth:`as_dict`) with the class vectors, in student checkpoints and results.json."""

    type: str  # promptsrc | maple | zeroshot | student_text (CLASS_VECTORS_SOURCE student_text)
    model: str  # CLIP name or weights file
    embed_dim: int
    format: Optional[str] = None  # checkpoint teachers: "ours" | "reference"
    template: Optional[str] = None  # zero-shot
    checkpoint: Optional[str] = None
    checkpoint_sha256: Optional[str] = None
    prompt: Optional[Dict[str, Any]] = None  # prompt shape and CTX_INIT
    trainer: Optional[str] = None  # the trainer that made the checkpoint
    dataset: Optional[str] = None
    seed: Optional[int] = None

    def as_dict(self) -> Dict[str, Any]:
        """The record: unset fields left out, except that a checkpoint teacher always states its checkpoint."""
        keep = ("checkpoint", "checkpoint_sha256", "trainer", "dataset") if self.format else ()
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k in keep}


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


@dataclass
class Teacher:
    """A loaded teacher: frozen CLIP, its prompted model (None for zero-shot) and its identity."""

    clip_model: nn.Module
    identity: TeacherIdentity
    vl_model: Optional[nn.Module] = None  # VLPromptCLIP (PromptSRC) or MaPLeCLIP: the same text API

    @property
    def logit_scale(self) -> float:
        return float(self.clip_model.logit_scale.detach().float().exp().item())

    def image_encoder(self) -> TeacherImageEncoder:
        prompts = getattr(self.vl_model, "image_prompts", None)
        if isinstance(self.vl_model, MaPLeCLIP):  # its visual prompts: the couplings of the frozen text prompts
            with torch.no_grad():
                coupled = [p.detach().float() for p in self.vl_model.visual_prompts()]
                prompts = VisualPromptStack(coupled[0].shape[0], len(coupled), coupled[0].shape[1]).to(coupled[0].device)
                for i, p in enumerate(coupled):
                    getattr(prompts, f"layer{i}").copy_(p)
        return TeacherImageEncoder(self.clip_model.visual, prompts)


# ------------------------------------------------------------------------------------------------
# loading: source -> layout -> build -> strict load
# ------------------------------------------------------------------------------------------------
def _read_checkpoint(cfg, path: str, kind: str, teacher_name: Optional[str], ctx_init: Optional[str]):
    """Read a teacher checkpoint and map its layout onto our keys:
    ``(fmt, prompts, backbone tensors, meta, CLIP name, CTX_INIT)``; keys of another model are an error."""
    pk = cfg.TRAINER.PROMPTKD
    ckpt = safe_torch_load(path, "teacher checkpoint (TRAINER.PROMPTKD.TEACHER_CKPT)")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"Teacher checkpoint {path}: expected a dict with a state_dict, got {type(ckpt).__name__}")
    meta = ckpt.get("meta", {}) or {}
    keys, is_reference, map_reference, expected = _LAYOUTS[kind]
    if is_reference(state):
        ref = map_reference(state)
        fmt, prompts, backbone, bad = "reference", dict(ref.prompts), ref.backbone, ref.unexpected
        zs = [k for k in ref.skipped if "ZS_image_encoder" in k]
        logger.info("Teacher checkpoint: skipped %d class-name buffers and %d ZS_image_encoder tensors "
                    "(PromptSRC's frozen duplicate of the visual tower)", len(ref.skipped) - len(zs), len(zs))
    else:
        fmt, prompts, backbone = "ours", dict(state), {}
        bad = sorted(k for k in state if not k.startswith(keys))
    if bad:
        raise CheckpointKeyError(
            f"Teacher checkpoint {path} ({fmt} layout): unexpected keys {format_keys(bad)}; a teacher checkpoint holds "
            f"only {' / '.join(k + '*' for k in keys)} (or the released whole-model layout) of {expected}")
    name = teacher_name or meta.get("backbone") or pk.TEACHER_NAME  # released files have no meta
    if teacher_name is None and meta.get("backbone") and meta["backbone"] != pk.TEACHER_NAME:
        logger.warning("Teacher checkpoint %s was trained on %r; TRAINER.PROMPTKD.TEACHER_NAME %r is ignored",
                       path, meta["backbone"], pk.TEACHER_NAME)
    ctx = ctx_init if ctx_init is not None else meta.get("ctx_init", pk.CTX_INIT)
    return fmt, prompts, backbone, meta, name, ctx


def _check_teacher_depth(layout: Any, meta: Mapping[str, Any], fmt: str, path: str, pk: Any) -> None:
    """Strict teacher loading checks the prompt depths read from the keys against what the checkpoint says it
    is (its ``meta.prompt``, written by our trainers) or, for released files, the expected layout
    (``TRAINER.PROMPTKD.TEACHER_PROMPT_DEPTH_TEXT/VISION`` when set, and image prompts present): a file missing
    its last prompt layers would otherwise load as a shallower teacher."""
    declared = dict(meta.get("prompt") or {}) if isinstance(meta.get("prompt"), dict) else {}
    source = "its meta" if declared else "TRAINER.PROMPTKD.TEACHER_PROMPT_DEPTH_TEXT/VISION"
    problems = []
    for tower, got in (("text", layout.depth_text), ("vision", layout.depth_vision)):
        want = int(declared.get(f"depth_{tower}", 0) or pk[f"TEACHER_PROMPT_DEPTH_{tower.upper()}"] or 0)
        if want and got != want:
            problems.append(f"{got} {'text' if tower == 'text' else 'image'} prompt layer(s), {source} says {want}")
    if layout.depth_vision == 0 and not (declared and int(declared.get("depth_vision", -1)) == 0):
        problems.append("no image prompts at all (image_encoder.VPT / image_prompts.layer0 missing); a PromptSRC "
                        "teacher has deep visual prompts")
    if problems:
        raise CheckpointKeyError(
            f"Teacher checkpoint {path} ({fmt} layout) is incomplete: {'; '.join(problems)}. It would load as a "
            "shallower teacher. Use the complete file (download or copy it again)"
        )


def load_teacher_checkpoint(cfg, path: str, device: torch.device | str, prec: str = "fp32",
                            teacher_name: Optional[str] = None, ctx_init: Optional[str] = None,
                            classnames: Sequence[str] = ("object",)) -> Teacher:
    """A PromptSRC (a, b) or MaPLe (c) teacher (``TRAINER.PROMPTKD.TEACHER_TYPE``) from a checkpoint file or run
    folder; strict.

    ``teacher_name`` (default ``TRAINER.PROMPTKD.TEACHER_NAME``) provides the CLIP weights that the checkpoint
    does not contain (our checkpoints name their own backbone in their meta); ``ctx_init`` (default from our
    checkpoint's meta, else ``TRAINER.PROMPTKD.CTX_INIT``) matters only when Nt is smaller than its number of words.
    """
    pk, kind = cfg.TRAINER.PROMPTKD, cfg.TRAINER.PROMPTKD.TEACHER_TYPE
    path = find_teacher_checkpoint(path)
    fmt, prompts, backbone_state, meta, name, ctx = _read_checkpoint(cfg, path, kind, teacher_name, ctx_init)
    what = f"{'MaPLe teacher' if kind == 'maple' else 'Teacher'} checkpoint {path}"
    layout = prompt_layout(prompts, what)  # MaPLe: text prompts only (its couplings are checked by strict_load)
    if kind != "maple":
        _check_teacher_depth(layout, meta, fmt, path, pk)
    backbone = build_clip(cfg, name=name, prec=prec, device=device, what="TRAINER.PROMPTKD.TEACHER_NAME")
    if backbone_state:  # a released file's CLIP towers: every tensor but the token embedding (not saved)
        strict_load(backbone, backbone_state, f"Teacher checkpoint {path} (its CLIP weights; TEACHER_NAME {name!r} must "
                    "be the teacher's CLIP architecture: the released teachers are ViT-L/14)",
                    expected=[k for k in backbone.state_dict() if k != "token_embedding.weight"])
        logger.info("Teacher: %d CLIP tensors loaded from the checkpoint, token embedding from %s", len(backbone_state), name)
    info = clip.model_info(backbone)
    if layout.text_width != info.text_width or (layout.depth_vision and layout.vision_width != info.vision_width):
        raise ValueError(
            f"{what}: prompt widths (text {layout.text_width}, vision {layout.vision_width}) do not match the CLIP "
            f"{name!r} (text {info.text_width}, vision {info.vision_width}); set TRAINER.PROMPTKD.TEACHER_NAME to "
            "the teacher's architecture"
        )
    if kind == "maple":
        model = MaPLeCLIP(backbone, list(classnames), layout.n_ctx_text, layout.depth_text, ctx)
        prompt = {"n_ctx": layout.n_ctx_text, "depth": layout.depth_text}
    else:
        model = VLPromptCLIP(backbone, list(classnames), layout.n_ctx_text, layout.depth_text, ctx,
                             max(layout.n_ctx_vision, 1), layout.depth_vision)
        prompt = layout.as_dict()
    model.to(device)
    strict_load(model, prompts, what, expected=[k for k, p in model.named_parameters() if p.requires_grad])
    freeze(model)
    identity = TeacherIdentity(
        type=kind, format=fmt, model=name, checkpoint=path, checkpoint_sha256=file_sha256(path),
        prompt={**prompt, "ctx_init": model.text_prompts.ctx_init}, embed_dim=int(info.embed_dim),
        trainer=meta.get("trainer", f"reference {'MaPLe' if kind == 'maple' else 'PromptSRC'}"),
        dataset=meta.get("dataset"))
    logger.info("Teacher (%s) loaded from %s (%s layout): %s, prompts %s", kind, path, fmt, name, identity.prompt)
    return Teacher(backbone, identity, model)


def build_zeroshot_teacher(cfg, device: torch.device | str, prec: str = "fp32",
                           teacher_name: Optional[str] = None) -> Teacher:
    """Vanilla CLIP as teacher (paper Table 6): no prompts, the dataset's single template."""
    name = teacher_name or cfg.TRAINER.PROMPTKD.TEACHER_NAME
    backbone = build_clip(cfg, name=name, prec=prec, device=device, what="TRAINER.PROMPTKD.TEACHER_NAME")
    template = dataset_template(cfg)  # the dataset's template (DATASET.CUSTOM.TEMPLATE for custom data)
    logger.info("Zero-shot CLIP teacher %s with template %r", name, template)
    identity = TeacherIdentity(type="zeroshot", model=name, template=template,
                               embed_dim=int(clip.model_info(backbone).embed_dim))
    return Teacher(backbone, identity)


def build_teacher(cfg, device: torch.device | str, prec: str = "fp32") -> Teacher:
    """The teacher described by ``TRAINER.PROMPTKD`` (TEACHER_TYPE, TEACHER_CKPT, TEACHER_NAME)."""
    pk = cfg.TRAINER.PROMPTKD
    if pk.TEACHER_TYPE not in TEACHER_TYPES:
        raise ValueError(f"TRAINER.PROMPTKD.TEACHER_TYPE = {pk.TEACHER_TYPE!r}; expected one of {list(TEACHER_TYPES)}")
    if pk.TEACHER_TYPE == "zeroshot":
        return build_zeroshot_teacher(cfg, device, prec)
    return load_teacher_checkpoint(cfg, resolve_teacher_path(pk.TEACHER_CKPT, cfg.DATASET.NAME, cfg.DATASET.ROOT),
                                   device, prec)


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

    Called after the teacher weights are loaded (every :class:`Teacher` is). PromptSRC / MaPLe teachers use
    their trained deep text prompts; zero-shot teachers the dataset template.
    """
    classnames, model = list(classnames), teacher.vl_model
    if not classnames:
        raise ValueError("compute_class_vectors: empty class list")
    if model is None:  # zero-shot: the dataset template
        feats = template_text_features(teacher.clip_model, classnames, [teacher.identity.template], normalize=False,
                                       autocast=autocast, classes_per_batch=batch_size)
    else:  # the prompted text branch
        previous, out = list(model.classnames), []
        for start in range(0, len(classnames), batch_size):
            model.set_classnames(classnames[start:start + batch_size])
            with (autocast or contextlib.nullcontext)():
                out.append(model.encode_text().float())
        model.set_classnames(previous)
        feats = torch.cat(out, dim=0)
    feats = F.normalize(feats, dim=-1)
    if not torch.isfinite(feats).all():
        raise FloatingPointError("Teacher class vectors contain NaN/Inf (check the teacher checkpoint and PREC)")
    return feats


# ------------------------------------------------------------------------------------------------
# the teacher as the PromptKD student sees it
# ------------------------------------------------------------------------------------------------
class OnlineTeacher:
    """The distilling teacher, run online: :meth:`class_vectors` W of every class (from the class-vectors file,
    else computed once), then, after :meth:`start`, per batch the teacher's image features u_t
    (:meth:`features`) or logits s_t u_t W^T (:meth:`logits`). ``TeacherOutputCache`` replays the same outputs."""

    mode = "off"  # TRAINER.PROMPTKD.TEACHER_CACHE.MODE

    def __init__(self, cfg, device: torch.device | str, prec: str, autocast: Callable[[], ContextManager]) -> None:
        self.cfg, self.device, self.prec, self.autocast = cfg, device, prec, autocast
        self.encoder: Optional[TeacherImageEncoder] = None
        self.logit_scale: Optional[float] = None
        self._teacher: Optional[Teacher] = None

    def teacher(self) -> Teacher:
        if self._teacher is None:
            # building a teacher (random init before its weights are loaded) must not shift the RNG stream:
            # the student's initialisation and augmentations depend on the seed only, whether the class
            # vectors were cached, computed, or replayed from a teacher-output cache
            devices = [torch.device(self.device).index or 0] if torch.device(self.device).type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                self._teacher = build_teacher(self.cfg, self.device, self.prec)
        return self._teacher

    def class_vectors_path(self) -> str:
        """TRAINER.PROMPTKD.CLASS_VECTORS, else ``class_vectors_<DATASET.NAME>.pt`` next to the teacher checkpoint
        (in its released ``VLPromptLearner`` folder; zero-shot teacher: in OUTPUT_DIR)."""
        cfg, pk = self.cfg, self.cfg.TRAINER.PROMPTKD
        if pk.CLASS_VECTORS:
            return osp.expanduser(pk.CLASS_VECTORS)
        filename = f"class_vectors_{cfg.DATASET.NAME}.pt"
        if pk.TEACHER_TYPE == "zeroshot":
            return osp.join(cfg.OUTPUT_DIR, filename)
        ckpt = resolve_teacher_path(pk.TEACHER_CKPT, cfg.DATASET.NAME, cfg.DATASET.ROOT)
        if not osp.isdir(ckpt):
            return osp.join(osp.dirname(ckpt) or ".", filename)
        sub = osp.join(ckpt, "VLPromptLearner")
        return osp.join(sub if osp.isdir(sub) else ckpt, filename)

    def check_same_teacher(self, cv: ClassVectors) -> None:
        """A class-vectors file must come from the configured teacher (type, and checkpoint hash when the
        teacher checkpoint is available locally; zero-shot: the CLIP name)."""
        pk = self.cfg.TRAINER.PROMPTKD
        kind, fix = cv.teacher.get("type"), "delete the file or set TRAINER.PROMPTKD.CLASS_VECTORS"
        if kind != pk.TEACHER_TYPE or (kind == "zeroshot" and cv.teacher.get("model") != pk.TEACHER_NAME):
            raise ValueError(f"Class-vectors file {cv.path} was made by a {kind!r} teacher "
                             f"{cv.teacher.get('model')!r} but TRAINER.PROMPTKD.TEACHER_TYPE / TEACHER_NAME are "
                             f"{pk.TEACHER_TYPE!r} / {pk.TEACHER_NAME!r}; {fix}")
        expected_sha = cv.teacher.get("checkpoint_sha256")
        if kind == "zeroshot":
            return
        if not expected_sha:
            logger.warning("Class-vectors file %s records no teacher checkpoint hash: it cannot be checked against "
                           "TRAINER.PROMPTKD.TEACHER_CKPT", cv.path)
            return
        path = resolve_teacher_path(pk.TEACHER_CKPT, self.cfg.DATASET.NAME, self.cfg.DATASET.ROOT)
        try:
            path = find_teacher_checkpoint(path)
        except FileNotFoundError:
            logger.info("Teacher checkpoint %s not available: class vectors used as they are", path)
            return
        actual = file_sha256(path)
        if actual != expected_sha:
            raise ValueError(
                f"Class-vectors file {cv.path} was computed from a teacher checkpoint with sha256 {expected_sha[:12]}..., "
                f"but TRAINER.PROMPTKD.TEACHER_CKPT {path} has sha256 {actual[:12]}...; delete the stale file to "
                "recompute it, or point TRAINER.PROMPTKD.CLASS_VECTORS to the matching file"
            )

    def class_vectors(self, classnames: Sequence[str]) -> ClassVectors:
        """Class vectors for ALL dataset classes: from the file when it exists (checked), else computed once from
        the teacher (after its weights are loaded) and written atomically."""
        path, classnames = self.class_vectors_path(), list(classnames)
        if osp.isfile(path):
            cv = load_class_vectors(path, expected_classnames=classnames)
            self.check_same_teacher(cv)
            logger.info("Class vectors: %s (%d classes x %d dims, teacher %s)", path, len(cv), cv.dim,
                        cv.teacher.get("model"))
            return cv
        logger.info("Class-vectors file %s not found: computing it once from the teacher", path)
        teacher = self.teacher()
        feats = compute_class_vectors(teacher, classnames, autocast=self.autocast).cpu()
        record = teacher.identity.as_dict()
        if dist.is_main_process():
            try:
                return save_class_vectors(path, feats, classnames, record, teacher.logit_scale)
            except OSError as exc:
                raise OSError(getattr(exc, "errno", None) or 5,
                              f"{exc}. The class vectors are written next to the teacher checkpoint by default; set "
                              "TRAINER.PROMPTKD.CLASS_VECTORS to a writable file path (e.g. in OUTPUT_DIR)") from exc
        return ClassVectors(feats, classnames, record, teacher.logit_scale, path)

    def start(self, trainer: Any) -> None:
        """Before training: the frozen teacher image tower + visual prompts (never registered or saved), checked
        against the class vectors and the input size; the teacher's text side is dropped."""
        teacher, cv = self.teacher(), trainer.class_vectors
        name = teacher.identity.model
        if teacher.identity.embed_dim != cv.dim:
            raise ValueError(f"Teacher {name} has {teacher.identity.embed_dim}-d features but the class vectors {cv.path} are "
                             f"{cv.dim}-d: they come from another teacher")
        if abs(teacher.logit_scale - cv.logit_scale) > 1e-3 * max(1.0, teacher.logit_scale):
            raise ValueError(f"Teacher logit scale {teacher.logit_scale} differs from the class-vectors file's "
                             f"{cv.logit_scale} ({cv.path}): another teacher")
        size = clip.model_info(teacher.clip_model).image_size
        if tuple(self.cfg.INPUT.SIZE) != (size, size):
            raise ValueError(
                f"Teacher {name} takes {size}x{size} images but INPUT.SIZE is {tuple(self.cfg.INPUT.SIZE)}: the "
                "teacher and the student see the same image tensor, so use a teacher with the student's input size, "
                f"or set INPUT.SIZE ({size}, {size}) if the student supports it"
            )
        self.encoder = teacher.image_encoder().to(self.device)
        self.logit_scale = teacher.logit_scale
        self._teacher = None  # only the image tower is kept
        logger.info("Teacher image encoder ready (%s, frozen, not saved)", name)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """u_t [B, D]: the teacher's L2-normalised fp32 image features (no grad)."""
        if self.encoder is None:
            raise RuntimeError("PromptKDStudent: the teacher image encoder is not built (before_train() was not run)")
        with torch.no_grad(), self.autocast():
            return self.encoder(images).float()

    def logits(self, images: torch.Tensor, class_weights: torch.Tensor,
               batch: Optional[Dict[str, Any]] = None) -> torch.Tensor:
        """Teacher logits s_t * u_t W^T [B, C] fp32 over the rows ``class_weights`` (``batch``: the training batch,
        for the cache)."""
        u_t = self.features(images)
        with torch.no_grad():
            return cosine_logits(u_t, class_weights, self.logit_scale)

    def end_epoch(self, trainer: Any) -> None:
        """After each training epoch (the cache records the images the epoch did not draw)."""
