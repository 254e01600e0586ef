"""PromptKD student (docs/REFERENCE.md T7, paper Sec. 3.2): unsupervised prompt distillation into a small CLIP.

Student = the frozen image tower of ``MODEL.BACKBONE.NAME`` (the text tower is dropped) + deep
visual prompts (N_CTX_VISION x PROMPT_DEPTH_VISION) + a projector from the student's embedding
dimension to the teacher's (inferred from the two models, not hard-coded 512 -> 768; docs/REFERENCE.md D6):

    PROJECT_LAYER 1: Linear(d_s, d_t)
    PROJECT_LAYER 2: Linear(d_s, d_t) -> BatchNorm1d(d_t) -> ReLU -> Linear(d_t, d_t)   (reference)
    PROJECT_LAYER 3: the 2-layer form followed by BatchNorm1d -> ReLU -> Linear(d_t, d_t)

(the reference's 1x1 convolutions + BatchNorm2d on a 1x1 map are exactly these layers).

Teacher knowledge = the class vectors W [N, d_t] (the teacher's normalised text features for all
classes) and the teacher's image features, both from ONE teacher object (``self.teacher``):
:class:`trainers.common.teacher.OnlineTeacher` (W read from a file or computed once after the teacher's
weights are loaded; its image tower built only when training) or, with ``TEACHER_CACHE`` record /
replay, :class:`trainers.common.teacher_cache.TeacherOutputCache` (the same outputs, recorded or replayed).

Training step (docs/REFERENCE.md T7): q_t = s_t * u_t W^T (no grad), q_s = s_s * norm(proj(f_s)) W^T,
loss = KD_WEIGHT * LOSS(q_s, q_t, TEMPERATURE). Labels are never read. Evaluation uses the student
and the class vectors only (no teacher, no text encoder). Checkpoint ("VLPromptLearner") = visual
prompts + projector (+ BatchNorm statistics).

Ablation options (paper Tables 4-6, docs/ABLATIONS.md), all keys of TRAINER.PROMPTKD:

- ``LOSS``: any loss of :mod:`trainers.common.kd`; the feature losses (``feature_l1``/``feature_mse``)
  compare norm(proj(f_s)) with the teacher's normalised image feature u_t instead of logits (Table 4).
- ``TRAIN_MODE`` (Table 5): ``prompts_projector`` (the paper: visual prompts + projector),
  ``projector_only`` (no visual prompts at all: PROMPT_DEPTH_VISION is ignored), ``full_finetune``
  (CLIP-KD style: the whole student image tower + projector, no prompts; the student tower is then a
  trainable parameter set and kept in fp32 even with PREC fp16, which still applies to the frozen teacher).
- ``CLASS_VECTORS_SOURCE`` (Table 5, "w/o shared class vectors"): ``teacher`` (the paper) or
  ``student_text``: the student's logits use its OWN frozen text tower with the teacher's prompt design,
  i.e. a :class:`TextPromptLearner` whose N_CTX_TEXT context tokens are the word embeddings of CTX_INIT
  ("a photo of a {class}.") and stay frozen (the teacher's learned text prompts have the teacher's
  width and cannot be reused). The features are computed once at build time for all classes; the
  projector then maps to the student's embedding dimension and the teacher's logits still use the
  teacher's class vectors.
- ``TEACHER_TYPE`` (Table 6): ``promptsrc``, ``maple`` (a MaPLe checkpoint; its coupled visual prompts
  prompt the teacher's image tower) or ``zeroshot``.

Beyond the paper (docs/ABLATIONS.md):

- ``LOSS topk_skl`` with ``TOPK`` (default 5): KDPL's symmetric KL over the teacher's top-K classes of each image,
  both distributions renormalised over them, with ``kl_reference``'s divisor B * C (:mod:`trainers.common.kd`).
- ``ENSEMBLE`` (TYPES / NAMES / CKPTS / CLASS_VECTORS of extra teachers, WEIGHTING confidence | uniform):
  :class:`trainers.common.teacher_ensemble.EnsembleTeacher`, the target log of the per-image confidence-weighted
  (or uniform) mixture of the teachers' distributions. The student's logits still use the MAIN teacher's class
  vectors; each extra teacher's distribution is over its own class vectors of the same (training) classes.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

import clip
from engine.api import TRAINER_REGISTRY

from .common.backbone import build_clip, check_input_size, freeze
from .common.base import PromptTrainer
from .common.checkpoints import CheckpointKeyError, check_reference_backbone, format_keys
from .common.class_vectors import ClassVectors, class_vectors_digest
from .common.kd import bind_kd_loss, kd_loss_inputs, kd_loss_names
from .common import teacher_cache, teacher_ensemble
from .common.prompts import TextPromptLearner, VisualPromptStack, count_prompt_tokens
from .common.teacher import TEACHER_TYPES, TeacherIdentity
from .common.teacher_paths import DEFAULT_TEACHER_CKPT
from .common.vl_model import cast_prompts, cosine_logits, tower_dtype

logger = logging.getLogger(__name__)

# TRAINER.PROMPTKD.TRAIN_MODE values (paper Table 5): what the student trains
TRAIN_MODES = ("prompts_projector", "projector_only", "full_finetune")
# TRAINER.PROMPTKD.CLASS_VECTORS_SOURCE values (paper Table 5): whose text features the student's logits use
CLASS_VECTOR_SOURCES = ("teacher", "student_text")


def add_config(cfg: CN) -> None:
    """TRAINER.PROMPTKD (docs/REFERENCE.md C1 keys, fixed defaults, and the teacher / class-vector keys)."""
    if "MODAL" not in cfg.TRAINER:
        # reference key: "base2novel" | "cross" (the original scripts pass it on the command line).
        # With DATASET.EVAL_PROTOCOL "auto" it picks the evaluation sets: "base2novel" -> base and
        # novel, anything else -> a single test set. The default is "" (the reference defaulted to
        # "base2novel", which would make every baseline's cross-dataset run report base/novel).
        cfg.TRAINER.MODAL = ""
    pk = CN()
    pk.N_CTX_VISION = 4  # student visual prompt tokens per layer (Nv)
    # the teacher's prompt shape is read from its checkpoint; N_CTX_TEXT is the frozen context length of
    # CLASS_VECTORS_SOURCE student_text
    pk.N_CTX_TEXT = 4
    pk.CTX_INIT = "a photo of a"  # teacher CTX_INIT for released checkpoints (matters only if Nt < its words)
    pk.PREC = "fp16"  # fp32 | fp16 (frozen towers in half) | amp | bf16
    pk.PROMPT_DEPTH_VISION = 9  # student Jv: layers with visual prompts
    pk.PROMPT_DEPTH_TEXT = 9  # kept for config compatibility (teacher depth is read from its checkpoint)
    pk.PROJECT_LAYER = 2  # projector depth 1-3 (2 = Linear-BN-ReLU-Linear, the reference)
    pk.CE_WEIGHT = 0.0  # kept for config compatibility; must be 0: the student never reads labels
    pk.KD_WEIGHT = 1000.0  # loss multiplier (reference: 1000; base-to-novel 200 for FGVCAircraft, OxfordFlowers, DTD)
    pk.TEMPERATURE = 1.0  # KD temperature T
    # kl_reference (sum-KL*T^2/(B*C), reference) | kl_batchmean (T^2 * batch-mean KL) |
    # feature_l1 | feature_mse (projected student feature vs teacher image feature, Table 4)
    pk.LOSS = "kl_reference"
    pk.TOPK = 5  # LOSS topk_skl: K teacher top classes per image (>= 1; K >= number of classes = all classes)
    # Table 5: prompts_projector (paper) | projector_only (no visual prompts) | full_finetune (whole student
    # image tower + projector, CLIP-KD style)
    pk.TRAIN_MODE = "prompts_projector"
    # Table 5: teacher (shared teacher class vectors, paper) | student_text (student's own frozen text tower
    # with the "CTX_INIT {class}." prompt of the teacher's prompt learner)
    pk.CLASS_VECTORS_SOURCE = "teacher"
    pk.TEACHER_NAME = "ViT-L/14"  # teacher CLIP (weights for parts the teacher checkpoint lacks)
    # promptsrc (trained teacher checkpoint) | maple (MaPLe checkpoint, Table 6) | zeroshot (vanilla CLIP, Table 6)
    pk.TEACHER_TYPE = "promptsrc"
    # teacher checkpoint file or run directory; placeholders {dataset} (DATASET.NAME), {root} (DATASET.ROOT).
    # A folder resolves to model-best.pth.tar, else its Dassl `checkpoint` pointer, else the highest epoch
    # (trainers/common/teacher_paths.py); the default is the released base-to-novel teachers' folder.
    pk.TEACHER_CKPT = DEFAULT_TEACHER_CKPT
    # class-vectors file; "" -> class_vectors_<DATASET.NAME>.pt next to the teacher checkpoint
    # (zero-shot teacher: in OUTPUT_DIR)
    pk.CLASS_VECTORS = ""
    # expected prompt depths of a released teacher checkpoint (0: not checked); checkpoints of our trainers
    # record their own depths, which are always checked (strict teacher loading)
    pk.TEACHER_PROMPT_DEPTH_TEXT = 0
    pk.TEACHER_PROMPT_DEPTH_VISION = 0
    teacher_cache.add_config(pk)  # TEACHER_CACHE.{MODE: off|record|replay, DIR} (docs/PERFORMANCE.md)
    # ENSEMBLE.{TYPES, NAMES, CKPTS, CLASS_VECTORS: extra teachers; WEIGHTING: confidence|uniform} (docs/ABLATIONS.md)
    teacher_ensemble.add_config(pk)
    cfg.TRAINER.PROMPTKD = pk


def build_projector(in_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    """The student -> teacher feature projector (see the module docstring)."""
    if layers not in (1, 2, 3):
        raise ValueError(f"TRAINER.PROMPTKD.PROJECT_LAYER must be 1, 2 or 3, got {layers}")
    modules = [nn.Linear(in_dim, out_dim)]
    for _ in range(layers - 1):
        modules += [nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*modules)


class PromptKDStudentModel(nn.Module):
    """Frozen student image tower + visual prompts + projector; ``forward`` -> normalised [B, d_t] fp32."""

    def __init__(self, visual: nn.Module, n_ctx: int, depth: int, vision_width: int, in_dim: int, out_dim: int,
                 project_layers: int, logit_scale: float, train_mode: str = "prompts_projector") -> None:
        super().__init__()
        self.train_mode = train_mode
        self.visual = freeze(visual)
        if train_mode == "full_finetune":
            low = sorted({str(p.dtype) for p in self.visual.parameters() if p.dtype != torch.float32})
            if low:
                raise ValueError(f"TRAIN_MODE full_finetune trains the image tower, which must be fp32 (found {low}); "
                                 "build the student CLIP in fp32")
            self.visual.requires_grad_(True)
        # projector_only / full_finetune: no visual prompts at all (depth 0 -> no parameters)
        self.image_prompts = VisualPromptStack(n_ctx, depth if train_mode == "prompts_projector" else 0, vision_width)
        self.projector = build_projector(in_dim, out_dim, project_layers)
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)), persistent=False)

    def train(self, mode: bool = True) -> "PromptKDStudentModel":
        super().train(mode)
        self.visual.eval()  # also when fine-tuned: a CLIP ViT has no BatchNorm; dropout stays off
        return self

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        dtype = tower_dtype(self.visual)
        feats = clip.encode_image(self.visual, images.to(dtype), prompts=cast_prompts(self.image_prompts(), dtype))
        return feats.float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.image_features(images)
        with torch.autocast(device_type=feats.device.type, enabled=False):
            projected = self.projector(feats.float())
        return F.normalize(projected, dim=-1)


_REF_STUDENT_PROMPT = re.compile(r"^image_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$")
_REF_PROJECTOR = re.compile(r"^VPT_image_trans\.conv1\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


@TRAINER_REGISTRY.register()
class PromptKDStudent(PromptTrainer):
    """PromptKD stage II (training) and stage III (teacher-free inference)."""

    CFG_NODE = "PROMPTKD"
    REGISTERED_NAME = "VLPromptLearner"  # the reference's checkpoint folder name, kept for released students

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        pk = cfg.TRAINER.PROMPTKD
        if float(pk.CE_WEIGHT) != 0.0:
            raise ValueError(f"TRAINER.PROMPTKD.CE_WEIGHT = {pk.CE_WEIGHT}: PromptKD distils without labels (the student "
                             "never reads them); set it to 0.0")
        if pk.LOSS not in kd_loss_names():
            raise ValueError(f"TRAINER.PROMPTKD.LOSS = {pk.LOSS!r}; registered KD losses: {kd_loss_names()}")
        for key, allowed in (("TEACHER_TYPE", TEACHER_TYPES), ("TRAIN_MODE", TRAIN_MODES),
                             ("CLASS_VECTORS_SOURCE", CLASS_VECTOR_SOURCES)):
            if pk[key] not in allowed:
                raise ValueError(f"TRAINER.PROMPTKD.{key} = {pk[key]!r}; expected one of {list(allowed)}")
        if pk.CLASS_VECTORS_SOURCE == "student_text" and kd_loss_inputs(pk.LOSS) == "features":
            raise ValueError(f"TRAINER.PROMPTKD.LOSS {pk.LOSS!r} compares features in the teacher's space, but "
                             "CLASS_VECTORS_SOURCE student_text projects the student into its own text space; use a "
                             "logit loss (kl_reference / kl_batchmean) or CLASS_VECTORS_SOURCE teacher")
        if float(pk.TEMPERATURE) <= 0:
            raise ValueError(f"TRAINER.PROMPTKD.TEMPERATURE must be > 0, got {pk.TEMPERATURE}")
        if int(pk.TOPK) < 1:
            raise ValueError(f"TRAINER.PROMPTKD.TOPK must be >= 1 (top-K classes of LOSS topk_skl), got {pk.TOPK}")
        teacher_cache.check_cfg(cfg)
        teacher_ensemble.check_cfg(cfg)
        if pk.TEACHER_CACHE.MODE != "off" and (kd_loss_inputs(pk.LOSS) == "features"
                                              or pk.CLASS_VECTORS_SOURCE != "teacher"):
            raise ValueError("TRAINER.PROMPTKD.TEACHER_CACHE stores teacher logits over the teacher's class vectors; "
                             "it needs a logit loss and CLASS_VECTORS_SOURCE teacher (set TEACHER_CACHE.MODE off)")

    def teacher_identity(self) -> Dict[str, Any]:
        """The teacher record of the student's checkpoints and results.json: the class vectors' teacher + the file."""
        cv = self.class_vectors
        out = {**cv.teacher, "class_vectors": cv.path, "logit_scale": cv.logit_scale,
               "class_vectors_sha256": class_vectors_digest(cv.features)}
        if self.student_class_vectors is not cv:
            out["student_class_vectors"] = dict(self.student_class_vectors.teacher)
        if isinstance(getattr(self, "teacher", None), teacher_ensemble.EnsembleTeacher):
            out["ensemble"] = self.teacher.identity()
        return out

    def load_extra_checkpoint_state(self, name: str, checkpoint: Dict[str, Any], resume: bool) -> None:
        """A student checkpoint records the teacher (class vectors) it was distilled with; evaluating it with
        the class vectors of another teacher would give a silently wrong result, so it is refused."""
        super().load_extra_checkpoint_state(name, checkpoint, resume)
        saved = (checkpoint.get("meta") or {}).get("teacher") or {}
        if not saved:
            return
        current = self.teacher_identity()
        fields = [k for k in ("class_vectors_sha256", "checkpoint_sha256", "type", "model")
                  if saved.get(k) is not None and current.get(k) is not None]
        differing = [k for k in fields if saved[k] != current[k]]
        if "class_vectors_sha256" in fields and "class_vectors_sha256" not in differing:
            differing = []  # the very same class vectors
        if differing:
            detail = ", ".join(f"{k} {str(saved[k])[:16]!r} vs {str(current[k])[:16]!r}" for k in differing)
            raise ValueError(
                f"The student checkpoint was distilled with the class vectors {saved.get('class_vectors')!r} but this "
                f"run uses {current.get('class_vectors')!r} from another teacher ({detail}). Point "
                "TRAINER.PROMPTKD.CLASS_VECTORS (or TEACHER_CKPT) to the teacher the student was distilled from"
            )

    def results_extra(self) -> Dict[str, Any]:
        """The loss settings that make a student run comparable: results.json ``distillation``.

        ``kd_weight`` is the per-protocol value (base-to-novel: the dataset yaml's 200 or 1000;
        cross-dataset / domain generalisation: 1000 from the *_cross_datasets trainer yaml).
        """
        pk = self.cfg.TRAINER.PROMPTKD
        return {"distillation": {"kd_weight": float(pk.KD_WEIGHT), "loss": str(pk.LOSS),
                                 "temperature": float(pk.TEMPERATURE), **self.kd_loss.keywords}}

    @torch.no_grad()
    def compute_student_text_class_vectors(self, clip_model: nn.Module, batch_size: int = 256) -> ClassVectors:
        """CLASS_VECTORS_SOURCE student_text: the student's own frozen text tower over "CTX_INIT {class}."
        (the teacher's prompt learner design with its CTX_INIT-initialised, here frozen, context) for all
        dataset classes -> L2-normalised [N, d_s]."""
        pk = self.cfg.TRAINER.PROMPTKD
        names = list(self.dm.dataset.all_classnames)
        ctx_init = str(pk.CTX_INIT).replace("_", " ").strip()
        n_ctx = int(pk.N_CTX_TEXT)
        n_words = count_prompt_tokens(clip_model, ctx_init) if ctx_init else 0
        if not 1 <= n_ctx <= n_words:
            raise ValueError(
                f"CLASS_VECTORS_SOURCE student_text keeps the student's text context frozen at the words of "
                f"TRAINER.PROMPTKD.CTX_INIT {pk.CTX_INIT!r} ({n_words} tokens), so N_CTX_TEXT must be in 1..{n_words} "
                f"(got {n_ctx}); a randomly initialised frozen context would be meaningless"
            )
        learner = TextPromptLearner(clip_model, names[:batch_size], n_ctx, 1, ctx_init).to(self.device).requires_grad_(False)
        dtype = tower_dtype(clip_model.transformer)
        feats = []
        for start in range(0, len(names), batch_size):
            learner.set_classnames(names[start:start + batch_size])
            token_embeds, token_ids, _ = learner()
            with self.autocast():
                out = clip.encode_text(clip_model, token_embeds.to(dtype), token_ids, n_ctx=n_ctx)
            feats.append(out.float())
        features = F.normalize(torch.cat(feats), dim=-1).cpu()
        scale = float(clip_model.logit_scale.detach().float().exp().item())
        identity = TeacherIdentity(type="student_text", model=self.cfg.MODEL.BACKBONE.NAME, embed_dim=int(features.shape[1]),
                                   prompt={"ctx_init": ctx_init, "n_ctx": n_ctx, "frozen": True})
        logger.info("Student class vectors from the student's own frozen text tower (%s, prompt %r): %d x %d",
                    self.cfg.MODEL.BACKBONE.NAME, f"{ctx_init} {{class}}.", features.shape[0], features.shape[1])
        return ClassVectors(features, names, identity.as_dict(), scale, None)

    # ------------------------------------------------------------------ model
    def build_model(self) -> None:
        cfg = self.cfg
        pk = cfg.TRAINER.PROMPTKD
        # full_finetune: the student tower is trainable, so its weights stay fp32 (PREC fp16 / FROZEN_PREC = frozen
        # towers in low precision)
        storage = "fp32" if pk.TRAIN_MODE == "full_finetune" else None
        clip_model = build_clip(cfg, prec=self.prec, device=self.device, storage=storage)
        check_input_size(cfg, clip_model, cfg.MODEL.BACKBONE.NAME)
        info = clip.model_info(clip_model)
        student_scale = float(clip_model.logit_scale.detach().float().exp().item())
        visual = clip_model.visual
        student_cv = None
        if pk.CLASS_VECTORS_SOURCE == "student_text":
            student_cv = self.compute_student_text_class_vectors(clip_model)
        del clip_model  # otherwise the student's text tower is never used (docs/REFERENCE.md D22)

        self.class_vectors = self.teacher.class_vectors(self.dm.dataset.all_classnames)
        # the class vectors the STUDENT's logits use (the teacher's, unless CLASS_VECTORS_SOURCE student_text)
        self.student_class_vectors = student_cv if student_cv is not None else self.class_vectors
        self.model = PromptKDStudentModel(
            visual, int(pk.N_CTX_VISION), int(pk.PROMPT_DEPTH_VISION), info.vision_width,
            in_dim=info.embed_dim, out_dim=self.student_class_vectors.dim, project_layers=int(pk.PROJECT_LAYER),
            logit_scale=student_scale, train_mode=pk.TRAIN_MODE,
        ).to(self.device)
        logger.info("Projector: %d (student %s) -> %d (%s %s), %d layer(s); TRAIN_MODE %s, class vectors from %s",
                    info.embed_dim, cfg.MODEL.BACKBONE.NAME, self.student_class_vectors.dim,
                    self.student_class_vectors.teacher.get("type"), self.student_class_vectors.teacher.get("model"),
                    int(pk.PROJECT_LAYER), pk.TRAIN_MODE, pk.CLASS_VECTORS_SOURCE)
        self.kd_loss = bind_kd_loss(pk.LOSS, pk)  # + the loss's own keys (topk_skl: TOPK)
        self.kd_inputs = kd_loss_inputs(pk.LOSS)
        self.optim, self.sched = self.build_optim_sched(self.model.parameters())
        self.register_model(self.REGISTERED_NAME, self.model, self.optim, self.sched)
        self.set_eval_classnames(self.train_classnames)

    def set_eval_classnames(self, classnames: Sequence[str]) -> None:
        """Select the class-vector rows of ``classnames`` (base / novel / training classes): the student's
        (``class_weights``) and the teacher's (``teacher_class_weights``; the same tensor by default)."""
        self.class_weights = self.student_class_vectors.select(list(classnames)).to(self.device)
        if self.student_class_vectors is self.class_vectors:
            self.teacher_class_weights = self.class_weights
        else:
            self.teacher_class_weights = self.class_vectors.select(list(classnames)).to(self.device)

    # ------------------------------------------------------------------ training
    def build_data_loader(self) -> None:
        """Dassl's loaders, and the teacher: online, an ensemble (ENSEMBLE.TYPES), or recorded / replayed by the
        teacher-output cache (whose training loader replays augmentations)."""
        super().build_data_loader()
        self.teacher = (teacher_ensemble.EnsembleTeacher(self) if self.cfg.TRAINER.PROMPTKD.ENSEMBLE.TYPES
                        else teacher_cache.distillation_teacher(self))

    def before_train(self) -> None:
        super().before_train()
        self.build_teacher_encoder()

    def build_teacher_encoder(self) -> None:
        """The teacher's image side (a replay builds no teacher)."""
        self.teacher.start(self)

    def on_epoch_end(self) -> None:
        super().on_epoch_end()
        self.teacher.end_epoch(self)

    def parse_batch_train(self, batch: Dict[str, Any]) -> torch.Tensor:
        """Images only: the student never reads labels (DATASET.TRAIN_LABELS drop gives -1)."""
        return batch["img"].to(self.device, non_blocking=True)

    def distillation_features(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(student feature norm(proj(f_s)) [B, d], teacher image feature u_t [B, d_t] (no grad)), both
        L2-normalised fp32; what the feature losses of Table 4 compare."""
        u_t = self.teacher.features(images)
        with self.autocast():
            f_s = self.model(images)
        return f_s.float(), u_t

    def distillation_logits(self, images: torch.Tensor, batch: Optional[Dict[str, Any]] = None
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(student logits s_s * norm(proj(f_s)) W^T, teacher logits s_t * u_t W^T) over the current class set,
        both fp32. The teacher-output cache uses the training ``batch`` (its index / epoch / aug keys)."""
        teacher_logits = self.teacher.logits(images, self.teacher_class_weights, batch)
        with self.autocast():
            f_s = self.model(images)
        return cosine_logits(f_s.float(), self.class_weights, self.model.logit_scale), teacher_logits

    def forward_backward(self, batch) -> Dict[str, torch.Tensor]:
        images = self.parse_batch_train(batch)
        pk = self.cfg.TRAINER.PROMPTKD
        if self.kd_inputs == "features":  # Table 4: feature L1 / MSE in the teacher's feature space
            kd = self.kd_loss(*self.distillation_features(images), float(pk.TEMPERATURE))
        else:
            kd = self.kd_loss(*self.distillation_logits(images, batch), float(pk.TEMPERATURE))
        loss = float(pk.KD_WEIGHT) * kd
        grad_norm = self.optimize(loss)
        # device tensors: the engine's meters read them every TRAIN.PRINT_FREQ steps, not at every step
        return {"loss": loss.detach(), "kd": kd.detach(), "grad_norm": grad_norm}

    @torch.no_grad()
    def model_inference(self, images: torch.Tensor) -> torch.Tensor:
        return cosine_logits(self.model(images), self.class_weights, self.model.logit_scale)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_meta(self, name: str) -> Dict[str, Any]:
        meta = super().checkpoint_meta(name)
        meta["teacher"] = self.teacher_identity()
        return meta

    def convert_checkpoint_state(self, name: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """A released PromptKD student checkpoint (docs/REFERENCE.md M6: ``image_encoder.*`` incl. VPT prompts, ``logit_scale``,
        ``VPT_image_trans.conv1.{0,1,3}.*`` with 1x1 conv weights) -> our keys. Its frozen image-tower
        weights must equal the student backbone's (checked, not silently dropped)."""
        if not any(k.startswith(("image_encoder.", "VPT_image_trans.")) for k in state_dict):
            return state_dict
        out: Dict[str, torch.Tensor] = {}
        backbone: Dict[str, torch.Tensor] = {}
        unexpected = []
        for k, v in state_dict.items():
            m_p, m_j = _REF_STUDENT_PROMPT.match(k), _REF_PROJECTOR.match(k)
            if k == "image_encoder.VPT":
                out["image_prompts.layer0"] = v
            elif m_p:
                out[f"image_prompts.layer{int(m_p.group(1))}"] = v
            elif m_j:
                if m_j.group(2) == "weight" and v.dim() == 4:
                    v = v.reshape(v.shape[0], v.shape[1])  # 1x1 conv [out, in, 1, 1] -> Linear [out, in]
                out[f"projector.{m_j.group(1)}.{m_j.group(2)}"] = v
            elif k.startswith("image_encoder."):
                backbone[k[len("image_encoder."):]] = v
            elif k == "logit_scale":
                backbone_scale = float(v.float().exp().item())
                if abs(backbone_scale - float(self.model.logit_scale)) > 1e-2:
                    raise ValueError(f"reference student checkpoint: logit scale {backbone_scale} differs from the "
                                     f"backbone's {float(self.model.logit_scale)}")
            else:
                unexpected.append(k)
        what = "reference PromptKD student checkpoint"
        if unexpected:
            raise CheckpointKeyError(f"{what}: unexpected keys {format_keys(unexpected)}")
        check_reference_backbone(self.model.visual, backbone, self.cfg.MODEL.BACKBONE.NAME, f"{what} (image tower)")
        logger.info("Reference PromptKD student checkpoint: %d prompt/projector tensors mapped, %d frozen image-tower "
                    "tensors checked against the backbone", len(out), len(backbone))
        return out


@TRAINER_REGISTRY.register()
class PromptKD(PromptKDStudent):
    """The reference's trainer name (``--trainer PromptKD``): identical to :class:`PromptKDStudent`."""
