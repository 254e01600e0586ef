"""Precision modes on CPU (PREC fp32 / bf16; fp16 and amp need CUDA and fall back to fp32 with a warning).

Stated tolerance: on the same batch and initialisation (tiny random-weight towers), the bf16-autocast KD
loss is within 8 % (relative) of the fp32 loss (measured 0.3-4.3 % over 8 random batches), and the first
SGD update of the trainable parameters has cosine >= 0.9 with the fp32 update and a norm within 20 %
(measured 0.994 and 2 %).
Trainable parameters, their gradients, the logits and the loss stay fp32 in every mode.
"""

from __future__ import annotations

import logging

import pytest
import torch

import train
from tests.helpers.tiny_env import make_tiny_env

torch.set_num_threads(1)

LOSS_RTOL = 0.08
UPDATE_MIN_COSINE = 0.9
UPDATE_NORM_RTOL = 0.2


pytestmark = pytest.mark.usefixtures("fast_env_info")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("precision"))


def build(env, out, prec):
    argv = ["--root", env["root"], "--seed", "1", "--trainer", "PromptKDStudent", "--no-train",
            "--dataset-config-file", "configs/datasets/dtd.yaml",
            "--config-file", "configs/trainers/PromptKD/tiny_smoke.yaml", "--output-dir", str(out),
            "MODEL.BACKBONE.NAME", env["student"], "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot",
            "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"], "TRAINER.PROMPTKD.KD_WEIGHT", "10.0",
            "TRAINER.PROMPTKD.PREC", prec, "OPTIM.LR", "0.05", "DATALOADER.TRAIN_X.BATCH_SIZE", "6"]
    tr = train.main(argv)
    tr.build_teacher_encoder()
    tr.set_model_mode("train")
    return tr


def _trainable(tr):
    return {n: p for n, p in tr.model.named_parameters() if p.requires_grad}


def test_bf16_step_matches_fp32_within_tolerance(env, tmp_path):
    torch.manual_seed(5)
    images = torch.randn(6, 3, 32, 32)
    trainers = {prec: build(env, tmp_path / prec, prec) for prec in ("fp32", "bf16")}
    t32, t16 = trainers["fp32"], trainers["bf16"]
    assert t32.prec == "fp32" and t16.prec == "bf16"
    before = {n: p.detach().clone() for n, p in _trainable(t32).items()}
    for n, p in _trainable(t16).items():  # same seed -> same initialisation
        assert torch.equal(p.detach(), before[n]), n

    logits = {}
    for prec, tr in trainers.items():
        s, t = tr.distillation_logits(images)
        logits[prec] = (s, t)
        assert s.dtype == torch.float32 and t.dtype == torch.float32
    # bf16 autocast really ran the towers in bf16: the logits are close but not identical
    assert not torch.equal(logits["fp32"][1], logits["bf16"][1])
    assert torch.allclose(logits["fp32"][1], logits["bf16"][1], atol=0.5)

    losses = {prec: tr.forward_backward({"img": images}) for prec, tr in trainers.items()}
    l32, l16 = losses["fp32"]["loss"], losses["bf16"]["loss"]
    assert l32 > 0 and abs(l16 - l32) <= LOSS_RTOL * abs(l32), (l32, l16)
    for prec, tr in trainers.items():
        for n, p in _trainable(tr).items():
            assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32, (prec, n)
    d32 = torch.cat([(p.detach() - before[n]).flatten() for n, p in _trainable(t32).items()])
    d16 = torch.cat([(p.detach() - before[n]).flatten() for n, p in _trainable(t16).items()])
    assert d32.norm() > 0
    cosine = float(torch.nn.functional.cosine_similarity(d16, d32, dim=0))
    ratio = float(d16.norm() / d32.norm())
    assert cosine >= UPDATE_MIN_COSINE and abs(ratio - 1) <= UPDATE_NORM_RTOL, (cosine, ratio)


def test_cuda_only_precisions_fall_back_to_fp32_on_cpu(env, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        tr = build(env, tmp_path / "amp", "amp")
    assert tr.prec == "fp32" and tr.scaler is None
    assert any("needs CUDA; running in fp32" in r.getMessage() for r in caplog.records)
    assert next(tr.model.visual.parameters()).dtype == torch.float32
    out = tr.forward_backward({"img": torch.randn(6, 3, 32, 32)})
    assert out["loss"] > 0 and torch.isfinite(torch.as_tensor(out["loss"]))
