"""Image files -> preprocessed batches for the exported student: the run's test transform (rebuilt from the
artefact's ``preprocessing``), reduced-scale JPEG decoding where that transform downsizes anyway, and a
``DataLoader`` whose workers decode and transform whole batches in parallel."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from engine.config import get_cfg_default
from engine.data.transforms import build_transform, decode_size
from engine.utils import read_image

__all__ = ["ImageFiles", "image_loader", "test_transform"]


def test_transform(preprocessing: Dict[str, Any], source: str = "artefact") -> Optional[Callable]:
    """The run's evaluation transform from its ``INPUT`` values (``build_transform(is_train=False)``)."""
    cfg = get_cfg_default()
    for key, value in preprocessing.items():
        if key not in cfg.INPUT:
            raise KeyError(f"{source}: unknown preprocessing key INPUT.{key} (exported by a newer version?)")
        cfg.INPUT[key] = tuple(value) if isinstance(cfg.INPUT[key], tuple) else value
    return build_transform(cfg, is_train=False)


class ImageFiles(Dataset):
    """``paths[i]`` -> (image tensor, i). RGB, decoded at the smallest JPEG scale the transform allows
    (``reduced_decode``); an unreadable file raises an error naming it."""

    def __init__(self, paths: Sequence[str], transform: Optional[Callable], reduced_decode: bool = True) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.min_size = decode_size(transform) if (reduced_decode and transform is not None) else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        img = read_image(self.paths[index], self.min_size)
        return (self.transform(img) if self.transform is not None else torch.as_tensor(img)), index


def image_loader(paths: Sequence[str], transform: Optional[Callable], batch_size: int = 32, workers: int = 0,
                 reduced_decode: bool = True, pin_memory: bool = False) -> DataLoader:
    """Batches in file order; ``workers`` > 0 decodes in that many processes (2 batches prefetched each)."""
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch size must be >= 1 and workers >= 0 (got {batch_size}, {workers})")
    return DataLoader(ImageFiles(paths, transform, reduced_decode), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=pin_memory, prefetch_factor=2 if workers > 0 else None)
