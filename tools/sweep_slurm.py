"""Submit a sweep to SLURM with submitit: one job array per stage and dependency set, afterok dependencies.

Each unfinished run of the plan becomes one array task that executes its ordinary ``train.py`` command
(``submitit.helpers.CommandFunction``, run from the repository root, output streamed to the task's log).
Runs are grouped by their stage (depth in the dependency graph, ``Plan.stages``) and by the set of runs
they wait for; every group is one job array (a single job when it has one run) whose
``--dependency=afterok:<job>_<task>:...`` names exactly the array tasks of those runs, with
``--kill-on-invalid-dep=yes`` so that the students of a failed teacher are cancelled instead of waiting
forever. The table's ``tools/results.py`` step is a last job that depends on all of them.

The submitted job ids are kept in ``<folder>/jobs.json``: a second submission skips the DONE runs and
the runs whose job is still pending or running (SLURM's state through submitit), and resubmits the rest.
``dry_run`` goes through the same submitit code with a recording ``sbatch`` (and ``srun``) first on
``PATH``: the sbatch scripts are written into ``folder`` as on a cluster, nothing is submitted.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from engine.fileio import atomic_write_json
from tools.sweep_plan import REPO, Plan, Run

ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")
JOBS_FILE = "jobs.json"


def _submitit():
    try:
        import submitit
    except ImportError as exc:  # an optional extra
        raise RuntimeError('--launcher slurm needs submitit: pip install -e ".[slurm]"') from exc
    return submitit


@dataclass
class Submission:
    """What was submitted: job id per run folder, the arrays (stage, job ids, dependency), the table job."""

    jobs: Dict[str, str] = field(default_factory=dict)  # run output_dir -> job id ("<array>_<task>" or "<job>")
    arrays: List[Dict[str, Any]] = field(default_factory=list)
    reused: Dict[str, str] = field(default_factory=dict)  # still pending/running from a previous submission
    skipped: List[str] = field(default_factory=list)  # DONE
    table_job: Optional[str] = None
    folder: Optional[Path] = None


_FAKE_SBATCH = """#!/usr/bin/env python3
# dry run: record the submission instead of submitting it; answer like sbatch
import pathlib, sys
counter = pathlib.Path(__file__).with_name("next_id")
n = int(counter.read_text()) if counter.exists() else 1000
counter.write_text(str(n + 1))
print(f"Submitted batch job {n}")
"""


@contextlib.contextmanager
def recording_sbatch() -> Iterator[Path]:
    """``sbatch`` and ``srun`` stand-ins first on PATH (the dry run): submitit writes its sbatch scripts as it
    would on a cluster; ``sbatch`` answers with made-up job ids from 1000 on."""
    with tempfile.TemporaryDirectory(prefix="sweep_dry_sbatch_") as tmp:
        for name, text in (("sbatch", _FAKE_SBATCH), ("srun", "#!/bin/sh\nexit 0\n")):
            p = Path(tmp) / name
            p.write_text(text)
            p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        old = os.environ.get("PATH", "")
        os.environ["PATH"] = tmp + os.pathsep + old
        try:
            yield Path(tmp)
        finally:
            os.environ["PATH"] = old


def slurm_parameters(partition: Optional[str] = None, time_min: int = 240, gpus_per_node: int = 1,
                     cpus_per_task: Optional[int] = None, mem: Optional[str] = None,
                     account: Optional[str] = None, qos: Optional[str] = None, constraint: Optional[str] = None,
                     array_parallelism: int = 256, setup: Optional[List[str]] = None,
                     extra: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """submitit SlurmExecutor parameters of every run job (``extra``: further ``#SBATCH --key=value``)."""
    params: Dict[str, Any] = {"time": int(time_min), "gpus_per_node": int(gpus_per_node),
                              "array_parallelism": int(array_parallelism), "stderr_to_stdout": True,
                              "additional_parameters": {"kill-on-invalid-dep": "yes", **(extra or {})}}
    for key, value in (("partition", partition), ("cpus_per_task", cpus_per_task), ("mem", mem),
                       ("account", account), ("qos", qos), ("constraint", constraint), ("setup", setup)):
        if value is not None:
            params[key] = value
    if params["gpus_per_node"] <= 0:
        del params["gpus_per_node"]
    return params


def _groups(plan: Plan, todo: List[Run]) -> List[Tuple[int, Tuple[int, ...], List[Run]]]:
    """(stage, dependencies to wait for, runs): one job array each, in stage order."""
    todo_ids = {r.index for r in todo}
    out: Dict[Tuple[int, Tuple[int, ...]], List[Run]] = {}
    for stage, runs in enumerate(plan.stages()):
        for run in runs:
            if run.index in todo_ids:
                out.setdefault((stage, tuple(sorted(run.deps))), []).append(run)
    return [(stage, deps, runs) for (stage, deps), runs in out.items()]


def _load_jobs(folder: Path) -> Dict[str, str]:
    f = folder / JOBS_FILE
    if not f.is_file():
        return {}
    try:
        return dict(json.loads(f.read_text())["jobs"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{f}: unreadable job record ({exc}); delete it to submit every unfinished run again")


def _save_jobs(folder: Path, jobs: Dict[str, str]) -> None:
    atomic_write_json(str(folder / JOBS_FILE), {"jobs": jobs}, indent=1)


def submit_plan(plan: Plan, folder: Path, params: Dict[str, Any], force: bool = False, dry_run: bool = False,
                python: Optional[str] = None, log=print) -> Submission:
    """Submit ``plan``'s unfinished runs and its table step (see the module docstring)."""
    submitit = _submitit()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    sub = Submission(folder=folder)
    previous = {} if (force or dry_run) else _load_jobs(folder)
    todo: List[Run] = []
    unfinished = []
    for run in plan.runs:
        if run.done and not force:
            sub.skipped.append(run.output_dir)
        else:
            unfinished.append(run)
    # the jobs of the last submission: registered together, their states come from one sacct call
    earlier = {r.output_dir: submitit.SlurmJob(folder, previous[r.output_dir]) for r in unfinished
               if r.output_dir in previous}
    for run in unfinished:
        job = earlier.get(run.output_dir)
        if job is not None and job.state.split(" ")[0] in ACTIVE_STATES:
            sub.reused[run.output_dir] = job.job_id
        else:
            todo.append(run)
    ctx = recording_sbatch() if dry_run else contextlib.nullcontext()
    with ctx:
        executor = submitit.SlurmExecutor(folder=folder, python=python)
        job_of: Dict[int, str] = {plan.runs[i].index: j for i, j in
                                  ((r.index, sub.reused[r.output_dir]) for r in plan.runs
                                   if r.output_dir in sub.reused)}
        for stage, deps, runs in _groups(plan, todo):
            wait = [job_of[d] for d in deps if d in job_of]  # DONE dependencies need no waiting
            executor.update_parameters(**params, job_name=f"{plan.table}-stage{stage}",
                                       dependency=("afterok:" + ":".join(wait)) if wait else None)
            with executor.batch():
                jobs = [executor.submit(submitit.helpers.CommandFunction(r.argv, cwd=str(REPO), verbose=True))
                        for r in runs]
            for run, job in zip(runs, jobs):
                job_of[run.index] = job.job_id
                sub.jobs[run.output_dir] = job.job_id
            sub.arrays.append({"stage": stage, "jobs": [j.job_id for j in jobs], "dependency": wait,
                               "runs": [r.output_dir for r in runs]})
            log(f"[sweep {plan.table}] stage {stage}: submitted {len(runs)} run(s) as "
                f"{jobs[0].job_id.split('_')[0]}" + (f" after {' '.join(wait)}" if wait else ""))
        if plan.aggregates and (sub.jobs or sub.reused):
            table_params = {**params, "gpus_per_node": None, "time": 30}  # the table needs no GPU
            # afterok on an array id waits for all of its tasks
            waits = sorted({j.split("_")[0] for j in list(sub.jobs.values()) + list(sub.reused.values())})
            executor.update_parameters(**table_params, job_name=f"{plan.table}-table",
                                       dependency="afterok:" + ":".join(waits))
            for argv in plan.aggregates:
                job = executor.submit(submitit.helpers.CommandFunction(list(argv), cwd=str(REPO), verbose=True))
                sub.table_job = job.job_id
            log(f"[sweep {plan.table}] table: job {sub.table_job} after every run")
    if not dry_run:
        _save_jobs(folder, {**previous, **sub.jobs})
    return sub


def describe(sub: Submission) -> str:
    """The dependency graph of a submission, one array per line."""
    lines = []
    for a in sub.arrays:
        first = a["jobs"][0].split("_")[0]
        dep = f"afterok:{':'.join(a['dependency'])}" if a["dependency"] else "no dependency"
        lines.append(f"stage {a['stage']}: job {first} ({len(a['jobs'])} run(s)), {dep}")
        lines += [f"    {j}  {r}" for j, r in zip(a["jobs"], a["runs"])]
    if sub.table_job:
        lines.append(f"table: job {sub.table_job} after every run")
    return "\n".join(lines)
