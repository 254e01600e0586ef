"""Samplers (Dassl ``dassl.data.samplers``) plus DDP-aware variants.

- ``RandomSampler`` / ``SequentialSampler``: torch's, the only two the CoOp-family trainers and configs
  select (``DATALOADER.TRAIN_X.SAMPLER`` / ``DATALOADER.TEST.SAMPLER``). Dassl's domain/class balanced
  samplers (``RandomDomainSampler``, ``SeqDomainSampler``, ``RandomClassSampler``) serve its domain
  adaptation trainers and are not provided; selecting one is an error naming the two valid samplers.
- Under ``torch.distributed``: training uses ``DistributedSampler(shuffle=True)`` and evaluation uses
  ``DistributedEvalSampler``, which gives each rank a disjoint strided part of the data set without
  padding, so every test image is evaluated exactly once (torch's ``DistributedSampler`` pads with
  duplicates, which would bias accuracy).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

import torch
from torch.utils.data import DistributedSampler, RandomSampler, Sampler, SequentialSampler

from engine import dist

AVAI_SAMPLERS = ["RandomSampler", "SequentialSampler"]
# Dassl samplers for domain adaptation / generalisation trainers, not provided by the built-in engine.
_DASSL_ONLY_SAMPLERS = ["RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler"]


class DistributedEvalSampler(Sampler):
    """Rank ``r`` of ``w`` gets indices ``r, r + w, r + 2w, ...``: disjoint, exhaustive, no padding."""

    def __init__(self, data_source: Sequence[Any], num_replicas: Optional[int] = None,
                 rank: Optional[int] = None) -> None:
        self.data_source = data_source
        self.num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
        self.rank = dist.get_rank() if rank is None else rank
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedEvalSampler: rank {self.rank} out of range for world size "
                             f"{self.num_replicas}")

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.data_source), self.num_replicas))

    def __len__(self) -> int:
        return max(0, math.ceil((len(self.data_source) - self.rank) / self.num_replicas))


def build_sampler(sampler_type: str, cfg: Any = None, data_source: Optional[Sequence[Any]] = None, batch_size: int = 32,
                  n_domain: int = 0, n_ins: int = 16, generator: Optional[torch.Generator] = None) -> Sampler:
    """Build a sampler by Dassl name (``batch_size``, ``n_domain``, ``n_ins``: Dassl's signature, used only
    by its balanced samplers). Under ``torch.distributed``, RandomSampler becomes a shuffling
    ``DistributedSampler`` (seeded with ``cfg.SEED``) and SequentialSampler a ``DistributedEvalSampler``."""
    if sampler_type in _DASSL_ONLY_SAMPLERS:
        raise ValueError(f"Sampler '{sampler_type}' (Dassl's domain/class balanced sampler) is not provided by this "
                         f"engine; the prompt-learning trainers use {AVAI_SAMPLERS}")
    if sampler_type not in AVAI_SAMPLERS:
        raise ValueError(f"Unknown sampler '{sampler_type}'. Valid samplers: {AVAI_SAMPLERS}")
    if sampler_type == "RandomSampler":
        if dist.is_dist():
            seed = cfg.SEED if cfg is not None and cfg.SEED >= 0 else 0
            return DistributedSampler(data_source, shuffle=True, seed=seed, drop_last=False)
        return RandomSampler(data_source, generator=generator)
    return DistributedEvalSampler(data_source) if dist.is_dist() else SequentialSampler(data_source)
