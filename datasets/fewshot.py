"""Per-class sampling with a validated on-disk cache: Dassl's few-shot draw, and images-per-class caps.

Few-shot (``NUM_SHOTS = K >= 1``) draws exactly the images Dassl's ``generate_fewshot_dataset`` draws
for the same ``SEED`` in the CoOp-family dataset classes: ``set_random_seed(SEED)`` runs before the
dataset is built, then ``K`` training images per class and ``min(K, 4)`` val images per class are
drawn from that one random stream (train first, then val), classes visited in order of first
appearance in the split, ``random.sample`` per class (all images of a class with fewer than ``K``).
Here the stream is a dedicated ``random.Random(SEED)``, which is the state of the global generator
right after ``random.seed(SEED)``, so the draw does not depend on what consumed the global state
before.

Sources, in order:

1. a reference ``split_fewshot/shot_{K}-seed_{SEED}.pkl`` (written by CoOp, CoCoOp, MaPLe, PromptSRC or
   PromptKD) is read through a restricted unpickler (:mod:`datasets.reference_fewshot`) and reused as
   it is, matched entry by entry to the current split;
2. our cache ``split_fewshot/shot_{K}-seed_{SEED}.json``: paths relative to the dataset folder and a
   header ``{format, version, sampler, dataset, kind, k, seed, per_split_k, fingerprint}``, where the
   fingerprint is a sha1 of the full input splits (sorted relative paths + labels); on load the header,
   every entry (must belong to the current full split) and the files are validated; a stale, foreign or
   corrupt cache is redrawn with a logged warning, never used;
3. a fresh draw, written atomically to the json cache (a read-only dataset folder only costs a
   warning: the draw is deterministic).

``DATASET.MAX_IMAGES_PER_CLASS = M`` (no reference counterpart) uses the same per-class rule with its
own stream seeded by (purpose, M, SEED), cached as ``[shot_{K}-]max_{M}-seed_{SEED}.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter, OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

from engine.api import Datum, atomic_write_json

from .reference_fewshot import read_reference_fewshot, reference_fewshot_path
from .utils import entries, split_fingerprint, to_relpath

logger = logging.getLogger(__name__)

__all__ = ["CACHE_FORMAT", "CACHE_VERSION", "SAMPLER", "sample_per_label", "draw_fewshot", "cached_per_class_sample",
           "fewshot_cache_path", "fewshot_sample"]

CACHE_FORMAT = "promptkd-per-class-sample"
#: 2: Dassl's draw (version 1 caches came from per-split hashed seeds and are redrawn)
CACHE_VERSION = 2
SAMPLER = "dassl-generate_fewshot_dataset"


def sample_per_label(items: Sequence[Datum], k: int, rng: random.Random, repeat: bool = False) -> List[Datum]:
    """``k`` items per label: Dassl's ``generate_fewshot_dataset`` rule for one data source.

    Labels are visited in order of first appearance in ``items`` (Dassl groups with a ``defaultdict``),
    each group keeps the input order, and ``rng.sample(group, k)`` picks from it; a group with fewer
    than ``k`` items is kept whole, or drawn with replacement (``rng.choices``) when ``repeat``.
    ``k < 1`` returns the input unchanged.
    """
    if k < 1:
        return list(items)
    groups: Dict[int, List[Datum]] = {}
    for it in items:
        groups.setdefault(it.label, []).append(it)
    out: List[Datum] = []
    for group in groups.values():
        if len(group) >= k:
            out.extend(rng.sample(group, k))
        elif repeat:
            out.extend(rng.choices(group, k=k))
        else:
            out.extend(group)
    return out


def draw_fewshot(splits: Mapping[str, Sequence[Datum]], ks: Mapping[str, int], seed: int) -> Dict[str, List[Datum]]:
    """The few-shot draw of the reference datasets for ``SEED = seed``.

    One stream ``random.Random(seed)`` (the global generator's state after Dassl's
    ``set_random_seed(seed)``) serves the splits in the order of ``splits`` (train, then val), with
    ``ks[split]`` items per class each, exactly like consecutive ``generate_fewshot_dataset`` calls.
    """
    rng = random.Random(seed)
    return {name: sample_per_label(items, ks[name], rng) for name, items in splits.items()}


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
    """Per-class samples of every split in ``splits`` (``ks[split]`` items per class), through the json cache.

    ``kind`` ("fewshot": Dassl's draw, :func:`draw_fewshot` | "max_per_class") and ``k`` identify the cache; the fingerprint of the full
    input splits makes a cache built from another split (another dataset copy, an edited split file)
    stale. Returns the sampled lists, keyed like ``splits``, made of the input ``Datum`` objects.
    """
    splits = OrderedDict(splits)
    header = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "sampler": SAMPLER,
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
    if kind == "fewshot":
        result = draw_fewshot(splits, ks, seed)
    else:
        result = {s: sample_per_label(items, ks[s], _rng(kind, s, ks[s], seed)) for s, items in splits.items()}
    if write:
        try:
            atomic_write_json(cache_path, {"header": header, **{s: entries(v, prefix) for s, v in result.items()}}, indent=1)
            logger.info("Saved %s sample (k=%d, seed=%d) to %s", kind, k, seed, cache_path)
        except OSError as exc:
            logger.warning("Could not write cache %s (%s); continuing with the (deterministic) in-memory sample", cache_path, exc)
    return result


def fewshot_sample(
    dataset_dir: str,
    dataset_name: str,
    k: int,
    seed: int,
    splits: "Mapping[str, Sequence[Datum]]",
    prefix: str,
    write: bool = True,
) -> Dict[str, List[Datum]]:
    """The ``k``-shot subsets of ``splits`` (train: ``k`` per class, val: ``min(k, 4)``) for ``seed``.

    A reference ``split_fewshot/shot_{k}-seed_{seed}.pkl`` in ``dataset_dir`` wins (read safely, matched
    to the current split; a file that does not match is an error, never ignored); otherwise the json
    cache or a fresh Dassl-identical draw (module docstring).
    """
    ks = {"train": int(k), "val": min(int(k), 4)}
    pkl = reference_fewshot_path(dataset_dir, k, seed)
    if os.path.exists(pkl):
        return read_reference_fewshot(pkl, splits, ks, prefix)
    path = fewshot_cache_path(dataset_dir, "fewshot", k, seed)
    return cached_per_class_sample(path, dataset_name, "fewshot", k, seed, splits, ks, prefix, write=write)
