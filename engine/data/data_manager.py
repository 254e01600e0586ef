"""Data loaders and the ``DataManager`` (Dassl ``dassl.data.data_manager``).

Beyond Dassl (reproducible seeds, docs/REFERENCE.md D15): a seeded ``torch.Generator`` and a ``worker_init_fn`` make the
data order and the workers' augmentation RNG reproducible from ``cfg.SEED``; workers are
persistent (not re-forked every epoch, docs/REFERENCE.md D26) and prefetch; DDP runs get a
``DistributedSampler`` for training and a padding-free strided sampler for evaluation.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader, Dataset, Sampler

from engine import dist
from engine.data.datasets import Datum, build_dataset
from engine.data.samplers import build_sampler
from engine.data.transforms import build_transform, decode_size, interpolation_mode
from engine.utils import read_image

logger = logging.getLogger(__name__)

__all__ = ["DataManager", "DatasetWrapper", "build_data_loader", "seed_worker"]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed ``random`` and numpy from the worker's torch seed.

    torch derives each worker's seed from the loader's generator (base seed + worker id), so with a
    seeded generator every worker's augmentation stream is reproducible. Recent torch versions also
    seed ``random`` themselves; doing it here keeps the guarantee explicit and version-independent.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _make_generator(cfg: Any) -> Optional[torch.Generator]:
    """A generator seeded with ``cfg.SEED`` (+ rank, so DDP ranks augment differently); None when SEED < 0."""
    if cfg.SEED is None or cfg.SEED < 0:
        return None
    return torch.Generator().manual_seed(dist.rank_seed(int(cfg.SEED)))


def build_data_loader(cfg: Any, sampler_type: str = "SequentialSampler", data_source: Optional[Sequence[Datum]] = None,
                      batch_size: int = 64, n_domain: int = 0, n_ins: int = 2, tfm: Optional[Callable] = None,
                      is_train: bool = True, dataset_wrapper: Optional[type] = None,
                      sampler_wrapper: Optional[Callable[[Sampler], Sampler]] = None) -> DataLoader:
    """Build a DataLoader over ``data_source`` wrapped by ``dataset_wrapper`` (default ``DatasetWrapper``).

    ``drop_last`` follows Dassl (train loaders drop the last incomplete batch when there is at least
    one full batch). ``pin_memory`` when CUDA is used, persistent workers and prefetching when
    ``NUM_WORKERS > 0``. ``sampler_wrapper`` (optional) wraps the built sampler, e.g. to tag indices
    with the epoch (the PromptKD teacher-output cache). An empty loader raises an error explaining
    why, except for an evaluation shard of a DDP rank when the data set has fewer items than ranks.
    """
    if not data_source:
        raise ValueError(
            f"build_data_loader: the data source is empty (is_train={is_train}); check the dataset files under "
            f"DATASET.ROOT='{cfg.DATASET.ROOT}' for DATASET.NAME='{cfg.DATASET.NAME}'"
        )
    if batch_size <= 0:
        raise ValueError(f"build_data_loader: batch size must be positive, got {batch_size}")
    generator = _make_generator(cfg)
    sampler = build_sampler(sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size,
                            n_domain=n_domain, n_ins=n_ins, generator=generator)
    if sampler_wrapper is not None:
        sampler = sampler_wrapper(sampler)
    num_workers = int(cfg.DATALOADER.NUM_WORKERS)
    workers = dict(persistent_workers=True, prefetch_factor=2, worker_init_fn=seed_worker) if num_workers > 0 else {}
    loader = DataLoader(
        (dataset_wrapper or DatasetWrapper)(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=is_train and len(sampler) >= batch_size,
        pin_memory=bool(cfg.USE_CUDA) and torch.cuda.is_available(),
        generator=generator,
        **workers,
    )
    if len(loader) == 0 and not (dist.is_dist() and not is_train):
        raise ValueError(
            f"build_data_loader: the loader has no batches ({len(data_source)} items, {len(sampler)} on this rank, "
            f"batch size {batch_size}, is_train={is_train}); lower the batch size or add data"
        )
    return loader


class DataManager:
    """Build the dataset and its loaders from ``cfg`` (Dassl semantics).

    Attributes: ``dataset``, ``train_loader_x``, ``val_loader`` (None unless ``dataset.val`` is non-empty),
    ``test_loader``, ``num_classes``, ``lab2cname``, ``tfm_train``, ``tfm_test``. Dassl's ``train_loader_u``
    (unlabeled data, read by its ``TrainerXU`` only) is not built; the ``DATALOADER.TRAIN_U`` keys stay so
    that Dassl-style configs merge.
    ``dataset_builder`` / ``transform_builder`` (default: this engine's) let the Dassl backend build the
    dataset and transforms with Dassl's own functions while the loaders stay this engine's.
    """

    def __init__(self, cfg: Any, custom_tfm_train: Optional[Callable] = None,
                 custom_tfm_test: Optional[Callable] = None, dataset_wrapper: Optional[type] = None,
                 dataset_builder: Callable[[Any], Any] = build_dataset,
                 transform_builder: Callable[..., Any] = build_transform) -> None:
        dataset = dataset_builder(cfg)
        self.tfm_train = self._transform(cfg, transform_builder, custom_tfm_train, True)
        self.tfm_test = self._transform(cfg, transform_builder, custom_tfm_test, False)
        dl = cfg.DATALOADER

        def loader(data: Optional[List[Datum]], node: Any, is_train: bool, optional: bool = True) -> Any:
            if optional and not data:
                return None
            batching = dict(n_domain=node.N_DOMAIN, n_ins=node.N_INS) if is_train else {}
            return build_data_loader(cfg, sampler_type=node.SAMPLER, data_source=data, batch_size=node.BATCH_SIZE,
                                     tfm=self.tfm_train if is_train else self.tfm_test, is_train=is_train,
                                     dataset_wrapper=dataset_wrapper, **batching)

        self.train_loader_x = loader(dataset.train_x, dl.TRAIN_X, True, optional=False)  # empty: a named error
        self.val_loader = loader(dataset.val, dl.TEST, False)
        if not dataset.test:
            raise ValueError(f"Dataset '{cfg.DATASET.NAME}' has an empty test split; check its files under "
                             f"DATASET.ROOT='{cfg.DATASET.ROOT}'")
        self.test_loader = loader(dataset.test, dl.TEST, False, optional=False)
        self.dataset = dataset
        self.num_classes: int = dataset.num_classes
        self.lab2cname: Dict[int, str] = dataset.lab2cname
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @staticmethod
    def _transform(cfg: Any, builder: Callable[..., Any], custom: Optional[Callable], is_train: bool) -> Any:
        if custom is None:
            return builder(cfg, is_train=is_train)
        logger.info("* Using custom transform for %s", "training" if is_train else "testing")
        return custom

    def show_dataset_summary(self, cfg: Any) -> None:
        """Log a two-column summary table (dataset, domains, #classes, #train_x, #train_u, #val, #test)."""
        rows = [("Dataset", cfg.DATASET.NAME)]
        for label, domains in (("Source", cfg.DATASET.SOURCE_DOMAINS), ("Target", cfg.DATASET.TARGET_DOMAINS)):
            if domains:
                rows.append((label, str(list(domains))))
        rows.append(("# classes", f"{self.num_classes:,}"))
        for name in ("train_x", "train_u", "val", "test"):
            items = getattr(self.dataset, name)
            if items or name in ("train_x", "test"):
                rows.append((f"# {name}", f"{len(items):,}"))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        sep = f"{'-' * w0}  {'-' * w1}"
        logger.info("\n".join([sep] + [f"{a:<{w0}}  {b}" for a, b in rows] + [sep]))


class DatasetWrapper(Dataset):
    """Torch dataset over a list of ``Datum`` returning Dassl's batch dict.

    Keys: ``img`` (transformed tensor; with a list of transforms ``img``, ``img2``, ...; with
    ``K_TRANSFORMS > 1`` at train time each key holds a list of K views), ``label``, ``domain``,
    ``impath``, ``index`` and, when ``DATALOADER.RETURN_IMG0``, ``img0`` (resize + ToTensor
    [+ normalize], no augmentation). An unreadable image raises an error naming the file.
    ``DATALOADER.CACHE_IMAGES`` keeps every decoded image in memory after its first read (augmentations
    still run on every access, on a copy-free view: PIL transforms return new images).
    ``DATALOADER.REDUCED_JPEG_DECODE`` decodes JPEGs at the smallest DCT scale that still covers what the
    transforms produce (``min_size``; see :func:`engine.data.transforms.decode_size`).
    """

    def __init__(self, cfg: Any, data_source: Sequence[Datum],
                 transform: Optional[Union[Callable, List[Callable]]] = None, is_train: bool = False) -> None:
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        self._decoded: Optional[Dict[str, Any]] = {} if cfg.DATALOADER.get("CACHE_IMAGES", False) else None
        if self.k_tfm > 1 and transform is None:
            raise ValueError(f"DATALOADER.K_TRANSFORMS={self.k_tfm} needs a transform, but transform is None")
        to_tensor: List[Callable] = [T.Resize(tuple(cfg.INPUT.SIZE), interpolation=interpolation_mode(cfg)),
                                     T.ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(T.Normalize(mean=list(cfg.INPUT.PIXEL_MEAN), std=list(cfg.INPUT.PIXEL_STD)))
        self.to_tensor = T.Compose(to_tensor)
        # One output key per transform (img, img2, ...). Without a transform Dassl returns the PIL image,
        # which the default collate cannot batch; the resized tensor can.
        if transform is None:
            self._tfms: List[Callable] = [self.to_tensor]
        else:
            self._tfms = list(transform) if isinstance(transform, (list, tuple)) else [transform]
        self.min_size = self._decode_size(cfg)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        item = self.data_source[idx]
        output: Dict[str, Any] = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        img0 = self._read(item.impath)
        for i, tfm in enumerate(self._tfms):
            views = [tfm(img0) for _ in range(self.k_tfm)]
            output["img" if i == 0 else f"img{i + 1}"] = views[0] if len(views) == 1 else views
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _decode_size(self, cfg: Any) -> Optional[tuple]:
        """The (width, height) every consumer of the decoded image still gets its output from (the
        largest of their :func:`decode_size`), or None (decode in full) when one of them needs all pixels
        or ``DATALOADER.REDUCED_JPEG_DECODE`` is off."""
        if not cfg.DATALOADER.get("REDUCED_JPEG_DECODE", False):
            return None
        sizes = [decode_size(c) for c in self._tfms + ([self.to_tensor] if self.return_img0 else [])]
        if any(s is None for s in sizes):
            return None
        return (max(s[0] for s in sizes), max(s[1] for s in sizes))

    def _read(self, impath: str) -> Any:
        if self._decoded is None:
            return read_image(impath, self.min_size)
        img = self._decoded.get(impath)
        if img is None:
            img = self._decoded[impath] = read_image(impath, self.min_size)
        return img
