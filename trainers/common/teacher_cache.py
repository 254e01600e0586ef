"""Teacher-output cache for PromptKD (in the spirit of FKD, Shen & Xing, ECCV 2022).

PromptKD's teacher (ViT-L/14 image tower) costs about 5x the student's forward on every training
step. Its output depends only on the augmented image, so one run can **record**, for every
(training image, epoch), the augmentation parameters it drew and the teacher's logits over the
training classes; later student runs (other seeds, other student hyper-parameters, other student
backbones) **replay** those augmentations and logits and never build the teacher.

Config (``TRAINER.PROMPTKD.TEACHER_CACHE``)::

    MODE: off | record | replay
    DIR:  cache folder ("" -> <OUTPUT_DIR>/teacher_cache when recording; required for replay)

Folder layout (written to ``<DIR>.partial`` and renamed to ``<DIR>`` only when complete)::

    meta.json          format, dataset, training-set fingerprint, class names, epochs, augmentation
                       description, teacher identity, complete flag
    class_vectors.pt   the class vectors W of all classes used by the recording run
    aug.npy            int32 [E, N, 7]: crop_top, crop_left (random_crop), rrc_top, rrc_left, rrc_height,
                       rrc_width (random_resized_crop), flip; -1 where a transform is not used
    logits.npy         float16 [E, N, C]: teacher logits s_t * u_t W^T over the C training classes
    filled.npy         uint8 [E, N]: 1 once (epoch, image) is recorded

Storage: N * E * (2C + 29) bytes (docs/PERFORMANCE.md has the table per dataset).

Exactness: the recording run trains on the fp16-rounded logits it stores ("what is recorded is what
is used"), so a replay with the same seed and hyper-parameters reproduces its student exactly. Images
that a recording epoch did not draw (``drop_last`` remainder) are recorded at the end of that epoch with
fresh augmentations, so replays with other seeds (other data orders) find every (epoch, image).
Only augmentations whose randomness is a crop box and a flip are supported (random_resized_crop,
random_crop, random_flip); others raise an error naming them. Records are buffered on the device and
written every ``FLUSH_STEPS`` steps; under DDP each flush gathers the ranks' records as two tensors (no
per-step object gathers) and rank 0 writes the files; a DistributedSampler's padding duplicates keep the
last record. The undrawn images of an epoch are split over the ranks and loaded with a DataLoader
(DATALOADER.NUM_WORKERS workers); their augmentations come from a generator seeded by (SEED, epoch, image).
A recording killed mid-epoch loses its unwritten buffer; after the resume those images count as undrawn
and are recorded at the epoch end (fresh augmentations), so the cache is complete but, for them, is not
what the interrupted run trained on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import os.path as osp
import shutil
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset, Sampler
from yacs.config import CfgNode as CN

from engine import dist
from engine.api import INTERPOLATION_MODES, build_data_loader
from engine.data.transforms import InstanceNormalization
from engine.fileio import atomic_write_json
from engine.utils import read_image

from .class_vectors import ClassVectors, load_class_vectors, save_class_vectors
from .teacher import OnlineTeacher

logger = logging.getLogger(__name__)


MODES = ("off", "record", "replay")
FORMAT_NAME = "promptkd-teacher-cache"
FORMAT_VERSION = 1
AUG_FIELDS = ("crop_top", "crop_left", "rrc_top", "rrc_left", "rrc_height", "rrc_width", "flip")
SUPPORTED_TRANSFORMS = ("random_resized_crop", "random_crop", "random_flip", "center_crop", "normalize",
                        "instance_norm")
_KEY = "TRAINER.PROMPTKD.TEACHER_CACHE"
FLUSH_STEPS = 32  # recording: buffered steps per write (one tensor gather under DDP, not one per step)


def add_config(pk: CN) -> None:
    """Add ``TEACHER_CACHE`` (MODE, DIR) under the ``TRAINER.PROMPTKD`` node."""
    tc = CN()
    tc.MODE = "off"  # off | record (online teacher, writes the cache) | replay (no teacher, reads the cache)
    tc.DIR = ""  # cache folder; "" -> <OUTPUT_DIR>/teacher_cache when recording (replay needs it set)
    pk.TEACHER_CACHE = tc


def check_cfg(cfg: Any) -> None:
    """Validate the cache keys (mode name, DIR for replay, supported transforms, one view per image)."""
    tc = cfg.TRAINER.PROMPTKD.TEACHER_CACHE
    if tc.MODE == "off":
        return
    if tc.MODE not in MODES:
        raise ValueError(f"{_KEY}.MODE = {tc.MODE!r}; expected one of {list(MODES)}")
    if tc.MODE == "replay" and not tc.DIR:
        raise ValueError(f"{_KEY}.MODE replay needs {_KEY}.DIR: the folder written by a run with MODE record")
    unsupported = [t for t in cfg.INPUT.TRANSFORMS if t not in SUPPORTED_TRANSFORMS]
    if unsupported:
        raise ValueError(
            f"{_KEY}.MODE {tc.MODE}: INPUT.TRANSFORMS {unsupported} cannot be recorded (their randomness is not a "
            f"crop box / flip); the cache supports {list(SUPPORTED_TRANSFORMS)}. Remove them or set MODE off."
        )
    if cfg.INPUT.NO_TRANSFORM:
        raise ValueError(f"{_KEY}.MODE {tc.MODE} needs a transform (INPUT.NO_TRANSFORM is True)")
    if int(cfg.DATALOADER.K_TRANSFORMS) != 1:
        raise ValueError(f"{_KEY}.MODE {tc.MODE}: DATALOADER.K_TRANSFORMS must be 1 (one view per image), "
                         f"got {cfg.DATALOADER.K_TRANSFORMS}")


def cache_bytes(num_images: int, epochs: int, num_classes: int) -> int:
    """Size of a complete cache: logits fp16 (2C) + aug int32 (7 x 4) + filled flag (1) per (image, epoch)."""
    return int(num_images) * int(epochs) * (2 * int(num_classes) + 4 * len(AUG_FIELDS) + 1)


# ------------------------------------------------------------------------------------------------
# augmentation with explicit parameters
# ------------------------------------------------------------------------------------------------
class ReplayableAugment:
    """The training transform of ``engine.data.transforms`` for the crop/flip subset, with its random
    choices drawn (:meth:`sample`, torch RNG, as torchvision does) and applied (:meth:`apply`) separately.

    Order as in ``build_transform``: resize (only without random crops) -> random_crop (padding
    INPUT.CROP_PADDING) -> random_resized_crop (INPUT.RRCROP_SCALE, ratio 3/4..4/3) -> random_flip ->
    ToTensor -> normalize -> instance_norm.
    """

    RATIO = (3.0 / 4.0, 4.0 / 3.0)

    def __init__(self, cfg: Any) -> None:
        choices = list(cfg.INPUT.TRANSFORMS)  # check_cfg allows only SUPPORTED_TRANSFORMS
        self.size = tuple(int(s) for s in cfg.INPUT.SIZE)
        self.interpolation = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        self.padding = int(cfg.INPUT.CROP_PADDING)
        self.scale = [float(s) for s in cfg.INPUT.RRCROP_SCALE]
        self.random_crop, self.random_resized_crop, self.random_flip = (
            t in choices for t in ("random_crop", "random_resized_crop", "random_flip"))
        mean, std = [float(m) for m in cfg.INPUT.PIXEL_MEAN], [float(s) for s in cfg.INPUT.PIXEL_STD]
        post = [T.ToTensor()]
        if "normalize" in choices:
            post.append(T.Normalize(mean=mean, std=std))
        if "instance_norm" in choices:
            post.append(InstanceNormalization())
        self.post = T.Compose(post)
        #: everything that determines the image produced from (file, parameters); stored in meta.json
        self.description = {
            "size": list(self.size), "interpolation": cfg.INPUT.INTERPOLATION, "random_crop": self.random_crop,
            "crop_padding": self.padding, "random_resized_crop": self.random_resized_crop, "rrcrop_scale": self.scale,
            "ratio": list(self.RATIO), "random_flip": self.random_flip, "normalize": "normalize" in choices,
            "pixel_mean": mean, "pixel_std": std, "instance_norm": "instance_norm" in choices}

    def _padded(self, img):
        return TF.pad(img, self.padding) if self.padding > 0 else img

    def sample(self, img) -> np.ndarray:
        """Draw the parameters for one PIL image: int32 [7] in :data:`AUG_FIELDS` order (-1 = unused)."""
        params = np.full(len(AUG_FIELDS), -1, dtype=np.int32)
        if self.random_crop:
            padded = self._padded(img)
            w, h = TF.get_image_size(padded)
            if h < self.size[0] or w < self.size[1]:
                raise ValueError(f"random_crop: image {w}x{h} (after padding) is smaller than INPUT.SIZE {self.size}")
            top, left, _, _ = T.RandomCrop.get_params(padded, self.size)
            params[0], params[1] = top, left
            img = TF.crop(padded, top, left, self.size[0], self.size[1])
        if self.random_resized_crop:
            params[2:6] = T.RandomResizedCrop.get_params(img, self.scale, list(self.RATIO))
        if self.random_flip:
            params[6] = int(torch.rand(1).item() < 0.5)
        return params

    def apply(self, img, params: np.ndarray) -> torch.Tensor:
        """The augmented tensor of ``img`` for ``params`` (deterministic)."""
        if self.random_crop:
            img = TF.crop(self._padded(img), int(params[0]), int(params[1]), self.size[0], self.size[1])
        if self.random_resized_crop:
            top, left, height, width = (int(v) for v in params[2:6])
            img = TF.resized_crop(img, top, left, height, width, list(self.size), self.interpolation, antialias=True)
        elif not self.random_crop:
            img = TF.resize(img, list(self.size), self.interpolation, antialias=True)
        if self.random_flip and int(params[6]) == 1:
            img = TF.hflip(img)
        return self.post(img)

    def __call__(self, img) -> torch.Tensor:
        return self.apply(img, self.sample(img))


class EpochTaggedSampler(Sampler):
    """Wraps a sampler so that it yields ``(epoch, index)``: the dataset (possibly in persistent worker
    processes) learns which epoch's augmentation to replay. ``set_epoch`` is forwarded (DistributedSampler)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch = self.epoch
        for index in self.sampler:
            yield epoch, int(index)

    def __len__(self) -> int:
        return len(self.sampler)


class CachedAugDataset(Dataset):
    """Training dataset of the cache modes: ``dataset[(epoch, index)]`` -> Dassl batch dict plus
    ``epoch`` and ``aug`` (int32 [7]). Record: parameters are drawn; replay: read from ``aug.npy``."""

    def __init__(self, cfg: Any, data_source: Sequence[Any], transform: Optional[ReplayableAugment] = None,
                 is_train: bool = True, mode: str = "record", aug_path: Optional[str] = None) -> None:
        self.data_source = data_source
        self.augment = transform if transform is not None else ReplayableAugment(cfg)
        self.mode = mode
        self.aug_path = aug_path
        self._aug: Optional[np.ndarray] = None  # opened lazily (memory map; one per worker process)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, key: Tuple[int, ...]) -> Dict[str, Any]:
        """``key``: ``(epoch, index)`` from :class:`EpochTaggedSampler`, or ``(epoch, index, seed)`` for an image a
        recording epoch did not draw: its fresh parameters come from a generator seeded by (seed, epoch, index), so
        the record does not depend on the number of ranks, the split between them or the loader's workers."""
        if len(key) == 3:
            epoch, index, seed = key
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed((seed * 1000003 + epoch) * 1000003 + index)
                return self[(epoch, index)]
        epoch, index = int(key[0]), int(key[1])
        item = self.data_source[index]
        img = read_image(item.impath)
        if self.mode == "record":
            params = self.augment.sample(img)
        else:
            if self._aug is None:
                self._aug = np.load(self.aug_path, mmap_mode="r")
            params = np.array(self._aug[epoch, index], dtype=np.int32)  # start() checked the epoch count
        return {"img": self.augment.apply(img, params), "label": item.label, "domain": item.domain,
                "impath": item.impath, "index": index, "epoch": epoch, "aug": torch.from_numpy(params)}


# ------------------------------------------------------------------------------------------------
# the cache
# ------------------------------------------------------------------------------------------------
def _fingerprint(items: Sequence[Any], root: str) -> str:
    """sha256 of the training items' paths (relative to DATASET.ROOT) in order: indices mean the same images."""
    h = hashlib.sha256()
    root = osp.abspath(root) if root else ""
    for d in items:
        path = osp.abspath(d.impath)
        rel = osp.relpath(path, root) if root and path.startswith(root + os.sep) else path
        h.update(rel.replace(os.sep, "/").encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _read_meta(directory: str) -> Dict[str, Any]:
    path = osp.join(directory, "meta.json")
    if not osp.isfile(path):
        raise FileNotFoundError(
            f"Teacher cache {directory}: no meta.json. Record it first with {_KEY}.MODE record "
            f"(and {_KEY}.DIR {directory}); a folder ending in .partial is an unfinished recording."
        )
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a teacher cache of format {FORMAT_NAME!r} version {FORMAT_VERSION}")
    return meta


class TeacherOutputCache(OnlineTeacher):
    """The teacher of a :class:`trainers.promptkd.PromptKDStudent` run that records (online teacher, outputs
    written) or replays (no teacher: class vectors, augmentations and logits read) its outputs."""

    def __init__(self, trainer: Any, mode: str, directory: str, expected: Dict[str, Any]) -> None:
        super().__init__(trainer.cfg, trainer.device, trainer.prec, trainer.autocast)
        self.mode = mode
        self.directory = directory
        self.expected = expected  # dataset, fingerprint, num_images, train classnames, augment
        self._logits = self._aug = self._filled = None  # the arrays (memory maps), opened by start()
        self.dataset: Optional[CachedAugDataset] = None  # record: draws the undrawn images' augmentations
        self.trainer: Any = None
        self._pending: List[Tuple[torch.Tensor, torch.Tensor]] = []  # records not yet written: (int rows, logits)
        self.meta: Dict[str, Any] = _read_meta(directory) if mode == "replay" else {}
        if mode == "replay":
            self._check_compatible()

    @property
    def write_dir(self) -> str:
        return self.directory + ".partial" if self.mode == "record" else self.directory

    def _path(self, name: str) -> str:
        return osp.join(self.write_dir, name)

    def _check_compatible(self) -> None:
        meta, exp = self.meta, self.expected
        if not meta.get("complete"):
            raise ValueError(f"Teacher cache {self.directory} is incomplete (the recording run did not finish)")
        problems = []
        if meta["dataset"] != exp["dataset"]:
            problems.append(f"dataset {meta['dataset']!r} vs this run's {exp['dataset']!r}")
        if meta["num_images"] != exp["num_images"] or meta["fingerprint"] != exp["fingerprint"]:
            problems.append(f"training set ({meta['num_images']} images, fingerprint {meta['fingerprint'][:12]}) vs "
                            f"this run's ({exp['num_images']} images, {exp['fingerprint'][:12]}); a few-shot sample "
                            "of another seed, another DATASET.ROOT layout or other NUM_SHOTS/SUBSAMPLE settings")
        if meta["train_classnames"] != exp["train_classnames"]:
            problems.append("training class names differ")
        if meta["augment"] != exp["augment"]:
            diff = {k: (meta["augment"].get(k), v) for k, v in exp["augment"].items() if meta["augment"].get(k) != v}
            problems.append(f"augmentation settings differ (recorded, this run): {diff}")
        if problems:
            raise ValueError(f"Teacher cache {self.directory} does not match this run: " + "; ".join(problems)
                             + f". Record a new cache ({_KEY}.MODE record) for these settings.")

    def class_vectors(self, classnames: Sequence[str]) -> ClassVectors:
        """Replay: the class vectors W the recording run used (no teacher, no text encoder)."""
        if self.mode == "record":
            return super().class_vectors(classnames)
        cv = load_class_vectors(osp.join(self.directory, "class_vectors.pt"), expected_classnames=classnames)
        logger.info("Teacher cache %s: class vectors of %d classes (teacher %s), teacher not built",
                    self.directory, len(cv), cv.teacher.get("model"))
        return cv

    def start(self, trainer: Any) -> None:
        """Before training: open (replay) or create / reopen (record, after building the online teacher) the arrays."""
        self.trainer, epochs = trainer, int(trainer.max_epoch)
        if self.mode == "replay":
            if epochs > int(self.meta["epochs"]):
                raise ValueError(f"Teacher cache {self.directory} holds {self.meta['epochs']} epochs but OPTIM.MAX_EPOCH "
                                 f"is {epochs}; record a cache with at least {epochs} epochs")
            self._logits = np.load(self._path("logits.npy"), mmap_mode="r")
            self._filled = np.load(self._path("filled.npy"), mmap_mode="r")
            logger.info("Teacher cache: replaying %s (%d epochs x %d images x %d classes, recorded with seed %s)",
                        self.directory, self.meta["epochs"], self.meta["num_images"],
                        len(self.meta["train_classnames"]), self.meta.get("seed"))
            return
        super().start(trainer)
        if dist.is_main_process():
            self._open_recording(trainer, epochs)

    def _open_recording(self, trainer: Any, epochs: int) -> None:
        if osp.exists(self.directory):
            raise FileExistsError(f"Teacher cache {self.directory} already exists; replay it ({_KEY}.MODE replay) or "
                                  "delete it to record again")
        n, c = self.expected["num_images"], len(self.expected["train_classnames"])
        cv = trainer.class_vectors
        self.meta = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "complete": False, **self.expected,
            "epochs": epochs, "aug_fields": list(AUG_FIELDS), "logits_dtype": "float16",
            "teacher": dict(cv.teacher), "teacher_logit_scale": float(self.logit_scale),
            "seed": int(trainer.cfg.SEED), "bytes": cache_bytes(n, epochs, c),
        }
        resumable = False
        if osp.isdir(self.write_dir) and trainer.start_epoch > 0:
            try:
                old = _read_meta(self.write_dir)
                resumable = {k: old.get(k) for k in self.expected} == self.expected and old.get("epochs") == epochs
            except (FileNotFoundError, ValueError):
                resumable = False
        if resumable:
            logger.info("Teacher cache: resuming the recording in %s at epoch %d", self.write_dir, trainer.start_epoch + 1)
            self._logits, self._aug, self._filled = (np.load(self._path(f"{a}.npy"), mmap_mode="r+")
                                                     for a in ("logits", "aug", "filled"))
            return
        if osp.isdir(self.write_dir):
            shutil.rmtree(self.write_dir)
        os.makedirs(self.write_dir)
        save_class_vectors(self._path("class_vectors.pt"), cv.features, cv.classnames, cv.teacher, cv.logit_scale)
        atomic_write_json(self._path("meta.json"), self.meta)
        logger.info("Teacher cache: recording %d epochs x %d images x %d classes to %s (%.1f MiB)",
                    epochs, n, c, self.directory, self.meta["bytes"] / 2**20)
        open_memmap = np.lib.format.open_memmap
        self._logits = open_memmap(self._path("logits.npy"), mode="w+", dtype=np.float16, shape=(epochs, n, c))
        self._aug = open_memmap(self._path("aug.npy"), mode="w+", dtype=np.int32, shape=(epochs, n, len(AUG_FIELDS)))
        self._aug[:] = -1
        self._filled = open_memmap(self._path("filled.npy"), mode="w+", dtype=np.uint8, shape=(epochs, n))

    def logits(self, images: torch.Tensor, class_weights: torch.Tensor,
               batch: Optional[Dict[str, Any]] = None) -> torch.Tensor:
        """Teacher logits [B, C] fp32 for a training batch of the cache loader (record: computed online, rounded
        to fp16 and stored; replay: read). Without a batch: the online teacher's logits."""
        if batch is None:
            return super().logits(images, class_weights)
        for key in ("index", "epoch", "aug"):
            if key not in batch:
                raise KeyError(f"Teacher cache: the training batch has no {key!r}; it must come from the cache loader")
        epoch, index = self.trainer.epoch, batch["index"].cpu().numpy().astype(np.int64)
        if (batch["epoch"].cpu().numpy() != epoch).any():
            raise RuntimeError(f"Teacher cache: batch tagged with epochs {sorted(set(batch['epoch'].tolist()))} during "
                               f"epoch {epoch}; the loader's sampler epoch is out of sync")
        if self.mode == "replay":
            if not np.all(self._filled[epoch, index]):
                missing = index[np.asarray(self._filled[epoch, index]) == 0]
                raise ValueError(f"Teacher cache {self.directory}: no record for epoch {epoch + 1}, images "
                                 f"{missing[:5].tolist()}; the recording is incomplete")
            return torch.from_numpy(np.asarray(self._logits[epoch, index], dtype=np.float32)).to(images.device)
        logits = super().logits(images, class_weights).half()
        self._record(getattr(self.trainer, "batch_idx", 0), batch, logits)
        if len(self._pending) >= FLUSH_STEPS:
            self._flush(epoch)
        return logits.float()

    def _record(self, step: int, batch: Dict[str, Any], logits: torch.Tensor) -> None:
        """Buffer the records of one batch: int64 rows (step, image index, aug) and the fp16 logits."""
        index = batch["index"].to(torch.int64).view(-1, 1)
        aug = batch["aug"].to(torch.int64).view(len(index), -1)
        self._pending.append((torch.cat([torch.full_like(index, step), index, aug], dim=1), logits))

    def _flush(self, epoch: int) -> None:
        """Write the buffered records of this rank (and, under DDP, of every rank: two tensor gathers, called
        by every rank at the same steps) into the arrays on rank 0. Records are applied in (step, rank)
        order, so a DistributedSampler's padding duplicate keeps the last record, as a per-step write would."""
        pending, self._pending = self._pending, []
        pending = pending or [(torch.zeros((0, 2 + len(AUG_FIELDS)), dtype=torch.int64),
                               torch.zeros((0, len(self.expected["train_classnames"])), dtype=torch.float16))]
        ints, logits = torch.cat([p[0] for p in pending]), torch.cat([p[1] for p in pending])
        all_ints = dist.all_gather_tensors(ints.to(logits.device))
        all_logits = dist.all_gather_tensors(logits)
        if not dist.is_main_process():
            return
        ints_np = np.concatenate([t.cpu().numpy() for t in all_ints])
        logits_np = np.concatenate([t.cpu().numpy() for t in all_logits])
        for row in np.argsort(ints_np[:, 0], kind="stable"):  # by step; rank order kept within a step
            idx = int(ints_np[row, 1])
            self._logits[epoch, idx] = logits_np[row]
            self._aug[epoch, idx] = ints_np[row, 2:].astype(np.int32)
            self._filled[epoch, idx] = 1

    @torch.no_grad()
    def end_epoch(self, trainer: Any) -> None:
        """Record: flush, add the images this epoch did not draw (split over the ranks, each with a loader),
        flush again, and finalise after the last epoch."""
        if self.mode != "record":
            return
        epoch = trainer.epoch
        self._flush(epoch)
        missing = np.flatnonzero(np.asarray(self._filled[epoch]) == 0) if dist.is_main_process() else None
        if dist.is_dist():
            missing = dist.all_gather_object(missing)[0]  # once per epoch: rank 0's list of undrawn images
        mine = missing[dist.get_rank()::dist.get_world_size()]
        if len(missing):
            logger.info("Teacher cache: recording %d image(s) not drawn in epoch %d (%d on this rank)",
                        len(missing), epoch + 1, len(mine))
        keys = [(epoch, int(i), int(trainer.cfg.SEED)) for i in mine]
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=max(1, int(trainer.cfg.DATALOADER.TEST.BATCH_SIZE)), sampler=keys,
            num_workers=int(trainer.cfg.DATALOADER.NUM_WORKERS),
            pin_memory=torch.device(trainer.device).type == "cuda")
        batches = iter(loader)
        steps = -(-len(missing) // (loader.batch_size * dist.get_world_size()))  # equal count on every rank
        for step in range(steps):
            batch = next(batches, None)
            if batch is not None:
                images = batch["img"].to(trainer.device, non_blocking=True)
                logits = super().logits(images, trainer.teacher_class_weights).half()
                self._record(trainer.num_batches + step, batch, logits)
            self._flush(epoch)  # collective: every rank calls it the same number of times
        if dist.is_main_process():
            for arr in (self._logits, self._aug, self._filled):
                arr.flush()
            if epoch + 1 == trainer.max_epoch:
                self._finalise()
        dist.barrier()

    def _finalise(self) -> None:
        if not np.all(np.asarray(self._filled)):
            epochs = sorted(set(np.nonzero(np.asarray(self._filled) == 0)[0].tolist()))
            raise RuntimeError(f"Teacher cache {self.write_dir}: epochs {[e + 1 for e in epochs]} are not recorded "
                               "(the run was resumed from a later epoch than the recording?)")
        self.meta["complete"] = True
        atomic_write_json(self._path("meta.json"), self.meta)
        self._logits = self._aug = self._filled = None
        os.replace(self.write_dir, self.directory)
        logger.info("Teacher cache complete: %s (%.1f MiB)", self.directory, self.meta["bytes"] / 2**20)


def distillation_teacher(trainer: Any) -> OnlineTeacher:
    """The teacher a PromptKD student distils from: :class:`OnlineTeacher` (``TEACHER_CACHE.MODE off``) or, for
    record / replay, a :class:`TeacherOutputCache`, whose training loader (over :class:`CachedAugDataset` with an
    :class:`EpochTaggedSampler`) replaces ``trainer.train_loader_x``."""
    cfg = trainer.cfg
    tc = cfg.TRAINER.PROMPTKD.TEACHER_CACHE
    if tc.MODE == "off":
        return OnlineTeacher(cfg, trainer.device, trainer.prec, trainer.autocast)
    check_cfg(cfg)
    directory = osp.abspath(osp.expanduser(tc.DIR or osp.join(cfg.OUTPUT_DIR, "teacher_cache")))
    train_x = trainer.dm.dataset.train_x
    augment = ReplayableAugment(cfg)
    expected = {"dataset": cfg.DATASET.NAME, "num_images": len(train_x),
                "fingerprint": _fingerprint(train_x, cfg.DATASET.ROOT),
                "train_classnames": list(trainer.dm.dataset.classnames), "augment": augment.description}
    cache = TeacherOutputCache(trainer, tc.MODE, directory, expected)
    aug_path = osp.join(directory, "aug.npy") if tc.MODE == "replay" else None
    wrapper = functools.partial(CachedAugDataset, mode=tc.MODE, aug_path=aug_path)
    dl = cfg.DATALOADER
    trainer.train_loader_x = build_data_loader(
        cfg, sampler_type=dl.TRAIN_X.SAMPLER, data_source=train_x, batch_size=dl.TRAIN_X.BATCH_SIZE,
        n_domain=dl.TRAIN_X.N_DOMAIN, n_ins=dl.TRAIN_X.N_INS, tfm=augment, is_train=True,
        dataset_wrapper=wrapper, sampler_wrapper=EpochTaggedSampler,
    )
    cache.dataset = CachedAugDataset(cfg, train_x, augment, mode="record") if tc.MODE == "record" else None
    logger.info("Teacher cache mode %s: %s", tc.MODE, directory)
    return cache
