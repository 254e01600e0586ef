"""Minimal torch.distributed helpers for DDP runs launched with ``torchrun``.

Dassl has no DDP (docs/REFERENCE.md D8); these helpers let the engine use one
process per GPU: ``init_distributed_from_env`` reads torchrun's environment variables, and the
trainer / evaluator / data loaders consult ``is_dist`` / ``get_rank`` / ``get_world_size``.
Every helper is a cheap no-op in a single-process run.

Beyond the basics, the helpers used by the prompt trainers under ``torchrun`` (docs/PERFORMANCE.md):
``broadcast_trainable_state`` (identical start on every rank, as DDP's construction-time
broadcast), ``all_reduce_gradients`` (one coalesced all-reduce per step, DDP's gradient averaging),
``convert_sync_batchnorm`` (BatchNorm statistics over the global batch, on CPU/gloo as well as
NCCL), ``rank_seed`` (per-rank augmentation seeds) and ``linear_scaled_lr`` (the learning-rate
rule the PromptKD author used: lr 0.005 at batch 8 -> 0.16 at batch 256).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Iterable, List, Optional

import torch
import torch.distributed as torch_dist
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["is_dist", "get_rank", "get_world_size", "get_local_rank", "is_main_process", "init_distributed_from_env",
           "destroy_distributed", "all_reduce_sum", "all_gather_object", "barrier", "rank_seed", "linear_scaled_lr",
           "broadcast_trainable_state", "all_reduce_gradients", "DistributedBatchNorm", "convert_sync_batchnorm"]


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


def init_distributed_from_env(backend: Optional[str] = None) -> bool:
    """Initialise the default process group from torchrun's env vars (RANK, WORLD_SIZE, MASTER_*).

    Backend: nccl when CUDA is available, gloo otherwise (unless ``backend`` is given). On CUDA the
    process binds to GPU ``LOCAL_RANK``. Returns True if a group is (now) initialised, False when the
    process was not launched by torchrun or WORLD_SIZE is 1.
    """
    if is_dist():
        return True
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # no torchrun, or one process
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
    logger.info("Initialised torch.distributed (backend=%s, rank=%d, world_size=%d)", backend, get_rank(),
                get_world_size())
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
        nccl = torch_dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    t = value.detach().clone().to(device) if is_tensor else torch.tensor(value, dtype=torch.float64, device=device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
    return t.to(value.device) if is_tensor else type(value)(t.item())


def all_gather_object(obj: Any) -> List[Any]:
    """Gather a picklable object from every rank (``[obj]`` in a single process)."""
    if not is_dist():
        return [obj]
    out: List[Any] = [None] * get_world_size()
    torch_dist.all_gather_object(out, obj)
    return out


def all_gather_tensors(tensor: torch.Tensor) -> List[torch.Tensor]:
    """Gather a tensor from every rank (``[tensor]`` in a single process); the first dimension may differ
    between ranks (padded for the collective, trimmed after). NCCL needs CUDA tensors: pass them on the
    rank's device."""
    if not is_dist():
        return [tensor]
    lengths = all_gather_object(int(tensor.shape[0]))
    longest = max(lengths)
    padded = tensor.new_zeros((longest,) + tuple(tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    out = [torch.empty_like(padded) for _ in lengths]
    torch_dist.all_gather(out, padded.contiguous())
    return [t[:n] for t, n in zip(out, lengths)]


def barrier() -> None:
    """Synchronise all ranks (no-op in a single process)."""
    if is_dist():
        torch_dist.barrier()


# ------------------------------------------------------------------------------------------------
# helpers for DDP training of the prompt trainers
# ------------------------------------------------------------------------------------------------
_RANK_SEED_STRIDE = 1000003  # also used by engine.data.data_manager for the loaders' generators


def rank_seed(seed: int, rank: Optional[int] = None) -> int:
    """Seed of rank ``rank`` (default: this process) derived from the run seed: ``seed + 1000003 * rank``.

    Rank 0 keeps the run seed, so a one-process run and rank 0 of a DDP run draw the same stream.
    """
    rank = get_rank() if rank is None else int(rank)
    return int(seed) + _RANK_SEED_STRIDE * rank


def linear_scaled_lr(base_lr: float, base_batch: int, global_batch: int) -> float:
    """Linear learning-rate scaling: ``base_lr * global_batch / base_batch``.

    The PromptKD author trained ImageNet with batch 256 and lr 0.16 = 0.005 * 256 / 8 (GitHub issue #10).
    Under torchrun the global batch is ``DATALOADER.TRAIN_X.BATCH_SIZE`` (per process) x world size.
    """
    if base_batch <= 0 or global_batch <= 0:
        raise ValueError(f"linear_scaled_lr: batch sizes must be positive (base {base_batch}, global {global_batch})")
    return float(base_lr) * float(global_batch) / float(base_batch)


def _state_to_sync(modules: Iterable[nn.Module]) -> List[torch.Tensor]:
    """Parameters that require grad, plus the persistent buffers of every sub-module that owns such a
    parameter (e.g. BatchNorm running statistics of a trainable projector). Frozen towers and
    non-persistent caches (class-name token buffers) are not included."""
    found: Dict[int, torch.Tensor] = {}  # by id, in first-seen order
    for module in modules:
        for sub in module.modules():
            direct = list(sub.parameters(recurse=False))
            if not any(p.requires_grad for p in direct):
                continue
            skip = getattr(sub, "_non_persistent_buffers_set", set())
            buffers = [b for name, b in sub.named_buffers(recurse=False) if name not in skip]
            for t in [p for p in direct if p.requires_grad] + buffers:
                found.setdefault(id(t), t)
    return list(found.values())


@torch.no_grad()
def broadcast_trainable_state(modules: Iterable[nn.Module], src: int = 0) -> int:
    """Copy rank ``src``'s trainable parameters (and the buffers of their modules) to every rank.

    DDP does this when it wraps a model; it makes a run with ``SEED < 0`` (different random prompt /
    projector initialisations per rank) start from one model. Returns the number of tensors synced.
    """
    if not is_dist():
        return 0
    tensors = _state_to_sync(modules)
    for t in tensors:
        torch_dist.broadcast(t.data, src=src)
    return len(tensors)


@torch.no_grad()
def all_reduce_gradients(params: Iterable[torch.Tensor]) -> int:
    """Average ``p.grad`` over ranks with one coalesced all-reduce per dtype (what DDP's buckets do).

    Every rank must pass the same parameters in the same order with gradients present (the prompt
    trainers' graphs are identical on every rank). Returns the number of gradients reduced.
    """
    if not is_dist():
        return 0
    grads = [p.grad for p in params if p.grad is not None]
    world = float(get_world_size())
    by_dtype: dict = {}
    for g in grads:
        by_dtype.setdefault((g.dtype, g.device), []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
        flat.div_(world)
        for g, part in zip(group, flat.split([g.numel() for g in group])):
            g.copy_(part.view_as(g))
    return len(grads)


class DistributedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are computed over the GLOBAL batch of all ranks.

    ``torch.nn.SyncBatchNorm`` runs on CUDA only; this version works with any backend (gloo on CPU,
    NCCL on GPU) through the differentiable ``torch.distributed.nn.all_reduce`` of the per-channel sums.
    With one process, or in eval mode, it is exactly ``BatchNorm``. Used for the PromptKD projector so
    that a DDP run with per-rank batch b and world size w trains like one process with batch b*w.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"DistributedBatchNorm expects input [N, C, ...], got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist()):
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

        self._check_input_dim(input)
        dims = [0] + list(range(2, input.dim()))
        x = input.float()
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        stats = torch.cat([x.sum(dim=dims), (x * x).sum(dim=dims), count.view(1)])
        stats = differentiable_all_reduce(stats, op=torch_dist.ReduceOp.SUM)
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = var.detach() * (n / (n - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        shape = [1, c] + [1] * (input.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module) -> int:
    """Turn (in place) every BatchNorm1d/2d/3d under ``module`` into a :class:`DistributedBatchNorm`.

    Each layer only changes its class (``DistributedBatchNorm`` adds no state), so it keeps the SAME
    parameter and buffer objects, hooks and mode: optimisers built before the conversion keep working and
    checkpoint keys do not change. Returns the number of converted layers.
    """
    layers = [m for m in module.modules() if m is not module and isinstance(m, nn.modules.batchnorm._BatchNorm)
              and not isinstance(m, (DistributedBatchNorm, nn.SyncBatchNorm))]
    for layer in layers:
        layer.__class__ = DistributedBatchNorm
    return len(layers)
