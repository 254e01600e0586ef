"""A small real-image custom dataset: Fashion-MNIST-like 28x28 grayscale PNG files written from an image array.

Each class is a garment silhouette (a filled shape whose size and position depend on the class) with
per-image jitter, brightness and noise, so every file is a distinct, decodable image. Two on-disk layouts
of ``ImageFolderCustom`` (DATASETS.md, "Custom datasets"):

- folder mode: ``<root>/images/<class_folder>/<n>.png`` (folder names use ``_`` for spaces);
- CSV mode: ``<root>/images/<n>.png``, ``<root>/data.csv`` (``path,label,split``; labels as index or name)
  and ``<root>/classnames.txt``.
"""

from __future__ import annotations

import csv
import os
from typing import List, Sequence

import numpy as np
from PIL import Image

__all__ = ["GARMENTS", "garment_images", "make_garment_folder_root", "make_garment_csv_root"]

GARMENTS: List[str] = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                       "ankle boot"]


def garment_images(n_classes: int, per_class: int, seed: int = 0) -> np.ndarray:
    """uint8 array [n_classes, per_class, 28, 28]: class-dependent silhouettes with jitter and noise."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_classes, per_class, 28, 28), dtype=np.uint8)
    yy, xx = np.mgrid[0:28, 0:28]
    for c in range(n_classes):
        half_w, half_h = 3 + (c % 5) * 2, 12 - (c % 4) * 2
        for i in range(per_class):
            cy, cx = 14 + rng.integers(-2, 3), 14 + rng.integers(-2, 3)
            shape = (np.abs(xx - cx) <= half_w) & (np.abs(yy - cy) <= half_h)
            if c % 2:  # odd classes: a gap in the middle (legs, straps)
                shape &= np.abs(xx - cx) >= 1 + c // 4
            img = shape * rng.uniform(140, 230) + rng.normal(0, 18, (28, 28))
            out[c, i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _write(array: np.ndarray, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, mode="L").save(path)


def make_garment_folder_root(root: str, n_classes: int = 6, per_class: int = 12, seed: int = 0) -> str:
    """Folder mode: ``<root>/images/<garment>/<n>.png`` (the generated 50/20/30 split applies)."""
    images = garment_images(n_classes, per_class, seed)
    for c in range(n_classes):
        folder = GARMENTS[c].replace(" ", "_")
        for i in range(per_class):
            _write(images[c, i], os.path.join(root, "images", folder, f"{i:03d}.png"))
    return root


def make_garment_csv_root(root: str, n_classes: int = 6, per_class: int = 12, seed: int = 1,
                          splits: Sequence[str] = ("train",) * 6 + ("val",) * 2 + ("test",) * 4) -> str:
    """CSV mode: ``images/<n>.png``, ``data.csv`` (path,label,split) and ``classnames.txt``."""
    images = garment_images(n_classes, per_class, seed)
    rows = []
    for c in range(n_classes):
        for i in range(per_class):
            rel = f"{c * per_class + i:05d}.png"
            _write(images[c, i], os.path.join(root, "images", rel))
            label = GARMENTS[c] if i % 2 else str(c)  # both label forms: name and index
            rows.append((rel, label, splits[i % len(splits)]))
    with open(os.path.join(root, "data.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)
    with open(os.path.join(root, "classnames.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(GARMENTS[:n_classes]) + "\n")
    return root
