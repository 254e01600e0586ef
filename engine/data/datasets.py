"""Dataset records and the dataset base class (Dassl ``dassl.data.datasets`` semantics).

``Datum`` is an immutable (impath, label, domain, classname) record. Unlike Dassl it does **not**
stat the file system in its constructor (docs/REFERENCE.md D23: relabelling ImageNet-scale lists
built millions of ``os.path.isfile`` calls); file existence is checked by the dataset readers and
the dataset checker, and an unreadable image fails loudly in ``DatasetWrapper``.

``DatasetBase`` keeps Dassl's behaviour exactly: ``num_classes`` / ``lab2cname`` / ``classnames``
are derived from ``train_x`` only.
"""

from __future__ import annotations

import logging
import operator
import random
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from engine.registry import Registry

logger = logging.getLogger(__name__)

__all__ = ["Datum", "DatasetBase", "DATASET_REGISTRY", "build_dataset"]

DATASET_REGISTRY = Registry("DATASET")


class Datum:
    """One data instance: image path, integer label, integer domain and class name (read-only)."""

    __slots__ = ("_impath", "_label", "_domain", "_classname")

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = "") -> None:
        if not isinstance(impath, str):
            raise TypeError(f"Datum: impath must be a str, got {type(impath).__name__} ({impath!r})")
        try:
            label = operator.index(label)
            domain = operator.index(domain)
        except TypeError:
            raise TypeError(
                f"Datum({impath!r}): label and domain must be integers, got label={label!r}, domain={domain!r}"
            ) from None
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = str(classname)

    impath = property(lambda self: self._impath)
    label = property(lambda self: self._label)
    domain = property(lambda self: self._domain)
    classname = property(lambda self: self._classname)

    def _key(self) -> Tuple[str, int, int, str]:
        return (self._impath, self._label, self._domain, self._classname)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Datum):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, classname={self._classname!r})"
        )


class DatasetBase:
    """Unified container for a dataset's splits.

    Subclasses set ``dataset_dir`` (folder name under ``DATASET.ROOT``) and, for multi-domain data,
    ``domains``; they read their files into lists of ``Datum`` and call
    ``super().__init__(train_x=..., val=..., test=...)``.

    Class metadata (``num_classes`` = max train_x label + 1, ``lab2cname``, ``classnames``) comes
    from ``train_x`` only, exactly as in Dassl.
    """

    dataset_dir: str = ""  # folder name of the dataset under DATASET.ROOT
    domains: List[str] = []  # domain names (multi-domain datasets only)

    def __init__(self, train_x: Optional[List[Datum]] = None, train_u: Optional[List[Datum]] = None,
                 val: Optional[List[Datum]] = None, test: Optional[List[Datum]] = None) -> None:
        self._train_x = train_x  # labeled training data
        self._train_u = train_u  # unlabeled training data (optional)
        self._val = val  # validation data (optional)
        self._test = test  # test data
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    # read-only, as in Dassl
    train_x = property(lambda self: self._train_x)
    train_u = property(lambda self: self._train_u)
    val = property(lambda self: self._val)
    test = property(lambda self: self._test)
    lab2cname = property(lambda self: self._lab2cname)
    classnames = property(lambda self: self._classnames)
    num_classes = property(lambda self: self._num_classes)

    @staticmethod
    def get_num_classes(data_source: Optional[Sequence[Datum]]) -> int:
        """Number of classes = max label + 1 (0 for an empty/None source)."""
        return max(item.label for item in data_source) + 1 if data_source else 0

    @staticmethod
    def get_lab2cname(data_source: Optional[Sequence[Datum]]) -> Tuple[Dict[int, str], List[str]]:
        """Return ``({label: classname}, [classname sorted by label])`` built from ``data_source``."""
        mapping = {item.label: item.classname for item in data_source or []}
        return mapping, [mapping[label] for label in sorted(mapping)]

    def generate_fewshot_dataset(
        self, *data_sources: List[Datum], num_shots: int = -1, repeat: bool = False
    ) -> Union[List[Datum], List[List[Datum]]]:
        """Sample ``num_shots`` items per class from each data source (Dassl semantics).

        ``num_shots < 1`` returns the input unchanged. Classes with fewer items keep them all
        (or are sampled with replacement when ``repeat``). Uses Python's global ``random`` state
        (seeded by ``set_random_seed``), and iterates classes in order of first appearance, so the
        same seed gives the same split as Dassl. Returns a single list when one source is given.
        """
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else list(data_sources)
        logger.info("Creating a %d-shot dataset", num_shots)
        output = []
        for data_source in data_sources:
            dataset: List[Datum] = []
            for items in self.split_dataset_by_label(data_source).values():
                if len(items) >= num_shots:
                    dataset.extend(random.sample(items, num_shots))
                else:
                    dataset.extend(random.choices(items, k=num_shots) if repeat else items)
            output.append(dataset)
        return output[0] if len(output) == 1 else output

    @staticmethod
    def split_dataset_by_label(data_source: Sequence[Datum]) -> Dict[int, List[Datum]]:
        """Group items by label (dict in order of first appearance)."""
        output: Dict[int, List[Datum]] = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output


def build_dataset(cfg: Any) -> DatasetBase:
    """Instantiate the dataset registered as ``cfg.DATASET.NAME`` (unknown names list the registered ones)."""
    name = cfg.DATASET.NAME
    if not name:
        raise ValueError(
            "DATASET.NAME is empty: pass --dataset-config-file configs/datasets/<name>.yaml or DATASET.NAME <Name>. "
            f"Registered datasets: {sorted(DATASET_REGISTRY.registered_names())}"
        )
    dataset_cls = DATASET_REGISTRY.get(name)
    if cfg.VERBOSE:
        logger.info("Loading dataset: %s", name)
    return dataset_cls(cfg)
