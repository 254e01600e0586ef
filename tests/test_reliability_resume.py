"""Resume and run-folder semantics (docs/RELIABILITY.md).

- A PromptKD run SIGKILLed mid-epoch (in a subprocess, ``TRAIN.DEBUG_KILL_AT_STEP``) and resumed with the
  same command finishes with exactly the prompts, projector, optimiser trajectory, metrics and per-epoch
  logs of an uninterrupted run (deterministic mode, random augmentation, SGD momentum, BatchNorm).
- A finished run (DONE + results.json) is not redone by the same command; ``--resume auto`` re-opens it,
  ``--overwrite`` starts again; bad ``--resume`` values are refused with clear messages.
- ``ENGINE.DETERMINISTIC``: two CPU runs are bit-identical.

The common argv (``student_argv``) is shared with the other reliability / error / export tests; the tiny
CLIP weight files and the generated DTD root come from ``tests/helpers/tiny_env.py``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import train
from engine import utils as engine_utils
from engine.checkpoint import DONE_NAME, RESUME_STATE_NAME, load_resume_state
from tests.helpers.tiny_env import make_tiny_env

torch.set_num_threads(1)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a subprocess that runs train.main like `python train.py`, single-threaded, without the slow env probe
_RUNNER = ("import sys, torch; torch.set_num_threads(1); import engine.utils as u; "
           "u.collect_env_info = lambda: 'env info skipped in tests'; import train; train.main(sys.argv[1:])")


def student_argv(env, out, opts=(), flags=(), epochs=2) -> list:
    """PromptKD student, zero-shot tiny teacher, 32 px, batch 2 (6 batches per epoch), deterministic mode."""
    return ["--root", env["root"], "--seed", "1", "--trainer", "PromptKD",
            "--dataset-config-file", "configs/datasets/dtd.yaml", "--output-dir", str(out), *flags,
            "MODEL.BACKBONE.NAME", env["student"], "DATALOADER.NUM_WORKERS", "0", "INPUT.SIZE", "(32, 32)",
            "INPUT.TRANSFORMS", "['random_resized_crop', 'random_flip', 'normalize']",
            "OPTIM.MAX_EPOCH", str(epochs), "OPTIM.NAME", "sgd", "OPTIM.LR", "0.05", "OPTIM.LR_SCHEDULER", "cosine",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "DATALOADER.TEST.BATCH_SIZE", "8", "TRAIN.PRINT_FREQ", "100",
            "DATASET.EVAL_PROTOCOL", "base2novel", "DATASET.TRAIN_LABELS", "drop", "ENGINE.DETERMINISTIC", "True",
            "TRAINER.PROMPTKD.PREC", "fp32", "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "2",
            "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot", "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"],
            "TRAINER.PROMPTKD.KD_WEIGHT", "10.0", *opts]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def ckpt_state(out, epoch):
    return torch.load(os.path.join(out, "VLPromptLearner", f"model.pth.tar-{epoch}"), map_location="cpu",
                      weights_only=False)


pytestmark = pytest.mark.usefixtures("run_hygiene")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("reliability_resume"))


# ------------------------------------------------------------------------------------------------
def test_killed_mid_epoch_then_resumed_equals_uninterrupted(env, tmp_path):
    opts = ["TRAIN.CHECKPOINT_STEPS", "2", "TRAIN.CHECKPOINT_FREQ", "1"]
    ref_dir = tmp_path / "uninterrupted"
    train.main(student_argv(env, ref_dir, opts))
    engine_utils.close_logger()

    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *student_argv(env, out, opts + ["TRAIN.DEBUG_KILL_AT_STEP", "9"])],
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-3000:]
    # killed at global step 9 of 12: the last resumable state is the one of step 8 (epoch 2, 2 of 6 batches)
    state = load_resume_state(str(out / RESUME_STATE_NAME))
    assert (state["epoch"], state["batches_done"], state["num_batches"]) == (1, 2, 6)
    assert sorted(state["meters"]) == ["grad_norm", "kd", "loss"] and state["meters"]["loss"]["count"] == 2
    assert [row["epoch"] for row in state["epoch_log"]] == [1]
    assert not (out / DONE_NAME).exists() and not (out / "results.json").exists()

    # the same command (no --resume flag = auto) resumes in the middle of epoch 2
    tr = train.main(student_argv(env, out, opts))
    assert tr.start_epoch == 1
    log = next(open(out / f) for f in sorted(os.listdir(out)) if f.startswith("log.txt-")).read()
    assert "Resuming epoch 2/2 at batch 3/6: replaying the data loader over 2 batch(es)" in log

    for epoch in (1, 2):
        got, ref = ckpt_state(out, epoch), ckpt_state(ref_dir, epoch)
        assert sorted(got["state_dict"]) == sorted(ref["state_dict"])
        for k, v in ref["state_dict"].items():
            assert torch.equal(got["state_dict"][k], v), f"epoch {epoch}: {k} differs from the uninterrupted run"
        for a, b in zip(got["optimizer"]["state"].values(), ref["optimizer"]["state"].values()):
            assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    res, res_ref = read_json(out / "results.json"), read_json(ref_dir / "results.json")
    assert res["metrics"] == res_ref["metrics"] and res["hm"] == res_ref["hm"]
    rows, rows_ref = read_csv(out / "metrics.csv"), read_csv(ref_dir / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for r, r_ref in zip(rows, rows_ref):
        for key in ("lr", "loss", "kd", "grad_norm", "test_base_acc", "test_novel_acc", "test_hm"):
            assert r.get(key) == r_ref.get(key), key
    # a complete run: DONE written, the resumable state removed
    assert (out / DONE_NAME).exists() and not (out / RESUME_STATE_NAME).exists()
    assert read_json(out / DONE_NAME)["results"] == "results.json"


def test_finished_run_is_not_redone_and_run_folder_flags(env, tmp_path, caplog):
    out = tmp_path / "run"
    first = train.main(student_argv(env, out, epochs=1))
    assert first.start_epoch == 0
    res = read_json(out / "results.json")
    assert read_json(out / DONE_NAME)["mode"] == "train" and not (out / RESUME_STATE_NAME).exists()
    listing = sorted(os.listdir(out))
    mtime = os.path.getmtime(out / "results.json")

    # the same command again: says so, exits, touches nothing
    engine_utils.close_logger()
    caplog.clear()
    assert train.main(student_argv(env, out, epochs=1)) is None
    msg = caplog.text
    assert "already holds a finished run" in msg and "--overwrite" in msg and "--resume auto" in msg
    assert sorted(os.listdir(out)) == listing and os.path.getmtime(out / "results.json") == mtime
    # --resume none would retrain over it, --eval-only would overwrite its results: refused the same way
    assert train.main(student_argv(env, out, flags=["--resume", "none"], epochs=1)) is None
    assert train.main(student_argv(env, out, flags=["--eval-only", "--model-dir", str(out)], epochs=1)) is None
    assert os.path.getmtime(out / "results.json") == mtime

    # --resume auto re-opens it: nothing left to train, the evaluation is redone
    engine_utils.close_logger()
    again = train.main(student_argv(env, out, flags=["--resume", "auto"], epochs=1))
    assert again.start_epoch == 1 and read_json(out / "results.json")["metrics"] == res["metrics"]

    # --overwrite trains again from scratch in the same folder (same seed: same result)
    engine_utils.close_logger()
    fresh = train.main(student_argv(env, out, flags=["--overwrite"], epochs=1))
    assert fresh.start_epoch == 0 and read_json(out / "results.json")["metrics"] == res["metrics"]
    assert (out / DONE_NAME).exists()

    with pytest.raises(ValueError, match="--overwrite starts from scratch but --resume 'auto' asks to resume"):
        train.main(student_argv(env, out, flags=["--overwrite", "--resume", "auto"], epochs=1))
    missing = tmp_path / "no_such_run"
    with pytest.raises(FileNotFoundError, match=r"no such file or directory\. Use 'auto'.*'none'"):
        train.main(student_argv(env, tmp_path / "other", flags=["--resume", str(missing)], epochs=1))
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"the folder holds neither last_state\.pth\.tar nor epoch checkpoints of "
                                                r"\['VLPromptLearner'\]"):
        train.main(student_argv(env, tmp_path / "other1", flags=["--resume", str(empty)], epochs=1))
    not_a_state = out / "VLPromptLearner" / "model.pth.tar-1"
    with pytest.raises(ValueError, match="is not a resumable state file"):
        train.main(student_argv(env, tmp_path / "other2", flags=["--resume", str(not_a_state)], epochs=1))


def test_deterministic_mode_two_cpu_runs_are_bit_identical(env, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train.main(student_argv(env, a, epochs=1))
    engine_utils.close_logger()
    train.main(student_argv(env, b, epochs=1))
    sa, sb = ckpt_state(a, 1)["state_dict"], ckpt_state(b, 1)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert read_json(a / "results.json")["metrics"] == read_json(b / "results.json")["metrics"]
    ra, rb = read_csv(a / "metrics.csv"), read_csv(b / "metrics.csv")
    assert [(r["loss"], r["grad_norm"]) for r in ra] == [(r["loss"], r["grad_norm"]) for r in rb]
