"""THE protocol layer: the one place that decides which images feed training and which feed evaluation.

Dataset classes only read their full splits over all ``N`` classes (labels ``0..N-1``); everything
protocol-related happens in :func:`apply_protocol`, driven by config keys (never by the trainer name):

1. ``train_x`` = the train split -> ``NUM_SHOTS`` K-shot sample per class (Dassl's draw for SEED, or
   the reference's own ``shot_K-seed_S.pkl``; cached; val gets ``min(K, 4)`` shots, as in the reference) -> ``MAX_IMAGES_PER_CLASS`` sample (cached) -> restricted
   to ``SUBSAMPLE_CLASSES`` and relabelled from 0 -> labels replaced by -1 if ``TRAIN_LABELS = drop``.
2. ``val`` = the dataset's own val split restricted/relabelled to the training classes. It is never the
   test split (the reference's PromptKD branch put base-class *test* images in val and selected the
   checkpoint on them, docs/REFERENCE.md D1). Datasets without a val split (ImageNet and its variants) give [].
3. ``test`` = the test split restricted/relabelled to the training classes (what Dassl's
   ``TrainerX.test()`` evaluates).
4. ``eval_sets`` (what trainers report after training):
   ``base2novel`` -> ``{"base": base-class test images relabelled 0..m-1, "novel": novel-class test
   images relabelled 0..N-m-1}`` with ``m = ceil(N/2)``; ``subsample`` -> ``{"test": test restricted to
   SUBSAMPLE_CLASSES}`` (an eval-only run with ``SUBSAMPLE_CLASSES new`` gives the novel accuracy of the
   original two-run protocol exactly).

Who trains on what (base-to-novel benchmark, N classes, m = ceil(N/2) base classes):

================================  =================  ==============  ============  ================================
run                               SUBSAMPLE_CLASSES  EVAL_PROTOCOL   TRAIN_LABELS  training images
================================  =================  ==============  ============  ================================
PromptKD student (paper)          all                base2novel      drop          unlabeled train images of all N
                                                                                   classes (transductive)
PromptKD student (inductive)      base               base2novel      drop          unlabeled train images of base
teacher / baselines: base train   base               subsample       use           K-shot labelled base images
baselines: novel eval (eval-only) new                subsample       use           (none; test = novel classes)
cross-dataset student (target)    all                subsample       drop          unlabeled target train images
================================  =================  ==============  ============  ================================
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from engine.api import Datum

from .config import resolve_eval_protocol, validate_dataset_cfg
from .fewshot import cached_per_class_sample, fewshot_cache_path, fewshot_sample
from .utils import DatasetError, base_new_labels, relabel

logger = logging.getLogger(__name__)

__all__ = ["EvalSet", "ProtocolSplits", "apply_protocol"]


@dataclass
class EvalSet:
    """One evaluation set: items labelled ``0..len(classnames)-1`` and the class names in label order."""

    items: List[Datum]
    classnames: List[str]

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class ProtocolSplits:
    """The result of :func:`apply_protocol` (see the module docstring for the semantics)."""

    train_x: List[Datum]
    val: List[Datum]
    test: List[Datum]
    eval_sets: "OrderedDict[str, EvalSet]"
    all_classnames: List[str]
    #: class names of the training class set in (relabelled) label order; Dassl's ``classnames``.
    train_classnames: List[str]
    #: resolved evaluation protocol: "base2novel" or "subsample".
    protocol: str


def _check_full_splits(name: str, root: str, splits: Dict[str, Sequence[Datum]], all_classnames: Sequence[str],
                       has_val: bool, test_only: bool) -> None:
    n = len(all_classnames)
    if n == 0:
        raise DatasetError(f"{name}: no classes found under {root}")
    for split, items in splits.items():
        if not items and (split != "val" or has_val):
            raise DatasetError(
                f"{name}: the full '{split}' split is empty (dataset folder {root}); check the split file "
                "and that the images are in place (python tools/check_datasets.py --root <DATA> --dataset " + name + ")"
            )
        pairs = {(it.label, it.classname) for it in items}  # one pass; at most N distinct pairs when consistent
        bad = [(lab, c) for lab, c in pairs if not (0 <= lab < n) or c != all_classnames[lab]]
        if bad:
            example = next(it.impath for it in items if (it.label, it.classname) == bad[0])
            raise DatasetError(
                f"{name}: '{split}' item {example} has label {bad[0][0]} / class {bad[0][1]!r}, "
                f"inconsistent with the {n} class names of the dataset"
            )
    test_paths = {it.impath for it in splits["test"]}
    for split in ("val",) if test_only else ("val", "train"):
        leaked = [it.impath for it in splits[split] if it.impath in test_paths]
        if leaked:
            raise DatasetError(
                f"{name}: {len(leaked)} image(s) of the '{split}' split are also in the test split "
                f"(e.g. {leaked[0]}); the split file in {root} is corrupt"
            )
    present = {it.label for it in splits["train"]}
    absent = [all_classnames[i] for i in range(n) if i not in present]
    if absent:
        raise DatasetError(
            f"{name}: {len(absent)} of {n} classes have no training image (e.g. {absent[:5]}) in {root}; "
            "an incomplete download or split file?"
        )


def _sample_train(cfg: Any, name: str, dataset_dir: str, train: List[Datum], val: List[Datum], prefix: str,
                  allow_fewshot: bool, write_cache: bool) -> Tuple[List[Datum], List[Datum]]:
    """``NUM_SHOTS`` few-shot sample of train (and val), then the ``MAX_IMAGES_PER_CLASS`` cap of train (cached)."""
    seed, k = int(cfg.SEED), int(cfg.DATASET.NUM_SHOTS)
    if k >= 1 and not allow_fewshot:
        logger.info("%s is a test-only dataset: DATASET.NUM_SHOTS=%d is not applied (reference behaviour)", name, k)
    elif k >= 1:
        splits = OrderedDict([("train", train)] + ([("val", val)] if val else []))
        sampled = fewshot_sample(dataset_dir, name, k, seed, splits, prefix, write=write_cache)
        train, val = sampled["train"], sampled.get("val", val)
    m = int(cfg.DATASET.MAX_IMAGES_PER_CLASS)
    if m > 0:
        path = fewshot_cache_path(dataset_dir, "max_per_class", m, seed, prefix_k=k if (k >= 1 and allow_fewshot) else None)
        train = cached_per_class_sample(path, name, "max_per_class", m, seed, {"train": train}, {"train": m}, prefix,
                                        write=write_cache)["train"]
    return train, val


def _check_protocol_splits(name: str, where: str, train_x: List[Datum], val_x: List[Datum], test_x: List[Datum],
                           eval_sets: "OrderedDict[str, EvalSet]", has_val: bool) -> None:
    for what, items in (("the training set", train_x), ("the test set", test_x)) + ((("the val set", val_x),) if has_val else ()):
        if not items:
            raise DatasetError(f"{name}: {what} is empty after the protocol {where}")
    for set_name, eval_set in eval_sets.items():
        if not eval_set.items:
            raise DatasetError(f"{name}: evaluation set '{set_name}' is empty {where}")
        present = {it.label for it in eval_set.items}
        absent = [c for i, c in enumerate(eval_set.classnames) if i not in present]
        if absent:
            logger.warning("%s: evaluation set '%s' has no image of %d class(es), e.g. %s", name, set_name, len(absent), absent[:3])


def apply_protocol(
    cfg: Any,
    dataset_dir: str,
    train: Sequence[Datum],
    val: Sequence[Datum],
    test: Sequence[Datum],
    all_classnames: Sequence[str],
    *,
    dataset_name: Optional[str] = None,
    has_val: bool = True,
    allow_fewshot: bool = True,
    path_prefix: Optional[str] = None,
    write_cache: bool = True,
) -> ProtocolSplits:
    """Turn full splits over all classes into what training and evaluation use (module docstring).

    ``dataset_dir`` holds the caches (``split_fewshot/``); cached paths are stored relative to
    ``path_prefix`` (default ``dataset_dir``). ``has_val=False`` for datasets without a val split;
    ``allow_fewshot=False`` for test-only datasets (ImageNet variants: the reference never few-shot
    samples them). ``write_cache=False`` never writes (used by the dataset checker).
    """
    validate_dataset_cfg(cfg)
    name = dataset_name or cfg.DATASET.NAME
    all_classnames, n = list(all_classnames), len(all_classnames)
    train, val, test = list(train), list(val), list(test)
    _check_full_splits(name, dataset_dir, {"train": train, "val": val, "test": test}, all_classnames, has_val,
                       test_only=not allow_fewshot)
    subsample, protocol = cfg.DATASET.SUBSAMPLE_CLASSES, resolve_eval_protocol(cfg)
    if (subsample != "all" or protocol == "base2novel") and n < 2:
        raise DatasetError(f"{name}: base/new class splits need at least 2 classes, found {n} in {dataset_dir}")
    train, val = _sample_train(cfg, name, dataset_dir, train, val, path_prefix or dataset_dir, allow_fewshot, write_cache)

    base_labels, novel_labels = base_new_labels(range(n))
    selected = {"all": list(range(n)), "base": base_labels, "new": novel_labels}[subsample]
    train_classnames = [all_classnames[i] for i in selected]
    train_x, val_x, test_x = relabel(train, selected), relabel(val, selected), relabel(test, selected)
    if cfg.DATASET.TRAIN_LABELS == "drop":
        train_x = [Datum(impath=it.impath, label=-1, domain=it.domain, classname="") for it in train_x]

    eval_sets: "OrderedDict[str, EvalSet]" = OrderedDict()
    if protocol == "base2novel":
        eval_sets["base"] = EvalSet(test_x if subsample == "base" else relabel(test, base_labels),
                                    [all_classnames[i] for i in base_labels])
        eval_sets["novel"] = EvalSet(test_x if subsample == "new" else relabel(test, novel_labels),
                                     [all_classnames[i] for i in novel_labels])
    else:
        eval_sets["test"] = EvalSet(test_x, train_classnames)
    _check_protocol_splits(name, f"(dataset folder {dataset_dir}, SUBSAMPLE_CLASSES={subsample})", train_x, val_x, test_x,
                           eval_sets, has_val)
    logger.info(
        "%s protocol: %s eval, SUBSAMPLE_CLASSES=%s, TRAIN_LABELS=%s, NUM_SHOTS=%d, MAX_IMAGES_PER_CLASS=%d -> "
        "train_x %d (%d classes), val %d, test %d, eval sets %s",
        name, protocol, subsample, cfg.DATASET.TRAIN_LABELS, int(cfg.DATASET.NUM_SHOTS),
        int(cfg.DATASET.MAX_IMAGES_PER_CLASS), len(train_x), len(train_classnames), len(val_x), len(test_x),
        {s: len(e) for s, e in eval_sets.items()},
    )
    return ProtocolSplits(train_x, val_x, test_x, eval_sets, all_classnames, train_classnames, protocol)
