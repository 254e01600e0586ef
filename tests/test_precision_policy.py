"""The precision policy (trainers/common/precision.py): PREC per device, the test-only CPU switch, and the
storage of frozen towers (``MODEL.BACKBONE.FROZEN_PREC``)."""

from __future__ import annotations

import logging

import pytest
import torch

from trainers.common.precision import ENV_CPU_HALF, frozen_storage, resolve_precision

CPU = torch.device("cpu")


def test_cpu_falls_back_to_fp32_without_the_switch(monkeypatch, caplog):
    monkeypatch.delenv(ENV_CPU_HALF, raising=False)
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("fp16", CPU, "TRAINER.X.PREC") == "fp32"
        assert resolve_precision("amp", CPU, "TRAINER.X.PREC") == "fp32"
    assert sum("TRAINER.X.PREC = " in r.getMessage() and "needs CUDA" in r.getMessage() for r in caplog.records) == 2
    assert resolve_precision("bf16", CPU) == "bf16" and resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(ValueError, match="'fp8' is not supported"):
        resolve_precision("fp8", CPU)


def test_test_only_switch_runs_half_precision_on_cpu_and_says_so(monkeypatch, caplog):
    monkeypatch.setenv(ENV_CPU_HALF, "1")
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("fp16", CPU, "TRAINER.X.PREC") == "fp16"
        assert resolve_precision("amp", CPU, "TRAINER.X.PREC") == "amp"
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 2 and all("TEST-ONLY" in m and ENV_CPU_HALF in m for m in msgs)
    for bad in ("yes", "true", "2"):  # only exactly 1 switches it on; anything else is an error, not ignored
        monkeypatch.setenv(ENV_CPU_HALF, bad)
        with pytest.raises(ValueError, match=f"{ENV_CPU_HALF}='{bad}'"):
            resolve_precision("fp16", CPU)


def test_frozen_storage(monkeypatch):
    monkeypatch.delenv(ENV_CPU_HALF, raising=False)
    # auto: fp16 storage only under PREC fp16 (the reference's half-precision towers)
    assert [frozen_storage(p, "auto") for p in ("fp32", "fp16", "amp", "bf16")] == ["fp32", "fp16", "fp32", "fp32"]
    assert frozen_storage("fp16", None) == "fp16" and frozen_storage("fp32", "") == "fp32"
    assert [frozen_storage(p, "bf16") for p in ("fp32", "amp", "bf16")] == ["bf16"] * 3
    assert frozen_storage("bf16", "fp32") == "fp32"
    # explicit fp16 storage follows the fp16 device rule: CPU falls back unless the test switch is on
    assert frozen_storage("fp32", "fp16", CPU) == "fp32"
    monkeypatch.setenv(ENV_CPU_HALF, "1")
    assert frozen_storage("fp32", "fp16", CPU) == "fp16"
    with pytest.raises(ValueError, match="MODEL.BACKBONE.FROZEN_PREC = 'half' is not supported"):
        frozen_storage("fp32", "half")
