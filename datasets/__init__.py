"""The benchmark datasets, the custom dataset, few-shot caching and the protocol layer.

Importing this package registers every dataset in ``engine.api.DATASET_REGISTRY`` under the names the
original yaml files use (``DescribableTextures``, ``OxfordFlowers``, ...) plus ``ImageFolderCustom``
(and the proving-ground world, when its module is present). ``extend_cfg`` adds the ``DATASET.*``
protocol keys; ``apply_protocol`` (in :mod:`datasets.protocol`) decides what feeds training and
evaluation. See DATASETS.md.
"""

import importlib.util

from .config import extend_cfg, resolve_eval_protocol, validate_dataset_cfg
from .protocol import EvalSet, ProtocolSplits, apply_protocol
from .base import BenchmarkDataset
from .utils import DatasetError, DatasetFileNotFoundError
from .catalog import CATALOG, CONFIG_NAMES

from .imagenet import ImageNet
from .caltech101 import Caltech101
from .oxford_pets import OxfordPets
from .stanford_cars import StanfordCars
from .oxford_flowers import OxfordFlowers
from .food101 import Food101
from .fgvc_aircraft import FGVCAircraft
from .sun397 import SUN397
from .dtd import DescribableTextures
from .eurosat import EuroSAT
from .ucf101 import UCF101
from .imagenetv2 import ImageNetV2
from .imagenet_sketch import ImageNetSketch
from .imagenet_a import ImageNetA
from .imagenet_r import ImageNetR
from .custom import ImageFolderCustom

# The proving-ground world is maintained separately; register it too when it is part of the tree.
if importlib.util.find_spec(__name__ + ".proving_ground") is not None:
    from . import proving_ground  # noqa: F401

BENCHMARKS = (
    ImageNet, Caltech101, OxfordPets, StanfordCars, OxfordFlowers, Food101, FGVCAircraft, SUN397,
    DescribableTextures, EuroSAT, UCF101, ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR,
)

__all__ = [
    "extend_cfg", "validate_dataset_cfg", "resolve_eval_protocol",
    "apply_protocol", "EvalSet", "ProtocolSplits", "BenchmarkDataset",
    "DatasetError", "DatasetFileNotFoundError", "CATALOG", "CONFIG_NAMES", "BENCHMARKS",
] + [cls.__name__ for cls in BENCHMARKS] + ["ImageFolderCustom"]
