"""Minimal torch.distributed helpers for DDP runs launched with ``torchrun``.

Dassl has no DDP (reference defect §5.8, pain point P9); these helpers let the engine use one
process per GPU: ``init_distributed_from_env`` reads torchrun's environment variables, and the
trainer / evaluator / data loaders consult ``is_dist`` / ``get_rank`` / ``get_world_size``.
Every helper is a cheap no-op in a single-process run.
"""

from __future__ import annotations

import logging
import os
from typing import Any, List, Optional

import torch
import torch.distributed as torch_dist

logger = logging.getLogger(__name__)

__all__ = [
    "is_dist",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "is_main_process",
    "init_distributed_from_env",
    "destroy_distributed",
    "all_reduce_sum",
    "all_gather_object",
    "barrier",
]


def is_dist() -> bool:
    """True when torch.distributed is available and a process group is initialised."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank() -> int:
    return torch_dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_dist() else 1


def get_local_rank() -> int:
    """torchrun's LOCAL_RANK (0 when not launched by torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def launched_by_torchrun() -> bool:
    """True when the torchrun environment variables (RANK, WORLD_SIZE) are present."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed_from_env(backend: Optional[str] = None) -> bool:
    """Initialise the default process group from torchrun's env vars (RANK, WORLD_SIZE, MASTER_*).

    Backend: nccl when CUDA is available, gloo otherwise (unless ``backend`` is given). On CUDA the
    process binds to GPU ``LOCAL_RANK``. Returns True if a group is (now) initialised, False when the
    process was not launched by torchrun or WORLD_SIZE is 1.
    """
    if is_dist():
        return True
    if not launched_by_torchrun():
        return False
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size <= 1:
        return False
    if not torch_dist.is_available():
        raise RuntimeError(
            "Launched by torchrun with WORLD_SIZE>1 but torch.distributed is not available in this torch build"
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(get_local_rank())
    torch_dist.init_process_group(backend=backend, init_method="env://")
    logger.info(
        "Initialised torch.distributed (backend=%s, rank=%d, world_size=%d)", backend, get_rank(), get_world_size()
    )
    return True


def destroy_distributed() -> None:
    """Destroy the default process group if one exists."""
    if is_dist():
        torch_dist.destroy_process_group()


def all_reduce_sum(value: Any, device: Optional[torch.device] = None) -> Any:
    """Sum a number or tensor over ranks (returns the input unchanged in a single process).

    Python numbers come back as the same type; tensors are reduced on a copy.
    """
    if not is_dist():
        return value
    is_tensor = isinstance(value, torch.Tensor)
    if device is None:
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if torch_dist.get_backend() == "nccl"
            else torch.device("cpu")
        )
    t = value.detach().clone().to(device) if is_tensor else torch.tensor(value, dtype=torch.float64, device=device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
    if is_tensor:
        return t.to(value.device)
    return type(value)(t.item())


def all_gather_object(obj: Any) -> List[Any]:
    """Gather a picklable object from every rank (``[obj]`` in a single process)."""
    if not is_dist():
        return [obj]
    out: List[Any] = [None] * get_world_size()
    torch_dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Synchronise all ranks (no-op in a single process)."""
    if is_dist():
        torch_dist.barrier()
