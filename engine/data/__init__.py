"""Data layer (Dassl ``dassl.data``): dataset records, dataset base class, transforms, samplers,
data loaders and the ``DataManager``."""

from engine.data.datasets import DATASET_REGISTRY, Datum, DatasetBase, build_dataset
from engine.data.data_manager import DataManager, DatasetWrapper, build_data_loader
from engine.data.samplers import build_sampler
from engine.data.transforms import build_transform

__all__ = [
    "DATASET_REGISTRY",
    "Datum",
    "DatasetBase",
    "build_dataset",
    "DataManager",
    "DatasetWrapper",
    "build_data_loader",
    "build_sampler",
    "build_transform",
]
