"""CoOp: context optimisation (Zhou et al., IJCV 2022; reference-behaviour §3.2).

A frozen CLIP classifies with the text features of ``"[SOS] <context> <class name>. [EOT]"`` prompts
whose context vectors are learned (cross-entropy on ``exp(logit_scale) * cos`` logits):

- ``N_CTX`` context vectors of the text width, random N(0, 0.02^2) with ``"X"`` placeholder words, or
  the word embeddings of ``CTX_INIT`` (then N_CTX := its number of BPE tokens; the reference counted
  words, the same number for single-token words such as "a photo of a");
- ``CSC``: class-specific contexts ``[C, N_CTX, W]`` instead of one shared ``[N_CTX, W]``. They exist
  only for the training classes, so a CSC model can evaluate those classes (any subset, any order)
  but never novel ones: that raises a clear error when the trainer is built and when a checkpoint of
  other classes is loaded;
- ``CLASS_TOKEN_POSITION``: ``end`` ``[SOS, ctx, name, ".", EOT]``, ``middle``
  ``[SOS, ctx[:N/2], name, ctx[N/2:], ".", EOT]`` or ``front`` ``[SOS, name, ctx, ".", EOT]``; the
  name length is the BPE length of the class name (``name_lens``).

The class-name token embeddings are non-persistent buffers recomputed for each class set
(:meth:`CoOpPromptLearner.set_classnames`), so a checkpoint holds only ``ctx``. The prompt learner is
registered as "prompt_learner" like the reference, whose checkpoints (keys ``ctx``, ``token_prefix``,
``token_suffix``) therefore load unchanged (the class-name buffers are skipped).

Difference from the reference: with ``CSC True`` and ``CTX_INIT`` set, the reference silently learned
one shared context; here every class gets its own context, each initialised from the words.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

import clip
from engine.api import TRAINER_REGISTRY

from .common.backbone import build_clip, check_input_size
from .common.base import PromptTrainer
from .common.prompts import PROMPT_INIT_STD
from .common.templates import format_classname
from .common.vl_model import cosine_logits, tower_dtype

logger = logging.getLogger(__name__)

__all__ = [
    "CoOp",
    "CoOpCLIP",
    "CoOpPromptLearner",
    "CLASS_TOKEN_POSITIONS",
    "add_config",
    "class_token_layout",
    "load_init_weights",
]

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def add_config(cfg: CN) -> None:
    """TRAINER.COOP (reference §4.1 keys and defaults)."""
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16  # context vectors (overridden by the token count of CTX_INIT when set)
    cfg.TRAINER.COOP.CSC = False  # class-specific contexts (one context per training class)
    cfg.TRAINER.COOP.CTX_INIT = ""  # words initialising the context ("" = random N(0, 0.02^2))
    cfg.TRAINER.COOP.PREC = "fp16"  # fp32 | fp16 (frozen CLIP in half) | amp | bf16
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # end | middle | front


def class_token_layout(n_ctx: int, name_lens: Sequence[int], seq_len: int, position: str) -> torch.Tensor:
    """Index map ``idx`` [C, seq_len] such that ``prompt[c, j] = end_layout[c, idx[c, j]]``.

    ``end_layout`` is ``[SOS, ctx (n_ctx), name (name_lens[c]), ".", EOT, pad]``; the result puts the
    name tokens in front of the context (``front``) or between its two halves (``middle``, first
    ``n_ctx // 2`` context vectors before the name), everything else stays in place.
    """
    if position not in CLASS_TOKEN_POSITIONS:
        raise ValueError(f"CLASS_TOKEN_POSITION = {position!r} is not supported; use one of {list(CLASS_TOKEN_POSITIONS)}")
    base = torch.arange(seq_len, dtype=torch.long)
    rows = []
    for nl in name_lens:
        nl = int(nl)
        if 1 + n_ctx + nl > seq_len:
            raise ValueError(f"prompt of {1 + n_ctx + nl} tokens does not fit the context length {seq_len}")
        idx = base.clone()
        ctx = list(range(1, 1 + n_ctx))
        name = list(range(1 + n_ctx, 1 + n_ctx + nl))
        if position == "front":
            order = name + ctx
        elif position == "middle":
            half = n_ctx // 2
            order = ctx[:half] + name + ctx[half:]
        else:
            order = ctx + name
        idx[1:1 + n_ctx + nl] = torch.tensor(order, dtype=torch.long)
        rows.append(idx)
    return torch.stack(rows) if rows else base.new_empty((0, seq_len))


class CoOpPromptLearner(nn.Module):
    """Learned context ``ctx`` + class-name token buffers (reference §3.2 PromptLearner).

    ``forward()`` returns ``(token_embeds [C, L, W], token_ids [C, L])`` for the current class set,
    the arguments of :func:`clip.encode_text`. The CLIP model is not a sub-module (it is frozen and
    owned by the caller); it is only used to embed the class-name tokens.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        classnames: Sequence[str],
        n_ctx: int,
        ctx_init: str = "",
        csc: bool = False,
        class_token_position: str = "end",
    ) -> None:
        super().__init__()
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(
                f"CLASS_TOKEN_POSITION = {class_token_position!r} is not supported; use one of {list(CLASS_TOKEN_POSITIONS)}"
            )
        classnames = list(classnames)
        if not classnames:
            raise ValueError("CoOpPromptLearner: empty class list")
        info = clip.model_info(clip_model)
        self.width = int(info.text_width)
        self.context_length = int(info.context_length)
        self.csc = bool(csc)
        self.class_token_position = class_token_position
        self._clip_ref: Tuple[nn.Module] = (clip_model,)

        ctx_init = (ctx_init or "").replace("_", " ").strip()
        n_cls = len(classnames)
        if ctx_init:
            ids = clip.tokenize([ctx_init], self.context_length)
            n_init = int((ids[0] != 0).sum().item()) - 2
            if n_init < 1:
                raise ValueError(f"CTX_INIT {ctx_init!r} has no tokens; give initialisation words or leave it empty")
            if n_init != n_ctx:
                logger.info("CTX_INIT %r has %d tokens: N_CTX %d -> %d (as the reference)", ctx_init, n_init, n_ctx, n_init)
            n_ctx = n_init
            with torch.no_grad():
                emb = clip.token_embedding(clip_model, ids.to(self._embed_device())).float().cpu()
            vectors = emb[0, 1:1 + n_ctx].clone()
            if self.csc:
                vectors = vectors.unsqueeze(0).repeat(n_cls, 1, 1)
            self.prompt_prefix = ctx_init
            logger.info("Context initialised from %r (%s)", ctx_init, "class-specific" if self.csc else "generic")
        else:
            if n_ctx < 1:
                raise ValueError(f"N_CTX must be >= 1 when CTX_INIT is empty (got {n_ctx})")
            shape = (n_cls, n_ctx, self.width) if self.csc else (n_ctx, self.width)
            vectors = torch.empty(shape, dtype=torch.float32)
            nn.init.normal_(vectors, std=PROMPT_INIT_STD)
            self.prompt_prefix = " ".join(["X"] * n_ctx)
            logger.info("Context initialised randomly (%s, %d vectors)", "class-specific" if self.csc else "generic", n_ctx)
        self.n_ctx = int(n_ctx)
        self.ctx_init = ctx_init
        self.ctx = nn.Parameter(vectors)
        #: with CSC, the classes the contexts belong to (row order of ``ctx``)
        self.ctx_classnames: List[str] = list(classnames) if self.csc else []
        self.classnames: List[str] = []
        for name, dtype in (("token_prefix", torch.float32), ("token_suffix", torch.float32),
                            ("token_ids", torch.long), ("name_lens", torch.long),
                            ("layout_index", torch.long), ("ctx_index", torch.long)):
            self.register_buffer(name, torch.empty(0, dtype=dtype), persistent=False)
        self.set_classnames(classnames)

    # ------------------------------------------------------------------------------------------
    @property
    def clip_model(self) -> nn.Module:
        return self._clip_ref[0]

    def _embed_device(self) -> torch.device:
        return self.clip_model.token_embedding.weight.device

    @property
    def n_classes(self) -> int:
        return len(self.classnames)

    def prompts_for(self, classnames: Sequence[str]) -> List[str]:
        """The tokenised prompt texts ``"<ctx words> <class name>."`` (ctx words: CTX_INIT or "X ...")."""
        return [f"{self.prompt_prefix} {format_classname(n)}." for n in classnames]

    def _csc_rows(self, classnames: Sequence[str]) -> List[int]:
        rows = {n: i for i, n in enumerate(self.ctx_classnames)}
        unknown = [n for n in classnames if n not in rows]
        if unknown:
            raise ValueError(
                f"CoOp with TRAINER.COOP.CSC = True has class-specific contexts only for its {len(rows)} training "
                f"classes; {len(unknown)} requested class(es) have none (e.g. {unknown[:3]}). Novel classes cannot be "
                "evaluated with CSC: train with CSC False (one shared context) for base-to-novel evaluation"
            )
        return [rows[n] for n in classnames]

    @torch.no_grad()
    def set_classnames(self, classnames: Sequence[str]) -> None:
        """Recompute the class-name token buffers for ``classnames`` (e.g. base or novel classes)."""
        classnames = list(classnames)
        if not classnames:
            raise ValueError("CoOpPromptLearner.set_classnames: empty class list")
        device = self.ctx.device
        ctx_rows = self._csc_rows(classnames) if self.csc else []
        texts = self.prompts_for(classnames)
        long_ids = clip.tokenize(texts, self.context_length + 64)
        lengths = (long_ids != 0).sum(dim=1)
        too_long = [(n, int(k)) for n, k in zip(classnames, lengths.tolist()) if k > self.context_length]
        if too_long:
            raise ValueError(
                f"{len(too_long)} class prompt(s) exceed the text context length {self.context_length} tokens, "
                f"e.g. {too_long[0][0]!r} ({too_long[0][1]} tokens); shorten the class names or lower N_CTX"
            )
        ids = long_ids[:, : self.context_length].contiguous()
        # name_lens: BPE length of each class name on its own (reference: len(_tokenizer.encode(name)))
        name_ids = clip.tokenize([format_classname(n) for n in classnames], self.context_length + 64)
        name_lens = ((name_ids != 0).sum(dim=1) - 2).tolist()
        if self.class_token_position != "end":
            start = 1 + self.n_ctx
            odd = [n for n, nl, row, nrow in zip(classnames, name_lens, ids, name_ids)
                   if not torch.equal(row[start:start + nl], nrow[1:1 + nl])]
            if odd:
                logger.warning("%d class name(s) tokenise differently inside the prompt (e.g. %r: punctuation merged "
                               "with the final '.'); their '%s' layout moves name_lens tokens as the reference does",
                               len(odd), odd[0], self.class_token_position)
        emb = clip.token_embedding(self.clip_model, ids.to(self._embed_device())).float()
        self.token_prefix = emb[:, :1, :].to(device)
        self.token_suffix = emb[:, 1 + self.n_ctx:, :].to(device)
        self.token_ids = ids.to(device)
        self.name_lens = torch.tensor(name_lens, dtype=torch.long, device=device)
        self.layout_index = class_token_layout(self.n_ctx, name_lens, self.context_length,
                                               self.class_token_position).to(device)
        self.ctx_index = torch.tensor(ctx_rows, dtype=torch.long, device=device)
        self.classnames = classnames

    # ------------------------------------------------------------------------------------------
    def class_contexts(self) -> torch.Tensor:
        """Context of every current class [C, N_CTX, W] (shared context broadcast, or CSC rows)."""
        if self.csc:
            return self.ctx[self.ctx_index]
        return self.ctx.unsqueeze(0).expand(self.n_classes, -1, -1)

    def assemble(self, ctx: torch.Tensor, class_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Prompt embeddings [R, L, W] from per-row contexts ``ctx`` [R, N_CTX, W] for the classes
        ``class_index`` [R] (default: every current class in order), in the configured layout."""
        prefix, suffix, layout = self.token_prefix, self.token_suffix, self.layout_index
        if class_index is not None:
            prefix, suffix, layout = prefix[class_index], suffix[class_index], layout[class_index]
        if ctx.shape[:1] != prefix.shape[:1] or ctx.shape[1:] != (self.n_ctx, self.width):
            raise ValueError(f"assemble: ctx must be [{prefix.shape[0]}, {self.n_ctx}, {self.width}], got {list(ctx.shape)}")
        emb = torch.cat([prefix.to(ctx.dtype), ctx, suffix.to(ctx.dtype)], dim=1)
        if self.class_token_position != "end":
            emb = emb.gather(1, layout.unsqueeze(-1).expand(-1, -1, emb.shape[-1]))
        return emb

    def forward(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.assemble(self.class_contexts()), self.token_ids

    def extra_repr(self) -> str:
        return (f"n_ctx={self.n_ctx}, width={self.width}, csc={self.csc}, position={self.class_token_position!r}, "
                f"n_classes={self.n_classes}, prefix={self.prompt_prefix!r}")


class CoOpCLIP(nn.Module):
    """Frozen CLIP (``backbone``) + a prompt learner: ``forward(images)`` -> logits [B, C] (fp32),
    ``exp(logit_scale) * norm(image) @ norm(text).T``. The backbone stays in eval mode."""

    def __init__(self, clip_model: nn.Module, prompt_learner: CoOpPromptLearner) -> None:
        super().__init__()
        self.backbone = clip_model
        self.prompt_learner = prompt_learner

    def train(self, mode: bool = True) -> "CoOpCLIP":
        super().train(mode)
        self.backbone.eval()  # frozen tower: never in train mode
        return self

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.backbone.logit_scale.detach().float().exp()

    @property
    def classnames(self) -> List[str]:
        return self.prompt_learner.classnames

    def set_classnames(self, classnames: Sequence[str]) -> None:
        self.prompt_learner.set_classnames(classnames)

    def encode_prompts(self, token_embeds: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Text features [R, D] (fp32, unnormalised) of prompt embeddings (shared clip.encode_text)."""
        dtype = tower_dtype(self.backbone.transformer)
        return clip.encode_text(self.backbone, token_embeds.to(dtype), token_ids).float()

    def encode_text(self) -> torch.Tensor:
        token_embeds, token_ids = self.prompt_learner()
        return self.encode_prompts(token_embeds, token_ids)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        visual = self.backbone.visual
        return clip.encode_image(visual, images.to(tower_dtype(visual))).float()

    def forward(self, images: torch.Tensor, text_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        if text_features is None:
            text_features = self.encode_text()
        return cosine_logits(self.encode_image(images), text_features, self.logit_scale)


def load_init_weights(trainer: PromptTrainer, name: str) -> None:
    """``MODEL.INIT_WEIGHTS``: strictly load a checkpoint file into the registered model ``name``
    before training (the reference's ``load_pretrained_weights``, without its silent key skipping)."""
    path = trainer.cfg.MODEL.INIT_WEIGHTS
    if not path:
        return
    trainer._load_into(name, path, resume=False)
    logger.info("Initialised %s from MODEL.INIT_WEIGHTS = %s", name, path)


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    """CoOp trainer: L = CE(exp(logit_scale) * cos(image, text(ctx, class)), y); only ``ctx`` is learned."""

    CFG_NODE = "COOP"
    REGISTERED_NAME = "prompt_learner"

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        node = cfg.TRAINER[self.CFG_NODE]
        position = node.get("CLASS_TOKEN_POSITION", "end")
        if position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(f"TRAINER.{self.CFG_NODE}.CLASS_TOKEN_POSITION = {position!r} is not supported; "
                             f"use one of {list(CLASS_TOKEN_POSITIONS)}")
        if not node.CTX_INIT and int(node.N_CTX) < 1:
            raise ValueError(f"TRAINER.{self.CFG_NODE}.N_CTX = {node.N_CTX}: need >= 1 context vector (or set CTX_INIT)")

    # ------------------------------------------------------------------ model
    def build_prompt_learner(self, clip_model: nn.Module) -> CoOpPromptLearner:
        node = self.cfg.TRAINER.COOP
        return CoOpPromptLearner(clip_model, self.train_classnames, int(node.N_CTX), node.CTX_INIT,
                                 bool(node.CSC), node.CLASS_TOKEN_POSITION)

    def wrap_model(self, clip_model: nn.Module, learner: CoOpPromptLearner) -> CoOpCLIP:
        return CoOpCLIP(clip_model, learner)

    def build_model(self) -> None:
        cfg = self.cfg
        clip_model = build_clip(cfg, prec=self.prec, device=self.device)
        check_input_size(cfg, clip_model, cfg.MODEL.BACKBONE.NAME)
        learner = self.build_prompt_learner(clip_model)
        self.model = self.wrap_model(clip_model, learner).to(self.device)
        self._text_cache: Optional[torch.Tensor] = None
        if learner.csc:
            self._check_csc_eval_classes()
        optim, sched = self.build_optim_sched(learner.parameters())
        self.optim, self.sched = optim, sched
        self.register_model(self.REGISTERED_NAME, learner, optim, sched)
        load_init_weights(self, self.REGISTERED_NAME)

    def _check_csc_eval_classes(self) -> None:
        """Fail before training when an evaluation set holds classes without a class-specific context."""
        trained = set(self.train_classnames)
        for name, es in (getattr(self.dm.dataset, "eval_sets", None) or {}).items():
            unknown = [c for c in es.classnames if c not in trained]
            if unknown:
                raise ValueError(
                    f"TRAINER.COOP.CSC = True learns one context per training class, but evaluation set {name!r} has "
                    f"{len(unknown)} untrained class(es) (e.g. {unknown[:3]}). Use CSC False for base-to-novel "
                    "evaluation, or evaluate the training classes only (DATASET.EVAL_PROTOCOL subsample)"
                )

    def checkpoint_meta(self, name: str) -> Dict:
        meta = super().checkpoint_meta(name)
        learner = self.model.prompt_learner
        meta.update(ctx_init=learner.ctx_init, n_ctx=learner.n_ctx, csc=learner.csc,
                    class_token_position=learner.class_token_position)
        if learner.csc:
            meta["ctx_classnames"] = list(learner.ctx_classnames)
        return meta

    def load_extra_checkpoint_state(self, name: str, checkpoint: Dict, resume: bool) -> None:
        """With CSC, the contexts must belong to the same classes in the same order."""
        learner = self.model.prompt_learner
        if not getattr(learner, "csc", False):
            return
        meta = checkpoint.get("meta") or {}
        saved = meta.get("ctx_classnames", meta.get("classnames"))
        if saved is None:
            logger.warning("CSC checkpoint without class names (reference layout): its %d contexts are assumed to "
                           "follow the training class order %s", learner.ctx.shape[0], learner.ctx_classnames[:5])
            return
        if list(saved) != list(learner.ctx_classnames):
            raise ValueError(
                f"CSC checkpoint has class-specific contexts for classes {list(saved)[:5]}... but this run's training "
                f"classes are {learner.ctx_classnames[:5]}...; class-specific contexts cannot be used for other "
                "(e.g. novel) classes. Evaluate with the class set the model was trained on, or train with CSC False"
            )

    # ------------------------------------------------------------------ training / evaluation
    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def forward_backward(self, batch) -> Dict[str, float]:
        images, labels = self.parse_batch_train(batch)
        with self.autocast():
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels)
        grad_norm = self.optimize(loss)
        acc = (logits.argmax(dim=1) == labels).float().mean().item() * 100.0
        return {"loss": loss.item(), "acc": acc, "grad_norm": grad_norm}

    def set_eval_classnames(self, classnames: Sequence[str]) -> None:
        if list(classnames) != self.model.classnames:
            self.model.set_classnames(classnames)
        self._text_cache = None

    def set_model_mode(self, mode: str = "train", names=None) -> None:
        super().set_model_mode(mode, names)
        self.model.backbone.eval()
        self._text_cache = None  # the context may have changed: recompute text features for evaluation

    def after_load_model(self) -> None:
        self._text_cache = None

    @torch.no_grad()
    def model_inference(self, images: torch.Tensor) -> torch.Tensor:
        if self._text_cache is None:
            self._text_cache = self.model.encode_text()
        return self.model(images, text_features=self._text_cache)
