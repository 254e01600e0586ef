"""``clip.load``: one entry point for every way a CLIP model reaches this project.

Resolution order (docs/REFERENCE.md M1/M2; the reference hard-codes ``./clip/ViT-B-16.pt``):
1. an existing file: OpenAI TorchScript archive, OpenAI-layout state dict, or open_clip checkpoint;
2. an OpenAI name (``ViT-B/16``, ``ViT-B-16``, ``RN50`` ...) -> local file found by
   ``clip.weights.resolve_weights_path`` (QuickGELU architecture);
3. ``open_clip:<model-name>[:<pretrained-tag-or-file>]`` -> ``open_clip.create_model``;
4. the tiny architectures in ``clip/model_configs`` (``allow_random=True`` only): random weights drawn
   from a seed derived from the architecture's name (:func:`tiny_seed`), so the same name gives the same
   model in every process and every stage of a smoke run (the global RNG is left untouched).
"""
from __future__ import annotations

import difflib
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip import CLIP
from open_clip.model import _build_vision_tower, convert_weights_to_lp, get_cast_dtype
from torch import nn

from .configs import TINY_CONFIGS, check_config_keys, config_from_openai_state_dict
from .weights import (OPENAI_MODELS, WeightsFile, candidate_weight_paths, looks_like_path, openai_name,
                      read_weights_file, resolve_weights_path)

logger = logging.getLogger(__name__)

OPEN_CLIP_PREFIX = "open_clip:"
ALLOW_RANDOM_KEY = "MODEL.BACKBONE.ALLOW_RANDOM_INIT"
PRECISIONS = ("fp32", "fp16", "bf16")


def available_models() -> list[str]:
    """OpenAI CLIP names (need local weight files) followed by the tiny random-weight architectures.
    Any open_clip architecture is also loadable as ``open_clip:<name>[:<tag-or-file>]``."""
    return list(OPENAI_MODELS) + sorted(TINY_CONFIGS)


def _normalise_precision(precision: str) -> str:
    key = "fp32" if str(precision).lower() == "amp" else str(precision).lower()
    if key not in PRECISIONS:
        raise ValueError(
            f"precision '{precision}' is not supported; use one of {PRECISIONS} "
            "('amp' is accepted and means fp32 weights, for use under autocast)"
        )
    return key


def _finalize(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """Move to ``device`` and apply the OpenAI-style mixed precision: Linear/Conv/attention weights and
    projections in fp16/bf16, LayerNorms computed in fp32 (the model was built with LayerNormFp32)."""
    model.to(device=device)
    if precision in ("fp16", "bf16"):
        convert_weights_to_lp(model, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)
    return model.eval()


def _build(model_cfg: dict[str, Any], precision: str, source: str) -> nn.Module:
    """An open_clip ``CLIP`` with random weights, on the CPU (``cast_dtype`` set for ``precision``)."""
    cfg = dict(model_cfg)
    if "multimodal_cfg" in cfg or cfg.pop("custom_text", False):
        raise ValueError(f"{source}: CoCa / custom-text models (config key 'multimodal_cfg' / 'custom_text') "
                         "are not supported: the prompted encoders need open_clip's CLIP")
    check_config_keys(cfg, source)
    return CLIP(**cfg, cast_dtype=get_cast_dtype(precision))


def build_from_config(
    model_cfg: dict[str, Any], precision: str = "fp32", device: torch.device | str = "cpu"
) -> nn.Module:
    """Instantiate an open_clip ``CLIP`` from a config dict with random weights."""
    precision = _normalise_precision(precision)
    return _finalize(_build(model_cfg, precision, "build_from_config"), precision, device)


def build_vision_tower(
    model_cfg: dict[str, Any], precision: str = "fp32", device: torch.device | str = "cpu"
) -> nn.Module:
    """Only the image tower (``model.visual``) of the open_clip config ``model_cfg`` (``embed_dim``,
    ``vision_cfg``, optional ``quick_gelu``), random weights: what inference with a frozen image tower
    needs, without building the text tower. Same precision handling as :func:`build_from_config`."""
    precision = _normalise_precision(precision)
    check_config_keys(model_cfg, "build_vision_tower", ("embed_dim", "vision_cfg"))
    visual = _build_vision_tower(int(model_cfg["embed_dim"]), dict(model_cfg["vision_cfg"]),
                                 quick_gelu=bool(model_cfg.get("quick_gelu", False)),
                                 cast_dtype=get_cast_dtype(precision))
    return _finalize(visual, precision, device)


def load_weights_file(
    path: str | os.PathLike, precision: str = "fp32", device: torch.device | str = "cpu"
) -> nn.Module:
    """Build a model from a weights file (format decided by content, see ``clip.weights.read_weights_file``)."""
    precision = _normalise_precision(precision)
    wf: WeightsFile = read_weights_file(path)
    if wf.kind == "openai":
        cfg = config_from_openai_state_dict(wf.state_dict, quick_gelu=True)
        source = f"{wf.path} (OpenAI {'TorchScript archive' if wf.jit else 'state dict'})"
    else:
        cfg = dict(wf.model_cfg or {})
        source = f"{wf.path} (open_clip checkpoint, model '{wf.model_name}')"
    model = _build(cfg, precision, str(wf.path))
    try:
        model.load_state_dict(wf.state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit the architecture built for them: {e}") from e
    logger.info("Loaded CLIP from %s", source)
    return _finalize(model, precision, device)


def tiny_seed(name: str) -> int:
    """Seed of a tiny architecture's weights: the first 8 bytes of SHA-256 of its name (63 bits)."""
    digest = hashlib.sha256(f"promptkd-tiny-clip|{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _load_tiny(name: str, allow_random: bool, precision: str, device: torch.device | str) -> nn.Module:
    """A tiny architecture with the weights of :func:`tiny_seed` (built on the CPU under a forked RNG, then
    moved to ``device``): identical in every run, and the caller's random streams are not consumed."""
    if not allow_random:
        raise ValueError(
            f"'{name}' is a tiny test architecture without pretrained weights; it can only be built with "
            f"random weights: pass allow_random=True (config key {ALLOW_RANDOM_KEY}: True), or load a "
            "saved copy by its file path."
        )
    logger.warning("Building tiny CLIP '%s' with random weights from the fixed seed of its name (%d): the "
                   "same weights in every run (allow_random=True)", name, tiny_seed(name))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tiny_seed(name))
        model = open_clip.create_model(name, pretrained=None, precision=precision, device="cpu")
    return model.to(device=device).eval()


def _close_matches(name: str, choices: list[str]) -> str:
    m = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f" Did you mean {m}?" if m else ""


def _pretrained_kwargs(spec: str, arch: str, pretrained: str, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """``create_model`` arguments for ``pretrained``: an existing file (``~`` expanded) or a pretrained tag of
    ``arch`` (tags trained with QuickGELU are built with ``force_quick_gelu``)."""
    if os.path.isfile(os.path.expanduser(pretrained)):
        return {"pretrained": os.path.expanduser(pretrained)}
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained not in tags:
        if looks_like_path(pretrained):
            raise FileNotFoundError(f"'{spec}': weights file '{pretrained}' does not exist")
        raise ValueError(f"'{spec}': '{pretrained}' is neither a file nor a pretrained tag of {arch}; tags: {tags}")
    if open_clip.get_pretrained_cfg(arch, pretrained).get("quick_gelu", False) and not model_cfg.get("quick_gelu"):
        logger.info("%s:%s was trained with QuickGELU; building with force_quick_gelu=True", arch, pretrained)
        return {"pretrained": pretrained, "force_quick_gelu": True}
    return {"pretrained": pretrained}


def _load_open_clip_spec(
    spec: str, allow_random: bool, precision: str, device: torch.device | str
) -> nn.Module:
    """``open_clip:<model-name>[:<pretrained-tag-or-file>]`` via ``open_clip.create_model``."""
    rest = spec[len(OPEN_CLIP_PREFIX):].strip()
    schema = rest.startswith(("hf-hub:", "local-dir:"))  # open_clip's own name schemas: passed through
    arch, _, tag = rest.partition(":")
    arch, pretrained = (rest, None) if schema else (arch.replace("/", "-"), tag or None)
    kwargs: dict[str, Any] = {"pretrained": None}
    if not schema:
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            raise ValueError(
                f"'{spec}': '{arch}' is not an open_clip architecture.{_close_matches(arch, open_clip.list_models())} "
                "See open_clip.list_models(); the form is 'open_clip:<model-name>[:<pretrained-tag-or-file>]'."
            )
        if pretrained is not None:
            kwargs = _pretrained_kwargs(spec, arch, pretrained, model_cfg)
        elif arch in TINY_CONFIGS:
            return _load_tiny(arch, allow_random, precision, device)
        elif not allow_random:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            raise ValueError(
                f"'{spec}' names no pretrained weights, so the model would be random. Give a tag or file "
                f"('open_clip:{arch}:<tag-or-file>', tags for {arch}: {tags}) or pass allow_random=True "
                f"(config key {ALLOW_RANDOM_KEY})."
            )
        else:
            logger.warning("open_clip model %s built with RANDOM weights (allow_random=True)", arch)
    pretrained = kwargs["pretrained"]
    try:
        model = open_clip.create_model(arch, precision=precision, device=device,
                                       require_pretrained=pretrained is not None or schema, **kwargs)
    except (RuntimeError, OSError, ValueError) as e:
        if pretrained is None and not schema:
            raise
        if pretrained is not None and os.path.isfile(pretrained):
            raise ValueError(f"'{spec}': could not load weights file {pretrained} into {arch}: {e}") from e
        raise RuntimeError(
            f"'{spec}': could not obtain the open_clip weights ({type(e).__name__}: {e}). open_clip downloads "
            "them from the Hugging Face Hub / the release URL and needs internet access. Offline: download "
            "them on a connected machine (they land in the Hugging Face cache, ~/.cache/huggingface) and copy "
            f"the cache over, or pass a local file: 'open_clip:{arch}:/path/to/weights.bin'."
        ) from e
    return model.eval()


def load(
    name: str,
    *,
    weights_dir: str | os.PathLike | None = None,
    allow_random: bool = False,
    precision: str = "fp32",
    device: torch.device | str = "cpu",
) -> CLIP:
    """Load a CLIP model as an open_clip ``CLIP`` in eval mode (``requires_grad`` untouched).

    ``name``: a weights file, an OpenAI name (``ViT-B/16``; file ``<weights_dir>/ViT-B-16.pt``), an
    ``open_clip:<model>[:<tag-or-file>]`` spec, or a tiny architecture (``tiny-vit-student``).
    ``weights_dir``: folder with OpenAI weight files (else ``$CLIP_WEIGHTS_DIR``, ``./clip``, ``~/.cache/clip``).
    ``allow_random``: build random weights when no weights exist (always needed for tiny architectures).
    ``precision``: fp32 / fp16 / bf16 (OpenAI-style: matmul weights cast, LayerNorm in fp32).
    """
    precision = _normalise_precision(precision)
    name = str(name).strip()
    if not name:
        raise ValueError("clip.load: empty model name; set MODEL.BACKBONE.NAME (e.g. 'ViT-B/16')")

    if Path(os.path.expanduser(name)).is_file():
        return load_weights_file(name, precision, device)

    canonical = openai_name(name)
    if canonical is not None:
        try:
            path = resolve_weights_path(canonical, weights_dir)
        except FileNotFoundError:
            if not allow_random:
                raise
            tried = ", ".join(str(p) for p in candidate_weight_paths(canonical, weights_dir))
            logger.warning(
                "No weights file for %s (tried %s); building the %s architecture with RANDOM weights "
                "because allow_random=True", canonical, tried, OPENAI_MODELS[canonical]
            )
            return open_clip.create_model(OPENAI_MODELS[canonical], precision=precision, device=device).eval()
        return load_weights_file(path, precision, device)

    if name.startswith(OPEN_CLIP_PREFIX):
        return _load_open_clip_spec(name, allow_random, precision, device)

    if name.replace("/", "-") in TINY_CONFIGS:
        return _load_tiny(name.replace("/", "-"), allow_random, precision, device)

    if looks_like_path(name):
        raise FileNotFoundError(f"CLIP weights file '{name}' does not exist (resolved to {Path(name).resolve()})")
    raise ValueError(
        f"unknown CLIP model '{name}'.{_close_matches(name, available_models())} Known names: "
        f"{available_models()}; or a weights file path; or 'open_clip:<architecture>[:<tag-or-file>]'."
    )
