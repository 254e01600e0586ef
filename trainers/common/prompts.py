"""The one implementation of IVLP-style deep prompts (docs/REFERENCE.md M2), shared by IVLP, PromptSRC,
the PromptKD teacher and the PromptKD student.

- :class:`VisualPromptStack`: ``depth`` (Jv) learnable prompt matrices [Nv, W_vision], N(0, 0.02^2).
  ``layer0`` is appended to the patch tokens after the positional embedding (before ln_pre);
  ``layer{i}`` (1 <= i < Jv) replaces the last Nv tokens before transformer block i.
  ``forward()`` returns the list that :func:`clip.encode_image` takes.
- :class:`TextPromptLearner`: layer-0 context ``layer0`` [Nt, W_text] (initialised from the word
  embeddings of CTX_INIT when Nt <= its number of tokens, else N(0, 0.02^2)) and deep text prompts
  ``layer1..layer{Jt-1}`` replacing positions 1..Nt before blocks 1..Jt-1. The class-name dependent
  token embeddings (SOS prefix and "<name>." suffix) are cached as NON-persistent buffers, so a
  checkpoint holds only the prompts and class sets can be switched with :meth:`set_classnames`.

Prompt text per class: ``"<ctx words> <classname>."`` (underscores -> spaces). When Nt is smaller than
the number of CTX_INIT tokens (e.g. IVLP's default Nt = 2 with "a photo of a"), only the first Nt
words are learnable and the remaining words stay as fixed tokens in the suffix, as in the reference.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

import clip

from .templates import format_classname

logger = logging.getLogger(__name__)


PROMPT_INIT_STD = 0.02


def new_prompt(*shape: int) -> nn.Parameter:
    """A prompt parameter of ``shape`` (fp32), N(0, PROMPT_INIT_STD^2) (the reference's initialisation)."""
    return nn.Parameter(nn.init.normal_(torch.empty(*shape, dtype=torch.float32), std=PROMPT_INIT_STD))


class VisualPromptStack(nn.Module):
    """Deep visual prompts: parameters ``layer0 .. layer{depth-1}``, each [n_ctx, width] (fp32)."""

    def __init__(self, n_ctx: int, depth: int, width: int) -> None:
        super().__init__()
        if depth < 0 or (depth > 0 and n_ctx < 1):
            raise ValueError(f"VisualPromptStack: need depth >= 0 and n_ctx >= 1 (got n_ctx={n_ctx}, depth={depth})")
        self.depth = int(depth)
        for i in range(self.depth):
            self.register_parameter(f"layer{i}", new_prompt(n_ctx, width))

    def prompts(self) -> List[nn.Parameter]:
        return [getattr(self, f"layer{i}") for i in range(self.depth)]

    def forward(self) -> Optional[List[torch.Tensor]]:
        """The prompt list for :func:`clip.encode_image` (None when depth is 0: no visual prompting)."""
        return self.prompts() if self.depth > 0 else None


def count_prompt_tokens(clip_model: nn.Module, text: str) -> int:
    """Number of BPE tokens of ``text`` (without SOS/EOT)."""
    ids = clip.tokenize([text], clip.model_info(clip_model).context_length)
    return int((ids[0] != 0).sum().item()) - 2


class ClassPromptLearner(nn.Module):
    """Shared part of the text prompt learners (:class:`TextPromptLearner`, CoOp's / CoCoOp's): the class
    set, the prompt texts ``"<ctx words> <class name>."`` and their token embeddings.

    The CLIP model is NOT a sub-module (it is frozen and owned by the caller); it is only used to embed
    tokens, at initialisation and when the class set changes. Subclasses set ``prompt_prefix`` (the
    CTX_INIT words or ``"X X ..."``) and ``n_ctx`` (the context length); :meth:`set_classnames` caches
    the SOS prefix and the "<name>." suffix around the ``n_ctx`` context positions as NON-persistent buffers.
    """

    #: how to fix a class prompt longer than the text context length (end of the error message)
    TOO_LONG_HINT = "shorten the class names"

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        info = clip.model_info(clip_model)
        self.width = int(info.text_width)
        self.context_length = int(info.context_length)
        self._clip_ref: Tuple[nn.Module] = (clip_model,)
        self.classnames: List[str] = []  # set, with the buffers below, by set_classnames
        for name, dtype in (("token_prefix", torch.float32), ("token_suffix", torch.float32), ("token_ids", torch.long)):
            self.register_buffer(name, torch.empty(0, dtype=dtype), persistent=False)

    @property
    def clip_model(self) -> nn.Module:
        return self._clip_ref[0]

    @property
    def n_classes(self) -> int:
        return len(self.classnames)

    def prompts_for(self, classnames: Sequence[str]) -> List[str]:
        """The tokenised prompt texts ``"<ctx words> <class name>."`` (ctx words: CTX_INIT or "X ...")."""
        return [f"{self.prompt_prefix} {format_classname(n)}." for n in classnames]

    @torch.no_grad()
    def word_embeddings(self, text: str) -> torch.Tensor:
        """Token embeddings [context_length, W] (fp32, CPU) of ``text`` tokenised alone (SOS at position 0)."""
        return self.embed_tokens(clip.tokenize([text], self.context_length)).cpu()[0]

    def tokenize_prompts(self, classnames: Sequence[str]) -> torch.Tensor:
        """Token ids [C, context_length] of the prompts of ``classnames``; a prompt longer than the
        context length raises ValueError naming the class (instead of being truncated silently)."""
        # tokenise once with room to spare to detect prompts longer than the context length
        long_ids = clip.tokenize(self.prompts_for(classnames), self.context_length + 64)
        lengths = (long_ids != 0).sum(dim=1)
        too_long = [(n, int(k)) for n, k in zip(classnames, lengths.tolist()) if k > self.context_length]
        if too_long:
            raise ValueError(
                f"{len(too_long)} class prompt(s) exceed the text context length {self.context_length} tokens, "
                f"e.g. {too_long[0][0]!r} ({too_long[0][1]} tokens); {self.TOO_LONG_HINT}"
            )
        return long_ids[:, : self.context_length].contiguous()

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Frozen token embeddings (fp32) of ``ids``, on the CLIP model's device."""
        return clip.token_embedding(self.clip_model, ids.to(self.clip_model.token_embedding.weight.device)).float()

    @torch.no_grad()
    def set_classnames(self, classnames: Sequence[str]) -> None:
        """Recompute the class-name token buffers for ``classnames`` (e.g. base or novel classes)."""
        classnames = list(classnames)
        if not classnames:
            raise ValueError(f"{type(self).__name__}.set_classnames: empty class list")
        ids = self.tokenize_prompts(classnames)
        emb = self.embed_tokens(ids)
        device = self.token_ids.device  # the learner's device (buffers move with the module)
        self.token_prefix = emb[:, :1, :].to(device)
        self.token_suffix = emb[:, 1 + self.n_ctx:, :].to(device)
        self.token_ids = ids.to(device)
        self.classnames = classnames


class TextPromptLearner(ClassPromptLearner):
    """Deep text prompts + cached class-name token embeddings (docs/REFERENCE.md M2, text tower).

    ``forward()`` returns ``(token_embeds [C, L, W] with the learned context at positions 1..Nt,
    token_ids [C, L], deep_prompts list for blocks 1..Jt-1)``, the arguments of :func:`clip.encode_text`.
    """

    def __init__(self, clip_model: nn.Module, classnames: Sequence[str], n_ctx: int, depth: int,
                 ctx_init: str = "") -> None:
        if n_ctx < 1 or depth < 1:
            raise ValueError(
                f"TextPromptLearner needs N_CTX_TEXT >= 1 and PROMPT_DEPTH_TEXT >= 1 (got n_ctx={n_ctx}, depth={depth}); "
                "the layer-0 text context is what the text side learns"
            )
        super().__init__(clip_model)
        self.n_ctx = int(n_ctx)
        self.depth = int(depth)

        ctx_init = (ctx_init or "").replace("_", " ").strip()
        n_init_tokens = count_prompt_tokens(clip_model, ctx_init) if ctx_init else 0
        if ctx_init and self.n_ctx <= n_init_tokens:
            layer0 = nn.Parameter(self.word_embeddings(ctx_init)[1:1 + self.n_ctx].clone())
            self.prompt_prefix = ctx_init
            logger.info("Text context initialised from %r (first %d of %d tokens learnable)",
                        ctx_init, self.n_ctx, n_init_tokens)
        else:
            layer0 = new_prompt(self.n_ctx, self.width)
            self.prompt_prefix = " ".join(["X"] * self.n_ctx)
            if ctx_init:
                logger.info("CTX_INIT %r has %d tokens < N_CTX_TEXT=%d: text context initialised randomly",
                            ctx_init, n_init_tokens, self.n_ctx)
        self.ctx_init = ctx_init
        self.register_parameter("layer0", layer0)
        for i in range(1, self.depth):
            self.register_parameter(f"layer{i}", new_prompt(self.n_ctx, self.width))
        self.set_classnames(classnames)

    # ------------------------------------------------------------------------------------------
    def deep_prompts(self) -> List[nn.Parameter]:
        return [getattr(self, f"layer{i}") for i in range(1, self.depth)]

    def forward(self) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        ctx = self.layer0.unsqueeze(0).expand(self.n_classes, -1, -1)
        token_embeds = torch.cat([self.token_prefix.to(ctx.dtype), ctx, self.token_suffix.to(ctx.dtype)], dim=1)
        return token_embeds, self.token_ids, self.deep_prompts()
