"""Safe and honest runs (docs/RELIABILITY.md): nothing executes from a checkpoint, no silent wrong result,
preemption-safe runs.

- A pickle payload in a checkpoint does not run (its marker file stays absent) at any entry point and the
  load fails with ``UnsafeCheckpointError``; a Dassl-style file with pickled scheduler objects is
  converted by tools/convert_checkpoint.py without running anything.
- Each formerly silent case ends in a named error (message asserted) or a recorded decision.
- SIGTERM during training writes the resumable state and exits 75; the same command resumes to the same
  final tensors as an uninterrupted run.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import clip
import train
from datasets.utils import DatasetError
from engine import utils as engine_utils
from engine.checkpoint import RESUME_STATE_NAME, load_resume_state
from engine.cli_errors import run_cli
from engine.fileio import atomic_write_text
from engine.run_checks import ResumeConfigError, UntrainedWeightsError
from engine.run_guard import LOCK_NAME, OutputLock, OutputLockedError, remove_stale_temp_files
from engine.safe_load import CorruptCheckpointError, UnsafeCheckpointError, safe_torch_load
from tests.helpers.tiny_env import make_tiny_env
from tests.test_reliability_resume import REPO, ckpt_state, read_csv, read_json, student_argv
from trainers.common.checkpoints import CheckpointKeyError

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures("run_hygiene")

_RUNNER_SIGTERM = (
    "import os, signal, sys, torch; torch.set_num_threads(1); import engine.utils as u; "
    "u.collect_env_info = lambda: 'env info skipped in tests'; import train; "
    "from engine.trainer import SimpleTrainer; orig = SimpleTrainer._after_train_step\n"
    "def hook(self):\n"
    "    if self.epoch * self.num_batches + self.batch_idx + 1 == 9: os.kill(os.getpid(), signal.SIGTERM)\n"
    "    orig(self)\n"
    "SimpleTrainer._after_train_step = hook\n"
    "from engine.cli_errors import run_cli; sys.exit(run_cli(train.main, 'train.py', sys.argv[1:]))"
)


class Payload:
    """Pickles to a call that creates a marker file: proof that a load executed code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_file(path, marker, **extra) -> str:
    obj = {"state_dict": {"w": torch.zeros(2)}, "epoch": 1, "payload": Payload(str(marker)), **extra}
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    torch.save(obj, str(path))
    return str(path)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("safe_runs"))


@pytest.fixture(scope="module")
def finished(env, tmp_path_factory):
    """A finished 1-epoch PromptKD run (zero-shot tiny teacher)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train.main(student_argv(env, out, epochs=1))
    engine_utils.close_logger()
    return out


# ------------------------------------------------------------------------------------------------ 1. safe loading
def test_payload_never_executes_at_any_entry_point(env, finished, tmp_path):
    marker = tmp_path / "EXECUTED"
    evil = evil_file(tmp_path / "evil" / "model.pth.tar-20", marker)
    named = r"cannot be loaded safely: it references io\.open\. Nothing from the file was executed"

    # TRAINER.PROMPTKD.TEACHER_CKPT
    opts = ["TRAINER.PROMPTKD.TEACHER_TYPE", "promptsrc", "TRAINER.PROMPTKD.TEACHER_CKPT", evil]
    with pytest.raises(UnsafeCheckpointError, match=r"teacher checkpoint \(TRAINER\.PROMPTKD\.TEACHER_CKPT\) .*" + named):
        train.main(student_argv(env, tmp_path / "t", opts))
    # --eval-only --model-dir
    model_dir = tmp_path / "student"
    evil_file(model_dir / "VLPromptLearner" / "model-best.pth.tar", marker)
    with pytest.raises(UnsafeCheckpointError, match=named):
        train.main(student_argv(env, tmp_path / "e", flags=["--eval-only", "--model-dir", str(model_dir)]))
    # --resume PATH and auto-resume from a planted last_state.pth.tar
    planted = tmp_path / "planted"
    evil_file(planted / RESUME_STATE_NAME, marker)
    with pytest.raises(UnsafeCheckpointError, match=named):
        train.main(student_argv(env, tmp_path / "r", flags=["--resume", str(planted)]))
    with pytest.raises(UnsafeCheckpointError, match=named):
        train.main(student_argv(env, planted))
    # tools/export_student.py, tools/make_class_vectors.py, tools/predict.py
    from tools import export_student, make_class_vectors, predict

    with pytest.raises(UnsafeCheckpointError, match=named):
        export_student.export_student(str(finished), str(tmp_path / "s.pt"), checkpoint=evil)
    with pytest.raises(UnsafeCheckpointError, match=named):
        make_class_vectors.main([evil, "--dataset-config-file", "configs/datasets/dtd.yaml", "--root", env["root"],
                                 "--out", str(tmp_path / "cv.pt"), "--teacher-name", env["teacher"]])
    with pytest.raises(UnsafeCheckpointError, match=named):
        predict.load_artefact(evil)
    assert not marker.exists()


def test_truncated_files_and_conversion_of_pickled_scheduler_objects(tmp_path, capsys):
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.arange(1000.0)}, "epoch": 3}, good)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=r"trunc\.pt is truncated or not a torch file .*copy or download it again"):
        safe_torch_load(str(tmp_path / "trunc.pt"), "teacher checkpoint")

    # a Dassl warm-up scheduler pickles its successor (CosineAnnealingLR holding an SGD): refused, then converted
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    succ = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10)
    released = tmp_path / "released.pth.tar"
    weights = {"prompt_learner.ctx": torch.randn(2, 8)}
    torch.save({"state_dict": weights, "epoch": 20, "optimizer": opt.state_dict(), "val_result": None,
                "scheduler": {"successor": succ, "warmup_epoch": 1, "last_epoch": 20}}, released)
    with pytest.raises(UnsafeCheckpointError, match=r"torch\.optim\.lr_scheduler\.CosineAnnealingLR.*"
                                                     r"python tools/convert_checkpoint\.py"):
        safe_torch_load(str(released))
    from tools import convert_checkpoint

    out = tmp_path / "converted.pth.tar"
    assert convert_checkpoint.main([str(released), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Trusted: torch's weights_only allow-list only" in printed and "torch.optim.sgd.SGD" in printed
    loaded = torch.load(out, weights_only=True)
    assert torch.equal(loaded["state_dict"]["prompt_learner.ctx"], weights["prompt_learner.ctx"])
    assert loaded["scheduler"] is None and loaded["epoch"] == 20
    assert isinstance(loaded["optimizer"], dict)  # plain types: kept


# ------------------------------------------------------------------------------------------------ 2. silent cases
def _teacher_ckpt(env, path, text_layers=2, image_layers=2, declared=(2, 2)):
    info = clip.model_info(clip.load(env["teacher"]))
    state = {f"text_prompts.layer{i}": torch.randn(2, info.text_width) for i in range(text_layers)}
    state.update({f"image_prompts.layer{i}": torch.randn(2, info.vision_width) for i in range(image_layers)})
    meta = {"trainer": "PromptSRCTeacher", "backbone": env["teacher"], "ctx_init": "a photo of a",
            "prompt": {"depth_text": declared[0], "depth_vision": declared[1]}}
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    torch.save({"state_dict": state, "epoch": 1, "meta": meta}, str(path))
    return str(path)


def test_teacher_strictness_discovery_and_image_size(env, tmp_path):
    def run(ckpt, out, opts=()):
        return train.main(student_argv(env, tmp_path / out, ["TRAINER.PROMPTKD.TEACHER_TYPE", "promptsrc",
                                                             "TRAINER.PROMPTKD.TEACHER_CKPT", ckpt, *opts], epochs=1))

    shallow = _teacher_ckpt(env, tmp_path / "t1" / "model.pth.tar-1", text_layers=1)
    with pytest.raises(CheckpointKeyError, match=r"is incomplete: 1 text prompt layer\(s\), its meta says 2\. It would "
                                                 r"load as a shallower teacher"):
        run(shallow, "a")
    no_image = _teacher_ckpt(env, tmp_path / "t2" / "model.pth.tar-1", image_layers=0)
    with pytest.raises(CheckpointKeyError, match=r"no image prompts at all"):
        run(no_image, "b")
    # a released-layout teacher (no meta) missing its last text layer, against the expected layout
    from tests.test_trainers_teacher import to_reference_layout
    from trainers.common.vl_model import VLPromptCLIP

    ref = to_reference_layout(VLPromptCLIP(clip.load(env["teacher"]), ["a", "b"], 2, 2, "a photo of a", 2, 2))
    ref.pop("text_encoder.transformer.resblocks.1.VPT_shallow")
    torch.save({"state_dict": ref, "epoch": 20, "optimizer": None, "scheduler": None, "val_result": None},
               tmp_path / "released.pth.tar")
    with pytest.raises(CheckpointKeyError, match=r"\(reference layout\) is incomplete: 1 text prompt layer\(s\), "
                                                 r"TRAINER\.PROMPTKD\.TEACHER_PROMPT_DEPTH_TEXT/VISION says 2"):
        run(str(tmp_path / "released.pth.tar"), "r", ["TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"],
                                                      "TRAINER.PROMPTKD.TEACHER_PROMPT_DEPTH_TEXT", "2"])
    # discovery follows Dassl's `checkpoint` pointer, not the highest N (a stale file of an abandoned run)
    folder = tmp_path / "teacher_run" / "VLPromptLearner"
    _teacher_ckpt(env, folder / "model.pth.tar-20", text_layers=1)  # stale and broken: must not be used
    _teacher_ckpt(env, folder / "model.pth.tar-2")
    (folder / "checkpoint").write_text("model.pth.tar-2\n")
    from trainers.common.teacher import find_teacher_checkpoint

    assert find_teacher_checkpoint(str(tmp_path / "teacher_run")) == str(folder / "model.pth.tar-2")
    # the teacher's image size must be INPUT.SIZE (checked when the teacher is built, not at step 1)
    sd = torch.load(env["teacher"], weights_only=True)  # the tiny teacher with a 64 px input (8x8 patch grid)
    width = sd["visual.positional_embedding"].shape[1]
    sd["visual.positional_embedding"] = torch.randn(1 + 64, width) * 0.01
    torch.save(sd, tmp_path / "teacher64.pt")
    engine_utils.close_logger()
    with pytest.raises(ValueError, match=r"Teacher .*teacher64\.pt takes 64x64 images but INPUT\.SIZE is \(32, 32\): "
                                         r"the teacher and the student see the same image tensor"):
        train.main(student_argv(env, tmp_path / "c", ["TRAINER.PROMPTKD.TEACHER_NAME", str(tmp_path / "teacher64.pt")],
                                epochs=1))


def test_resume_changes_past_max_epoch_and_untrained_weights(env, finished, tmp_path, caplog):
    out = tmp_path / "run"
    opts = ["TRAIN.CHECKPOINT_FREQ", "1"]
    # interrupted after epoch 1 of 2 (simulated by a 2-epoch config stopped: train 1 epoch, then ask for 2)
    train.main(student_argv(env, out, opts, epochs=1))
    (out / "DONE").unlink()
    engine_utils.close_logger()
    with pytest.raises(ResumeConfigError, match=r"with a different configuration \(OPTIM\.LR: 0\.05 -> 0\.01, "
                                                r"OPTIM\.MAX_EPOCH: 1 -> 2; compared with .*config\.yaml\).*"
                                                r"--resume-with-changes"):
        train.main(student_argv(env, out, opts + ["OPTIM.LR", "0.01"], flags=["--resume", "auto"], epochs=2))
    engine_utils.close_logger()
    tr = train.main(student_argv(env, out, opts + ["OPTIM.LR", "0.01"], flags=["--resume", "auto",
                                                                             "--resume-with-changes"], epochs=2))
    assert tr.start_epoch == 1
    res = read_json(out / "results.json")
    assert res["decisions"]["resumed_with_changes"]["OPTIM.LR"] == {"old": 0.05, "new": 0.01}
    assert "# resumed from" in (out / "config.yaml").read_text()
    # the new schedule applies (cosine over 2 epochs of LR 0.01: epoch 2 runs at 0.005), not the saved one
    assert float(read_csv(out / "metrics.csv")[-1]["lr"]) == pytest.approx(0.005)

    # --resume of another run's finished folder: nothing would be trained
    engine_utils.close_logger()
    with pytest.raises(ValueError, match=r"that run already trained 1 epoch\(s\) and OPTIM\.MAX_EPOCH is 1, so nothing "
                                         r"would be trained .* To evaluate it use --eval-only --model-dir"):
        train.main(student_argv(env, tmp_path / "other", flags=["--resume", str(finished)], epochs=1))
    # results for untrained weights only when asked for
    with pytest.raises(UntrainedWeightsError, match=r"--eval-only without --model-dir evaluates the initial \(untrained\) "
                                                    r"weights of PromptKD .* pass --eval-untrained"):
        train.main(student_argv(env, tmp_path / "u1", flags=["--eval-only"]))
    assert not (tmp_path / "u1" / "results.json").exists() and not (tmp_path / "u1" / "DONE").exists()
    with pytest.raises(UntrainedWeightsError, match=r"OPTIM\.MAX_EPOCH 0 trains nothing"):
        train.main(student_argv(env, tmp_path / "u2", epochs=0))
    engine_utils.close_logger()
    train.main(student_argv(env, tmp_path / "u3", flags=["--eval-only", "--eval-untrained"]))
    assert "untrained" in read_json(tmp_path / "u3" / "results.json")["decisions"]["untrained_weights"]
    assert "untrained_weights" in read_json(tmp_path / "u3" / "DONE")["decisions"]


def test_eval_only_with_another_teachers_class_vectors(env, finished, tmp_path):
    from trainers.common.class_vectors import load_class_vectors, save_class_vectors

    recorded = read_json(finished / "results.json")["teacher"]["class_vectors"]
    cv = load_class_vectors(recorded)
    other = tmp_path / "other_cv.pt"  # same classes, same dimension, another teacher
    save_class_vectors(str(other), torch.nn.functional.normalize(torch.randn_like(cv.features), dim=-1), cv.classnames,
                       cv.teacher, cv.logit_scale)
    with pytest.raises(ValueError, match=r"was distilled with the class vectors .* but this run uses .*other_cv\.pt.* "
                                         r"from another teacher \(class_vectors_sha256"):
        train.main(student_argv(env, tmp_path / "ev", ["TRAINER.PROMPTKD.CLASS_VECTORS", str(other)],
                                flags=["--eval-only", "--model-dir", str(finished)], epochs=1))
    engine_utils.close_logger()
    train.main(student_argv(env, tmp_path / "ev2", ["TRAINER.PROMPTKD.CLASS_VECTORS", recorded],
                            flags=["--eval-only", "--model-dir", str(finished)], epochs=1))
    assert read_json(tmp_path / "ev2" / "results.json")["hm"] == read_json(finished / "results.json")["hm"]


def test_resume_none_removes_the_abandoned_checkpoints(env, tmp_path):
    out = tmp_path / "run"
    train.main(student_argv(env, out, ["TRAIN.CHECKPOINT_FREQ", "1"], epochs=2))
    engine_utils.close_logger()
    (out / "DONE").unlink()
    train.main(student_argv(env, out, flags=["--resume", "none"], epochs=1))
    assert sorted(os.listdir(out / "VLPromptLearner")) == ["checkpoint", "model.pth.tar-1"]


def test_duplicate_class_names_after_normalisation(tmp_path):
    from engine.api import build_dataset, get_cfg_default
    import datasets

    root = tmp_path / "data"
    for folder in ("red_fox", "red fox", "cat"):
        d = root / "images" / folder
        d.mkdir(parents=True)
        from PIL import Image

        for i in range(4):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(d / f"{i}.png")
    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    cfg.DATASET.NAME, cfg.DATASET.ROOT = "ImageFolderCustom", str(root)
    with pytest.raises(DatasetError, match=r"classes 'red fox' and 'red fox' have the same class name after "
                                           r"normalisation \('red fox'"):
        build_dataset(cfg)
    # CSV mode: names differing only in case / underscores
    (root / "names.txt").write_text("Red_Fox\nred fox\ncat\n")
    (root / "data.csv").write_text("path,label\nred_fox/0.png,0\ncat/0.png,2\n")
    cfg.DATASET.CUSTOM.CSV, cfg.DATASET.CUSTOM.CLASSNAMES_FILE = "data.csv", "names.txt"
    with pytest.raises(DatasetError, match=r"classes 'Red_Fox' and 'red fox' have the same class name after "
                                           r"normalisation \('red fox'"):
        build_dataset(cfg)


# ------------------------------------------------------------------------------------------------ 3. non-finite remedy
def test_diverged_run_resumes_with_a_lower_lr(env, tmp_path, caplog):
    out = tmp_path / "run"
    opts = ["TRAIN.CHECKPOINT_STEPS", "1", "TRAIN.CHECKPOINT_FREQ", "1"]
    with pytest.raises(FloatingPointError, match=r"Non-finite loss nan at epoch 1/2, step 5/6"):
        train.main(student_argv(env, out, opts + ["OPTIM.LR", "1e8"]))
    # the state saved with the weights that met the NaN is not kept as "good": the one before it is
    assert "rolled back to the previous state (epoch 1, 3 batch(es))" in caplog.text
    assert "run the same command with --resume-with-changes" in caplog.text
    state = load_resume_state(str(out / RESUME_STATE_NAME))
    assert (state["epoch"], state["batches_done"]) == (0, 3)
    assert all(torch.isfinite(v.float()).all() for v in state["models"]["VLPromptLearner"]["state_dict"].values())
    engine_utils.close_logger()
    with pytest.raises(ResumeConfigError, match=r"OPTIM\.LR: 100000000\.0 -> 0\.05"):
        train.main(student_argv(env, out, opts))
    engine_utils.close_logger()
    tr = train.main(student_argv(env, out, opts, flags=["--resume-with-changes"]))
    assert tr.start_epoch == 0 and (out / "DONE").exists()
    # the new LR is used from the resumed step on (cosine over 2 epochs: 0.05, then 0.025), not the saved 1e8
    assert [float(r["lr"]) for r in read_csv(out / "metrics.csv")] == [pytest.approx(0.05), pytest.approx(0.025)]
    assert all(torch.isfinite(v).all() for v in ckpt_state(out, 2)["state_dict"].values())


# ------------------------------------------------------------------------------------------------ 4. preemption, lock, files
def test_sigterm_then_resume_equals_uninterrupted(env, tmp_path):
    opts = ["TRAIN.CHECKPOINT_FREQ", "1"]  # no periodic mid-epoch saves: the SIGTERM state is the only one
    ref = tmp_path / "ref"
    train.main(student_argv(env, ref, opts))
    engine_utils.close_logger()
    out = tmp_path / "preempted"
    proc = subprocess.run([sys.executable, "-c", _RUNNER_SIGTERM, *student_argv(env, out, opts)], cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 75, proc.stderr[-3000:]
    assert "SIGTERM received: resumable state written to" in proc.stderr
    assert "(epoch 2/2, 3 of 6 batches done); exiting with status 75. Run the same command to resume" in proc.stderr
    state = load_resume_state(str(out / RESUME_STATE_NAME))
    assert (state["epoch"], state["batches_done"]) == (1, 3)
    assert not (out / LOCK_NAME).exists()
    tr = train.main(student_argv(env, out, opts))
    assert tr.start_epoch == 1
    got, want = ckpt_state(out, 2)["state_dict"], ckpt_state(ref, 2)["state_dict"]
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert read_json(out / "results.json")["metrics"] == read_json(ref / "results.json")["metrics"]


def test_first_resume_state_before_first_checkpoint(env, tmp_path, monkeypatch):
    import trainers.common.base as base

    seen = []

    orig_save = base.save_checkpoint

    def spy(state, save_dir, *a, **k):
        seen.append(os.path.isfile(os.path.join(os.path.dirname(save_dir), RESUME_STATE_NAME)))
        return orig_save(state, save_dir, *a, **k)

    monkeypatch.setattr(base, "save_checkpoint", spy)
    train.main(student_argv(env, tmp_path / "run", ["TRAIN.CHECKPOINT_FREQ", "1"], epochs=1))
    assert seen and seen[0] is True  # last_state.pth.tar existed when model.pth.tar-1 was written


def test_lock_modes_and_stale_temp_files(env, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = OutputLock(str(out), "python train.py (another run)")
    holder.acquire()
    info = json.loads((out / LOCK_NAME).read_text())
    assert info["pid"] == os.getpid() and info["host"] and info["started"]
    # a live holder (our parent process stands in for another run on this host)
    (out / LOCK_NAME).write_text(json.dumps({**info, "pid": os.getppid()}))
    with pytest.raises(OutputLockedError, match=rf"is in use by pid {os.getppid()} on host {info['host']} \(started"):
        OutputLock(str(out)).acquire()
    # a dead holder: taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(json.dumps({**info, "pid": dead.pid}))
    lock = OutputLock(str(out)).acquire()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (out / LOCK_NAME).exists()

    old = os.umask(0o022)
    try:
        atomic_write_text(str(out / "a.txt"), "x")
        assert (os.stat(out / "a.txt").st_mode & 0o777) == 0o644
        os.umask(0o002)
        atomic_write_text(str(out / "b.txt"), "x")
        assert (os.stat(out / "b.txt").st_mode & 0o777) == 0o664
    finally:
        os.umask(old)
    (out / "VLPromptLearner").mkdir()
    stale = [out / ".last_state.pth.tar.ab12cd34.tmp", out / "VLPromptLearner" / ".model.pth.tar-1.x9_y8z7q.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    (out / "keep.tmp").write_text("not ours")
    assert sorted(remove_stale_temp_files(str(out))) == sorted(map(str, stale))
    assert (out / "keep.tmp").exists()


# ------------------------------------------------------------------------------------------------ 5. one-line errors
def test_one_line_errors_disk_full_and_read_only_teacher_folder(env, tmp_path, capsys, monkeypatch):
    missing = str(tmp_path / "nope" / "teacher.pth.tar")
    argv = student_argv(env, tmp_path / "run", ["TRAINER.PROMPTKD.TEACHER_TYPE", "promptsrc",
                                                 "TRAINER.PROMPTKD.TEACHER_CKPT", missing], epochs=1)
    assert run_cli(train.main, "train.py", argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: TeacherCheckpointNotFoundError: Teacher checkpoint not found: "
                                               + missing)
    assert "TRAINER.PROMPTKD.TEACHER_CKPT" in err[0] and "traceback in" in err[0] and "--debug prints it" in err[0]
    log = next(p for p in sorted((tmp_path / "run").iterdir()) if p.name.startswith("log.txt"))
    assert "Traceback (most recent call last)" in log.read_text()
    engine_utils.close_logger()

    # disk full during a save: the file is named
    import engine.fileio as fileio

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(OSError, match=r"Cannot write .*(config\.yaml|env\.txt) \(OSError: \[Errno 28\] No space left on device; .* "
                                      r"free there\): free disk space"):
        train.main(student_argv(env, tmp_path / "full", epochs=1))
    monkeypatch.undo()
    engine_utils.close_logger()

    # a read-only teacher folder without class vectors: hint at TRAINER.PROMPTKD.CLASS_VECTORS (the folder's
    # refusal is injected: permissions do not bind root, which runs these tests in containers)
    ro = tmp_path / "ro"
    ckpt = _teacher_ckpt(env, ro / "model.pth.tar-1")
    real_mkstemp = fileio.tempfile.mkstemp

    def read_only(*a, **k):
        if k.get("dir") == str(ro):
            raise PermissionError(13, "Permission denied", str(ro))
        return real_mkstemp(*a, **k)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", read_only)
    with pytest.raises(OSError, match=r"Cannot write .*class_vectors_DescribableTextures\.pt \(PermissionError.*make the "
                                      r"folder writable.*set TRAINER\.PROMPTKD\.CLASS_VECTORS to a writable file path"):
        train.main(student_argv(env, tmp_path / "ro_run", ["TRAINER.PROMPTKD.TEACHER_TYPE", "promptsrc",
                                                           "TRAINER.PROMPTKD.TEACHER_CKPT", ckpt], epochs=1))


def test_convert_checkpoint_never_runs_code_in_the_legacy_format(tmp_path):
    """torch's pre-zip reader calls ``pickle_module.load`` itself (magic number, protocol, system info) before the
    Unpickler: the tool's restricted module must serve that call too. A legacy file whose first pickle opens a file
    for writing must leave no file behind; a benign legacy checkpoint still converts."""
    import pickle

    from tools import convert_checkpoint

    marker = tmp_path / "ran"

    class OpensAFile:
        def __reduce__(self):
            return open, (str(marker), "w")

    hostile = tmp_path / "hostile.pth.tar"
    hostile.write_bytes(pickle.dumps(OpensAFile()))
    with pytest.raises(ValueError, match=r"hostile\.pth\.tar is not a torch checkpoint this tool can read"):
        convert_checkpoint.convert_checkpoint(str(hostile), str(tmp_path / "out.pth.tar"))
    assert not marker.exists(), "the checkpoint's code ran"
    assert not (tmp_path / "out.pth.tar").exists()

    legacy = tmp_path / "legacy.pth.tar"
    weights = {"prompt_learner.ctx": torch.randn(2, 8)}
    torch.save({"state_dict": weights, "epoch": 5}, legacy, _use_new_zipfile_serialization=False)
    report = convert_checkpoint.convert_checkpoint(str(legacy), str(tmp_path / "legacy_out.pth.tar"))
    loaded = torch.load(tmp_path / "legacy_out.pth.tar", weights_only=True)
    assert torch.equal(loaded["state_dict"]["prompt_learner.ctx"], weights["prompt_learner.ctx"])
    assert loaded["epoch"] == 5 and report["dropped_objects"] == []
