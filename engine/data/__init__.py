"""Data layer (Dassl ``dassl.data``): dataset records, dataset base class, transforms, samplers,
data loaders and the ``DataManager``."""

import importlib
from typing import Any

# Sub-modules are imported on first use (PEP 562), so that ``engine.data.transforms`` (used by the
# stand-alone inference of tools/predict.py) does not pull in the dataset and loader machinery.
_EXPORTS = {
    "DATASET_REGISTRY": "engine.data.datasets",
    "Datum": "engine.data.datasets",
    "DatasetBase": "engine.data.datasets",
    "build_dataset": "engine.data.datasets",
    "DataManager": "engine.data.data_manager",
    "DatasetWrapper": "engine.data.data_manager",
    "build_data_loader": "engine.data.data_manager",
    "build_sampler": "engine.data.samplers",
    "build_transform": "engine.data.transforms",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine.data' has no attribute {name!r}")


__all__ = list(_EXPORTS)
