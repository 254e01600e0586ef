"""CoOp: context optimisation (Zhou et al., IJCV 2022; docs/REFERENCE.md T2).

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
from torch import nn
from yacs.config import CfgNode as CN

import clip
from engine.api import TRAINER_REGISTRY

from .common.base import PromptTrainer
from .common.prompts import ClassPromptLearner, count_prompt_tokens, new_prompt
from .common.templates import format_classname
from .common.vl_model import FrozenCLIPModel

logger = logging.getLogger(__name__)


CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def add_config(cfg: CN) -> None:
    """TRAINER.COOP (docs/REFERENCE.md C1 keys and defaults)."""
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
    # context vectors before the name: none (front), the first half (middle) or all (end)
    before = {"front": 0, "middle": n_ctx // 2, "end": n_ctx}[position]
    ctx = list(range(1, 1 + n_ctx))
    rows = []
    for nl in map(int, name_lens):
        if 1 + n_ctx + nl > seq_len:
            raise ValueError(f"prompt of {1 + n_ctx + nl} tokens does not fit the context length {seq_len}")
        name = list(range(1 + n_ctx, 1 + n_ctx + nl))
        rows.append([0] + ctx[:before] + name + ctx[before:] + list(range(1 + n_ctx + nl, seq_len)))
    return torch.tensor(rows, dtype=torch.long).view(len(rows), seq_len)


class CoOpPromptLearner(ClassPromptLearner):
    """Learned context ``ctx`` + class-name token buffers (docs/REFERENCE.md T2 PromptLearner).

    ``forward()`` returns ``(token_embeds [C, L, W], token_ids [C, L])`` for the current class set,
    the arguments of :func:`clip.encode_text`. The CLIP model is not a sub-module (it is frozen and
    owned by the caller); it is only used to embed the class-name tokens.
    """

    TOO_LONG_HINT = "shorten the class names or lower N_CTX"

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx: int, ctx_init: str = "",
                 csc: bool = False, class_token_position: str = "end") -> None:
        classnames = list(classnames)
        super().__init__(clip_model)
        self.csc = bool(csc)
        self.class_token_position = class_token_position

        ctx_init = (ctx_init or "").replace("_", " ").strip()
        if ctx_init:
            n_init = count_prompt_tokens(clip_model, ctx_init)
            if n_init < 1:
                raise ValueError(f"CTX_INIT {ctx_init!r} has no tokens; give initialisation words or leave it empty")
            if n_init != n_ctx:
                logger.info("CTX_INIT %r has %d tokens: N_CTX %d -> %d (as the reference)", ctx_init, n_init, n_ctx, n_init)
            n_ctx = n_init
            vectors = self.word_embeddings(ctx_init)[1:1 + n_ctx].clone()
            if self.csc:
                vectors = vectors.unsqueeze(0).repeat(len(classnames), 1, 1)
            self.prompt_prefix = ctx_init
            logger.info("Context initialised from %r (%s)", ctx_init, "class-specific" if self.csc else "generic")
        else:
            if n_ctx < 1:
                raise ValueError(f"N_CTX = {n_ctx}: need >= 1 context vector (or set CTX_INIT)")
            vectors = new_prompt(*((len(classnames), n_ctx, self.width) if self.csc else (n_ctx, self.width)))
            self.prompt_prefix = " ".join(["X"] * n_ctx)
            logger.info("Context initialised randomly (%s, %d vectors)", "class-specific" if self.csc else "generic", n_ctx)
        self.n_ctx = int(n_ctx)
        self.ctx_init = ctx_init
        self.ctx = nn.Parameter(vectors)
        #: with CSC, the classes the contexts belong to (row order of ``ctx``)
        self.ctx_classnames: List[str] = list(classnames) if self.csc else []
        for name in ("name_lens", "layout_index", "ctx_index"):
            self.register_buffer(name, torch.empty(0, dtype=torch.long), persistent=False)
        self.set_classnames(classnames)

    # ------------------------------------------------------------------------------------------
    def csc_rows(self, classnames: Sequence[str], where: str = "the requested class set") -> List[int]:
        """Rows of ``ctx`` (CSC) of ``classnames``; a class without a context of its own is an error."""
        rows = {n: i for i, n in enumerate(self.ctx_classnames)}
        unknown = [n for n in classnames if n not in rows]
        if unknown:
            raise ValueError(
                f"CoOp with CSC = True learns one context per training class ({len(rows)}), but {where} has "
                f"{len(unknown)} untrained class(es) (e.g. {unknown[:3]}). Novel classes cannot be evaluated with CSC: "
                "train with CSC False (one shared context) for base-to-novel evaluation, or evaluate the training "
                "classes only (DATASET.EVAL_PROTOCOL subsample)"
            )
        return [rows[n] for n in classnames]

    @torch.no_grad()
    def set_classnames(self, classnames: Sequence[str]) -> None:
        """Recompute the class-name token buffers for ``classnames`` (e.g. base or novel classes)."""
        classnames = list(classnames)
        ctx_rows = self.csc_rows(classnames) if self.csc else []  # before any buffer changes
        super().set_classnames(classnames)
        device = self.ctx.device
        # name_lens: BPE length of each class name on its own (reference: len(_tokenizer.encode(name)))
        name_ids = clip.tokenize([format_classname(n) for n in classnames], self.context_length + 64)
        name_lens = ((name_ids != 0).sum(dim=1) - 2).tolist()
        if self.class_token_position != "end":
            start = 1 + self.n_ctx
            odd = [n for n, nl, row, nrow in zip(classnames, name_lens, self.token_ids.cpu(), name_ids)
                   if not torch.equal(row[start:start + nl], nrow[1:1 + nl])]
            if odd:
                logger.warning("%d class name(s) tokenise differently inside the prompt (e.g. %r: punctuation merged "
                               "with the final '.'); their '%s' layout moves name_lens tokens as the reference does",
                               len(odd), odd[0], self.class_token_position)
        self.name_lens = torch.tensor(name_lens, dtype=torch.long, device=device)
        self.layout_index = class_token_layout(self.n_ctx, name_lens, self.context_length,
                                               self.class_token_position).to(device)
        self.ctx_index = torch.tensor(ctx_rows, dtype=torch.long, device=device)

    # ------------------------------------------------------------------------------------------
    def class_contexts(self) -> torch.Tensor:
        """Context of every current class [C, N_CTX, W] (shared context broadcast, or CSC rows)."""
        return self.ctx[self.ctx_index] if self.csc else self.ctx.unsqueeze(0).expand(self.n_classes, -1, -1)

    def assemble(self, ctx: torch.Tensor, class_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Prompt embeddings [R, L, W] from per-row contexts ``ctx`` [R, N_CTX, W] for the classes
        ``class_index`` [R] (default: every current class in order), in the configured layout."""
        prefix, suffix, layout = self.token_prefix, self.token_suffix, self.layout_index
        if class_index is not None:
            prefix, suffix, layout = prefix[class_index], suffix[class_index], layout[class_index]
        emb = torch.cat([prefix.to(ctx.dtype), ctx, suffix.to(ctx.dtype)], dim=1)
        if self.class_token_position != "end":
            emb = emb.gather(1, layout.unsqueeze(-1).expand(-1, -1, emb.shape[-1]))
        return emb

    def forward(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.assemble(self.class_contexts()), self.token_ids


class CoOpCLIP(FrozenCLIPModel):
    """Frozen CLIP (``backbone``) + a prompt learner: ``forward(images)`` -> logits [B, C] (fp32),
    ``exp(logit_scale) * norm(image) @ norm(text).T``. The backbone stays in eval mode."""

    TEXT_LEARNER = "prompt_learner"

    def __init__(self, clip_model: nn.Module, prompt_learner: CoOpPromptLearner) -> None:
        super().__init__(clip_model)
        self.prompt_learner = prompt_learner


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    """CoOp trainer: L = CE(exp(logit_scale) * cos(image, text(ctx, class)), y); only ``ctx`` is learned."""

    CFG_NODE = "COOP"
    REGISTERED_NAME = "prompt_learner"

    # ------------------------------------------------------------------ model
    def build_prompted_model(self, clip_model: nn.Module) -> CoOpCLIP:
        """The frozen CLIP with this trainer's prompt learner (CoCoOp's model in CoCoOp)."""
        node = self.cfg.TRAINER[self.CFG_NODE]
        return CoOpCLIP(clip_model, CoOpPromptLearner(clip_model, self.train_classnames, int(node.N_CTX), node.CTX_INIT,
                                                      bool(node.CSC), node.CLASS_TOKEN_POSITION))

    def build_model(self) -> None:
        self.model = self.build_prompted_model(self.build_backbone()).to(self.device)
        learner = self.model.prompt_learner
        if learner.csc:  # fail before training when an evaluation set holds classes without a context
            for name, es in self.dm.dataset.eval_sets.items():
                learner.csc_rows(es.classnames, f"evaluation set {name!r}")
        self.register_trainable(learner)
        self.load_init_weights()

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
        if not learner.csc:
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
