"""The proving ground's other protocols: cross-dataset transfer and domain generalisation (paper Tables 2 and 9).

The base-to-novel dataset (``ProvingGround``) is one world. These protocols need a *source* dataset with its own
classes, on which the teacher and the baselines are trained, and *target* datasets the students meet afterwards:

- **cross-dataset** (Table 2 analogue): targets whose class sets are disjoint from the source's. The source
  holds the first half of the world's colours x every shape; each target holds the other colours x half of the
  shapes (so no target class is a source class, and the two targets share no class either). Target A keeps the
  source's image style; target B is also rendered in the faded style below (another "dataset", other pictures).
- **domain generalisation** (Table 9 analogue): the source's classes rendered in shifted styles:

  ======  ====================  ==================================================================
  name    ImageNet analogue     what changes (everything else as the source)
  ======  ====================  ==================================================================
  DG-V2   ImageNet-V2           nothing: a fresh draw (another world seed) of the source's distribution
  DG-F    ImageNet-Sketch       faded: contrast 0.35-0.55, colour cast +-15%, image brightness 0.8-1.2
  DG-C    ImageNet-A            hard views: small (0.3-0.5), rotated +-60 deg, noisy, busy backgrounds
  DG-R    ImageNet-R            renditions: striped / checkered fills only, saturated tinted backgrounds
  ======  ====================  ==================================================================

Every dataset is the *target* domain of a :class:`~proving_ground.world_config.WorldConfig` derived from the
build's world (same image size, colours and shapes drawn from it), written in CoOp's layout by
:func:`proving_ground.dataset.write_dataset` under its own data root (so the registered dataset
``ProvingGround`` reads every one of them; its ``world.json`` carries the display name used in results).
The pre-trained tiny CLIPs are the base-to-novel build's: they know every colour and shape word.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .cache import PathLike
from .dataset import WORLD_FILE, DatasetConfig, default_data_root, write_dataset
from .world_config import DomainConfig, WorldConfig

SOURCE = "PG-Source"
CROSS_TARGETS = ("PG-XD-A", "PG-XD-B")
DG_TARGETS = ("DG-V2", "DG-F", "DG-C", "DG-R")

#: Images per class of every protocol dataset: 64 unlabeled training images per class (the paper's ablation
#: budget per class), 8 validation images (the few-shot draw takes at most 4), 40 test images (the demo's).
PROTOCOL_DATA = DatasetConfig(train_per_class=64, val_per_class=8, test_per_class=40)


@dataclass(frozen=True)
class ProtocolDataset:
    """One dataset of the cross-dataset / DG protocols: display name, role and the world that renders it."""

    name: str
    role: str  # "source" | "cross" | "dg"
    world: WorldConfig
    data: DatasetConfig


def faded(dom: DomainConfig) -> DomainConfig:
    """Less colour information, like a sketch: low contrast, strong colour cast, uneven brightness."""
    return dataclasses.replace(dom, contrast=(0.35, 0.55), colour_cast=0.15, global_brightness=(0.8, 1.2))


def hard_views(dom: DomainConfig) -> DomainConfig:
    """Hard views: small, strongly rotated objects, more pixel noise, high-contrast patterned backgrounds."""
    return dataclasses.replace(dom, scale=(0.3, 0.5), max_rotation_deg=60.0, noise_std=(0.05, 0.1),
                               background_contrast=(0.25, 0.45))


def renditions(dom: DomainConfig) -> DomainConfig:
    """Renditions: patterned fills only, plain / gradient backgrounds in saturated tints."""
    return dataclasses.replace(dom, textures=(("striped", 0.5), ("checkered", 0.5)),
                               backgrounds=(("plain", 0.5), ("gradient", 0.5)), background_tint=0.45)


def protocol_datasets(world: WorldConfig, data: DatasetConfig = PROTOCOL_DATA) -> List[ProtocolDataset]:
    """The source, the cross-dataset targets and the DG targets derived from ``world`` (needs >= 4 colours and
    >= 4 shapes: the source takes half of the colours, each cross target half of the shapes)."""
    colours, shapes = world.colours, world.shapes
    if len(colours) < 4 or len(shapes) < 4:
        raise ValueError(f"the cross-dataset / DG protocols need a world of at least 4 colours and 4 shapes, got "
                         f"{len(colours)} x {len(shapes)} (presets 'default' and 'reduced' have them)")
    half_c, half_s = len(colours) // 2, len(shapes) // 2
    source = dataclasses.replace(world, seed=world.seed + 100, colours=colours[:half_c], holdout=False)
    rest = dict(seed=world.seed + 101, colours=colours[half_c:], holdout=False)
    out = [ProtocolDataset(SOURCE, "source", source, data),
           ProtocolDataset(CROSS_TARGETS[0], "cross", dataclasses.replace(world, shapes=shapes[:half_s], **rest), data),
           ProtocolDataset(CROSS_TARGETS[1], "cross", dataclasses.replace(
               world, shapes=shapes[half_s:], target=faded(world.target), **{**rest, "seed": world.seed + 102}), data)]
    styles = (None, faded, hard_views, renditions)
    for i, (name, style) in enumerate(zip(DG_TARGETS, styles)):
        target = source.target if style is None else style(source.target)
        out.append(ProtocolDataset(name, "dg", dataclasses.replace(source, seed=world.seed + 110 + i, target=target),
                                   data))
    return out


def write_protocol_datasets(world: WorldConfig, cache_dir: Optional[PathLike] = None,
                            data: DatasetConfig = PROTOCOL_DATA) -> Dict[str, Path]:
    """Render every protocol dataset (cached under ``<cache>/data/<digest>``); returns name -> data root
    (the ``--root`` of its runs)."""
    roots = {}
    for ds in protocol_datasets(world, data):
        root = default_data_root(ds.world, ds.data, cache_dir)
        write_dataset(ds.world, ds.data, root, name=ds.name)
        roots[ds.name] = root
    return roots


def world_of(dataset_dir: PathLike) -> WorldConfig:
    """The world that rendered a proving-ground dataset folder (its ``world.json``)."""
    path = Path(dataset_dir) / WORLD_FILE
    with open(path, "r", encoding="utf-8") as f:
        meta = json.load(f)
    if "world" not in meta:
        raise ValueError(f"{path}: no 'world' key; rebuild the proving ground with tools/build_proving_ground.py")
    return WorldConfig.from_dict(meta["world"])
