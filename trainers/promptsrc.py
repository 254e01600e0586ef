"""PromptSRC (docs/REFERENCE.md T6) and PromptSRCTeacher (PromptKD stage I).

Model: the IVLP model (docs/REFERENCE.md M2) plus frozen zero-shot signals computed on the SAME frozen CLIP (no second
copy of the visual tower, fixing docs/REFERENCE.md D24):

- ``fixed_embeddings`` T0: mean over the 60 PromptSRC templates of the UNnormalised frozen text
  features of each training class (no per-template normalisation), normalised at use;
- zero-shot image features I0 = ``clip.encode_image`` without prompts.

Loss (per batch, Z = s * I T^T prompted logits, Z0 = s * I0 T0^T zero-shot logits, all normalised):
``L_CE(Z, y) + KL_sum(softmax Z0 || softmax Z) / (B*C) + TEXT_LOSS_WEIGHT * mean|T - T0|
+ IMAGE_LOSS_WEIGHT * mean|I - I0|``, each term logged.

Gaussian prompt aggregation (GPA): after epoch e (1-based) the TRAINABLE tensors are accumulated with
weight w_e = N(e; GPA_MEAN, GPA_STD) / sum_k N(k; GPA_MEAN, GPA_STD), k = 1..MAX_EPOCH; after the last
epoch the model takes the aggregate before the final save and test. The accumulator is saved in the
checkpoints so resuming keeps it (docs/REFERENCE.md D9).

``PromptSRCTeacher`` additionally writes the class-vectors file for every class of the dataset after
training (and after ``--eval-only`` loading when TRAINER.PROMPTSRC.WRITE_CLASS_VECTORS is True).
"""

from __future__ import annotations

import logging
import math
import os.path as osp
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

from engine import dist
from engine.api import TRAINER_REGISTRY
from engine.checkpoint import numbered_checkpoint_name

from .common.base import PromptTrainer
from .common.checkpoints import file_sha256
from .common.class_vectors import save_class_vectors
from .common.kd import kl_reference
from .common.teacher import Teacher, TeacherIdentity, compute_class_vectors
from .common.templates import IMAGENET_TEMPLATES, template_text_features
from .common.vl_model import cosine_logits
from .ivlp import IVLP, build_vl_model, vl_prompt_node

logger = logging.getLogger(__name__)


def add_config(cfg: CN) -> None:
    """TRAINER.PROMPTSRC (docs/REFERENCE.md C1 defaults + the teacher's class-vectors keys)."""
    cfg.TRAINER.PROMPTSRC = vl_prompt_node(n_ctx=4)  # Nv = Nt = 4, Jv = Jt = 9
    cfg.TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT = 25  # weight of the L1 text-feature consistency loss
    cfg.TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT = 10  # weight of the L1 image-feature consistency loss
    cfg.TRAINER.PROMPTSRC.GPA_MEAN = 15  # Gaussian prompt aggregation: mean epoch (1-based)
    cfg.TRAINER.PROMPTSRC.GPA_STD = 1  # Gaussian prompt aggregation: std in epochs
    # PromptSRCTeacher: where the class-vectors file goes ("" -> next to the checkpoint:
    # <OUTPUT_DIR>/VLPromptLearner/class_vectors_<DATASET.NAME>.pt; in --eval-only runs next to the
    # loaded checkpoint)
    cfg.TRAINER.PROMPTSRC.CLASS_VECTORS_OUT = ""
    # PromptSRCTeacher: also write the class-vectors file in --eval-only runs (after the weights load)
    cfg.TRAINER.PROMPTSRC.WRITE_CLASS_VECTORS = False


def gpa_weights(mean: float, std: float, num_epochs: int) -> List[float]:
    """w_e = N(e; mean, std) / sum_k N(k; mean, std) for e = 1..num_epochs (docs/REFERENCE.md T6)."""
    if std <= 0:
        raise ValueError(f"TRAINER.PROMPTSRC.GPA_STD must be > 0, got {std}")
    if num_epochs < 1:
        raise ValueError(f"OPTIM.MAX_EPOCH must be >= 1 for GPA, got {num_epochs}")
    pdf = [math.exp(-0.5 * ((e - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)) for e in range(1, num_epochs + 1)]
    total = sum(pdf)
    if total <= 0:
        raise ValueError(f"GPA weights vanish for GPA_MEAN={mean}, GPA_STD={std}, MAX_EPOCH={num_epochs}")
    return [p / total for p in pdf]


def promptsrc_losses(logits: torch.Tensor, zs_logits: torch.Tensor, labels: torch.Tensor, text_feats: torch.Tensor,
                     fixed_text_feats: torch.Tensor, image_feats: torch.Tensor, zs_image_feats: torch.Tensor,
                     text_weight: float, image_weight: float) -> Dict[str, torch.Tensor]:
    """The four PromptSRC terms (docs/REFERENCE.md T6); features must be L2-normalised, all computed in fp32."""
    ce = F.cross_entropy(logits.float(), labels)
    scl_logits = kl_reference(logits.float(), zs_logits.float(), 1.0)
    scl_text = text_weight * F.l1_loss(text_feats.float(), fixed_text_feats.float(), reduction="mean")
    scl_image = image_weight * F.l1_loss(image_feats.float(), zs_image_feats.float(), reduction="mean")
    return {"loss_ce": ce, "loss_scl_logits": scl_logits, "loss_scl_text": scl_text, "loss_scl_image": scl_image,
            "loss": ce + scl_logits + scl_text + scl_image}


@TRAINER_REGISTRY.register()
class PromptSRC(PromptTrainer):
    """PromptSRC: IVLP prompts + self-regulating consistency losses + Gaussian prompt aggregation."""

    CFG_NODE = "PROMPTSRC"
    REGISTERED_NAME = "VLPromptLearner"

    def build_model(self) -> None:
        self.model = build_vl_model(self)
        node = self.cfg.TRAINER.PROMPTSRC
        self._reset_gpa()
        # T0: mean over the 60 templates of the UNnormalised frozen text features [C, D]
        self.fixed_embeddings = template_text_features(self.model.backbone, self.train_classnames, IMAGENET_TEMPLATES,
                                                       normalize=False, autocast=self.autocast)
        self.gpa_w = gpa_weights(float(node.GPA_MEAN), float(node.GPA_STD), int(self.max_epoch))
        logger.info("GPA weights (epochs 1..%d): %s", self.max_epoch, ", ".join(f"{w:.4f}" for w in self.gpa_w))
        self.register_trainable(self.model)

    # the IVLP model's checkpoint layout (metadata, released checkpoints)
    checkpoint_meta = IVLP.checkpoint_meta
    convert_checkpoint_state = IVLP.convert_checkpoint_state

    def _reset_gpa(self) -> None:
        self.gpa_state: Optional[Dict[str, torch.Tensor]] = None
        self.gpa_epochs: List[int] = []

    # ------------------------------------------------------------------ training
    def forward_backward(self, batch) -> Dict[str, torch.Tensor]:
        images, labels = self.parse_batch_train(batch)
        node = self.cfg.TRAINER.PROMPTSRC
        model = self.model
        with self.autocast():
            text = model.encode_text()
            image = model.encode_image(images, prompted=True)
            with torch.no_grad():
                zs_image = model.encode_image(images, prompted=False)
        text_n, image_n, zs_image_n, fixed_n = (F.normalize(f.float(), dim=-1)
                                                for f in (text, image, zs_image, self.fixed_embeddings))
        logits = cosine_logits(image_n, text_n, model.logit_scale)
        zs_logits = cosine_logits(zs_image_n, fixed_n, model.logit_scale)
        losses = promptsrc_losses(logits, zs_logits, labels, text_n, fixed_n, image_n, zs_image_n,
                                  float(node.TEXT_LOSS_WEIGHT), float(node.IMAGE_LOSS_WEIGHT))
        grad_norm = self.optimize(losses["loss"])
        acc = (logits.detach().argmax(dim=1) == labels).float().mean() * 100.0
        return {**{k: v.detach() for k, v in losses.items()}, "acc": acc, "grad_norm": grad_norm}  # read at PRINT_FREQ

    # ------------------------------------------------------------------ GPA
    def _trainable(self) -> Dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def on_epoch_end(self) -> None:
        """Accumulate w_e * theta_e over the trainable tensors; after the last epoch, load the aggregate."""
        e = self.epoch + 1
        if e in self.gpa_epochs:
            raise RuntimeError(f"GPA: epoch {e} was already accumulated (inconsistent resume state)")
        w = self.gpa_w[e - 1]
        with torch.no_grad():
            params = self._trainable()
            if self.gpa_state is None:
                self.gpa_state = {n: p.detach().float() * w for n, p in params.items()}
            else:
                for n, p in params.items():
                    self.gpa_state[n].add_(p.detach().float(), alpha=w)
        self.gpa_epochs.append(e)
        if e == self.max_epoch:
            logger.info("Using the GPA model (Gaussian-weighted average of epochs 1..%d) for final inference",
                        self.max_epoch)
            with torch.no_grad():
                for n, p in self._trainable().items():
                    p.copy_(self.gpa_state[n].to(p.dtype))
            self._text_cache = None

    def extra_checkpoint_state(self, name: str) -> Dict[str, Any]:
        state = self.gpa_state
        return {"gpa": None if state is None else {"state": {k: v.detach().cpu().clone() for k, v in state.items()},
                                                   "epochs": list(self.gpa_epochs)}}

    def load_extra_checkpoint_state(self, name: str, checkpoint: Dict[str, Any], resume: bool) -> None:
        if not resume:
            return
        gpa = checkpoint.get("gpa")
        if gpa is None:
            if int(checkpoint.get("epoch", 0)) > 0 and "gpa" not in checkpoint:
                raise KeyError("resume: the checkpoint has no GPA state (made by another trainer?); "
                               "PromptSRC cannot resume Gaussian prompt aggregation without it")
            self.gpa_state, self.gpa_epochs = None, []
            return
        params = self._trainable()  # the same keys: the weights of this checkpoint were loaded strictly
        self.gpa_state = {k: v.to(params[k].device).float() for k, v in gpa["state"].items()}
        self.gpa_epochs = [int(e) for e in gpa["epochs"]]


@TRAINER_REGISTRY.register()
class PromptSRCTeacher(PromptSRC):
    """PromptKD stage I: a PromptSRC teacher (ViT-L/14 config) that writes the class-vectors file."""

    def class_vectors_path(self, checkpoint_dir: Optional[str] = None) -> str:
        folder = checkpoint_dir or osp.join(self.output_dir, self.REGISTERED_NAME)
        return self.cfg.TRAINER.PROMPTSRC.CLASS_VECTORS_OUT or osp.join(folder, f"class_vectors_{self.cfg.DATASET.NAME}.pt")

    def write_class_vectors(self, checkpoint_file: Optional[str]) -> str:
        """Run the prompted text branch once over ALL classes of the dataset and save the file."""
        node = self.cfg.TRAINER.PROMPTSRC
        all_names = list(self.dm.dataset.all_classnames)
        identity = TeacherIdentity(
            type="promptsrc", format="ours", model=self.cfg.MODEL.BACKBONE.NAME, checkpoint=checkpoint_file,
            checkpoint_sha256=file_sha256(checkpoint_file) if checkpoint_file and osp.isfile(checkpoint_file) else None,
            prompt={"n_ctx_text": int(node.N_CTX_TEXT), "depth_text": int(node.PROMPT_DEPTH_TEXT),
                    "n_ctx_vision": int(node.N_CTX_VISION), "depth_vision": int(node.PROMPT_DEPTH_VISION),
                    "ctx_init": self.model.text_prompts.ctx_init},
            embed_dim=int(self.model.embed_dim), trainer=self.cfg.TRAINER.NAME, dataset=self.cfg.DATASET.NAME,
            seed=self.cfg.SEED)
        teacher = Teacher(self.model.backbone, identity, self.model)
        self.set_model_mode("eval")
        feats = compute_class_vectors(teacher, all_names, autocast=self.autocast)
        path = self.class_vectors_path(osp.dirname(checkpoint_file) if checkpoint_file else None)
        if dist.is_main_process():
            save_class_vectors(path, feats, all_names, identity.as_dict(), float(self.model.logit_scale.item()))
        return path

    def after_train(self) -> None:
        """Training and the final test, then the class vectors of the weights it used: the loaded best model,
        else the last epoch's checkpoint (None when it was not saved)."""
        self._loaded_checkpoint = None
        super().after_train()
        last = osp.join(self.output_dir, self.REGISTERED_NAME, numbered_checkpoint_name(self.max_epoch))
        loaded = self._loaded_checkpoint
        self.write_class_vectors(loaded["file"] if loaded else (last if osp.isfile(last) else None))

    def load_model(self, directory: str, epoch: Optional[int] = None, strict: bool = True) -> None:
        super().load_model(directory, epoch, strict)
        if self.cfg.TRAINER.PROMPTSRC.WRITE_CLASS_VECTORS and self._loaded_checkpoint:
            self.write_class_vectors(self._loaded_checkpoint["file"])
