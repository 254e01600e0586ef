"""The real-Dassl backend (``PROMPTKD_ENGINE=dassl``) against the built-in engine, on the installed Dassl.pytorch.

The engine is chosen when ``engine.api`` is imported, so each engine runs the same plan of ``train.main`` calls
in its own subprocess (``tests/helpers/engine_runs.py``, several runs per process as the proving-ground pipeline
does). The plan: every trainer's tiny smoke config with a warm-up epoch (Dassl's own warm-up scheduler fails
under current torch), ``--eval-only``, a PromptKD run killed mid-epoch and resumed with ``--resume auto``,
``--resume auto`` on a finished run, ``--resume`` of a missing path, the teacher-output cache record / replay;
plus a 2-process gloo torchrun run under Dassl and a pytest session under Dassl (its stdout tee used to break
pytest's capture). Results must equal the built-in engine's: same seed -> same data order, same weights.
Runs on CPU with the tiny random CLIPs and the generated 4-class DTD root of ``tests/helpers``.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.conftest import require_dassl
from tests.helpers.tiny_env import make_tiny_env
from tests.test_ddp import _common_args as ddp_argv
from tests.test_reliability_resume import student_argv

pytestmark = pytest.mark.dassl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASSL_LINE = "Engine: dassl (Dassl.pytorch"
# Every run: 2 epochs with 1 warm-up epoch (constant LR 1e-5 from the smoke configs), no loader workers.
WARMUP = ["OPTIM.MAX_EPOCH", "2", "OPTIM.WARMUP_EPOCH", "1", "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "100"]
# (trainer, config under configs/trainers, backbone key of the tiny env, extra opts)
SMOKE = [
    ("ZeroshotCLIP", "ZeroshotCLIP/tiny_smoke", "student", []),
    ("CoOp", "CoOp/tiny_smoke", "student", ["TRAINER.COOP.PREC", "fp16"]),  # fp16 on CPU: a logged WARNING
    ("CoCoOp", "CoCoOp/tiny_smoke", "student", []),
    ("IVLP", "IVLP/tiny_smoke", "student", []),
    ("MaPLe", "MaPLe/tiny_smoke", "student", []),
    ("PromptSRC", "PromptSRC/tiny_smoke", "student", []),
    ("PromptSRCTeacher", "PromptSRC/tiny_smoke_teacher", "teacher", []),
    ("PromptKD", "PromptKD/tiny_smoke", "student", ["TRAINER.PROMPTKD.KD_WEIGHT", "10.0"]),
]
RESUME_OPTS = ["TRAIN.CHECKPOINT_STEPS", "2", "TRAIN.CHECKPOINT_FREQ", "1", "OPTIM.WARMUP_EPOCH", "1"]
KILL_AT_STEP = 9  # of 12 (6 batches per epoch): the last resumable state is epoch 2 after 2 batches


def smoke_argv(env, trainer, config, backbone, out, extra=(), flags=()):
    argv = ["--root", env["root"], "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/dtd.yaml",
            "--config-file", f"configs/trainers/{config}.yaml", "--output-dir", str(out), *flags,
            "MODEL.BACKBONE.NAME", env[backbone], *WARMUP,
            "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot", "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"]]
    return argv + list(extra)


def cache_argv(env, out, mode, cache_dir):
    return smoke_argv(env, "PromptKD", "PromptKD/tiny_smoke", "student", out,
                      ["TRAINER.PROMPTKD.KD_WEIGHT", "10.0", "DATALOADER.TRAIN_X.BATCH_SIZE", "5",
                       "TRAINER.PROMPTKD.TEACHER_CACHE.MODE", mode, "TRAINER.PROMPTKD.TEACHER_CACHE.DIR", str(cache_dir)])


def plan(env, base, engine):
    """The runs of one engine (output folders under ``base/engine``)."""
    out = os.path.join(str(base), engine)
    runs = []
    for trainer, config, backbone, extra in SMOKE:
        flags = ["--eval-only"] if trainer == "ZeroshotCLIP" else []
        runs.append({"name": trainer, "argv": smoke_argv(env, trainer, config, backbone, f"{out}/{trainer}", extra, flags)})
    coop = smoke_argv(env, "CoOp", "CoOp/tiny_smoke", "student", f"{out}/CoOp", SMOKE[1][3])
    runs.append({"name": "CoOp_eval_only", "argv": smoke_argv(
        env, "CoOp", "CoOp/tiny_smoke", "student", f"{out}/CoOp_eval", SMOKE[1][3],
        ["--eval-only", "--model-dir", f"{out}/CoOp", "--load-epoch", "2"])})
    at = coop.index("--output-dir")
    runs.append({"name": "CoOp_resume_finished", "argv": coop[:at] + ["--resume", "auto"] + coop[at:],
                 "hash_dir": f"{out}/CoOp"})
    missing = smoke_argv(env, "CoOp", "CoOp/tiny_smoke", "student", f"{out}/CoOp_missing", SMOKE[1][3])
    runs.append({"name": "CoOp_resume_missing", "argv": ["--resume", f"{out}/no_such_run"] + missing})
    # an interrupted run (killed by the kill subprocess under Dassl) is resumed by the same command; the
    # built-in engine runs it uninterrupted
    runs.append({"name": "PromptKD_resume", "argv": student_argv(env, f"{out}/PromptKD_resume", RESUME_OPTS)})
    cache_dir = f"{out}/teacher_cache"
    runs.append({"name": "cache_record", "argv": cache_argv(env, f"{out}/cache_record", "record", cache_dir)})
    runs.append({"name": "cache_replay", "argv": cache_argv(env, f"{out}/cache_replay", "replay", cache_dir)})
    if engine == "builtin":  # the single-process reference of the torchrun run: same global batch (12)
        runs.append({"name": "ddp_reference", "argv": ddp_argv(env["root"], env["student"], env["teacher"],
                                                                f"{out}/ddp_reference", 12)})
    return runs


def _spawn(args, engine, log_path, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", PROMPTKD_ENGINE=engine)
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            **kwargs), log


def _runner(base, engine, runs, tag):
    plan_path, report_path = base / f"{tag}_plan.json", base / f"{tag}_report.json"
    plan_path.write_text(json.dumps({"runs": runs}))
    proc, log = _spawn(["-m", "tests.helpers.engine_runs", str(plan_path), str(report_path)], engine,
                       base / f"{tag}.log")
    return proc, log, report_path


def _finish(proc, log, timeout=900):
    rc = proc.wait(timeout=timeout)
    log.close()
    return rc


def _tail(path, n=4000):
    with open(path, errors="replace") as f:
        return f.read()[-n:]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_dassl()
    return make_tiny_env(tmp_path_factory.mktemp("dassl_backend_env"))


@pytest.fixture(scope="module")
def runs(env, tmp_path_factory):
    """Run the plan under both engines (the Dassl side after its interrupted run was killed) and the torchrun
    run under Dassl; returns the reports, output folders and logs."""
    base = tmp_path_factory.mktemp("dassl_backend")
    builtin_runs, dassl_runs = plan(env, base, "builtin"), plan(env, base, "dassl")
    # phase 1: the whole built-in plan || the Dassl run killed mid-epoch (SIGKILL at a global step)
    b_proc, b_log, b_report = _runner(base, "builtin", builtin_runs, "builtin")
    kill = [r for r in dassl_runs if r["name"] == "PromptKD_resume"][0]
    k_proc, k_log, _ = _runner(base, "dassl", [{"name": "killed", "argv": kill["argv"] + [
        "TRAIN.DEBUG_KILL_AT_STEP", str(KILL_AT_STEP)]}], "dassl_killed")
    killed_rc = _finish(k_proc, k_log)
    # phase 2: the Dassl plan || a 2-process gloo torchrun run under Dassl
    d_proc, d_log, d_report = _runner(base, "dassl", dassl_runs, "dassl")
    ddp_out = base / "dassl" / "ddp"
    t_proc, t_log = _spawn(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
                            *ddp_argv(env["root"], env["student"], env["teacher"], ddp_out, 6)], "dassl",
                           base / "torchrun.log")
    rcs = {"builtin": _finish(b_proc, b_log), "dassl": _finish(d_proc, d_log), "torchrun": _finish(t_proc, t_log)}
    for tag in ("builtin", "dassl"):
        assert rcs[tag] == 0, _tail(base / f"{tag}.log")
    return {"base": base, "env": env, "killed_rc": killed_rc, "torchrun_rc": rcs["torchrun"],
            "builtin": json.loads(b_report.read_text()), "dassl": json.loads(d_report.read_text())}


def results(base, engine, name):
    with open(os.path.join(str(base), engine, name, "results.json")) as f:
        return json.load(f)


def checkpoints(base, engine, name, epoch=2):
    """{model folder: state_dict} of the epoch-``epoch`` checkpoints of a run."""
    found = {}
    for path in glob.glob(os.path.join(str(base), engine, name, "*", f"model.pth.tar-{epoch}")):
        found[os.path.basename(os.path.dirname(path))] = torch.load(path, map_location="cpu", weights_only=True)
    return found


def log_texts(base, engine, name):
    """The run folder's logs: log.txt of its first run, then the time-stamped ones of later runs in it."""
    folder = os.path.join(str(base), engine, name)
    names = ["log.txt"] + sorted(f for f in os.listdir(folder) if f.startswith("log.txt-"))
    return [open(os.path.join(folder, n), errors="replace").read() for n in names]


def assert_same_checkpoints(a, b, what):
    assert sorted(a) == sorted(b) and a, what
    for folder in a:
        sa, sb = a[folder]["state_dict"], b[folder]["state_dict"]
        assert sorted(sa) == sorted(sb), f"{what}: {folder}"
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{what}: {folder}/{k} differs between the engines"


# ------------------------------------------------------------------------------------------------ the backend
def test_api_is_the_real_dassl_with_named_project_parts(runs):
    api = runs["dassl"]["api"]
    assert api["engine"] == "dassl" and runs["builtin"]["api"]["engine"] == "builtin"
    assert api["trainerx_is_dassl_subclass"] and api["registry_is_dassl"]
    # Dassl's own config, registries, datasets, transforms, optimiser, evaluator classes and utils ...
    for name in ("get_cfg_default", "TRAINER_REGISTRY", "DATASET_REGISTRY", "DatasetBase", "Datum", "build_dataset",
                 "build_transform", "build_optimizer", "Classification", "set_random_seed", "Registry"):
        assert name in api["dassl_objects"], name
    # ... and the project's parts, each named in the log header
    assert {"build_lr_scheduler", "TrainerX", "build_data_loader", "save_checkpoint", "setup_logger"} <= set(
        api["project_objects"])
    assert not set(api["dassl_objects"]) & set(api["project_objects"])
    assert api["logging_disable"] == 0 and runs["dassl"]["logging_disable_at_end"] == 0  # logging restored
    assert "logging re-enabled after importing Dassl" in api["describe"]
    assert "LR scheduler is the project's" in api["describe"]


def test_every_trainer_runs_with_warmup_and_equals_the_builtin_engine(runs):
    base = runs["base"]
    for trainer, *_ in SMOKE:
        entry = runs["dassl"]["runs"][trainer]
        assert entry["ok"], f"{trainer} under Dassl: {entry.get('error')}"
        assert runs["builtin"]["runs"][trainer]["ok"], runs["builtin"]["runs"][trainer].get("error")
        assert "dassl.engine.trainer.TrainerX" in entry["mro"], entry["mro"]
        rd, rb = results(base, "dassl", trainer), results(base, "builtin", trainer)
        assert rd["metrics"] == rb["metrics"] and rd.get("hm") == rb.get("hm"), trainer
        if trainer != "ZeroshotCLIP":
            assert_same_checkpoints(checkpoints(base, "dassl", trainer), checkpoints(base, "builtin", trainer), trainer)
            with open(os.path.join(str(base), "dassl", trainer, "metrics.csv")) as f:
                lrs = [line.split(",")[1] for line in f.read().splitlines()[1:]]
            assert [float(x) for x in lrs][:1] == [1e-5], f"{trainer}: warm-up epoch LR {lrs}"
        # one process ran every run: the stdout tee was removed after each one
        assert entry["stdout_restored"], trainer


def test_log_has_engine_line_config_and_warnings_and_no_other_runs(runs):
    text = log_texts(runs["base"], "dassl", "CoOp")[0]
    assert DASSL_LINE in text and "resolved config:" in text
    assert "OPTIM:" in (runs["base"] / "dassl" / "CoOp" / "config.yaml").read_text()  # the config beside the log
    assert "WARNING: TRAINER.COOP.PREC = fp16 needs CUDA; running in fp32 on cpu" in text
    assert "* accuracy:" in text  # Dassl's evaluator prints, copied into log.txt
    for trainer, *_ in SMOKE:  # each log holds its own run only (no stacked stdout copies)
        log = log_texts(runs["base"], "dassl", trainer)[0]
        assert log.count("command: python train.py") == 1 and f"--trainer {trainer} " in log, trainer


def test_eval_only_reproduces_the_trained_results(runs):
    entry = runs["dassl"]["runs"]["CoOp_eval_only"]
    assert entry["ok"], entry.get("error")
    ev, tr = results(runs["base"], "dassl", "CoOp_eval"), results(runs["base"], "dassl", "CoOp")
    assert ev["selection"] == "loaded_checkpoint" and ev["epoch"] == 2 and ev["metrics"] == tr["metrics"]


def test_resume_auto_on_a_finished_run_changes_no_checkpoint_and_missing_path_is_an_error(runs):
    entry = runs["dassl"]["runs"]["CoOp_resume_finished"]
    assert entry["ok"], entry.get("error")
    before, after = entry["hashes_before"], entry["hashes_after"]
    ckpts = [k for k in before if os.path.basename(k).startswith("model") or os.path.basename(k) == "checkpoint"]
    assert any(k.endswith("model.pth.tar-2") for k in ckpts), sorted(before)
    assert {k: after.get(k) for k in ckpts} == {k: before[k] for k in ckpts}  # no checkpoint rewritten or added
    assert sorted(k for k in after if "pth" in k) == sorted(k for k in before if "pth" in k)
    first, resumed = log_texts(runs["base"], "dassl", "CoOp")
    command = first.splitlines()[0]
    assert command.startswith("command: python train.py") and "--resume" not in command
    assert "Resumed at epoch 2" in resumed and "train from scratch" not in resumed
    missing = runs["dassl"]["runs"]["CoOp_resume_missing"]
    assert not missing["ok"] and missing["error"].startswith("FileNotFoundError") and "no_such_run" in missing["error"]


def test_interrupted_run_resumes_onto_the_builtin_trajectory(runs):
    assert runs["killed_rc"] == -signal.SIGKILL, _tail(runs["base"] / "dassl_killed.log")
    entry = runs["dassl"]["runs"]["PromptKD_resume"]
    assert entry["ok"], entry.get("error")
    log = log_texts(runs["base"], "dassl", "PromptKD_resume")[-1]
    assert "Resuming epoch 2/2 at batch 3/6: replaying the data loader over 2 batch(es)" in log
    for epoch in (1, 2):
        assert_same_checkpoints(checkpoints(runs["base"], "dassl", "PromptKD_resume", epoch),
                                checkpoints(runs["base"], "builtin", "PromptKD_resume", epoch), f"epoch {epoch}")
    rd, rb = (results(runs["base"], e, "PromptKD_resume") for e in ("dassl", "builtin"))
    assert rd["metrics"] == rb["metrics"]
    with open(runs["base"] / "dassl" / "PromptKD_resume" / "metrics.csv") as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["1", "2"]


def test_teacher_cache_record_and_replay(runs):
    for name in ("cache_record", "cache_replay"):
        assert runs["dassl"]["runs"][name]["ok"], runs["dassl"]["runs"][name].get("error")
    meta = json.loads((runs["base"] / "dassl" / "teacher_cache" / "meta.json").read_text())
    assert meta["complete"] and meta["epochs"] == 2
    rec = checkpoints(runs["base"], "dassl", "cache_record")
    assert_same_checkpoints(rec, checkpoints(runs["base"], "dassl", "cache_replay"), "replay")
    assert_same_checkpoints(rec, checkpoints(runs["base"], "builtin", "cache_record"), "record vs builtin")


def test_torchrun_two_processes_under_dassl(runs):
    base = runs["base"]
    assert runs["torchrun_rc"] == 0, _tail(base / "torchrun.log")
    ddp, single = base / "dassl" / "ddp", base / "builtin" / "ddp_reference"
    text = (ddp / "log.txt").read_text()
    assert DASSL_LINE in text and "Distributed run: rank 0 of 2" in text and "Global batch = 6 x 2 = 12" in text
    assert text.count("* total: 4\n") == 2  # base and novel sets: 2 images on each rank, gathered
    a = torch.load(ddp / "VLPromptLearner" / "model.pth.tar-3", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(single / "VLPromptLearner" / "model.pth.tar-3", map_location="cpu", weights_only=True)["state_dict"]
    assert sorted(a) == sorted(b)
    for k in a:  # the same global batch: same student within the float summation tolerance of tests/test_ddp.py
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-4, rtol=0), k
    rd, rs = json.loads((ddp / "results.json").read_text()), json.loads((single / "results.json").read_text())
    for name in ("base", "novel"):
        assert rd["metrics"][name]["num_images"] == rs["metrics"][name]["num_images"] == 4
        assert abs(rd["metrics"][name]["accuracy"] - rs["metrics"][name]["accuracy"]) <= 25.0 + 1e-9


_PYTEST_UNDER_DASSL = textwrap.dedent("""
    import os, sys
    import train
    from engine import api

    def test_two_runs_in_one_test():
        assert api.ENGINE_NAME == "dassl"
        argv = os.environ["PK_ARGV"].split("\\x1f")
        for i in (1, 2):
            out = os.environ["PK_OUT"] + str(i)
            train.main(["--output-dir", out] + argv)
            print("after run", i)
        logs = [open(os.path.join(os.environ["PK_OUT"] + str(i), "log.txt")).read() for i in (1, 2)]
        assert all(log.count("command: python train.py") == 1 for log in logs)

    def test_next_test_still_prints(capsys):
        print("captured")
        assert capsys.readouterr().out == "captured\\n"
    """)


def test_pytest_session_under_dassl_with_and_without_capture(env, tmp_path):
    (tmp_path / "test_under_dassl.py").write_text(_PYTEST_UNDER_DASSL)
    argv = smoke_argv(env, "CoOp", "CoOp/tiny_smoke", "student", tmp_path / "unused")
    argv = argv[:argv.index("--output-dir")] + argv[argv.index("--output-dir") + 2:] + ["OPTIM.MAX_EPOCH", "1",
                                                                                    "OPTIM.WARMUP_EPOCH", "0"]
    procs = []
    for flag in ("-s", "--capture=fd"):
        out = tmp_path / f"out{flag.strip('-=')}_"
        env_vars = dict(os.environ, PROMPTKD_ENGINE="dassl", OMP_NUM_THREADS="1", PYTHONPATH=REPO,
                        PK_ARGV="\x1f".join(argv), PK_OUT=str(out))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", flag, "--rootdir", str(tmp_path),
             str(tmp_path / "test_under_dassl.py")], cwd=REPO, env=env_vars, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    for flag, proc in zip(("-s", "--capture=fd"), procs):
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "2 passed" in output, f"pytest {flag} under Dassl:\n{output[-4000:]}"
