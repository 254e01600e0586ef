"""Write the target domain to disk in CoOp's layout (read back by ``datasets/proving_ground.py``).

Layout under a dataset root ``<ROOT>``::

    <ROOT>/proving_ground/images/<colour>_<shape>/<split>_<index>.png
    <ROOT>/proving_ground/split_zhou_ProvingGround.json
    <ROOT>/proving_ground/world.json

Every split is class-balanced and rendered from its own seed (``train``, ``val``, ``test``), so the
test split equals the target set that ``tools/build_proving_ground.py`` reports zero-shot accuracy
on. The folder is assembled under a temporary name and moved into place with one ``os.replace``: a
dataset folder that exists is complete.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from PIL import Image

from . import world as W
from .cache import PathLike, cache_root, read_json
from .world_config import config_digest

logger = logging.getLogger(__name__)

DATASET_DIR = "proving_ground"
SPLIT_FILE = "split_zhou_ProvingGround.json"
WORLD_FILE = "world.json"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetConfig:
    """Images per class in each split of the on-disk target-domain dataset."""

    train_per_class: int = 80
    val_per_class: int = 20
    test_per_class: int = 40

    def __post_init__(self) -> None:
        for split in SPLITS:
            n = getattr(self, f"{split}_per_class")
            if n < 1:
                raise ValueError(f"dataset config: {split}_per_class must be >= 1, got {n}")

    def per_class(self, split: str) -> int:
        return getattr(self, f"{split}_per_class")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def data_digest(world: W.WorldConfig, data: DatasetConfig) -> str:
    """Hash of what determines the dataset's files."""
    return config_digest({"world": world.to_dict(), "data": data.to_dict()})


def default_data_root(world: W.WorldConfig, data: DatasetConfig, root: Optional[PathLike] = None) -> Path:
    """``<cache root>/data/<digest>``: the DATASET.ROOT of this world and split sizes."""
    return cache_root(root) / "data" / data_digest(world, data)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode one uint8 ``[H, W, 3]`` image as PNG (deterministic for a given Pillow/zlib)."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _write_tree(world: W.WorldConfig, data: DatasetConfig, out: Path) -> Dict[str, list]:
    classes = W.class_list(world)
    image_dir = out / "images"
    for ci in classes:
        (image_dir / ci.folder).mkdir(parents=True, exist_ok=True)
    split: Dict[str, list] = {}
    for name in SPLITS:
        images, labels = W.generate_balanced(world, "target", name, data.per_class(name))
        entries = []
        counters = np.zeros(len(classes), dtype=np.int64)
        for img, lab in zip(images, labels):
            ci = classes[int(lab)]
            rel = f"{ci.folder}/{name}_{counters[lab]:05d}.png"
            counters[lab] += 1
            with open(image_dir / rel, "wb") as f:
                f.write(png_bytes(img))
            entries.append([rel, ci.label, ci.name])
        split[name] = entries
    return split


def is_complete(dataset_dir: PathLike, world: W.WorldConfig, data: DatasetConfig) -> bool:
    """True when ``dataset_dir`` holds the dataset of exactly this world and split sizes.

    Raises ``ValueError`` when it holds the dataset of a *different* configuration (never reused).
    """
    dataset_dir = Path(dataset_dir)
    meta_path = dataset_dir / WORLD_FILE
    if not dataset_dir.exists():
        return False
    if not meta_path.is_file() or not (dataset_dir / SPLIT_FILE).is_file():
        raise ValueError(
            f"{dataset_dir} exists but lacks {WORLD_FILE} or {SPLIT_FILE}: it is not a complete proving-ground "
            "dataset; delete it or choose another root"
        )
    meta = read_json(meta_path, "proving-ground world file")
    want = data_digest(world, data)
    if meta.get("digest") != want:
        raise ValueError(
            f"{dataset_dir} holds a proving-ground dataset of another configuration (digest {meta.get('digest')!r}, "
            f"wanted {want!r}); use another root (the default root is keyed by the digest) or pass overwrite=True / --force"
        )
    return True


def write_dataset(
    world: W.WorldConfig, data: DatasetConfig, root: PathLike, overwrite: bool = False, name: Optional[str] = None
) -> Path:
    """Render the target domain into ``<root>/proving_ground`` (cached: reused when complete).

    Returns the dataset folder. ``root`` is what ``DATASET.ROOT`` / ``--root`` must point to. ``name``: the
    dataset's name in results (``world.json`` "name"; default ``ProvingGround``), e.g. the protocol datasets of
    :mod:`proving_ground.protocols`.
    """
    root = Path(root)
    final = root / DATASET_DIR
    if final.exists() and overwrite:
        trash = Path(tempfile.mkdtemp(prefix=".proving_ground.old-", dir=root))
        os.replace(final, trash / DATASET_DIR)
        shutil.rmtree(trash)
    if is_complete(final, world, data):
        logger.info("Proving-ground dataset found at %s (reused)", final)
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".proving_ground.tmp-", dir=root))
    try:
        split = _write_tree(world, data, tmp)
        with open(tmp / SPLIT_FILE, "w") as f:
            json.dump(split, f)
        meta = {
            "digest": data_digest(world, data),
            "world": world.to_dict(),
            "data": data.to_dict(),
            "classnames": W.classnames(world),
            "num_base": sum(ci.base for ci in W.class_list(world)),
            "held_out": [ci.name for ci in W.class_list(world) if ci.held_out],
        }
        if name:
            meta["name"] = name
        with open(tmp / WORLD_FILE, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        try:
            os.replace(tmp, final)
        except OSError:
            # another process finished the same dataset first: keep its copy if it is the same
            if not is_complete(final, world, data):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Wrote the proving-ground dataset to %s", final)
    return final
