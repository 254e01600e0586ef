"""Data layer (Dassl ``dassl.data``): dataset records and base class (:mod:`engine.data.datasets`), transforms
(:mod:`engine.data.transforms`), samplers (:mod:`engine.data.samplers`), data loaders and the ``DataManager``
(:mod:`engine.data.data_manager`). Import the sub-modules themselves (``engine.api`` re-exports the Dassl names):
this package imports nothing, so ``engine.data.transforms`` (used by the stand-alone inference of
tools/predict.py) does not pull in the dataset and loader machinery."""
