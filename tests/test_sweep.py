"""tools/sweep.py: a table's runs from its script, the local pool, SLURM submission through submitit, resume."""
import json
import os
import pickle
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import sweep_local, sweep_plan
from tools.sweep_plan import Plan, Run

REPO = Path(__file__).resolve().parents[1]
TABLES = sorted(p for p in (REPO / "scripts" / "tables").glob("*.sh") if p.name != "table7_inference_cost.sh")
SCRIPT_ENV = ("DATA", "OUTPUT_ROOT", "PYTHON", "DRY_RUN", "FORCE", "CFG", "RUN_DIR", "SEEDS", "DATASETS", "METHODS",
              "SMOKE", "TEACHER_CKPT", "CLASS_VECTORS", "TRAIN_TEACHERS", "TEACHER_ROOT", "TEACHER_SEED", "VALUES",
              "REFERENCE_ROWS", "MAPLE_TEACHER_CKPT", "IMAGES_PER_CLASS", "SOURCE", "LAUNCHER", "SWEEP_ARGS",
              "SWEEP_PLAN", "CUDA_VISIBLE_DEVICES")


def env(**extra):
    e = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    e.update({k: str(v) for k, v in extra.items()})
    return e


def dry_run_commands(script, **extra):
    """What the table script itself prints with DRY_RUN=1 (the independent reference)."""
    res = subprocess.run(["bash", str(script)], cwd=REPO, env=env(DRY_RUN=1, **extra), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return [shlex.split(line) for line in res.stdout.splitlines() if line.strip()]


def sweep_cli(*args, timeout=600, **extra):
    return subprocess.run([sys.executable, "tools/sweep.py", *map(str, args)], cwd=REPO, env=env(**extra),
                          capture_output=True, text=True, timeout=timeout)


def outdir(cmd):
    return cmd[cmd.index("--output-dir") + 1]


# ------------------------------------------------------------------------------------------------ plan
@pytest.mark.parametrize("smoke", ["0", "1"])
@pytest.mark.parametrize("script", TABLES, ids=lambda p: p.stem)
def test_plan_is_the_scripts_dry_run(script, smoke):
    """The sweep runs exactly the commands the script prints with DRY_RUN=1, in its order."""
    extra = dict(SMOKE=smoke, DATASETS="dtd eurosat", SEEDS="1 2", OUTPUT_ROOT="o")
    expected = dry_run_commands(script, **extra)
    plan = sweep_plan.plan_table(script.stem, env(DRY_RUN=1, **extra))
    trains = [c for c in expected if c[1] == "train.py"]
    assert [r.argv for r in plan.runs] == trains  # no duplicated run folder in any table
    assert len({r.output_dir for r in plan.runs}) == len(trains)
    assert plan.aggregates == [c for c in expected if c[1] == "tools/results.py"] == [expected[-1]]


def test_table_names_resolve():
    assert sweep_plan.resolve_table("table1").name == "table1_base2new.sh"
    assert sweep_plan.resolve_table("table12").name == "table12_projector_depth.sh"
    assert sweep_plan.resolve_table("figure4").name == "figure4_images_per_class.sh"
    with pytest.raises(sweep_plan.PlanError, match="unknown table 'table99'.*table1 "):
        sweep_plan.resolve_table("table99")
    res = sweep_cli("table7")  # a benchmark, not a sweep
    assert res.returncode == 2 and "run this step directly: python tools/benchmark.py" in res.stderr
    res = sweep_cli("table1", DATASETS="nope")
    assert res.returncode == 2 and "unknown dataset 'nope'" in res.stderr


def test_table1_smoke_dependencies():
    """Each PromptKD student waits for its own dataset's teacher, nothing else waits."""
    plan = sweep_plan.plan_table("table1", env(DRY_RUN=1, SMOKE=1, DATASETS="dtd eurosat", SEEDS="1 2", OUTPUT_ROOT="o"))
    assert len(plan.runs) == 24
    stages = plan.stages()
    assert [len(s) for s in stages] == [20, 4]
    for run in plan.runs:
        if run.trainer == "PromptKD":
            (dep,) = run.deps
            teacher = plan.runs[dep]
            assert teacher.trainer == "PromptSRCTeacher"
            ds = re.search(r"train_base/(\w+)/", run.output_dir).group(1)
            assert teacher.output_dir == f"o/teachers/base2new/{ds}/shots_16/PromptSRCTeacher/tiny_smoke_teacher/seed1"
            assert run.argv[run.argv.index("TRAINER.PROMPTKD.TEACHER_CKPT") + 1] == teacher.output_dir
        else:
            assert run.deps == []


def test_cross_dataset_evaluations_wait_for_their_source_training():
    plan = sweep_plan.plan_table("table2", env(DRY_RUN=1, DATASETS="caltech101 eurosat", SEEDS="1 2", OUTPUT_ROOT="o",
                                               METHODS="coop promptkd"))
    by_dir = {r.output_dir: r for r in plan.runs}
    for run in plan.runs:
        if "--eval-only" in run.argv:
            (dep,) = run.deps
            assert plan.runs[dep].output_dir == run.argv[run.argv.index("--model-dir") + 1]
            assert plan.runs[dep].argv[plan.runs[dep].argv.index("--seed") + 1] == run.argv[run.argv.index("--seed") + 1]
        else:
            assert run.deps == []  # released teachers: the students need no run of the sweep
    assert len(by_dir) == 2 + 4 + 4  # coop: 2 ImageNet trainings, 4 evaluations; promptkd: 4 students


# ------------------------------------------------------------------------------------------------ local pool
FAKE_RUN = r"""
import json, os, sys, time
out, seconds, rc = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
start = time.time()
open(os.path.join(out, "started"), "w").write(repr(start))
time.sleep(seconds)
print("fake run in", out, flush=True)
if rc:
    print("boom", file=sys.stderr)
    sys.exit(rc)
env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}
json.dump({"start": start, "end": time.time(), "env": env}, open(os.path.join(out, "DONE"), "w"))
"""


def fake_plan(tmp_path, spec):
    """spec: list of (name, seconds, exit code, [dependency names]) -> a Plan of fake runs."""
    runs, idx = [], {}
    for name, seconds, rc, deps in spec:
        out = str(tmp_path / name)
        run = Run(len(runs), [sys.executable, "-c", FAKE_RUN, out, str(seconds), str(rc)], out,
                  [idx[d] for d in deps])
        idx[name] = run.index
        runs.append(run)
    return Plan("fake", REPO / "scripts/tables/none.sh", runs, [])


def done(tmp_path, name):
    return json.loads((tmp_path / name / "DONE").read_text())


def test_pool_runs_in_parallel_after_dependencies_and_reports_failures(tmp_path):
    plan = fake_plan(tmp_path, [("teacher_a", 1.5, 0, []), ("teacher_b", 1.5, 1, []), ("base", 0.5, 0, []),
                                ("student_a", 0.1, 0, ["teacher_a"]), ("student_b", 0.1, 0, ["teacher_b"])])
    slots = sweep_local.make_slots("local", workers=2)
    assert [s.env["OMP_NUM_THREADS"] for s in slots] == ["1", "1"]
    import io

    log = io.StringIO()
    out = sweep_local.run_plan(plan, slots, progress_stream=log, bar=False)
    text = log.getvalue()
    assert {r.output_dir for r in out.finished} == {str(tmp_path / n) for n in ("teacher_a", "base", "student_a")}
    (failed,) = out.failed
    assert failed[0].output_dir == str(tmp_path / "teacher_b") and failed[1] == "exit code 1"
    assert failed[2] == tmp_path / "teacher_b" / "sweep.log" and "boom" in failed[2].read_text()
    assert [(r.output_dir, d) for r, d in out.blocked] == [(str(tmp_path / "student_b"), str(tmp_path / "teacher_b"))]
    assert not out.ok and not (tmp_path / "student_b").exists()
    # two at a time: teacher_a and teacher_b overlap; the student starts after its teacher's DONE
    a, s = done(tmp_path, "teacher_a"), done(tmp_path, "student_a")
    b_start = float((tmp_path / "teacher_b" / "started").read_text())
    assert b_start < a["end"] and done(tmp_path, "base")["start"] >= min(a["end"], b_start + 1.5)
    assert s["start"] >= a["end"]
    assert a["env"]["OMP_NUM_THREADS"] == "1"
    assert f"FAILED {tmp_path / 'teacher_b'}" in text and "log: " in text
    assert re.search(r"done 3/5 \| running 0 \| failed 1 \| waiting 0 \| blocked 1", text), text
    assert "left" in text
    # a second sweep runs only what is not DONE (teacher_b fails again, its student is still blocked)
    out2 = sweep_local.run_plan(plan, slots, progress_stream=io.StringIO(), bar=False)
    assert {r.output_dir for r in out2.skipped} == {str(tmp_path / n) for n in ("teacher_a", "base", "student_a")}
    assert out2.finished == [] and len(out2.failed) == 1 and len(out2.blocked) == 1


def test_time_left_from_the_finished_runs_of_each_trainer():
    import io

    from tools.sweep_progress import Progress, format_seconds

    p = Progress("t", {"a": "X", "b": "X", "c": "Y", "d": "Z"}, 0, 2, stream=io.StringIO(), bar=False)
    assert p.eta_seconds() is None and "time left: after the first run" in p.status()
    p.started("a", "w1")
    p.running["a"] = ("X", 100.0)  # started at t=100
    p.durations["X"] = [10.0, 20.0]
    p.durations["Y"] = [30.0]
    # running a: 15 - 4 s left; waiting b (X) 15, c (Y) 30, d (no Z run yet: mean of all, 20); 2 slots
    assert p.eta_seconds(now=104.0) == pytest.approx((11 + 15 + 30 + 20) / 2)
    assert (p.waiting, len(p.running)) == (3, 1)
    assert format_seconds(38) == "38s" and format_seconds(3725) == "1h02m" and format_seconds(125) == "2m05s"


def test_gpu_slots_pin_one_device_each(tmp_path):
    slots = sweep_local.make_slots("local", per_gpu=2, gpus=["3", "5"], threads=2)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["3", "3", "5", "5"]
    plan = fake_plan(tmp_path, [(f"r{i}", 0.3, 0, []) for i in range(4)])
    import io

    out = sweep_local.run_plan(plan, slots, progress_stream=io.StringIO(), bar=False)
    assert out.ok
    seen = sorted(done(tmp_path, f"r{i}")["env"]["CUDA_VISIBLE_DEVICES"] for i in range(4))
    assert seen == ["3", "3", "5", "5"] and {done(tmp_path, f"r{i}")["env"]["OMP_NUM_THREADS"] for i in range(4)} == {"2"}
    assert sweep_local.make_slots("serial")[0].env == {}  # today's behaviour: the environment as it is
    with pytest.raises(ValueError, match="per-gpu"):
        sweep_local.make_slots("local", per_gpu=0, gpus=["0"])


# ------------------------------------------------------------------------------------------------ SLURM
FAKE_SBATCH = """#!/usr/bin/env python3
import pathlib, shutil, sys
rec = pathlib.Path(__file__).parent
n = len(list(rec.glob("job_*.sh"))) + 500
shutil.copy(sys.argv[-1], rec / f"job_{n}.sh")
print(f"Submitted batch job {n}")
"""


def _fake_slurm_bin(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def _sbatch_flags(text):
    return dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", text, re.M))


def test_slurm_table1_scripts_and_dependency_graph(tmp_path, monkeypatch):
    """Table 1 (SMOKE, 2 datasets x 2 seeds) through submitit's SlurmExecutor, sbatch replaced by a recorder."""
    submitit = pytest.importorskip("submitit")
    from tools import sweep_slurm

    bin_dir = _fake_slurm_bin(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    extra = dict(SMOKE=1, DATASETS="dtd eurosat", SEEDS="1 2", OUTPUT_ROOT=tmp_path / "out", DATA=tmp_path)
    plan = sweep_plan.plan_table("table1", env(**extra))
    params = sweep_slurm.slurm_parameters(partition="gpu", time_min=120, gpus_per_node=1, cpus_per_task=8,
                                          extra={"mail-type": "FAIL"})
    folder = tmp_path / "slurm"
    sub = sweep_slurm.submit_plan(plan, folder, params, log=lambda m: None)

    scripts = {int(p.stem.split("_")[1]): p.read_text() for p in bin_dir.glob("job_*.sh")}
    assert sorted(scripts) == [500, 501, 502, 503]  # stage 0, one student array per teacher, the table
    flags = {n: _sbatch_flags(t) for n, t in scripts.items()}
    for n in (500, 501, 502):
        f = flags[n]
        assert (f["partition"], f["time"], f["gpus-per-node"], f["cpus-per-task"]) == ("gpu", "120", "1", "8")
        assert f["kill-on-invalid-dep"] == "yes" and f["mail-type"] == "FAIL"
        assert "-m submitit.core._submit" in scripts[n]
    assert flags[500]["array"] == "0-19%20" and "dependency" not in flags[500]
    assert flags[501]["array"] == "0-1%2" and flags[502]["array"] == "0-1%2"
    assert "array" not in flags[503] and "gpus-per-node" not in flags[503]
    assert flags[503]["dependency"] == "afterok:500:501:502"

    # what each array task runs: submitit's own pickles of the CommandFunction
    def task_cmd(job_id):
        with open(folder / f"{job_id}_submitted.pkl", "rb") as fh:
            delayed = pickle.load(fh)
        assert isinstance(delayed.function, submitit.helpers.CommandFunction)
        assert Path(delayed.function.cwd) == REPO
        return delayed.function.command

    expected = dry_run_commands(REPO / "scripts/tables/table1_base2new.sh", **extra)
    submitted = [task_cmd(f"500_{i}") for i in range(20)] + [task_cmd(f"50{a}_{i}") for a in (1, 2) for i in (0, 1)]
    assert sorted(map(tuple, submitted)) == sorted(tuple(c) for c in expected if c[1] == "train.py")
    assert task_cmd("503") == expected[-1]
    teacher_task = {}
    for i in range(20):
        c = task_cmd(f"500_{i}")
        if c[c.index("--trainer") + 1] == "PromptSRCTeacher":
            teacher_task[outdir(c)] = f"500_{i}"
    assert len(teacher_task) == 2
    for a in (501, 502):  # each student array waits for its own teacher's task only
        students = [task_cmd(f"{a}_{i}") for i in (0, 1)]
        (ckpt,) = {c[c.index("TRAINER.PROMPTKD.TEACHER_CKPT") + 1] for c in students}
        assert flags[a]["dependency"] == f"afterok:{teacher_task[ckpt]}"
        assert {c[c.index("--seed") + 1] for c in students} == {"1", "2"}
    assert json.loads((folder / "jobs.json").read_text())["jobs"] == sub.jobs and len(sub.jobs) == 24


def test_slurm_second_submission_keeps_queued_jobs_and_resubmits_the_rest(tmp_path, monkeypatch):
    """Second submission: DONE runs skipped, runs whose job is still queued (sacct) kept, failed ones submitted
    again, and the new students wait for their teacher's job that is still queued."""
    pytest.importorskip("submitit")
    from submitit.slurm.slurm import SlurmJob

    from tools import sweep_slurm

    bin_dir = _fake_slurm_bin(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    extra = dict(SMOKE=1, DATASETS="dtd", SEEDS="1 2", METHODS="coop promptkd", OUTPUT_ROOT=tmp_path / "out",
                 DATA=tmp_path)
    plan = sweep_plan.plan_table("table1", env(**extra))
    params = sweep_slurm.slurm_parameters(partition="gpu")
    folder = tmp_path / "slurm"
    first = sweep_slurm.submit_plan(plan, folder, params, log=lambda m: None)
    coop1, coop2, teacher, kd1, kd2 = (r.output_dir for r in plan.runs)
    assert first.jobs == {coop1: "500_0", coop2: "500_1", teacher: "500_2", kd1: "501_0", kd2: "501_1"}
    # coop seed 1 finished; coop seed 2 failed; the teacher is still running, its students pending
    Path(coop1).mkdir(parents=True)
    Path(coop1, "DONE").write_text("{}")
    (bin_dir / "sacct").write_text("#!/bin/sh\nprintf 'JobID|State|NodeList\\n500_1|FAILED|n1\\n500_2|RUNNING|n2\\n"
                                   "501_[0-1]|PENDING|None assigned\\n'\n")
    (bin_dir / "sacct").chmod(0o755)
    SlurmJob.watcher.clear()
    try:
        second = sweep_slurm.submit_plan(plan, folder, params, log=lambda m: None)
    finally:
        SlurmJob.watcher.clear()
    assert second.skipped == [coop1]
    assert second.reused == {teacher: "500_2", kd1: "501_0", kd2: "501_1"}
    # job 502 was the first submission's table; one run: a single job, no array
    assert second.jobs == {coop2: "503"}
    assert "dependency" not in _sbatch_flags((bin_dir / "job_503.sh").read_text())
    table = _sbatch_flags((bin_dir / "job_504.sh").read_text())
    assert table["dependency"] == "afterok:500:501:503"
    record = json.loads((folder / "jobs.json").read_text())["jobs"]
    assert record[coop2] == "503" and record[teacher] == "500_2"


def test_slurm_dry_run_cli(tmp_path):
    pytest.importorskip("submitit")
    res = sweep_cli("table1", "--launcher", "slurm", "--dry-run", "--partition", "p1", SMOKE=1,
                    DATASETS="dtd", SEEDS="1 2", OUTPUT_ROOT=tmp_path / "out", METHODS="coop promptkd")
    assert res.returncode == 0, res.stderr
    folder = tmp_path / "out/tables/table1_base2new/slurm_dry_run"
    assert "nothing submitted" in res.stderr and str(folder) in res.stderr
    assert "stage 1: job 1001 (2 run(s)), afterok:1000_2" in res.stdout
    stage1 = _sbatch_flags((folder / "1001_submission.sh").read_text())
    assert stage1["dependency"] == "afterok:1000_2" and stage1["partition"] == "p1"
    assert not (folder / "jobs.json").exists()


def test_launcher_variable_hands_the_table_script_to_the_runner(tmp_path):
    res = subprocess.run(["bash", "scripts/tables/table1_base2new.sh"], cwd=REPO, capture_output=True, text=True,
                         env=env(LAUNCHER="local", DRY_RUN=1, SMOKE=1, DATASETS="dtd", METHODS="promptkd",
                                 OUTPUT_ROOT=tmp_path, SWEEP_ARGS="--workers 3"), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "[sweep table1_base2new] 2 run(s) in 2 stage(s)" in res.stderr
    assert "# stage 1: 1 run(s)" in res.stdout and "#     after " + str(tmp_path) in res.stdout


# ------------------------------------------------------------------------------------------------ end to end
def _normalised(path, root):
    return json.loads(path.read_text().replace(str(root), "<OUT>"))


@pytest.mark.slow
def test_local_pool_matches_serial_and_resumes_after_a_kill(tmp_path):
    """SMOKE Table 1 (zero-shot, CoOp, PromptKD with its teachers), 2 datasets x 2 seeds: the bash script (serial) and the sweep's local pool (2 workers),
    killed after a few runs and started again, give the same results_base2novel.json; the second sweep runs
    only the runs that had not finished."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.fake_roots import make_root

    data = tmp_path / "data"
    make_root("DescribableTextures", data, n_classes=4, per_class=10)
    make_root("EuroSAT", data, n_classes=4, per_class=10)
    # three of Table 1's methods (zero-shot, a few-shot baseline, teacher -> PromptKD student) keep the test's
    # cost down; the full SMOKE Table 1 (24 runs) behaves the same (docs/SWEEPS.md)
    common = dict(SMOKE=1, DATASETS="dtd eurosat", SEEDS="1 2", METHODS="zsclip coop promptkd", DATA=data,
                  OMP_NUM_THREADS=1)
    serial, pool = tmp_path / "serial", tmp_path / "pool"
    res = subprocess.run(["bash", "scripts/tables/table1_base2new.sh"], cwd=REPO, capture_output=True, text=True,
                         env=env(OUTPUT_ROOT=serial, **common), timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]

    args = [sys.executable, "tools/sweep.py", "table1", "--launcher", "local", "--workers", "2"]
    first = subprocess.Popen(args, cwd=REPO, env=env(OUTPUT_ROOT=pool, **common), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 900
    while len(list(pool.rglob("DONE"))) < 5 and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 130, err1[-3000:]
    assert "stopping" in err1
    finished = {p.parent: p.read_text() for p in pool.rglob("DONE")}
    assert 5 <= len(finished) < 12

    res = subprocess.run(args, cwd=REPO, env=env(OUTPUT_ROOT=pool, **common), capture_output=True, text=True,
                         timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    started = set(re.findall(r"\] start  (\S+) \(", res.stderr))
    all_runs = {p.parent for p in pool.rglob("DONE")}
    assert len(all_runs) == 12
    assert started == {str(p) for p in all_runs - set(finished)}  # only the unfinished runs ran again
    assert all(p.joinpath("DONE").read_text() == text for p, text in finished.items())
    assert f"{len(finished)} finished before" in res.stderr

    name = "tables/table1_base2new/results_base2novel.json"
    assert _normalised(pool / name, pool) == _normalised(serial / name, serial)
    rows = json.loads((serial / name).read_text())["rows"]
    assert {r["trainer"] for r in rows} == {"ZeroshotCLIP", "CoOp", "PromptKD", "PromptSRCTeacher"}
