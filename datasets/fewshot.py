"""Deterministic per-class sampling with a validated on-disk cache (few-shot and images-per-class).

Reference behaviour (§1.4.2, §1.10): ``NUM_SHOTS = K >= 1`` keeps ``K`` random training images per
class and ``min(K, 4)`` val images per class, cached as ``split_fewshot/shot_{K}-seed_{SEED}.pkl``
(absolute paths, reused blindly, sampled with the global ``random`` state). Here:

- the sample comes from a dedicated ``random.Random`` seeded by (purpose, split, K, SEED), so it does
  not depend on what consumed the global random state before;
- the cache is ``split_fewshot/shot_{K}-seed_{SEED}.json`` with paths relative to the dataset folder
  and a header ``{format, version, dataset, kind, k, seed, fingerprint}``, where the fingerprint is a
  sha1 of the full input splits (sorted relative paths + labels);
- on load the header, every entry (must belong to the current full split) and the files are
  validated; a stale, foreign or corrupt cache is rebuilt with a logged warning, never used;
- the cache is written atomically; a read-only dataset folder only costs a warning (the sample is
  deterministic anyway).

The same scheme serves ``DATASET.MAX_IMAGES_PER_CLASS`` (``max_{M}-seed_{SEED}.json``).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter, OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

from engine.api import Datum

from .utils import atomic_write_json, split_fingerprint, to_relpath

logger = logging.getLogger(__name__)

__all__ = ["CACHE_FORMAT", "CACHE_VERSION", "sample_per_class", "cached_per_class_sample", "fewshot_cache_path"]

CACHE_FORMAT = "promptkd-per-class-sample"
CACHE_VERSION = 1


def sample_per_class(items: Sequence[Datum], k: int, rng: random.Random) -> List[Datum]:
    """At most ``k`` items per label (all of a class when it has fewer), labels in ascending order.

    Same rule as Dassl's ``generate_fewshot_dataset(repeat=False)`` but with an explicit RNG.
    """
    if k < 1:
        return list(items)
    groups: Dict[int, List[Datum]] = {}
    for it in items:
        groups.setdefault(it.label, []).append(it)
    out: List[Datum] = []
    for label in sorted(groups):
        group = groups[label]
        out.extend(rng.sample(group, k) if len(group) >= k else group)
    return out


def _rng(kind: str, split: str, k: int, seed: int) -> random.Random:
    # String seeds are hashed with sha512 by `random` (not PYTHONHASHSEED-dependent): stable across runs.
    return random.Random(f"promptkd|{kind}|{split}|k={k}|seed={seed}")


def fewshot_cache_path(dataset_dir: str, kind: str, k: int, seed: int, prefix_k: Optional[int] = None) -> str:
    """Cache file name: ``shot_{K}-seed_{S}.json`` (few-shot) or ``[shot_{K}-]max_{M}-seed_{S}.json``."""
    if kind == "fewshot":
        name = f"shot_{k}-seed_{seed}.json"
    else:
        name = (f"shot_{prefix_k}-" if prefix_k is not None and prefix_k >= 1 else "") + f"max_{k}-seed_{seed}.json"
    return os.path.join(dataset_dir, "split_fewshot", name)


def _validate(
    data: Any,
    header: Mapping[str, Any],
    splits: Mapping[str, Sequence[Datum]],
    ks: Mapping[str, int],
    prefix: str,
) -> Dict[str, List[Datum]]:
    """Return the cached subsets as the input ``Datum`` objects, or raise ``ValueError`` saying why not."""
    if not isinstance(data, dict) or not isinstance(data.get("header"), dict):
        raise ValueError("no header")
    cached_header = data["header"]
    for key, value in header.items():
        if cached_header.get(key) != value:
            raise ValueError(f"header field '{key}' is {cached_header.get(key)!r}, expected {value!r}")
    out: Dict[str, List[Datum]] = {}
    for split, items in splits.items():
        entries = data.get(split)
        if not isinstance(entries, list):
            raise ValueError(f"missing list '{split}'")
        by_rel = {to_relpath(it.impath, prefix): it for it in items}
        chosen: List[Datum] = []
        seen = set()
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3):
                raise ValueError(f"malformed entry {entry!r} in '{split}'")
            rel, label, cname = entry
            it = by_rel.get(rel)
            if it is None or it.label != label or it.classname != cname:
                raise ValueError(f"entry {rel!r} of '{split}' is not in the current {split} split")
            if rel in seen:
                raise ValueError(f"duplicate entry {rel!r} in '{split}'")
            if not os.path.isfile(it.impath):
                raise ValueError(f"image {it.impath} does not exist")
            seen.add(rel)
            chosen.append(it)
        counts = Counter(it.label for it in chosen)
        if counts and max(counts.values()) > ks[split]:
            raise ValueError(f"'{split}' has more than {ks[split]} items for a class")
        if items and set(counts) != {it.label for it in items}:
            raise ValueError(f"'{split}' does not cover every class of the {split} split")
        out[split] = chosen
    return out


def cached_per_class_sample(
    cache_path: str,
    dataset_name: str,
    kind: str,
    k: int,
    seed: int,
    splits: "Mapping[str, Sequence[Datum]]",
    ks: Mapping[str, int],
    prefix: str,
    write: bool = True,
) -> Dict[str, List[Datum]]:
    """Per-class samples of every split in ``splits`` (``ks[split]`` items per class), through the cache.

    ``kind`` ("fewshot" | "max_per_class") and ``k`` identify the cache; the fingerprint of the full
    input splits makes a cache built from another split (another dataset copy, an edited split file)
    stale. Returns the sampled lists, keyed like ``splits``, made of the input ``Datum`` objects.
    """
    splits = OrderedDict(splits)
    header = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "dataset": dataset_name,
        "kind": kind,
        "k": int(k),
        "seed": int(seed),
        "per_split_k": {s: int(ks[s]) for s in splits},
        "fingerprint": split_fingerprint(splits, prefix),
    }
    if os.path.exists(cache_path):
        try:
            with open(cache_path, "r", encoding="utf-8") as f:
                data = json.load(f)
            result = _validate(data, header, splits, ks, prefix)
            logger.info("Loaded %s sample (k=%d, seed=%d) from %s", kind, k, seed, cache_path)
            return result
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            logger.warning("Cache %s is stale, foreign or corrupt (%s): rebuilding it", cache_path, exc)
    result = {s: sample_per_class(items, ks[s], _rng(kind, s, ks[s], seed)) for s, items in splits.items()}
    if write:
        payload: Dict[str, Any] = {"header": header}
        for s, items in result.items():
            payload[s] = [[to_relpath(it.impath, prefix), int(it.label), it.classname] for it in items]
        try:
            atomic_write_json(cache_path, payload, indent=1)
            logger.info("Saved %s sample (k=%d, seed=%d) to %s", kind, k, seed, cache_path)
        except OSError as exc:
            logger.warning("Could not write cache %s (%s); continuing with the (deterministic) in-memory sample", cache_path, exc)
    return result
