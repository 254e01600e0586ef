"""What a dataset is called and how its class names are phrased: both are properties of the dataset.

- :func:`dataset_template`: the single zero-shot prompt template of a dataset (``"{}"`` = class name).
  The 15 benchmarks use their usual hand-crafted template (``TEMPLATES``, the CoOp/PromptSRC choice,
  listed in ``catalog.json``);
  ``ImageFolderCustom`` uses ``DATASET.CUSTOM.TEMPLATE``; a dataset class registered by a plugin may set
  a class attribute ``template``. Every text-side trainer (zero-shot CLIP, the zero-shot teacher that
  writes PromptKD's class vectors) reads the template through this one function.
- :func:`dataset_display_name`: the name a run reports in ``results.json`` and result tables: the
  registry name for the benchmarks, ``DATASET.CUSTOM.NAME`` for a custom dataset (default: the name of
  its ``DATASET.ROOT`` folder), so two custom datasets are never aggregated together.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Union

from .catalog import CATALOG
from .utils import DatasetError

logger = logging.getLogger(__name__)

__all__ = ["CUSTOM_DATASET", "DEFAULT_TEMPLATE", "TEMPLATES", "dataset_template", "dataset_display_name"]

CUSTOM_DATASET = "ImageFolderCustom"
DEFAULT_TEMPLATE = "a photo of a {}."

#: the benchmarks' hand-crafted templates (``catalog.json``), by registered name
TEMPLATES: Dict[str, str] = {info.name: info.template for info in CATALOG.values()}


def _check_template(template: Any, key: str) -> str:
    if not isinstance(template, str) or "{}" not in template:
        raise DatasetError(f"{key} = {template!r} must contain '{{}}' where the class name goes, "
                           "e.g. 'a photo of a {}.'")
    return template


def dataset_template(cfg_or_name: Union[Any, str]) -> str:
    """The zero-shot template of the configured dataset (a config, or a dataset name without config)."""
    cfg = None if isinstance(cfg_or_name, str) else cfg_or_name
    name = cfg_or_name if cfg is None else cfg.DATASET.NAME
    if name == CUSTOM_DATASET and cfg is not None and "CUSTOM" in cfg.DATASET:
        return _check_template(cfg.DATASET.CUSTOM.TEMPLATE, "DATASET.CUSTOM.TEMPLATE")
    if name in TEMPLATES:
        return TEMPLATES[name]
    try:
        from engine.api import DATASET_REGISTRY

        registered = DATASET_REGISTRY.get(name)
    except (KeyError, ImportError):
        registered = None
    own = getattr(registered, "template", None)
    if isinstance(own, str):
        return _check_template(own, f"{name}.template")
    logger.warning("No template for dataset %r (benchmarks: %s; custom data: DATASET.CUSTOM.TEMPLATE); using %r",
                   name, ", ".join(sorted(TEMPLATES)), DEFAULT_TEMPLATE)
    return DEFAULT_TEMPLATE


def dataset_display_name(cfg: Any) -> str:
    """The dataset's name in outputs: ``DATASET.CUSTOM.NAME`` (or its root folder's name) for custom data."""
    name = cfg.DATASET.NAME
    if name != CUSTOM_DATASET or "CUSTOM" not in cfg.DATASET:
        return name
    custom = str(cfg.DATASET.CUSTOM.get("NAME", "") or "").strip()
    if custom:
        return custom
    root = str(cfg.DATASET.ROOT or "").rstrip("/\\")
    return os.path.basename(os.path.abspath(os.path.expanduser(root))) if root else name
