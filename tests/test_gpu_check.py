"""``tools/gpu_check.py`` on CPU: its tiny part runs (matrix through the GPU code path, the pair with tiny
models when asked), the GPU-only parts are skipped with their reason, and the JSON / markdown say so."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from tools import gpu_check
from trainers.common.precision import ENV_CPU_HALF

pytestmark = [pytest.mark.usefixtures("run_hygiene", "one_thread"),
              pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour of the tool")]


def test_gpu_check_on_cpu(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_CPU_HALF, raising=False)
    out = tmp_path / "report"
    rc = gpu_check.main(["--out", str(out), "--trainers", "PromptKD", "CoOp", "ZeroshotCLIP",
                         "--precs", "fp32", "amp", "bf16-frozen", "--pair-on-cpu", "--teacher", "tiny-vit-teacher",
                         "--student", "tiny-vit-student", "--image-size", "32", "--batches", "2",
                         "--pair-precs", "fp16", "--warmup", "1", "--steps", "1",
                         "--pair-opts", "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "2"])
    assert rc == 0
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["cuda"] is False and report["device"].startswith("CPU")
    cells = {(r["trainer"], r["prec"]): r for r in report["matrix"]}
    assert set(cells) == {(t, p) for t in ("PromptKD", "CoOp", "ZeroshotCLIP") for p in ("fp32", "amp", "bf16-frozen")}
    assert all(r["status"] == "ok" for r in cells.values()), [r.get("error") for r in cells.values()]
    # amp really ran (the tool's test-only CPU switch), not the fp32 fallback; bf16-frozen is PREC bf16
    assert cells[("PromptKD", "amp")]["resolved"] == "amp" and cells[("CoOp", "bf16-frozen")]["resolved"] == "bf16"
    assert all(math.isfinite(cells[(t, "amp")]["loss"]) for t in ("PromptKD", "CoOp"))
    assert ENV_CPU_HALF not in os.environ  # the switch was set for the tool's runs only
    (pair,) = report["pair"]
    assert pair["status"] == "ok" and pair["prec"] == "fp16" and pair["batch"] == 2
    for key in ("online_img_s", "replay_img_s", "eval_img_s"):
        assert pair[key] > 0
    assert pair["online_step_s"] == pytest.approx(2 / pair["online_img_s"])
    assert pair["online_peak_mib"] is None  # no CUDA memory statistics on CPU
    assert report["ddp"] == {"status": "skipped", "reason": "needs 2 GPUs, this machine has 0"}
    md = (out / "gpu_check.md").read_text()
    assert "| trainer | fp32 | amp | bf16-frozen |" in md
    assert md.count("| ok (") == 9 and "| PromptKD | ok (" in md
    assert "| fp16 | 2 | " in md and "skipped: needs 2 GPUs, this machine has 0" in md
