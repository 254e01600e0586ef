"""Where CLIP weights come from and how they are read and written.

- OpenAI names (``ViT-B/16`` ...) map to the files of OpenAI's CLIP release (``ViT-B-16.pt``: TorchScript
  archives, docs/REFERENCE.md M1). ``resolve_weights_path`` looks for them locally, never downloads.
- ``read_weights_file`` tells the on-disk formats apart by content: TorchScript archive, OpenAI-layout
  state dict, or an open_clip checkpoint (``{"state_dict": ...}`` written by ``save_open_clip_checkpoint``).
- ``save_openai_state_dict`` / ``save_open_clip_checkpoint`` write a model so that ``clip.load`` reads
  it back bit-exactly; files are written atomically (temp file + ``os.replace``).
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from .configs import NON_WEIGHT_KEYS, HEAD_WIDTH, config_from_model, get_config, is_openai_state_dict, openai_heads

logger = logging.getLogger(__name__)

ENV_WEIGHTS_DIR = "CLIP_WEIGHTS_DIR"
CONFIG_KEY_WEIGHTS_DIR = "MODEL.BACKBONE.WEIGHTS_DIR"
DEFAULT_CACHE_DIR = "~/.cache/clip"  # where OpenAI's ``clip.load`` caches its downloads
REFERENCE_DIR = "./clip"  # where the PromptKD reference expects ViT-B-16.pt / ViT-L-14.pt

# OpenAI release names; each is built as open_clip's QuickGELU architecture (the activation OpenAI trained
# with): ViT-B/16 -> ViT-B-16-quickgelu, ViT-L/14@336px -> ViT-L-14-336-quickgelu.
OPENAI_NAMES = ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px")
OPENAI_MODELS: dict[str, str] = {n: n.replace("/", "-").replace("@336px", "-336") + "-quickgelu" for n in OPENAI_NAMES}
# accepted spellings: the name, the name with '/' -> '-' (ViT-B-16), the release file stem (ViT-L-14-336px)
_OPENAI_ALIASES = {**{n.replace("/", "-"): n for n in OPENAI_NAMES}, "ViT-L-14-336px": "ViT-L/14@336px",
                   **{n: n for n in OPENAI_NAMES}}


def openai_name(name: str) -> str | None:
    """Canonical OpenAI name (``ViT-B/16``) for ``name`` or its '-' form (``ViT-B-16``); None otherwise."""
    return _OPENAI_ALIASES.get(name.strip())


def openai_release_url(name: str) -> str:
    """URL of the OpenAI CLIP release file for the OpenAI model ``name`` (as listed by open_clip)."""
    canonical = openai_name(name)
    if canonical is None:
        raise KeyError(f"'{name}' is not an OpenAI CLIP name; known: {list(OPENAI_MODELS)}")
    return open_clip.get_pretrained_url(OPENAI_MODELS[canonical], "openai")


def openai_filenames(name: str) -> list[str]:
    """File names an OpenAI model may be stored under: the release file name (``ViT-L-14-336px.pt``)
    and the name with '/' replaced by '-' (``ViT-B-16.pt``)."""
    release_file = openai_release_url(name).rsplit("/", 1)[-1]
    return list(dict.fromkeys([release_file, openai_name(name).replace("/", "-") + ".pt"]))


def weight_search_dirs(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for OpenAI weight files, in order.

    An explicit ``weights_dir`` (config ``MODEL.BACKBONE.WEIGHTS_DIR``) is the only place searched.
    Otherwise: ``$CLIP_WEIGHTS_DIR`` (if set), ``./clip`` (the reference layout), ``~/.cache/clip``.
    """
    if weights_dir:
        return [Path(weights_dir).expanduser()]
    env = os.environ.get(ENV_WEIGHTS_DIR)
    dirs = ([Path(env).expanduser()] if env else []) + [Path(REFERENCE_DIR), Path(DEFAULT_CACHE_DIR).expanduser()]
    return list(dict.fromkeys(dirs))


def candidate_weight_paths(name: str, weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every path ``resolve_weights_path`` tries for the OpenAI model ``name``, in order."""
    return [d / fn for d in weight_search_dirs(weights_dir) for fn in openai_filenames(name)]


def resolve_weights_path(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Locate the weights file of the OpenAI model ``name`` (``ViT-B/16`` or ``ViT-B-16``) in
    ``weight_search_dirs(weights_dir)``; nothing is downloaded.

    Raises FileNotFoundError (listing the paths tried and where the file comes from) when none exists,
    and KeyError for a name that is not an OpenAI model.
    """
    tried = candidate_weight_paths(name, weights_dir)
    for p in tried:
        if p.is_file():
            logger.info("Using CLIP weights %s for %s", p, name)
            return p
    canonical, first = openai_name(name), tried[0].name
    oc_name = OPENAI_MODELS[canonical]
    tried_s = "\n".join(f"  - {p}" for p in tried)
    raise FileNotFoundError(
        f"CLIP weights for '{canonical}' not found. Tried:\n{tried_s}\n"
        f"Get the file from OpenAI's CLIP release ({openai_release_url(canonical)}); OpenAI's "
        f"`clip.load('{canonical}')` caches it as {DEFAULT_CACHE_DIR}/{first}, and open_clip can fetch the same "
        f"weights with `open_clip.create_model('{oc_name}', pretrained='openai')` (use the name "
        f"'open_clip:{oc_name}:openai' here, needs internet). Then point to the folder that holds it with the "
        f"config key {CONFIG_KEY_WEIGHTS_DIR} or the environment variable {ENV_WEIGHTS_DIR}, or copy it to "
        f"{REFERENCE_DIR}/{first}. For tests without weights pass allow_random=True (random initialisation)."
    )


def looks_like_path(name: str) -> bool:
    """Heuristic used for error messages: does ``name`` look like a file path rather than a model name?"""
    return (
        name.endswith((".pt", ".pth", ".bin", ".tar", ".safetensors", ".ckpt"))
        or name.startswith((".", "~"))
        or os.sep in name and not openai_name(name)
    )


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
@dataclass
class WeightsFile:
    """Content of a weights file, classified.

    kind: "openai" (OpenAI-layout state dict, from a TorchScript archive or a plain file) or
    "open_clip" (checkpoint dict with ``state_dict`` and a model config or registered name).
    """

    path: Path
    kind: str
    state_dict: dict[str, torch.Tensor]
    model_cfg: dict[str, Any] | None = None
    model_name: str | None = None
    jit: bool = False


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def _strip_prefix(state_dict: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def read_weights_file(path: str | os.PathLike) -> WeightsFile:
    """Load a weights file and classify it by its content (docs/REFERENCE.md M1: JIT archive first, then a
    plain state dict). Tensors are mapped to CPU. Unknown layouts raise ValueError naming the file."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise FileNotFoundError(f"CLIP weights file '{path}' does not exist")
    jit = _is_torchscript_archive(path)
    if jit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated but the only reader
            obj: Any = torch.jit.load(str(path), map_location="cpu").state_dict()
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj = load_file(str(path), device="cpu")
    else:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors of all kinds: report which file and why
            raise ValueError(
                f"{path}: cannot read as a torch checkpoint with weights_only=True ({type(e).__name__}: {e}). "
                "Expected an OpenAI CLIP .pt (TorchScript archive or state dict) or an open_clip checkpoint."
            ) from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors or a checkpoint dict, got {type(obj).__name__}")

    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        sd = _strip_prefix(dict(obj["state_dict"]))
        model_cfg = obj.get("model_cfg")
        model_name = obj.get("model_name")
        if model_cfg is None and model_name is not None:
            model_cfg = get_config(str(model_name))
            if model_cfg is None:
                raise ValueError(
                    f"{path}: checkpoint names model '{model_name}' which is not a registered open_clip config "
                    f"and carries no 'model_cfg'; load it with 'open_clip:<architecture>:{path}'"
                )
        if model_cfg is None:
            raise ValueError(
                f"{path}: open_clip checkpoint without 'model_cfg' or 'model_name' (e.g. an open_clip training "
                f"checkpoint); the architecture cannot be known from it. Load it with "
                f"'open_clip:<architecture>:{path}' (for instance 'open_clip:ViT-B-32:{path}')."
            )
        return WeightsFile(path, "open_clip", sd, model_cfg=dict(model_cfg), model_name=model_name)

    sd = {k: v for k, v in _strip_prefix(dict(obj)).items() if k not in NON_WEIGHT_KEYS}
    if is_openai_state_dict(sd):
        return WeightsFile(path, "openai", sd, jit=jit)
    kind = "TorchScript archive" if jit else "state dict"
    raise ValueError(
        f"{path}: unrecognised {kind} layout (first keys {list(sd)[:6]}). Expected OpenAI CLIP keys "
        "('visual.conv1.weight', 'transformer.resblocks.*', 'text_projection', ...). For an open_clip "
        f"architecture use 'open_clip:<architecture>:{path}'."
    )


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the target folder, then ``os.replace`` (never a torn file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def check_openai_compatible(model: nn.Module) -> None:
    """Raise ValueError if ``model`` cannot round-trip through the OpenAI state-dict layout, i.e. if
    ``config_from_openai_state_dict`` would rebuild a different architecture from its weights."""
    cfg = config_from_model(model)  # ValueError for anything but an open_clip.CLIP
    vc, tc = cfg["vision_cfg"], cfg["text_cfg"]
    vit = isinstance(model.visual, VisionTransformer)
    heads = ([("vision tower", vc["width"], vc["width"] // vc["head_width"])] if vit else []) + [
        ("text tower", tc["width"], tc["heads"])]
    problems = [] if cfg["quick_gelu"] else ["activation is nn.GELU (the OpenAI layout implies QuickGELU)"]
    problems += [f"{tower} has {h} heads, the rule heads = width // {HEAD_WIDTH} gives {openai_heads(w)}"
                 for tower, w, h in heads if h != openai_heads(w)]
    if vit and (vc["pool_type"] != "tok" or vc["final_ln_after_pool"]):
        problems.append("vision pooling is not OpenAI's (pool_type 'tok', LayerNorm before pooling)")
    if vit and vc.get("patch_dropout"):
        problems.append("patch dropout is enabled")
    if tc["pool_type"] != "argmax" or tc["no_causal_mask"]:
        problems.append("text tower is not OpenAI's (argmax pooling with a causal mask)")
    if "proj_type" in tc or tc.get("proj_bias"):
        problems.append("text projection is not a bias-free matrix")
    if "init_logit_bias" in cfg or cfg.get("nonscalar_logit_scale"):
        problems.append("model has a logit bias or a non-scalar logit scale")
    if problems:
        raise ValueError(
            "model cannot be saved in the OpenAI state-dict layout without losing its architecture: "
            + "; ".join(problems)
            + ". Use save_open_clip_checkpoint(model, path, model_name) instead."
        )


def save_openai_state_dict(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save ``model``'s weights in OpenAI CLIP's key layout (open_clip ``CLIP`` keys equal OpenAI's),
    atomically. ``clip.load(path)`` rebuilds the architecture from the keys (heads = width // 64,
    QuickGELU); models that rule cannot describe are refused with ValueError."""
    check_openai_compatible(model)
    return atomic_torch_save(_cpu_state_dict(model), path)


def save_open_clip_checkpoint(model: nn.Module, path: str | os.PathLike, model_name: str) -> Path:
    """Save an open_clip checkpoint ``{"state_dict", "model_name", "model_cfg"}`` atomically.

    ``model_cfg`` describes the architecture exactly (read from the model), so ``clip.load(path)`` works
    even when ``model_name`` is not registered; open_clip's ``create_model(model_name, pretrained=path)``
    (and ``clip.load('open_clip:<model_name>:<path>')``) can read it too.
    """
    try:
        model_cfg: dict[str, Any] | None = config_from_model(model)
    except ValueError:
        model_cfg = get_config(model_name)
        if model_cfg is None:
            raise ValueError(
                f"cannot describe model {type(model).__name__} and '{model_name}' is not a registered "
                "open_clip config; register its JSON config with open_clip.add_model_config first"
            ) from None
    ckpt = {"state_dict": _cpu_state_dict(model), "model_name": model_name.replace("/", "-"), "model_cfg": model_cfg}
    return atomic_torch_save(ckpt, path)
