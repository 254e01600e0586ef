"""Checkpoint contents: what is saved (trainable tensors only), strict loading, and the mapping of the
reference (PromptSRC / IVLP / PromptKD-teacher) key layout onto ours (docs/REFERENCE.md M6).

Our IVLP-style models name their prompts ``text_prompts.layer{i}`` and ``image_prompts.layer{i}``
(layer 0 = the input prompts, layer i >= 1 = the prompts inserted before transformer block i), so a
checkpoint is self-explanatory. The reference layout stores the whole CustomCLIP; its keys map as::

    prompt_learner.ctx                                     -> text_prompts.layer0
    text_encoder.transformer.resblocks.{i}.VPT_shallow     -> text_prompts.layer{i}
    image_encoder.VPT                                      -> image_prompts.layer0
    image_encoder.transformer.resblocks.{i}.VPT_shallow    -> image_prompts.layer{i}
    image_encoder.<rest>                                   -> (CLIP) visual.<rest>
    text_encoder.transformer.<rest>                        -> (CLIP) transformer.<rest>
    text_encoder.{positional_embedding, ln_final.*, text_projection}, logit_scale -> same CLIP keys
    prompt_learner.token_prefix*/token_suffix*             -> skipped (class-name buffers)
    prompt_learner.ZS_image_encoder.*                      -> skipped (PromptSRC's frozen duplicate tower)

Anything else is an error: the checkpoint is not what it claims to be.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)


_CLASSNAME_BUFFER_RE = re.compile(r"(^|\.)token_(prefix|suffix)\d*$")


class CheckpointKeyError(KeyError):
    """A checkpoint's keys do not match the model; the message lists missing/unexpected keys."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


def is_classname_buffer(key: str) -> bool:
    """Class-name dependent token buffers (``token_prefix``, ``token_suffix``, ``token_prefix2`` ...)."""
    return bool(_CLASSNAME_BUFFER_RE.search(key))


def checkpoint_keys(model: nn.Module) -> List[str]:
    """Keys a checkpoint of ``model`` holds: every trainable parameter, plus the persistent buffers of
    modules that own a trainable parameter (e.g. BatchNorm running statistics of the projector)."""
    keys: List[str] = []
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        trainable = [prefix + n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        keys += trainable
        if trainable:
            skip = module._non_persistent_buffers_set
            keys += [prefix + n for n, b in module.named_buffers(recurse=False) if b is not None and n not in skip]
    return keys


def trainable_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The part of ``model.state_dict()`` that a checkpoint stores (see :func:`checkpoint_keys`)."""
    full = model.state_dict(keep_vars=False)
    return {k: full[k].detach().clone() for k in checkpoint_keys(model)}


def format_keys(keys: Iterable[str], limit: int = 20) -> str:
    """Sorted key list for error messages: ``[a, b, ...] (n)``, at most ``limit`` keys shown."""
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


def strict_load(model: nn.Module, state: Mapping[str, torch.Tensor], what: str,
                expected: Optional[Sequence[str]] = None) -> None:
    """Load ``state`` into ``model`` requiring exactly the keys in ``expected`` (default
    :func:`checkpoint_keys`); only class-name buffers may be present in addition. Shapes must match.

    Raises :class:`CheckpointKeyError` listing the missing and unexpected keys, or ValueError on a
    shape mismatch (naming key and both shapes).
    """
    expected_set = set(checkpoint_keys(model) if expected is None else expected)
    got = set(state)
    skipped = sorted(k for k in got - expected_set if is_classname_buffer(k))
    missing = sorted(expected_set - got)
    unexpected = sorted(got - expected_set - set(skipped))
    if missing or unexpected:
        raise CheckpointKeyError(
            f"{what}: checkpoint keys do not match the model.\n  missing: {format_keys(missing)}\n"
            f"  unexpected: {format_keys(unexpected)}\nThe checkpoint was made by another trainer or prompt "
            "configuration (N_CTX_*, PROMPT_DEPTH_*, PROJECT_LAYER); use the same config that trained it."
        )
    own = model.state_dict()
    for k in expected_set:
        if tuple(own[k].shape) != tuple(state[k].shape):
            raise ValueError(f"{what}: {k} has shape {tuple(state[k].shape)} in the checkpoint but "
                             f"{tuple(own[k].shape)} in the model (different N_CTX / width / projector config)")
    if skipped:
        logger.info("%s: skipped class-name buffers %s", what, skipped)
    model.load_state_dict({k: state[k] for k in expected_set}, strict=False)


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# reference (PromptSRC / IVLP / PromptKD teacher) layout
# ------------------------------------------------------------------------------------------------
_REF_TEXT_DEEP = re.compile(r"^text_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$")
_REF_VIS_DEEP = re.compile(r"^image_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$")
_REF_TEXT_TOP = ("text_encoder.positional_embedding", "text_encoder.text_projection")


@dataclass
class ReferenceVLState:
    """A reference-layout state dict split into our prompt keys, CLIP backbone keys and skipped keys."""

    prompts: Dict[str, torch.Tensor] = field(default_factory=dict)
    backbone: Dict[str, torch.Tensor] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)


def is_reference_vl_state(state: Mapping[str, torch.Tensor]) -> bool:
    """True for the reference CustomCLIP layout (``prompt_learner.*`` / ``image_encoder.*`` keys)."""
    return any(k.startswith(("prompt_learner.", "image_encoder.", "text_encoder.")) for k in state)


def split_reference_vl_state(state: Mapping[str, torch.Tensor]) -> ReferenceVLState:
    """Map a reference IVLP/PromptSRC state dict onto our keys (see the module docstring)."""
    out = ReferenceVLState()
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module."):]
        m_t, m_v = _REF_TEXT_DEEP.match(k), _REF_VIS_DEEP.match(k)
        if k == "prompt_learner.ctx":
            out.prompts["text_prompts.layer0"] = v
        elif m_t:
            out.prompts[f"text_prompts.layer{int(m_t.group(1))}"] = v
        elif k == "image_encoder.VPT":
            out.prompts["image_prompts.layer0"] = v
        elif m_v:
            out.prompts[f"image_prompts.layer{int(m_v.group(1))}"] = v
        elif k.startswith("prompt_learner.ZS_image_encoder.") or (k.startswith("prompt_learner.") and is_classname_buffer(k)):
            out.skipped.append(k)
        elif k.startswith("image_encoder."):
            out.backbone["visual." + k[len("image_encoder."):]] = v
        elif k.startswith("text_encoder.transformer.") or k.startswith("text_encoder.ln_final.") or k in _REF_TEXT_TOP:
            out.backbone[k[len("text_encoder."):]] = v
        elif k == "logit_scale":
            out.backbone["logit_scale"] = v
        else:
            out.unexpected.append(k)
    return out


def check_reference_backbone(backbone: nn.Module, reference: Mapping[str, torch.Tensor], model_name: str,
                             what: str = "reference checkpoint") -> None:
    """The frozen-CLIP tensors of a reference checkpoint (whole CustomCLIP, docs/REFERENCE.md M6) must be the backbone's own
    weights, up to the fp16 storage of released files, rather than being silently dropped: unknown keys
    raise :class:`CheckpointKeyError`, other shapes or values ValueError."""
    own = backbone.state_dict()
    unknown = sorted(k for k in reference if k not in own)
    if unknown:
        raise CheckpointKeyError(f"{what}: CLIP keys not in {model_name}: {format_keys(unknown)}")
    differing = [k for k, v in reference.items()
                 if tuple(own[k].shape) != tuple(v.shape)
                 or not torch.allclose(own[k].float().cpu(), v.float().cpu(), atol=1e-2, rtol=1e-2)]
    if differing:
        raise ValueError(f"{what}: {len(differing)} CLIP tensors differ from the backbone {model_name!r} "
                         f"(e.g. {differing[:3]}); it was trained on another CLIP model")


@dataclass
class PromptLayout:
    """Prompt shapes read from checkpoint keys: N_CTX and depth per tower, widths."""

    n_ctx_text: int
    depth_text: int
    text_width: int
    n_ctx_vision: int
    depth_vision: int
    vision_width: int

    def as_dict(self) -> Dict[str, int]:
        return {k: getattr(self, k) for k in ("n_ctx_text", "depth_text", "n_ctx_vision", "depth_vision")}


def _layers(prompts: Mapping[str, torch.Tensor], prefix: str, what: str) -> List[torch.Tensor]:
    idx = sorted(int(k[len(prefix):]) for k in prompts if k.startswith(prefix) and k[len(prefix):].isdigit())
    if idx and idx != list(range(idx[-1] + 1)):
        missing = [f"{prefix}{i}" for i in range(idx[-1] + 1) if i not in idx]
        raise CheckpointKeyError(
            f"{what}: prompt layers must be contiguous from 0, found {prefix}{idx}.\n"
            f"  missing: {format_keys(missing)}\n"
            "  (layer 0 = prompt_learner.ctx / image_encoder.VPT, layer i = ...resblocks.i.VPT_shallow)"
        )
    mats = [prompts[f"{prefix}{i}"] for i in idx]
    if len({tuple(m.shape) for m in mats}) > 1 or any(m.dim() != 2 for m in mats):
        detail = ", ".join(f"{prefix}{i}: {tuple(m.shape)}" for i, m in zip(idx, mats))
        raise ValueError(f"{what}: every {prefix}* prompt must be a [N_CTX, width] matrix of the same shape; got {detail}")
    return mats


def prompt_layout(prompts: Mapping[str, torch.Tensor], what: str) -> PromptLayout:
    """Infer (Nt, Jt, Nv, Jv) from ``text_prompts.layer{i}`` / ``image_prompts.layer{i}`` tensors."""
    text, vis = _layers(prompts, "text_prompts.layer", what), _layers(prompts, "image_prompts.layer", what)
    if not text:
        raise ValueError(f"{what}: no text prompts (prompt_learner.ctx / text_prompts.layer0) in the checkpoint")
    n_ctx_vision, vision_width = vis[0].shape if vis else (0, 0)
    return PromptLayout(int(text[0].shape[0]), len(text), int(text[0].shape[1]), int(n_ctx_vision), len(vis),
                        int(vision_width))
