"""Precision policy of the trainers: which ``PREC`` runs on which device, and how frozen towers are stored.

``TRAINER.<NODE>.PREC`` (fp32 | fp16 | amp | bf16) chooses the compute precision:

- ``fp32``: plain fp32;
- ``fp16``: the frozen towers are stored in half precision (as the reference) and run in it, no autocast;
- ``amp``: fp32 weights, fp16 autocast, a GradScaler;
- ``bf16``: fp32 weights, bf16 autocast.

``MODEL.BACKBONE.FROZEN_PREC`` (auto | fp32 | fp16 | bf16) chooses how the frozen CLIP towers are STORED:
``auto`` (default) is fp16 under PREC fp16 and fp32 otherwise (the behaviour above); ``bf16`` stores the
frozen matmul weights in bfloat16 (half the memory of fp32, the range of fp32: no overflow, no scaler);
``fp16`` / ``fp32`` force that storage whatever PREC. LayerNorms and embeddings stay fp32 in every case
(OpenAI-style mixed precision), trainable parameters are always fp32, and a tower the trainer trains
(PromptKD ``TRAIN_MODE full_finetune``) is always fp32.

On CPU, ``fp16`` and ``amp`` (and fp16 storage) fall back to fp32 with a warning: half-precision matmuls
on CPU are slow and not what a user wants. Tests exercise the GPU code path on CPU through the test-only
environment variable :data:`ENV_CPU_HALF` (``=1``): it lets fp16 / amp / fp16 storage run on CPU exactly
as they would on a GPU (same weights, autocast, GradScaler), and is logged at WARNING whenever it is used.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch

logger = logging.getLogger(__name__)


PRECISIONS = ("fp32", "fp16", "amp", "bf16")
FROZEN_PRECISIONS = ("auto", "fp32", "fp16", "bf16")

#: TEST-ONLY switch: ``=1`` lets PREC fp16 / amp and fp16 storage run on CPU (the GPU code path).
ENV_CPU_HALF = "PROMPTKD_TEST_ONLY_FP16_ON_CPU"


def _half_ok(device: torch.device, key: str, what: str) -> bool:
    """May ``what`` (fp16 compute or storage) run on ``device``? Warns on the CPU fallback / the test hook
    (:data:`ENV_CPU_HALF` is exactly ``1``; any other value than unset / ``0`` is refused)."""
    if device.type == "cuda":
        return True
    switch = os.environ.get(ENV_CPU_HALF, "")
    if switch not in ("", "0", "1"):
        raise ValueError(f"{ENV_CPU_HALF}={switch!r}: this test-only variable takes 1 (or unset it)")
    if device.type == "cpu" and switch == "1":
        logger.warning("%s = %s runs on CPU because the TEST-ONLY variable %s=1 is set (the GPU code path on "
                       "CPU, for tests; unset it for real runs)", key, what, ENV_CPU_HALF)
        return True
    logger.warning("%s = %s needs CUDA; running in fp32 on %s", key, what, device.type)
    return False


def resolve_precision(prec: str, device: torch.device, key: str = "PREC") -> str:
    """Validate PREC and adapt it to the device: CPU supports fp32 and bf16 only (fp16 / amp fall back to
    fp32 with a warning, unless the test-only :data:`ENV_CPU_HALF` is set)."""
    if prec not in PRECISIONS:
        raise ValueError(f"{key} = {prec!r} is not supported; use one of {list(PRECISIONS)}")
    if prec in ("fp16", "amp") and not _half_ok(device, key, prec):
        return "fp32"
    if device.type == "cuda" and prec == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{key} = bf16 but this GPU does not support bfloat16; use fp16 or amp")
    return prec


def frozen_storage(prec: str, frozen: Optional[str] = None, device: torch.device | str = "cpu",
                   key: str = "MODEL.BACKBONE.FROZEN_PREC") -> str:
    """Storage precision (fp32 | fp16 | bf16) of the frozen towers for an already resolved ``prec`` and the
    ``MODEL.BACKBONE.FROZEN_PREC`` value ``frozen`` (None / "auto": fp16 under PREC fp16, else fp32)."""
    frozen = "auto" if frozen in (None, "") else str(frozen)
    if frozen not in FROZEN_PRECISIONS:
        raise ValueError(f"{key} = {frozen!r} is not supported; use one of {list(FROZEN_PRECISIONS)}")
    if frozen == "auto":
        return "fp16" if prec == "fp16" else "fp32"
    device = torch.device(device)
    if frozen == "fp16" and prec != "fp16" and not _half_ok(device, key, "fp16"):
        return "fp32"
    if frozen == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{key} = bf16 but this GPU does not support bfloat16; use fp16")
    return frozen
