"""Reading the reference code's few-shot files (``split_fewshot/shot_{K}-seed_{S}.pkl``) without running them.

CoOp, CoCoOp, MaPLe, PromptSRC and PromptKD cache each few-shot draw as a pickle of
``{"train": [Datum, ...], "val": [Datum, ...]}`` (ImageNet: train only) with absolute image paths of the
machine that wrote it. Users already have these files in their dataset folders; reusing them keeps
the exact images of their earlier runs.

A pickle can name any importable callable and have it called while loading. This reader therefore
uses :class:`RestrictedUnpickler`, whose ``find_class`` resolves only

- the ``Datum`` record of Dassl (``dassl.data.datasets.base_dataset.Datum``) and of the built-in engine
  (``engine.data.datasets.Datum``), both mapped onto :class:`PickledDatum`, a plain record that accepts
  nothing but the four Datum fields as strings / integers, and
- the builtin containers ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``;

any other global is refused with :class:`UnsafeReferencePickleError` before anything is called.
Neither Dassl nor the pickled module is imported.

The entries are then matched to the current full split by their path relative to the dataset folder
(the longest trailing part of the stored absolute path that is a path of the split, so a file written
under another ``DATA`` root matches), and must agree in label and class name; the result is made of the
current split's own ``Datum`` objects in the file's order. A file that does not match the split is an
error naming the file and the fix (remove it to draw the same images afresh).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence

from engine.api import Datum

from .utils import DatasetError, to_relpath

logger = logging.getLogger(__name__)

__all__ = ["ALLOWED_GLOBALS", "PickledDatum", "RestrictedUnpickler", "UnsafeReferencePickleError", "load_reference_pickle",
           "read_reference_fewshot", "reference_fewshot_path"]


class UnsafeReferencePickleError(DatasetError):
    """A pickle names a global outside the allow-list (its payload was not run)."""


class PickledDatum(Datum):
    """Inert stand-in for a pickled ``Datum``: the engine's record, whose state is restored only after
    checking that it holds nothing but the four Datum fields as strings / integers; runs nothing."""

    __slots__ = ()
    _FIELDS = {"_impath": str, "_label": int, "_domain": int, "_classname": str}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and state[0] is None:
            state = state[1]  # (dict state, slot state) form of a __slots__ class without __getstate__
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"Datum state must be a dict, got {type(state).__name__}")
        for key, value in {"_impath": "", "_label": 0, "_domain": 0, "_classname": "", **state}.items():
            typ = self._FIELDS.get(key)
            if typ is None:
                raise pickle.UnpicklingError(f"unexpected Datum field {key!r}")
            if not isinstance(value, typ) or isinstance(value, bool):
                raise pickle.UnpicklingError(f"Datum field {key} = {value!r} is not a {typ.__name__}")
            object.__setattr__(self, key, value)


#: (module, name) -> object that ``find_class`` returns; everything else is refused.
ALLOWED_GLOBALS: Mapping[tuple, Any] = {
    ("dassl.data.datasets.base_dataset", "Datum"): PickledDatum,
    ("engine.data.datasets", "Datum"): PickledDatum,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS` (and no persistent ids)."""

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeReferencePickleError(
                f"{self._source}: refused to load: it references the global '{module}.{name}', which is not a Dassl "
                "Datum or a builtin container (only those can appear in a reference few-shot file); nothing from it "
                "was run. Delete the file if you did not create it: the few-shot draw is regenerated identically"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeReferencePickleError(f"{self._source}: refused to load: it uses persistent ids")


def load_reference_pickle(path: str) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; raise a :class:`DatasetError` naming the file."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, path).load()
    except UnsafeReferencePickleError:
        raise
    except Exception as exc:  # truncated file, wrong format, bad Datum state, ...
        raise DatasetError(
            f"{path} is not a readable reference few-shot file ({type(exc).__name__}: {exc}); "
            "delete it to draw the few-shot subsets afresh"
        ) from exc


def reference_fewshot_path(dataset_dir: str, k: int, seed: int) -> str:
    """``<dataset_dir>/split_fewshot/shot_{k}-seed_{seed}.pkl``, the reference code's file name."""
    return os.path.join(dataset_dir, "split_fewshot", f"shot_{k}-seed_{seed}.pkl")


def _match(stored: str, by_rel: Mapping[str, Datum], by_abs: Mapping[str, Datum]) -> Optional[Datum]:
    """The split item whose relative path is the longest trailing part of ``stored`` (exact path first)."""
    hit = by_abs.get(stored)
    if hit is not None:
        return hit
    parts = [p for p in stored.replace("\\", "/").split("/") if p]
    for start in range(len(parts)):
        hit = by_rel.get("/".join(parts[start:]))
        if hit is not None:
            return hit
    return None


def read_reference_fewshot(
    path: str,
    splits: Mapping[str, Sequence[Datum]],
    ks: Mapping[str, int],
    prefix: str,
) -> Dict[str, List[Datum]]:
    """The reference few-shot file at ``path`` as subsets of ``splits`` (module docstring).

    ``splits`` maps split names (train, val) to the current full splits; ``ks`` gives the most items
    per class each may hold; image paths are matched relative to ``prefix``. Raises
    :class:`DatasetError` naming the file when it does not fit the split.
    """
    data = load_reference_pickle(path)
    fix = "delete it (the same images are drawn again from SEED) or restore the split it was drawn from"
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a dict with 'train' (and 'val'), got {type(data).__name__}; {fix}")
    out: Dict[str, List[Datum]] = {}
    for split, items in splits.items():
        entries = data.get(split)
        if entries is None and split == "val":
            logger.warning("%s has no 'val' list: using the full val split", path)
            out[split] = list(items)
            continue
        if not isinstance(entries, list) or not all(isinstance(e, PickledDatum) for e in entries):
            raise DatasetError(f"{path}: '{split}' must be a list of Datum records; {fix}")
        by_abs = {it.impath: it for it in items}
        by_rel = {to_relpath(it.impath, prefix): it for it in items}
        chosen: List[Datum] = []
        for entry in entries:
            it = _match(entry.impath, by_rel, by_abs)
            if it is None:
                raise DatasetError(f"{path}: '{split}' image {entry.impath} is not in the current {split} split; {fix}")
            if it.label != entry.label or it.classname != entry.classname:
                raise DatasetError(
                    f"{path}: '{split}' image {entry.impath} has label {entry.label} / class {entry.classname!r} there but "
                    f"{it.label} / {it.classname!r} in the current split; {fix}"
                )
            chosen.append(it)
        counts = Counter(it.label for it in chosen)
        if counts and max(counts.values()) > ks[split]:
            raise DatasetError(f"{path}: '{split}' has more than {ks[split]} images of a class (file name says K); {fix}")
        missing = {it.label for it in items} - set(counts)
        if missing:
            raise DatasetError(f"{path}: '{split}' has no image of {len(missing)} class(es) of the current split; {fix}")
        out[split] = chosen
    logger.info("Using the reference few-shot file %s (%s)", path, ", ".join(f"{s} {len(v)}" for s, v in out.items()))
    return out
