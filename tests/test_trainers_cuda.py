"""Precision modes on a GPU (skipped without CUDA): fp16 (frozen towers in half), amp, bf16.

Each trainer runs one epoch of a tiny model; trainable parameters must stay fp32, the frozen towers
must be half precision only for PREC fp16, and the run must produce finite results. The same code paths
run on CPU for every trainer in tests/test_precision_matrix.py (through the test-only switch
PROMPTKD_TEST_ONLY_FP16_ON_CPU); this file checks them on a real GPU.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import train
from tests.helpers.fake_roots import make_root
from tests.helpers.tiny_env import save_tiny_clips

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
              pytest.mark.usefixtures("fast_env_info")]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("cuda")
    root = make_root("DescribableTextures", base, n_classes=4, per_class=6)
    return root, save_tiny_clips(base)


@pytest.mark.parametrize("prec", ["fp16", "amp", "bf16"])
@pytest.mark.parametrize("trainer,node", [("IVLP", "IVLP"), ("PromptSRC", "PROMPTSRC"), ("PromptKD", "PROMPTKD")])
def test_precision_modes(env, tmp_path, trainer, node, prec):
    root, paths = env
    opts = [f"TRAINER.{node}.PREC", prec, f"TRAINER.{node}.PROMPT_DEPTH_VISION", "2"]
    if node != "PROMPTKD":
        opts += [f"TRAINER.{node}.PROMPT_DEPTH_TEXT", "2"]
    else:
        opts += ["TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot", "TRAINER.PROMPTKD.TEACHER_NAME", paths["tiny-vit-teacher"]]
    out = tmp_path / "out"
    tr = train.main(["--root", root, "--seed", "1", "--trainer", trainer, "--dataset-config-file",
                     "configs/datasets/dtd.yaml", "--output-dir", str(out),
                     "MODEL.BACKBONE.NAME", paths["tiny-vit-student"], "DATALOADER.NUM_WORKERS", "0",
                     "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.002",
                     "DATALOADER.TRAIN_X.BATCH_SIZE", "4"] + opts)
    assert tr.device.type == "cuda" and tr.prec == prec
    assert all(p.dtype == torch.float32 for p in tr.model.parameters() if p.requires_grad)
    visual = tr.model.visual if trainer == "PromptKD" else tr.model.backbone.visual
    assert visual.conv1.weight.dtype == (torch.float16 if prec == "fp16" else torch.float32)
    with open(out / "results.json") as f:
        res = json.load(f)
    assert math.isfinite(res["hm"]) and res["precision"] == prec
