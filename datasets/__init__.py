"""The benchmark datasets, the custom dataset, few-shot caching and the protocol layer.

Importing this package registers every dataset in ``engine.api.DATASET_REGISTRY`` under the names the
original yaml files use (``DescribableTextures``, ``OxfordFlowers``, ...) plus ``ImageFolderCustom``
and ``ProvingGround`` (the proving-ground world). ``extend_cfg`` adds the ``DATASET.*``
protocol keys; ``apply_protocol`` (in :mod:`datasets.protocol`) decides what feeds training and
evaluation. See DATASETS.md.
"""

from .config import extend_cfg, resolve_eval_protocol, validate_dataset_cfg
from .protocol import EvalSet, ProtocolSplits, apply_protocol
from .base import BenchmarkDataset
from .utils import DatasetError, DatasetFileNotFoundError
from .catalog import CATALOG, CONFIG_NAMES
from .benchmarks import (Caltech101, DescribableTextures, EuroSAT, FGVCAircraft, Food101, OxfordFlowers, OxfordPets,
                         StanfordCars, SUN397, UCF101)
from .imagenet import ImageNet, ImageNetA, ImageNetR, ImageNetSketch, ImageNetV2
from .custom import ImageFolderCustom
from . import proving_ground  # noqa: F401  (registers ProvingGround)

BENCHMARKS = (
    ImageNet, Caltech101, OxfordPets, StanfordCars, OxfordFlowers, Food101, FGVCAircraft, SUN397,
    DescribableTextures, EuroSAT, UCF101, ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR,
)

__all__ = [
    "extend_cfg", "validate_dataset_cfg", "resolve_eval_protocol",
    "apply_protocol", "EvalSet", "ProtocolSplits", "BenchmarkDataset",
    "DatasetError", "DatasetFileNotFoundError", "CATALOG", "CONFIG_NAMES", "BENCHMARKS",
] + [cls.__name__ for cls in BENCHMARKS] + ["ImageFolderCustom"]
