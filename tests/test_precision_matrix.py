"""The precision matrix on CPU: every trainer x PREC fp32 / fp16 / amp / bf16 through the GPU code path.

PREC fp16 and amp fall back to fp32 on CPU for users; here the test-only switch
``PROMPTKD_TEST_ONLY_FP16_ON_CPU=1`` (trainers/common/precision.py) lets them run exactly as on a GPU:
frozen towers stored in half precision (fp16), fp16 autocast and a ``torch.amp.GradScaler`` (amp), bf16
autocast (bf16). Each cell trains one epoch (3 steps) of a tiny random CLIP on a generated 4-class DTD root
and evaluates base / novel, then checks:

- the run really used that precision (resolved PREC, storage dtype of the frozen image tower);
- finite training losses and results; trainable parameters and the optimiser state (SGD momentum) fp32;
- amp: the GradScaler state in the resumable state written at the epoch end equals the trainer's, and
  ``--resume auto`` from it restores it;
- evaluation within tolerance of fp32: the same trained weights evaluated by an fp32 run of the same trainer
  (``--eval-only --model-dir``) give logits on the base test images with
  ``max |logits - logits_fp32| <= TOL[prec] * max |logits_fp32|``.

Stated tolerances (relative to the largest fp32 logit): fp16 and amp 3e-2, bf16 0.24 (also with the frozen
towers stored in bf16, ``MODEL.BACKBONE.FROZEN_PREC bf16``, column "bf16-frozen"). Why: the fp16 bound is
2.5x the largest error measured over these trainers (1.2e-2, PromptSRCTeacher amp; typical 1e-3 to 7e-3),
and the bf16 bound is 8x the fp16 bound because bf16 keeps 3 significant bits fewer than fp16 (unit
roundoff 2^-8 against 2^-11); measured bf16 errors are 8e-3 to 8e-2. Random tiny towers give nearly equal
logits, so these are loose relative to the logit spread but tight against a broken path (wrong dtype
casts or an un-unscaled gradient give errors of order 1). fp32 must match exactly (same weights, same code).
The zero-shot trainer (no training) is compared the same way.
"""

from __future__ import annotations

import copy
import json
import math
import os

import pytest
import torch

import train
import engine.resume
from engine.checkpoint import RESUME_STATE_NAME, save_resume_state as real_save_resume_state
from tests.helpers.tiny_env import make_tiny_env
from tools.gpu_check import MATRIX_TRAINERS, PRECS
from trainers.common.precision import ENV_CPU_HALF

TOL = {"fp32": 0.0, "fp16": 3e-2, "amp": 3e-2, "bf16": 0.24, "bf16-frozen": 0.24}

# the trainers and precisions of tools/gpu_check.py's matrix (the same cells run here on CPU); zero-shot CLIP
# has its own test below
TRAINERS = {name: spec for name, spec in MATRIX_TRAINERS.items() if name != "ZeroshotCLIP"}

pytestmark = [pytest.mark.usefixtures("run_hygiene", "one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("precision_matrix"))


@pytest.fixture(autouse=True)
def cpu_half(monkeypatch):
    monkeypatch.setenv(ENV_CPU_HALF, "1")


def argv(env, trainer, prec, out, extra=()):
    node, backbone, opts = TRAINERS.get(trainer, ("ZSCLIP", "student", []))
    frozen = "bf16" if prec == "bf16-frozen" else "auto"
    prec = "bf16" if prec == "bf16-frozen" else prec
    args = ["--root", env["root"], "--seed", "1", "--trainer", trainer, "--dataset-config-file",
            "configs/datasets/dtd.yaml", "--output-dir", str(out), *extra,
            "MODEL.BACKBONE.NAME", env[backbone], "DATALOADER.NUM_WORKERS", "0", "INPUT.SIZE", "(32, 32)",
            "OPTIM.MAX_EPOCH", "1", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.002", "OPTIM.MOMENTUM", "0.9",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "8", "TRAIN.PRINT_FREQ", "10",
            "DATASET.EVAL_PROTOCOL", "base2novel", f"TRAINER.{node}.PREC", prec,
            "MODEL.BACKBONE.FROZEN_PREC", frozen]
    for key, value in zip(opts[::2], opts[1::2]):
        args += [f"TRAINER.{node}.{key}", value]
    if trainer == "PromptKD":
        args += ["TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"]]
    return args


def eval_logits(tr) -> torch.Tensor:
    """Logits of the base test images through the evaluation code path (eval loader, autocast, inference)."""
    es = tr.dm.dataset.eval_sets["base"]
    tr.set_model_mode("eval")
    tr.set_eval_classnames(es.classnames)
    out = []
    with torch.no_grad():
        for batch in tr._eval_loader("base", es.items):
            images, _ = tr.parse_batch_test(batch)
            with tr.autocast():
                out.append(tr.model_inference(images).float())
    return torch.cat(out)


def frozen_visual(tr):
    model = getattr(tr, "model", None)
    if model is None:
        return tr.clip_model.visual
    return model.visual if hasattr(model, "visual") else model.backbone.visual


def check_storage(visual, prec):
    """Frozen matmul weights in fp16 (PREC fp16) / bf16 (FROZEN_PREC bf16), else fp32; LayerNorms always fp32."""
    expected = {"fp16": torch.float16, "bf16-frozen": torch.bfloat16}.get(prec, torch.float32)
    assert visual.conv1.weight.dtype == expected
    assert visual.transformer.resblocks[0].attn.in_proj_weight.dtype == expected
    assert visual.ln_post.weight.dtype == torch.float32


def check_scaler_resume(env, trainer, out, tr, written):
    """The resumable state written at the end of the epoch holds the trainer's GradScaler state, and a
    ``--resume auto`` from that file restores it (the finished run removes the file: it is put back)."""
    saved = written[-1]["extra"]["scaler"]
    assert saved == tr.scaler.state_dict()
    assert saved != torch.amp.GradScaler("cpu").state_dict(), "the scaler never changed: a vacuous check"
    real_save_resume_state(written[-1], os.path.join(out, RESUME_STATE_NAME))
    again = train.main(argv(env, trainer, "amp", out, extra=["--resume", "auto"]))
    assert again.epoch_log and again.scaler.state_dict() == saved


@pytest.mark.parametrize("prec", PRECS)
@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_train_and_eval_in_every_precision(env, tmp_path, monkeypatch, trainer, prec):
    out = tmp_path / "run"
    written = []  # every resumable state the run writes (a spy on engine.resume's save_resume_state)

    def spy(state, path):
        written.append(copy.deepcopy(state))
        real_save_resume_state(state, path)

    monkeypatch.setattr(engine.resume, "save_resume_state", spy)
    tr = train.main(argv(env, trainer, prec, out))
    assert tr.prec == prec.replace("-frozen", "")
    check_storage(frozen_visual(tr), prec)
    assert (tr.scaler is not None) == (prec == "amp")
    losses = [row["loss"] for row in tr.epoch_log]
    assert losses and all(math.isfinite(v) for v in losses), losses
    trainable = [(n, p) for n, p in tr.model.named_parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for _, p in trainable)
    buffers = [v for st in tr.optim.state.values() for v in st.values() if torch.is_tensor(v) and v.numel() > 1]
    assert buffers, "no optimiser step was taken (amp: every step overflowed)"
    assert all(b.dtype == torch.float32 for b in buffers)
    with open(out / "results.json") as f:
        res = json.load(f)
    assert res["precision"] == tr.prec and math.isfinite(res["hm"])
    logits = eval_logits(tr)
    assert torch.isfinite(logits).all()
    if prec == "amp":
        check_scaler_resume(env, trainer, out, tr, written)

    ref = train.main(argv(env, trainer, "fp32", tmp_path / "fp32", extra=["--eval-only", "--model-dir", str(out)])
                     + (["TRAINER.PROMPTKD.CLASS_VECTORS", str(tr.class_vectors.path)] if trainer == "PromptKD" else []))
    ref_logits = eval_logits(ref)
    err = float((logits - ref_logits).abs().max() / ref_logits.abs().max())
    print(f"precision matrix: {trainer} {prec} eval max rel. logit error {err:.2e} (tolerance {TOL[prec]:.0e})")
    assert err <= TOL[prec], (trainer, prec, err)


@pytest.mark.parametrize("prec", PRECS[1:])
def test_zero_shot_eval_in_every_precision(env, tmp_path, prec):
    ref = train.main(argv(env, "ZeroshotCLIP", "fp32", tmp_path / "fp32", extra=["--eval-only"]))
    tr = train.main(argv(env, "ZeroshotCLIP", prec, tmp_path / prec, extra=["--eval-only"]))
    assert tr.prec == prec.replace("-frozen", "")
    check_storage(tr.clip_model.visual, prec)
    err = float((eval_logits(tr) - eval_logits(ref)).abs().max() / eval_logits(ref).abs().max())
    print(f"precision matrix: ZeroshotCLIP {prec} eval max rel. logit error {err:.2e} (tolerance {TOL[prec]:.0e})")
    assert 0 < err <= TOL[prec], err
