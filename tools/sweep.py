"""Run a whole paper table: its runs in parallel (local GPU/CPU pool or SLURM), resumable, then the table.

    python tools/sweep.py table1                          # serial, as bash scripts/tables/table1_base2new.sh
    python tools/sweep.py table1 --launcher local         # one run per visible GPU (CPU: one per core)
    python tools/sweep.py table1 --launcher local --per-gpu 2
    python tools/sweep.py table1 --launcher slurm --partition gpu --time 240
    python tools/sweep.py table1 --launcher slurm --dry-run   # the sbatch scripts, nothing submitted
    LAUNCHER=local bash scripts/tables/table1_base2new.sh    # the same from the table script

The runs are the table script's own (tools/sweep_plan.py): the script's variables (SEEDS, DATASETS,
METHODS, VALUES, SMOKE, DATA, OUTPUT_ROOT, TRAIN_TEACHERS, FORCE, ...) are read from the environment as
by the script. Runs whose folder holds train.py's DONE marker are skipped (FORCE=1 runs them again); an
interrupted run resumes from its checkpoint. A failed run is reported with its log and the others go on;
the sweep then exits 1 and the table is not written (run the same command again to resume). With every
run finished the table is written by tools/results.py, as at the end of the script. docs/SWEEPS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tools.sweep_plan import REPO, Plan, PlanError, plan_table  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("table", help="table1 ... table14, figure4 ... figure6, a scripts/tables/*.sh stem or path")
    p.add_argument("--launcher", choices=("serial", "local", "slurm"), default="serial",
                   help="serial (default: one run after the other), local (pool over GPUs or CPU processes), "
                        "slurm (submitit job arrays with dependencies)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs by stage (slurm: write the sbatch scripts without submitting); also DRY_RUN=1")
    p.add_argument("--no-table", action="store_true", help="do not write the table at the end")
    g = p.add_argument_group("local")
    g.add_argument("--workers", type=int, default=None,
                   help="CPU pool size when no GPU is visible (default: the number of CPU cores)")
    g.add_argument("--per-gpu", type=int, default=1, help="runs sharing each GPU (default 1)")
    g.add_argument("--gpus", default=None,
                   help="comma-separated GPU ids to use (default: CUDA_VISIBLE_DEVICES, else all); '' = CPU pool")
    g.add_argument("--threads", type=int, default=None,
                   help="OMP/MKL threads per run (default: 1 on CPU; cores / runs with GPUs)")
    g.add_argument("--progress-bar", choices=("auto", "on", "off"), default="auto",
                   help="tqdm bar (auto: on a terminal); the log lines are printed either way")
    s = p.add_argument_group("slurm")
    s.add_argument("--partition", default=None)
    s.add_argument("--time", type=int, default=240, help="time limit per run in minutes (default 240)")
    s.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per run (default 1; 0 = CPU jobs)")
    s.add_argument("--cpus-per-task", type=int, default=None)
    s.add_argument("--mem", default=None, help="memory per run, as sbatch's --mem (e.g. 32G)")
    s.add_argument("--account", default=None)
    s.add_argument("--qos", default=None)
    s.add_argument("--constraint", default=None)
    s.add_argument("--array-parallelism", type=int, default=256, help="array tasks running at once (default 256)")
    s.add_argument("--setup", action="append", default=None,
                   help="shell line run before each job (repeatable), e.g. 'source ~/venv/bin/activate'")
    s.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                   help="any further #SBATCH --KEY=VALUE (repeatable), e.g. --sbatch mail-type=FAIL")
    s.add_argument("--slurm-folder", default=None,
                   help="submitit folder: scripts, logs, job record (default: <table out>/slurm; must be shared "
                        "with the nodes)")
    return p


def table_out_dir(plan: Plan) -> Path:
    """The table's folder (``--out`` of its tools/results.py step)."""
    for argv in plan.aggregates:
        if "--out" in argv[:-1]:
            return REPO / argv[argv.index("--out") + 1]
    return REPO / "output" / "tables" / plan.table


def write_table(plan: Plan) -> int:
    """The table script's tools/results.py step(s), on the run folders that exist (as the script does)."""
    from tools import results

    rc = 0
    for argv in plan.aggregates:
        args = list(argv[2:])
        n = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
        dirs = [d for d in args[:n] if (REPO / d).exists()]
        if not dirs:
            print(f"error: no run folder exists among: {' '.join(args[:n])}", file=sys.stderr)
            rc = 2
            continue
        cwd = os.getcwd()
        os.chdir(REPO)
        try:
            rc = results.main(dirs + args[n:]) or rc
        finally:
            os.chdir(cwd)
    return rc


def print_plan(plan: Plan, force: bool) -> None:
    for k, runs in enumerate(plan.stages()):
        print(f"# stage {k}: {len(runs)} run(s)")
        for r in runs:
            state = "done" if (r.done and not force) else "to do"
            needs = "".join(f"\n#     after {plan.runs[d].output_dir}" for d in r.deps)
            print(f"# [{state}] {r.output_dir}{needs}")
            print(" ".join(_quote(a) for a in r.argv))
    for argv in plan.aggregates:
        print("# table")
        print(" ".join(_quote(a) for a in argv))


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def _report(plan: Plan, outcome) -> None:
    name = f"[sweep {plan.table}]"
    print(f"{name} {len(outcome.finished)} run(s) finished now, {len(outcome.skipped)} were finished before, "
          f"{len(outcome.failed)} failed, {len(outcome.blocked)} not started", file=sys.stderr)
    for run, why, log in outcome.failed:
        print(f"{name} FAILED {run.output_dir}: {why}; log: {log}", file=sys.stderr)
    for run, dep in outcome.blocked:
        print(f"{name} not started {run.output_dir}: needs the failed {dep}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    dry = args.dry_run or os.environ.get("DRY_RUN") == "1"
    force = os.environ.get("FORCE") == "1"
    try:
        plan = plan_table(args.table, {**os.environ, "DRY_RUN": "1"} if dry else None)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_done = sum(r.done for r in plan.runs)
    print(f"[sweep {plan.table}] {len(plan.runs)} run(s) in {len(plan.stages())} stage(s), "
          f"{0 if force else n_done} finished before", file=sys.stderr)

    if args.launcher == "slurm":
        from tools import sweep_slurm

        extra = {}
        for kv in args.sbatch:
            if "=" not in kv:
                print(f"error: --sbatch {kv!r}: expected KEY=VALUE, e.g. mail-type=FAIL", file=sys.stderr)
                return 2
            k, v = kv.split("=", 1)
            extra[k.lstrip("-")] = v
        params = sweep_slurm.slurm_parameters(
            partition=args.partition, time_min=args.time, gpus_per_node=args.gpus_per_node,
            cpus_per_task=args.cpus_per_task, mem=args.mem, account=args.account, qos=args.qos,
            constraint=args.constraint, array_parallelism=args.array_parallelism, setup=args.setup, extra=extra)
        folder = Path(args.slurm_folder) if args.slurm_folder else table_out_dir(plan) / (
            "slurm_dry_run" if dry else "slurm")
        try:
            sub = sweep_slurm.submit_plan(plan, folder, params, force=force, dry_run=dry,
                                          log=lambda m: print(m, file=sys.stderr))
        except (RuntimeError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(sweep_slurm.describe(sub))
        if sub.reused:
            print(f"[sweep {plan.table}] {len(sub.reused)} run(s) still queued or running from the last "
                  "submission: not submitted again", file=sys.stderr)
        if dry:
            print(f"[sweep {plan.table}] dry run: sbatch scripts in {sub.folder} (*_submission.sh), nothing "
                  "submitted", file=sys.stderr)
        elif not sub.jobs and not sub.reused and not args.no_table:
            return write_table(plan)  # everything was finished already
        else:
            print(f"[sweep {plan.table}] logs in {sub.folder}; run the same command again to resubmit what "
                  "failed", file=sys.stderr)
        return 0

    if dry:
        print_plan(plan, force)
        return 0
    from tools import sweep_local

    try:
        gpus = None if args.gpus is None else [g for g in args.gpus.split(",") if g.strip()]
        slots = sweep_local.make_slots(args.launcher, args.workers, args.per_gpu, gpus, args.threads)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar = {"auto": None, "on": True, "off": False}[args.progress_bar]
    outcome = sweep_local.run_plan(plan, slots, force=force, bar=bar)
    _report(plan, outcome)
    if outcome.interrupted:
        return 130
    if not outcome.ok:
        print(f"[sweep {plan.table}] the table is not written: fix the failures and run the same command again "
              "(finished runs are skipped)", file=sys.stderr)
        return 1
    return 0 if args.no_table else write_table(plan)


if __name__ == "__main__":
    sys.exit(main())
