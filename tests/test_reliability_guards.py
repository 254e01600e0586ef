"""Guards (docs/RELIABILITY.md): atomic saves under injected failures, the non-finite loss guard, the
collapse detector, per-epoch logs (metrics.csv, tensorboard) and the environment header of the log."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import train
from engine import utils as engine_utils
from engine.checkpoint import (DONE_NAME, RESUME_STATE_NAME, load_checkpoint, load_resume_state, save_checkpoint,
                               save_resume_state)
from engine.trainer import TrainerBase
from engine.utils import read_json, write_json
from tests.helpers.tiny_env import CANNED_ENV_INFO, make_tiny_env
from tests.test_reliability_resume import ckpt_state, read_csv, student_argv
from trainers.common.run_results import collapse_report
from trainers.common.class_vectors import load_class_vectors, save_class_vectors

torch.set_num_threads(1)


pytestmark = pytest.mark.usefixtures("run_hygiene")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("reliability_guards"))


def failing_torch_save(monkeypatch, should_fail):
    """torch.save that writes a few bytes and then fails (disk full) when ``should_fail(obj)``."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if should_fail(obj):
            f.write(b"PARTIAL")
            raise OSError(28, "No space left on device (injected)")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def no_temp_files(folder):
    return [f for f in os.listdir(folder) if f.endswith(".tmp")] == []


# ------------------------------------------------------------------------------------------------
def test_failed_saves_leave_the_previous_files_intact(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    folder = tmp_path / "VLPromptLearner"
    save_checkpoint({"state_dict": first, "epoch": 1}, str(folder), is_best=True)
    save_resume_state({"epoch": 1, "batches_done": 0, "weights": first}, str(tmp_path / RESUME_STATE_NAME))
    names = ["a", "b"]
    cv_path = str(tmp_path / "cv.pt")
    save_class_vectors(cv_path, torch.eye(2, 4), names, {"model": "m"}, 100.0)
    write_json({"hm": 1.0}, str(tmp_path / "results.json"))

    with torch.no_grad():
        model.weight.add_(1.0)
    failing_torch_save(monkeypatch, lambda obj: True)
    with pytest.raises(OSError, match="injected"):
        save_checkpoint({"state_dict": model.state_dict(), "epoch": 2}, str(folder), is_best=True)
    with pytest.raises(OSError, match="injected"):
        save_checkpoint({"state_dict": model.state_dict(), "epoch": 2}, str(folder), model_name="model-best.pth.tar")
    with pytest.raises(OSError, match="injected"):
        save_resume_state({"epoch": 2, "batches_done": 3, "weights": model.state_dict()}, str(tmp_path / RESUME_STATE_NAME))
    with pytest.raises(OSError, match="injected"):
        save_class_vectors(cv_path, torch.eye(2, 4).flip(0), names, {"model": "other"}, 50.0)
    monkeypatch.undo()
    monkeypatch.setattr(engine_utils, "collect_env_info", lambda: CANNED_ENV_INFO)

    def failing_fsync(fd):
        raise OSError(5, "I/O error (injected)")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="injected"):
        write_json({"hm": 2.0}, str(tmp_path / "results.json"))
    monkeypatch.setattr(os, "fsync", lambda fd: None)

    # every previous file is intact and loadable; no partial file and no temp file is left behind
    assert sorted(os.listdir(folder)) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-1"]
    assert (folder / "checkpoint").read_text().strip() == "model.pth.tar-1"
    for name in ("model.pth.tar-1", "model-best.pth.tar"):
        ck = load_checkpoint(str(folder / name))
        assert ck["epoch"] == 1 and all(torch.equal(ck["state_dict"][k], first[k]) for k in first)
    state = load_resume_state(str(tmp_path / RESUME_STATE_NAME))
    assert state["epoch"] == 1 and torch.equal(state["weights"]["weight"], first["weight"])
    cv = load_class_vectors(cv_path, expected_classnames=names)
    assert cv.teacher == {"model": "m"} and torch.equal(cv.features, torch.eye(2, 4))
    assert read_json(str(tmp_path / "results.json")) == {"hm": 1.0}
    assert no_temp_files(folder) and no_temp_files(tmp_path)


def test_failed_checkpoint_save_during_training_keeps_the_previous_epoch(env, tmp_path, monkeypatch):
    out = tmp_path / "run"
    opts = ["TRAIN.CHECKPOINT_FREQ", "1"]
    failing_torch_save(monkeypatch, lambda obj: isinstance(obj, dict) and "state_dict" in obj and obj.get("epoch") == 2)
    with pytest.raises(OSError, match="injected"):
        train.main(student_argv(env, out, opts))
    folder = out / "VLPromptLearner"
    assert sorted(f for f in os.listdir(folder) if not f.startswith("class_vectors")) == ["checkpoint", "model.pth.tar-1"]
    assert (folder / "checkpoint").read_text().strip() == "model.pth.tar-1"
    ck = load_checkpoint(str(folder / "model.pth.tar-1"))
    assert ck["epoch"] == 1 and all(torch.isfinite(v.float()).all() for v in ck["state_dict"].values())
    state = load_resume_state(str(out / RESUME_STATE_NAME))  # the epoch-1 state survived too
    assert (state["epoch"], state["batches_done"]) == (1, 0)
    assert not (out / DONE_NAME).exists() and no_temp_files(folder) and no_temp_files(out)

    # the run resumes from what was kept and completes
    monkeypatch.setattr(torch, "save", torch.serialization.save)
    engine_utils.close_logger()
    tr = train.main(student_argv(env, out, opts))
    assert tr.start_epoch == 1 and (out / DONE_NAME).exists() and (folder / "model.pth.tar-2").exists()
    rows = read_csv(out / "metrics.csv")  # the epoch-1 row came back with the resumable state
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.025])  # cosine, stepped once per epoch
    assert all(float(r["grad_norm"]) > 0 and float(r["loss"]) > 0 for r in rows)
    res = read_json(str(out / "results.json"))
    assert float(rows[-1]["test_hm"]) == pytest.approx(res["hm"]) and rows[0]["test_hm"] == ""  # final test only


def test_nonfinite_loss_stops_the_run_and_keeps_the_last_good_state(env, tmp_path, monkeypatch, caplog):
    from trainers.promptkd import PromptKDStudent

    original = PromptKDStudent.parse_batch_train

    def poisoned(self, batch):  # a constructed non-finite input at epoch 2, step 3
        images = original(self, batch)
        return images * float("nan") if (self.epoch, self.batch_idx) == (1, 2) else images

    monkeypatch.setattr(PromptKDStudent, "parse_batch_train", poisoned)
    out = tmp_path / "nan"
    opts = ["TRAIN.CHECKPOINT_STEPS", "1", "TRAIN.CHECKPOINT_FREQ", "1"]
    with pytest.raises(FloatingPointError, match=r"Non-finite loss nan at epoch 2/2, step 3/6"):
        train.main(student_argv(env, out, opts))
    assert "Training stopped" in caplog.text
    # the state saved at step 2 of epoch 2 holds the weights that met the non-finite loss: rolled back one save
    assert "rolled back to the previous state (epoch 2, 1 batch(es))" in caplog.text
    assert f"The last good resumable state is kept: {out / RESUME_STATE_NAME} (epoch 2, 1 batch(es) done)" in caplog.text
    state = load_resume_state(str(out / RESUME_STATE_NAME))
    assert (state["epoch"], state["batches_done"]) == (1, 1)
    weights = state["models"]["VLPromptLearner"]["state_dict"]
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    assert ckpt_state(out, 1)["epoch"] == 1 and not (out / "results.json").exists() and not (out / DONE_NAME).exists()

    # resuming with another batch size is refused (the remaining batches could not be the same)
    monkeypatch.setattr(PromptKDStudent, "parse_batch_train", original)
    engine_utils.close_logger()
    with pytest.raises(ValueError, match=r"with a different configuration \(DATALOADER\.TRAIN_X\.BATCH_SIZE: 2 -> 4;"):
        train.main(student_argv(env, out, opts + ["DATALOADER.TRAIN_X.BATCH_SIZE", "4"]))
    engine_utils.close_logger()
    with pytest.raises(ValueError, match="saved with 6 batches per epoch but the training loader now has 3"):
        train.main(student_argv(env, out, opts + ["DATALOADER.TRAIN_X.BATCH_SIZE", "4"], flags=["--resume-with-changes"]))
    # with the cause fixed, the same command resumes from the kept state and completes
    engine_utils.close_logger()
    tr = train.main(student_argv(env, out, opts))
    assert tr.start_epoch == 1 and (out / DONE_NAME).exists()
    assert all(torch.isfinite(v.float()).all() for v in ckpt_state(out, 2)["state_dict"].values())


def test_engine_loss_guard_names_epoch_and_step():
    class Holder:
        epoch, max_epoch, batch_idx, num_batches = 0, 3, 4, 10

    with pytest.raises(FloatingPointError, match=r"Loss is infinite or NaN! \(loss \[inf\] at epoch 1/3, step 5/10\)"):
        TrainerBase.detect_anomaly(Holder(), torch.tensor(float("inf")))
    TrainerBase.detect_anomaly(Holder(), torch.tensor(1.0))  # finite: no error


def test_collapse_report_criteria():
    healthy = collapse_report({"base": (80.0, 2), "novel": (76.0, 2)}, [2.0, 1.0], best_epoch=3, max_epoch=5)
    assert healthy["flagged"] is False and healthy["reasons"] == []
    near_chance = collapse_report({"base": (74.0, 2), "novel": (20.0, 10)}, [2.0, 1.0])
    assert near_chance["flagged"] and near_chance["reasons"] == [
        "base accuracy 74.00% is below 1.5 x chance (50.00% for 2 classes)"]  # 20% of 10 classes is 2 x chance
    flat = collapse_report({"test": (90.0, 10)}, [2.0, 1.5, 1.85])
    assert flat["reasons"] == ["training loss never dropped: last epoch 1.85 is not below 0.9 x the first epoch's 2"]
    assert collapse_report({"test": (90.0, 10)}, [2.0])["flagged"] is False  # one epoch: loss trend not judged
    best1 = collapse_report({"test": (90.0, 10)}, [], best_epoch=1, max_epoch=20)
    assert best1["reasons"] == ["the selected best epoch is 1 of 20"]


def test_collapse_flag_logs_and_headers_of_a_run_that_does_not_learn(env, tmp_path, caplog):
    # LR 0, no augmentation, no BatchNorm: the training loss cannot drop
    out = tmp_path / "flat"
    opts = ["OPTIM.LR", "0.0", "INPUT.TRANSFORMS", "['normalize']", "TRAINER.PROMPTKD.PROJECT_LAYER", "1"]
    train.main(student_argv(env, out, opts))
    res = read_json(str(out / "results.json"))
    collapse = res["collapse"]
    assert collapse["flagged"] is True
    assert any(r.startswith("training loss never dropped") for r in collapse["reasons"])
    assert collapse["checks"]["first_epoch_loss"] == pytest.approx(collapse["checks"]["last_epoch_loss"], rel=1e-4)
    assert "Collapse detector: this run looks degenerate" in caplog.text

    # metrics.csv: one row per epoch with every loss term, LR and gradient norm; final accuracies in the last row
    rows = read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"lr", "loss", "kd", "grad_norm", "epoch_time_s"} <= set(rows[0])
    assert float(rows[0]["loss"]) == pytest.approx(collapse["checks"]["first_epoch_loss"])
    assert float(rows[1]["test_base_acc"]) == pytest.approx(res["base_acc"])
    # the same scalars in tensorboard (epoch/*)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert {"epoch/loss", "epoch/kd", "epoch/grad_norm", "epoch/lr"} <= set(acc.Tags()["scalars"])
    loss_events = acc.Scalars("epoch/loss")
    assert [e.step for e in loss_events] == [1, 2]
    assert [e.value for e in loss_events] == pytest.approx([float(r["loss"]) for r in rows], rel=1e-6)

    # environment information at the top of the log
    log = (out / "log.txt").read_text()
    assert log.startswith("command: python train.py --root")
    assert log.index("versions: python") < log.index("classes (training)") < log.index("epoch [1/2]")
    env = (out / "env.txt").read_text()  # the long environment report sits beside the log
    assert env.index("** Arguments **") < env.index("** System info **") < env.index("env info skipped in tests")
    assert "** Config **" not in log and (out / "config.yaml").is_file()
