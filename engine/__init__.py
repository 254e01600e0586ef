"""Built-in Dassl-compatible runtime for PromptKD and the CoOp prompt-learning baselines.

Sub-modules mirror Dassl's packages (config, registry, data, optim, evaluation, checkpoint, utils,
trainer). Trainers and datasets should import these names through :mod:`engine.api`, which can
switch to an installed Dassl (``PROMPTKD_ENGINE=dassl``). This package import stays light on
purpose: importing ``engine`` does not import torch-heavy sub-modules.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
