"""Architecture configs: the tiny random-weight models shipped with the project, and inference of an
open_clip model config from an OpenAI-layout state dict or from a built model.

Config dicts use open_clip's JSON layout (``embed_dim``, ``quick_gelu``, ``vision_cfg``, ``text_cfg``) so
they can be passed straight to ``open_clip.CLIP(**cfg)``. Attention heads follow the OpenAI rule
``heads = width // 64`` (docs/REFERENCE.md M1), in both towers, so that an architecture can be read
back from the weights alone; every shipped config satisfies it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import open_clip
import torch
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import LayerScale, QuickGELU, VisionTransformer
from torch import nn


MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
HEAD_WIDTH = 64  # OpenAI rule: one attention head per 64 channels
CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")  # what every open_clip model config holds

# keys that OpenAI TorchScript archives / traced open_clip models carry but that are not weights
NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


def openai_heads(width: int) -> int:
    """Number of attention heads the OpenAI rule gives a transformer of ``width`` channels."""
    heads = max(1, width // HEAD_WIDTH)
    if width % heads != 0:
        raise ValueError(
            f"transformer width {width} is not divisible by the {heads} heads the OpenAI rule "
            f"(heads = width // {HEAD_WIDTH}) gives; choose a width that is a multiple of {HEAD_WIDTH} "
            f"or smaller than {2 * HEAD_WIDTH}"
        )
    return heads


def check_config_keys(cfg: Mapping[str, Any], source: str, keys: tuple[str, ...] = CONFIG_KEYS) -> None:
    """Raise ValueError naming ``source`` when the open_clip config ``cfg`` lacks one of ``keys``."""
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ValueError(f"{source}: CLIP model config lacks key(s) {missing}; it needs {list(keys)}")


def _register_tiny_configs() -> dict[str, dict[str, Any]]:
    """Read ``clip/model_configs/*.json`` (checked here: open_clip skips a bad file silently) and register
    the folder with open_clip (``open_clip.add_model_config``)."""
    configs: dict[str, dict[str, Any]] = {}
    for path in sorted(MODEL_CONFIG_DIR.glob("*.json")):
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON in a CLIP model config ({e})") from e
        check_config_keys(cfg, str(path))
        configs[path.stem] = cfg
    open_clip.add_model_config(MODEL_CONFIG_DIR)
    return configs


TINY_CONFIGS: dict[str, dict[str, Any]] = _register_tiny_configs()


# --------------------------------------------------------------------------------------------------
# OpenAI-layout state dict -> open_clip config
# --------------------------------------------------------------------------------------------------
def _count_blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of ``{prefix}transformer.resblocks.<i>`` blocks (gaps in ``i`` fail the strict load later)."""
    head = f"{prefix}transformer.resblocks."
    return len({k[len(head):].split(".")[0] for k in state_dict if k.startswith(head)})


def is_openai_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """True when the keys follow OpenAI CLIP's layout (which open_clip's ``CLIP`` shares)."""
    needed = ("text_projection", "token_embedding.weight", "positional_embedding", "ln_final.weight")
    has_visual = "visual.proj" in state_dict or "visual.attnpool.c_proj.weight" in state_dict
    return has_visual and all(k in state_dict for k in needed)


def config_from_openai_state_dict(state_dict: Mapping[str, torch.Tensor], quick_gelu: bool = True) -> dict[str, Any]:
    """Infer an open_clip config dict from an OpenAI-layout state dict (docs/REFERENCE.md M1 ``build_model``).

    ViT: width from conv1, layers from the resblock indices, patch size from the conv kernel, image
    size from the grid of the positional embedding, heads = width // 64, MLP ratio from ``c_fc``.
    Text: embed dim from text_projection, context length / vocab from the embeddings, width from
    ln_final, heads = width // 64. ResNets (``visual.attnpool``) follow open_clip's own inference.
    """
    if not is_openai_state_dict(state_dict):
        raise ValueError(
            "not an OpenAI-layout CLIP state dict: expected keys 'visual.proj' (ViT) or "
            "'visual.attnpool.*' (ResNet), 'text_projection', 'token_embedding.weight', "
            "'positional_embedding', 'ln_final.weight'"
        )

    def tower(prefix: str, width: int) -> dict[str, Any]:  # the transformer under ``prefix``
        block0 = f"{prefix}transformer.resblocks.0."
        cfg = {"layers": _count_blocks(state_dict, prefix), "width": width,
               "mlp_ratio": int(state_dict[block0 + "mlp.c_fc.weight"].shape[0]) / width}
        if block0 + "ls_1.gamma" in state_dict:
            cfg["ls_init_value"] = 1e-5  # value is overwritten by the loaded gamma
        return cfg

    if "visual.proj" in state_dict:
        conv = state_dict["visual.conv1.weight"]
        width, patch = int(conv.shape[0]), int(conv.shape[-1])
        n_pos = int(state_dict["visual.positional_embedding"].shape[0])
        grid = round((n_pos - 1) ** 0.5)
        if grid * grid + 1 != n_pos:
            raise ValueError(f"visual.positional_embedding has {n_pos} rows, expected 1 + grid^2")
        vision_cfg = {**tower("visual.", width), "image_size": patch * grid, "patch_size": patch,
                      "head_width": width // openai_heads(width)}
        if "visual.ln_pre.weight" not in state_dict:
            vision_cfg["no_ln_pre"] = True
    else:
        counts = [len({k.split(".")[2] for k in state_dict if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4)]
        n_pos = int(state_dict["visual.attnpool.positional_embedding"].shape[0])
        vision_cfg = {
            "image_size": round((n_pos - 1) ** 0.5) * 32,
            "layers": counts,
            "width": int(state_dict["visual.layer1.0.conv1.weight"].shape[0]),
            "patch_size": None,
        }
    text_width = int(state_dict["ln_final.weight"].shape[0])
    text_cfg = {**tower("", text_width), "heads": openai_heads(text_width),
                "context_length": int(state_dict["positional_embedding"].shape[0]),
                "vocab_size": int(state_dict["token_embedding.weight"].shape[0])}
    return {
        "embed_dim": int(state_dict["text_projection"].shape[1]),
        "quick_gelu": quick_gelu,
        "vision_cfg": vision_cfg,
        "text_cfg": text_cfg,
    }


# --------------------------------------------------------------------------------------------------
# built model -> open_clip config (used to make saved checkpoints self-describing)
# --------------------------------------------------------------------------------------------------
def _int_or_list(value: Any) -> Any:
    """(32, 32) -> 32; non-square sizes stay a list (JSON-friendly, accepted by open_clip)."""
    if isinstance(value, (tuple, list)):
        return int(value[0]) if len(set(value)) == 1 else [int(v) for v in value]
    return int(value)


def config_from_model(model: nn.Module) -> dict[str, Any]:
    """Describe a built open_clip ``CLIP`` (standard ViT or ResNet towers) as an open_clip config dict.

    Raises ValueError for towers this function cannot describe (timm / HF towers, attentional
    pooling, CoCa); save those with their registered open_clip model name instead.
    """
    if not isinstance(model, open_clip.CLIP):
        raise ValueError(
            f"config_from_model supports open_clip.CLIP models only, got {type(model).__name__}; "
            "pass a registered open_clip model name when saving instead"
        )
    visual = model.visual
    if isinstance(visual, VisionTransformer):
        if visual.attn_pool is not None:
            raise ValueError("vision towers with attentional pooling cannot be described; use a registered model name")
        blk = visual.transformer.resblocks[0]
        width = visual.conv1.out_channels
        if not hasattr(blk.attn, "num_heads"):
            raise ValueError("custom attention blocks are not supported by config_from_model")
        heads = blk.attn.num_heads
        vision_cfg: dict[str, Any] = {
            "image_size": _int_or_list(visual.image_size),
            "layers": len(visual.transformer.resblocks),
            "width": width,
            "head_width": width // heads,
            "patch_size": _int_or_list(visual.patch_size),
            "mlp_ratio": blk.mlp.c_fc.out_features / width,
            "no_ln_pre": isinstance(visual.ln_pre, nn.Identity),
            "final_ln_after_pool": bool(visual.final_ln_after_pool),
            "pool_type": visual.pool_type,
        }
        if isinstance(blk.ls_1, LayerScale):
            vision_cfg["ls_init_value"] = 1e-5
        if hasattr(visual.patch_dropout, "prob"):
            vision_cfg["patch_dropout"] = float(visual.patch_dropout.prob)
    elif isinstance(visual, ModifiedResNet):
        vision_cfg = {
            "image_size": visual.image_size,
            "layers": [len(getattr(visual, f"layer{b}")) for b in (1, 2, 3, 4)],
            "width": visual.layer1[0].conv1.in_channels,
            "patch_size": None,
        }
    else:
        raise ValueError(f"vision tower {type(visual).__name__} cannot be described; use a registered model name")

    blk = model.transformer.resblocks[0]
    text_width = model.transformer.width
    text_cfg: dict[str, Any] = {
        "context_length": int(model.context_length),
        "vocab_size": int(model.vocab_size),
        "width": text_width,
        "heads": blk.attn.num_heads,
        "layers": len(model.transformer.resblocks),
        "mlp_ratio": blk.mlp.c_fc.out_features / text_width,
        "no_causal_mask": model.attn_mask is None,
        "pool_type": model.text_pool_type,
    }
    if model.text_eos_id is not None:
        text_cfg["eos_id"] = int(model.text_eos_id)
    if isinstance(blk.ls_1, LayerScale):
        text_cfg["ls_init_value"] = 1e-5
    if model.text_projection is None:
        text_cfg["proj_type"] = "none"
    elif isinstance(model.text_projection, nn.Linear):
        text_cfg["proj_bias"] = model.text_projection.bias is not None
    cfg: dict[str, Any] = {
        "embed_dim": int(visual.output_dim),
        "quick_gelu": any(isinstance(m, QuickGELU) for m in model.modules()),
        "vision_cfg": vision_cfg,
        "text_cfg": text_cfg,
    }
    if model.logit_bias is not None:
        cfg["init_logit_bias"] = float(model.logit_bias.detach().reshape(-1)[0])
    if model.logit_scale.ndim > 0:
        cfg["nonscalar_logit_scale"] = True
    return cfg


def get_config(name: str) -> dict[str, Any] | None:
    """A copy of the open_clip config registered under ``name`` ('/' normalised to '-'); None if unknown."""
    return open_clip.get_model_config(name.replace("/", "-"))
