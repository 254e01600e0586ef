"""Samplers (Dassl ``dassl.data.samplers``) plus DDP-aware variants.

- ``RandomSampler`` / ``SequentialSampler``: torch's (the only two the prompt-learning repos use).
- ``RandomDomainSampler``, ``SeqDomainSampler``, ``RandomClassSampler``: Dassl's domain/class
  balanced batch samplers (Python ``random`` state, as in Dassl).
- Under ``torch.distributed``: training uses ``DistributedSampler(shuffle=True)`` and evaluation uses
  ``DistributedEvalSampler``, which gives each rank a disjoint strided part of the data set without
  padding, so every test image is evaluated exactly once (torch's ``DistributedSampler`` pads with
  duplicates, which would bias accuracy).
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections import defaultdict
from typing import Any, Iterator, List, Optional, Sequence

import torch
from torch.utils.data import DistributedSampler, RandomSampler, Sampler, SequentialSampler

from engine import dist

logger = logging.getLogger(__name__)

__all__ = [
    "build_sampler",
    "RandomDomainSampler",
    "SeqDomainSampler",
    "RandomClassSampler",
    "DistributedEvalSampler",
    "AVAI_SAMPLERS",
]

AVAI_SAMPLERS = ["RandomSampler", "SequentialSampler", "RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler"]


class RandomDomainSampler(Sampler):
    """Each batch holds ``batch_size // n_domain`` random images from each of ``n_domain`` randomly
    chosen domains (``n_domain <= 0`` means all domains)."""

    def __init__(self, data_source: Sequence[Any], batch_size: int, n_domain: int) -> None:
        self.data_source = data_source
        self.domain_dict = defaultdict(list)
        for i, item in enumerate(data_source):
            self.domain_dict[item.domain].append(i)
        self.domains = list(self.domain_dict.keys())
        if n_domain is None or n_domain <= 0:
            n_domain = len(self.domains)
        if n_domain > len(self.domains):
            raise ValueError(
                f"RandomDomainSampler: n_domain={n_domain} but the data has only {len(self.domains)} domains"
            )
        if batch_size % n_domain != 0:
            raise ValueError(f"RandomDomainSampler: batch size {batch_size} must be divisible by n_domain={n_domain}")
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        domain_dict = copy.deepcopy(self.domain_dict)
        final_idxs: List[int] = []
        stop = False
        while not stop:
            for domain in random.sample(self.domains, self.n_domain):
                idxs = domain_dict[domain]
                if len(idxs) < self.n_img_per_domain:
                    stop = True
                    break
                selected = random.sample(idxs, self.n_img_per_domain)
                final_idxs.extend(selected)
                for idx in selected:
                    domain_dict[domain].remove(idx)
                if len(domain_dict[domain]) < self.n_img_per_domain:
                    stop = True
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


class SeqDomainSampler(Sampler):
    """Each batch holds ``batch_size // n_domains`` images of every domain, domains in fixed order."""

    def __init__(self, data_source: Sequence[Any], batch_size: int) -> None:
        self.data_source = data_source
        self.domain_dict = defaultdict(list)
        for i, item in enumerate(data_source):
            self.domain_dict[item.domain].append(i)
        self.domains = sorted(self.domain_dict.keys())
        n_domain = len(self.domains)
        if n_domain == 0 or batch_size % n_domain != 0:
            raise ValueError(
                f"SeqDomainSampler: batch size {batch_size} must be divisible by the number of domains ({n_domain})"
            )
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        domain_dict = copy.deepcopy(self.domain_dict)
        final_idxs: List[int] = []
        stop = False
        while not stop:
            for domain in self.domains:
                idxs = domain_dict[domain]
                if len(idxs) < self.n_img_per_domain:
                    stop = True
                    break
                selected = random.sample(idxs, self.n_img_per_domain)
                final_idxs.extend(selected)
                for idx in selected:
                    domain_dict[domain].remove(idx)
                if len(domain_dict[domain]) < self.n_img_per_domain:
                    stop = True
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


class RandomClassSampler(Sampler):
    """Each batch holds ``n_ins`` instances of each of ``batch_size // n_ins`` random classes
    (classes with fewer than ``n_ins`` items are sampled with replacement)."""

    def __init__(self, data_source: Sequence[Any], batch_size: int, n_ins: int) -> None:
        if n_ins <= 0 or batch_size < n_ins:
            raise ValueError(f"RandomClassSampler: need 0 < n_ins ({n_ins}) <= batch_size ({batch_size})")
        self.data_source = data_source
        self.batch_size = batch_size
        self.n_ins = n_ins
        self.ncls_per_batch = batch_size // n_ins
        self.index_dic = defaultdict(list)
        for index, item in enumerate(data_source):
            self.index_dic[item.label].append(index)
        self.labels = list(self.index_dic.keys())
        if len(self.labels) < self.ncls_per_batch:
            raise ValueError(
                f"RandomClassSampler: a batch needs {self.ncls_per_batch} classes but the data has {len(self.labels)}"
            )
        self.length = 0
        for label in self.labels:
            num = max(len(self.index_dic[label]), n_ins)
            self.length += num - num % n_ins

    def __iter__(self) -> Iterator[int]:
        batch_idxs_dict = defaultdict(list)
        for label in self.labels:
            idxs = copy.deepcopy(self.index_dic[label])
            if len(idxs) < self.n_ins:
                idxs = random.choices(idxs, k=self.n_ins)
            random.shuffle(idxs)
            batch = []
            for idx in idxs:
                batch.append(idx)
                if len(batch) == self.n_ins:
                    batch_idxs_dict[label].append(batch)
                    batch = []
        avai_labels = copy.deepcopy(self.labels)
        final_idxs: List[int] = []
        while len(avai_labels) >= self.ncls_per_batch:
            for label in random.sample(avai_labels, self.ncls_per_batch):
                final_idxs.extend(batch_idxs_dict[label].pop(0))
                if len(batch_idxs_dict[label]) == 0:
                    avai_labels.remove(label)
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


class DistributedEvalSampler(Sampler):
    """Rank ``r`` of ``w`` gets indices ``r, r + w, r + 2w, ...``: disjoint, exhaustive, no padding."""

    def __init__(
        self, data_source: Sequence[Any], num_replicas: Optional[int] = None, rank: Optional[int] = None
    ) -> None:
        self.data_source = data_source
        self.num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
        self.rank = dist.get_rank() if rank is None else rank
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(
                f"DistributedEvalSampler: rank {self.rank} out of range for world size {self.num_replicas}"
            )

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.data_source), self.num_replicas))

    def __len__(self) -> int:
        n = len(self.data_source)
        return max(0, math.ceil((n - self.rank) / self.num_replicas))


def build_sampler(
    sampler_type: str,
    cfg: Any = None,
    data_source: Optional[Sequence[Any]] = None,
    batch_size: int = 32,
    n_domain: int = 0,
    n_ins: int = 16,
    generator: Optional[torch.Generator] = None,
) -> Sampler:
    """Build a sampler by Dassl name. Under ``torch.distributed``, RandomSampler becomes a shuffling
    ``DistributedSampler`` (seeded with ``cfg.SEED``) and SequentialSampler a ``DistributedEvalSampler``."""
    if data_source is None:
        raise ValueError("build_sampler: data_source is required")
    if sampler_type not in AVAI_SAMPLERS:
        raise ValueError(f"Unknown sampler '{sampler_type}'. Valid samplers: {AVAI_SAMPLERS}")
    if dist.is_dist():
        if sampler_type == "RandomSampler":
            seed = cfg.SEED if cfg is not None and cfg.SEED >= 0 else 0
            return DistributedSampler(data_source, shuffle=True, seed=seed, drop_last=False)
        if sampler_type == "SequentialSampler":
            return DistributedEvalSampler(data_source)
        raise ValueError(
            f"Sampler '{sampler_type}' is not supported in distributed (torchrun) runs; use RandomSampler for training "
            "and SequentialSampler for evaluation, or run on one process"
        )
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source, generator=generator)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    if sampler_type == "SeqDomainSampler":
        return SeqDomainSampler(data_source, batch_size)
    return RandomClassSampler(data_source, batch_size, n_ins)
