"""Prompted CLIP encoders that run open_clip's own modules (no copy of CLIP's model code).

Both functions are functional: prompts are passed in, so the same code serves IVLP / PromptSRC / the
PromptKD teacher and student (independent deep prompts, docs/REFERENCE.md M2), MaPLe (prompts made
by a coupling function, docs/REFERENCE.md M3) and plain zero-shot CLIP (no prompts). The recipe follows docs/REFERENCE.md M2:

- vision: conv1 -> flatten -> [CLS] + patches -> + positional embedding -> patch dropout -> append the
  layer-0 prompts at the END (no positional embedding) -> ln_pre -> block i (1 <= i < len(prompts))
  first REPLACES the last Nv tokens with prompts[i] -> ... -> ln_post(token 0) @ proj;
- text: token embeddings (layer-0 context already at positions 1..n_ctx) + positional embedding ->
  causal blocks; block k+1 first REPLACES positions 1..n_ctx with deep_prompts[k] -> ln_final ->
  feature at the EOT position (argmax of the ids) @ text_projection.

With no prompts both reproduce ``model.encode_image`` / ``model.encode_text`` exactly.

Two image-tower blocks compute only what is used (equal to running them whole up to fp32 rounding;
``full_blocks()`` turns both off): the LAST block of a CLS-pooled tower computes the class token's
output only (``_pooled_token_block``), and with gradients on, block 0 of a prompted tower whose block-1
prompts replace the prompt rows computes only the image rows and back-propagates only into the layer-0
prompts (``_first_block_prompt_grad``; the frozen image tokens need no gradient).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Iterator, Sequence

import torch
from open_clip import CLIP, CustomTextCLIP
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer, text_global_pool
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint


_FULL_BLOCKS: contextvars.ContextVar[bool] = contextvars.ContextVar("promptkd_full_blocks", default=False)


@contextlib.contextmanager
def full_blocks() -> Iterator[None]:
    """Within this context :func:`encode_image` runs every block on every token, as open_clip's forward
    and the reference implementation do (no pooled-token-only last block, no prompt-only first-block
    backward). The results are the same within fp32 rounding; tools/benchmark.py uses it to measure the
    reference's computation."""
    token = _FULL_BLOCKS.set(True)
    try:
        yield
    finally:
        _FULL_BLOCKS.reset(token)


def _run(fn, args: Sequence[Tensor], use_checkpoint: bool) -> Tensor:
    """``fn(*args)``, under per-block gradient checkpointing when asked for and gradients are on."""
    if use_checkpoint and torch.is_grad_enabled():
        return _checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _plain_block(block: nn.Module) -> bool:
    """True for open_clip's standard ``ResidualAttentionBlock`` (self-attention through an
    ``nn.MultiheadAttention`` with packed q/k/v projections, no attention dropout, batch-first), the block
    the two partial-block computations below are written for; any other block runs whole."""
    attn = getattr(block, "attn", None)
    return (
        isinstance(block, ResidualAttentionBlock) and isinstance(attn, nn.MultiheadAttention)
        and not hasattr(block, "ln_1_kv") and attn.batch_first and attn._qkv_same_embed_dim
        and attn.in_proj_weight is not None and attn.bias_k is None and not attn.add_zero_attn and attn.dropout == 0.0
    )


def _pooled_token_block(block: nn.Module, x: Tensor) -> Tensor:
    """``block(x)[:, :1]`` for the LAST block of a CLS-pooled image tower (only token 0 is pooled).

    Token 0's output depends on every token only through the keys / values of the attention, so the
    block computes: LayerNorm ``ln_1`` and the k/v projections for all tokens, the query, the attention,
    the output projection, ``ln_2`` and the MLP for token 0 alone (the block's own modules; the
    ``nn.MultiheadAttention`` takes the single query against all keys). Per image this removes
    (N - 1)/N of the block's q / out-projection / MLP work and of its attention matrix.
    """
    kv = block.ln_1(x)
    q = kv[:, :1]
    h = x[:, :1] + block.ls_1(block.attn(q, kv, kv, need_weights=False)[0])
    return h + block.ls_2(block.mlp(block.ln_2(h)))


def _first_block_prompt_grad(block: nn.Module, x_img: Tensor, x_p: Tensor) -> Tensor:
    """``block(cat([x_img, x_p]))[:, :N]`` (the image-token rows) when only the prompts ``x_p`` need a gradient.

    Used for block 0 of a prompted tower whose block-1 prompts replace the prompt rows (so the prompt rows'
    outputs are discarded) and whose image tokens ``x_img`` [B, N, W] are frozen (no gradient: images and
    patch embedding are not trained). The deep prompts of layer i >= 1 receive their gradient from the
    blocks >= i alone; the layer-0 prompts ``x_p`` [B, Np, W] affect the image rows of block 0 only as
    keys and values. So the backward of this block needs exactly: the MLP / output-projection / attention
    backward of the image rows down to the attention probabilities, and the k / v projections and
    ``ln_1`` of the Np prompt rows. It does NOT compute (all of which the full block's backward would):
    the query gradient, the key / value gradients of the N image tokens, the q/k/v projection backward of
    the N image rows, ``ln_1`` / ``ln_pre`` backward of the image rows, nor any forward or backward of the
    prompt rows' queries, output projection and MLP. The image rows' q/k/v projections and the image-image
    scores run without autograd; the attention is written out (scores, softmax in fp32, weighted values)
    so that autograd sees which operand needs a gradient.
    """
    attn = block.attn
    n_img, width = x_img.shape[1], x_img.shape[2]
    heads = attn.num_heads
    head_dim = width // heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3) if attn.in_proj_bias is not None else (None, None, None)

    def split_heads(t: Tensor) -> Tensor:  # [B, N, W] -> [B, H, N, d]
        return t.unflatten(-1, (heads, head_dim)).transpose(1, 2)

    with torch.no_grad():
        a_img = block.ln_1(x_img)
        q = split_heads(F.linear(a_img, w_q, b_q)) * head_dim ** -0.5
        k_img = split_heads(F.linear(a_img, w_k, b_k))
        v_img = split_heads(F.linear(a_img, w_v, b_v))
        s_img = q @ k_img.transpose(-2, -1)  # [B, H, N, N]
    a_p = block.ln_1(x_p)
    k_p = split_heads(F.linear(a_p, w_k, b_k))
    v_p = split_heads(F.linear(a_p, w_v, b_v))
    s = torch.cat([s_img, q @ k_p.transpose(-2, -1)], dim=-1)  # [B, H, N, N + Np]
    probs = torch.softmax(s, dim=-1, dtype=torch.float32).to(v_p.dtype)
    o = probs[..., :n_img] @ v_img + probs[..., n_img:] @ v_p  # [B, H, N, d]
    o = o.transpose(1, 2).flatten(2)
    h = x_img + block.ls_1(attn.out_proj(o))
    return h + block.ls_2(block.mlp(block.ln_2(h)))


def _batched_prompt(p: Tensor, batch: int, width: int, dtype: torch.dtype, label: str) -> Tensor:
    """[N, W] -> [B, N, W] (broadcast) or check a per-sample [B, N, W]; cast to the activation dtype."""
    if not isinstance(p, Tensor):
        raise TypeError(f"{label}: expected a Tensor, got {type(p).__name__}")
    if p.dim() == 2:
        p = p.unsqueeze(0).expand(batch, -1, -1)
    elif p.dim() != 3 or p.shape[0] != batch:
        raise ValueError(f"{label}: expected shape [N, {width}] or [{batch}, N, {width}], got {list(p.shape)}")
    if p.shape[-1] != width:
        raise ValueError(f"{label}: prompt width {p.shape[-1]} does not match the transformer width {width}")
    return p.to(dtype)


# --------------------------------------------------------------------------------------------------
# image tower
# --------------------------------------------------------------------------------------------------
def _check_batch_first(transformer: nn.Module) -> None:
    """open_clip >= 2.24 runs its transformers batch-first ([B, N, W]); a hand-built sequence-first one is refused."""
    if not getattr(transformer, "batch_first", True):
        raise ValueError("sequence-first transformers (batch_first=False) are not supported; build the model with "
                         "open_clip's batch-first Transformer (the default)")


def _check_image_args(visual: VisionTransformer, images: Tensor, prompts: list[Tensor]) -> None:
    _check_batch_first(visual.transformer)
    if getattr(visual, "attn_pool", None) is not None:
        raise ValueError("vision towers with attentional pooling (attn_pool) are not supported by clip.encode_image")
    if visual.pool_type == "none":
        raise ValueError("vision pool_type 'none' returns tokens, not an image feature; not supported")
    if prompts and visual.pool_type != "tok":
        raise ValueError(
            f"deep visual prompts are defined for CLS-token pooling (pool_type 'tok'); this tower uses "
            f"'{visual.pool_type}'"
        )
    n_blocks = len(visual.transformer.resblocks)
    if len(prompts) > n_blocks:
        raise ValueError(f"{len(prompts)} visual prompt layers given but the tower has only {n_blocks} blocks")
    if images.dim() != 4:
        raise ValueError(f"images: expected [B, 3, H, W], got {list(images.shape)}")


def _patch_tokens(visual: VisionTransformer, images: Tensor) -> Tensor:
    """open_clip's stem: conv1 -> flatten -> [CLS] + patches -> + positional embedding -> patch dropout."""
    x = visual.conv1(images.to(visual.conv1.weight.dtype))  # [B, W, g, g]
    batch, width = x.shape[0], x.shape[1]
    x = x.reshape(batch, width, -1).permute(0, 2, 1)  # [B, g*g, W]
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(batch, -1, -1)
    x = torch.cat([cls, x], dim=1)
    x = x + visual.positional_embedding.to(x.dtype)
    return visual.patch_dropout(x)


def encode_image(
    visual: nn.Module,
    images: Tensor,
    prompts: Sequence[Tensor] | None = None,
    *,
    checkpoint: bool = False,
) -> Tensor:
    """Image features [B, D] (unnormalised) with IVLP/MaPLe deep visual prompts (docs/REFERENCE.md M2, M3).

    ``visual``: ``model.visual`` (an open_clip ``VisionTransformer``; a whole CLIP is accepted too).
    ``prompts``: ``prompts[0]`` ([Nv, W] or [B, Nv, W]) is appended after the positional embedding;
    ``prompts[i]`` (1 <= i < len) replaces the last Nv tokens before block i; blocks i >= len carry
    the previous outputs. None / empty = plain CLIP (equals ``model.encode_image``).
    ``checkpoint``: gradient checkpointing per block (saves activation memory when training).
    """
    if isinstance(visual, (CLIP, CustomTextCLIP)):
        visual = visual.visual
    prompts = [] if prompts is None else list(prompts)
    if not isinstance(visual, VisionTransformer):
        if prompts:
            raise ValueError(f"deep visual prompts need a ViT image tower; got {type(visual).__name__}")
        weight = next(visual.parameters())
        return visual(images.to(weight.dtype))
    _check_image_args(visual, images, prompts)
    x = _patch_tokens(visual, images)
    batch, width = x.shape[0], x.shape[2]
    p0 = _batched_prompt(prompts[0], batch, width, x.dtype, "prompts[0]") if prompts else None
    n_prompt = p0.shape[1] if p0 is not None else 0
    blocks = visual.transformer.resblocks
    # Block 0 with the prompt-only backward: prompts replaced at block 1, frozen image tokens, training.
    partial = not _FULL_BLOCKS.get()
    split_first = (
        partial and p0 is not None and len(prompts) >= 2 and torch.is_grad_enabled() and not x.requires_grad
        and isinstance(visual.ln_pre, (nn.LayerNorm, nn.Identity)) and _plain_block(blocks[0])
    )
    # Last block for token 0 only: CLS pooling (the tower's output is ln_post(token 0) @ proj).
    pooled_last = partial and visual.pool_type == "tok" and _plain_block(blocks[-1])

    if split_first:
        # ln_pre is per token: ln_pre(cat([x, p0])) = cat([ln_pre(x), ln_pre(p0)]).
        first = functools.partial(_first_block_prompt_grad, blocks[0])
        x = _run(first, (visual.ln_pre(x), visual.ln_pre(p0)), checkpoint)
        has_prompt_rows = False  # block 0's prompt rows are discarded by block 1's replacement
    else:
        if p0 is not None:
            x = torch.cat([x, p0], dim=1)  # prompts at the end, after the positional embedding
        x = visual.ln_pre(x)
        has_prompt_rows = p0 is not None
    for i, block in enumerate(blocks):
        if i == 0 and split_first:
            continue
        if 1 <= i < len(prompts):
            p = _batched_prompt(prompts[i], batch, width, x.dtype, f"prompts[{i}]")
            if p.shape[1] != n_prompt:
                raise ValueError(f"prompts[{i}] has {p.shape[1]} tokens, prompts[0] has {n_prompt}")
            x = torch.cat([x[:, :-n_prompt] if has_prompt_rows else x, p], dim=1)
            has_prompt_rows = True
        if i == len(blocks) - 1 and pooled_last:  # [B, 1, W]: token 0 only
            x = _run(functools.partial(_pooled_token_block, block), (x,), checkpoint)
        else:
            x = _run(functools.partial(block, attn_mask=None), (x,), checkpoint)

    if visual.pool_type == "tok":
        # LayerNorm is per token, so ln_post(x[:, 0]) equals open_clip's ln_post(x)[:, 0] (and is its
        # final_ln_after_pool branch); the reference does ln_post(x[:, 0, :]).
        pooled = visual.ln_post(x[:, 0])
    else:
        pooled, _ = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled


# --------------------------------------------------------------------------------------------------
# text tower
# --------------------------------------------------------------------------------------------------
def _require_clip(model: nn.Module) -> None:
    if not isinstance(model, CLIP):
        raise ValueError(f"the text encoder needs an open_clip CLIP model, got {type(model).__name__}")
    _check_batch_first(model.transformer)


def token_embedding(model: nn.Module, token_ids: Tensor) -> Tensor:
    """Token embeddings [C, L, W] of tokenised prompts (no positional embedding), as the prompt
    learners split into prefix / context / suffix (docs/REFERENCE.md M2 step 1)."""
    _require_clip(model)
    vocab = model.token_embedding.num_embeddings
    if token_ids.numel() and (int(token_ids.max()) >= vocab or int(token_ids.min()) < 0):
        raise ValueError(
            f"token ids range [{int(token_ids.min())}, {int(token_ids.max())}] outside the model's vocabulary "
            f"of {vocab}; tokenise with the model's tokenizer"
        )
    return model.token_embedding(token_ids)


def encode_text(
    model: nn.Module,
    token_embeds: Tensor,
    token_ids: Tensor,
    deep_prompts: Sequence[Tensor] | None = None,
    n_ctx: int = 0,
    *,
    checkpoint: bool = False,
) -> Tensor:
    """Text features [C, D] (unnormalised) with deep text prompts (docs/REFERENCE.md M2 text tower, M3).

    ``token_embeds``: [C, L, W] embeddings that already hold the learned layer-0 context at positions
    1..n_ctx (no positional embedding). ``token_ids``: [C, L] ids of the tokenised prompts (EOT = argmax).
    ``deep_prompts[k]`` ([n_ctx, W] or [C, n_ctx, W]) replaces positions 1..n_ctx before block k+1.
    ``checkpoint``: gradient checkpointing per block (memory of the ViT-L/14 teacher's text tower).
    With ``deep_prompts`` None and ``token_embeds = token_embedding(model, ids)`` this equals
    ``model.encode_text(ids)``.
    """
    _require_clip(model)
    deep = [] if deep_prompts is None else list(deep_prompts)
    if token_embeds.dim() != 3:
        raise ValueError(f"token_embeds: expected [C, L, W], got {list(token_embeds.shape)}")
    n_cls, seq_len, width = token_embeds.shape
    if tuple(token_ids.shape) != (n_cls, seq_len):
        raise ValueError(
            f"token_ids: expected shape [{n_cls}, {seq_len}] to match token_embeds, got {list(token_ids.shape)}"
        )
    num_pos = model.positional_embedding.shape[0]
    if seq_len > num_pos:
        raise ValueError(
            f"prompts have {seq_len} tokens but the text tower's context length is {num_pos}; tokenise with "
            f"context_length={num_pos}"
        )
    if width != model.positional_embedding.shape[1]:
        raise ValueError(
            f"token_embeds width {width} does not match the text transformer width "
            f"{model.positional_embedding.shape[1]}"
        )
    blocks = model.transformer.resblocks
    if deep:
        if n_ctx < 1 or 1 + n_ctx > seq_len:
            raise ValueError(f"n_ctx={n_ctx}: deep text prompts need 1 <= n_ctx <= {seq_len - 1}")
        if len(deep) > len(blocks) - 1:
            raise ValueError(
                f"{len(deep)} deep text prompt layers given; the text tower has {len(blocks)} blocks, so at "
                f"most {len(blocks) - 1} (blocks 1..{len(blocks) - 1}) can take one"
            )

    cast_dtype = model.transformer.get_cast_dtype()
    x = token_embeds.to(cast_dtype) + model.positional_embedding[:seq_len].to(cast_dtype)
    attn_mask = model.attn_mask
    if attn_mask is not None and attn_mask.shape[-1] != seq_len:
        attn_mask = attn_mask[:seq_len, :seq_len]

    for i, block in enumerate(blocks):
        if 1 <= i <= len(deep):
            p = _batched_prompt(deep[i - 1], n_cls, width, x.dtype, f"deep_prompts[{i - 1}]")
            if p.shape[1] != n_ctx:
                raise ValueError(f"deep_prompts[{i - 1}] has {p.shape[1]} tokens, expected n_ctx={n_ctx}")
            x = torch.cat([x[:, :1], p, x[:, 1 + n_ctx:]], dim=1)
        x = _run(functools.partial(block, attn_mask=attn_mask), (x,), checkpoint)

    x = model.ln_final(x)
    pooled = text_global_pool(x, token_ids, model.text_pool_type, eos_token_id=model.text_eos_id)
    proj = model.text_projection
    if proj is not None:
        pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
    return pooled
