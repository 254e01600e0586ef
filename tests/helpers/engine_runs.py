"""Run a list of ``train.main`` calls in ONE process, under the engine named by ``PROMPTKD_ENGINE``, and write a
JSON report (used by tests/test_dassl_backend.py to run the same plan under both engines).

    python -m tests.helpers.engine_runs PLAN.json REPORT.json

PLAN: ``{"runs": [{"name": ..., "argv": [...], "hash_dir": optional folder}]}``. For each run the report holds
``ok`` (or ``error`` = "ExceptionName: message"), the trainer's class hierarchy, whether ``sys.stdout`` is the
process's original stream again after the run, and sha256 of every file under ``hash_dir`` before and after.
The report's ``api`` entry says which ``engine.api`` objects are the installed Dassl's.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import sys
from typing import Any, Dict


def _hashes(folder: str) -> Dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _api_facts() -> Dict[str, Any]:
    from engine import api

    facts: Dict[str, Any] = {"engine": api.ENGINE_NAME, "logging_disable": logging.root.manager.disable,
                             "describe": api.describe_engine()}
    if api.ENGINE_NAME != "dassl":
        return facts
    from engine import dassl_compat

    facts["dassl_objects"] = sorted(
        name for name, (_, module) in api._SOURCES.items()
        if getattr(api, name) is getattr(importlib.import_module(module), name))
    facts["project_objects"] = sorted(dassl_compat.OVERRIDES)
    dassl_engine = importlib.import_module("dassl.engine")
    facts["trainerx_is_dassl_subclass"] = issubclass(api.TrainerX, dassl_engine.TrainerX)
    facts["registry_is_dassl"] = api.TRAINER_REGISTRY is dassl_engine.TRAINER_REGISTRY
    return facts


def main(plan_path: str, report_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    from engine import utils as engine_utils

    engine_utils.collect_env_info = lambda: "env info skipped in tests"
    import train

    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    original_stdout = sys.stdout
    report: Dict[str, Any] = {"api": _api_facts(), "runs": {}}
    for item in plan["runs"]:
        entry: Dict[str, Any] = {}
        hash_dir = item.get("hash_dir")
        if hash_dir:
            entry["hashes_before"] = _hashes(hash_dir)
        try:
            trainer = train.main(list(item["argv"]))
            entry["ok"] = True
            if trainer is not None:
                entry["mro"] = [f"{c.__module__}.{c.__qualname__}" for c in type(trainer).__mro__]
        except Exception as exc:  # reported, the test decides
            entry["ok"] = False
            entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["stdout_restored"] = sys.stdout is original_stdout
        if hash_dir:
            entry["hashes_after"] = _hashes(hash_dir)
        report["runs"][item["name"]] = entry
    report["logging_disable_at_end"] = logging.root.manager.disable
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
