"""Expand a paper-table script (scripts/tables/*.sh) into its runs and their dependencies.

The table scripts stay the one definition of a table: ``plan_table`` runs the script with
``SWEEP_PLAN=<file>`` in the environment, and scripts/common.sh's ``run_cmd`` then appends every command to
that file instead of running it (the same ``train.py`` commands, configs and output folders that the
script runs serially, or prints with ``DRY_RUN=1``). Finished runs are recorded too: the sweep decides
from the ``DONE`` marker that ``train.py`` writes into the run folder.

Dependencies come from the commands themselves: a run depends on every other run of the table whose
``--output-dir`` one of its arguments names (the folder or a file inside it), e.g. a PromptKD student's
``TRAINER.PROMPTKD.TEACHER_CKPT <teacher run folder>`` or an evaluation's ``--model-dir <training run>``.
The ``tools/results.py`` commands are the table's aggregation steps, run after all the runs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
TABLES_DIR = REPO / "scripts" / "tables"
DONE_NAME = "DONE"  # train.py's completion marker (engine.checkpoint.DONE_NAME)


class PlanError(ValueError):
    """A table cannot be expanded into a sweep (unknown table, failing script, unschedulable step)."""


@dataclass
class Run:
    """One ``train.py`` command of a table and the runs it waits for."""

    index: int
    argv: List[str]
    output_dir: str  # as written in the command (relative to the repository root unless absolute)
    deps: List[int] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The run folder as an absolute path."""
        return _abs(self.output_dir)

    @property
    def done(self) -> bool:
        return (self.path / DONE_NAME).is_file()

    @property
    def trainer(self) -> str:
        return _flag(self.argv, "--trainer") or "?"

    @property
    def label(self) -> str:
        return self.output_dir


@dataclass
class Plan:
    """A table's runs (in the script's order) and its aggregation commands."""

    table: str
    script: Path
    runs: List[Run]
    aggregates: List[List[str]]

    def stages(self) -> List[List[Run]]:
        """Runs by depth in the dependency graph: stage 0 needs nothing, stage k needs stage < k."""
        depth: Dict[int, int] = {}
        for run in self.runs:  # deps always come earlier in the script's order (checked in plan_table)
            depth[run.index] = 1 + max((depth[d] for d in run.deps), default=-1)
        out: List[List[Run]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for run in self.runs:
            out[depth[run.index]].append(run)
        return out


def _abs(path: str) -> Path:
    return Path(os.path.normpath(os.path.join(REPO, path)))


def _flag(argv: Sequence[str], name: str) -> Optional[str]:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def resolve_table(name: str) -> Path:
    """``table1``, ``table1_base2new``, ``figure4`` or a script path -> scripts/tables/<stem>.sh."""
    p = Path(name)
    if p.suffix == ".sh" and p.is_file():
        return p.resolve()
    scripts = sorted(TABLES_DIR.glob("*.sh"))
    stem = p.stem if p.suffix == ".sh" else name
    hits = [s for s in scripts if s.stem == stem] or [s for s in scripts if s.stem.split("_")[0] == stem]
    if len(hits) != 1:
        choices = " ".join(s.stem.split("_")[0] for s in scripts)
        raise PlanError(f"unknown table {name!r}; expected one of: {choices} (or a scripts/tables/*.sh path)")
    return hits[0]


def parse_plan_file(data: bytes) -> List[List[str]]:
    """The commands recorded by run_cmd: per command, its argument count then the arguments, NUL-separated."""
    fields = data.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    cmds, i = [], 0
    while i < len(fields):
        n = int(fields[i])
        cmds.append([f.decode() for f in fields[i + 1:i + 1 + n]])
        i += 1 + n
    return cmds


def _is_tool(argv: Sequence[str], rel: str) -> bool:
    return len(argv) >= 2 and os.path.normpath(argv[1]) == rel


def build_plan(table: str, script: Path, commands: Sequence[List[str]]) -> Plan:
    """Runs, dependencies and aggregation steps from the recorded commands (see the module docstring)."""
    runs: List[Run] = []
    aggregates: List[List[str]] = []
    by_dir: Dict[Path, Run] = {}
    for argv in commands:
        if _is_tool(argv, "tools/results.py"):
            aggregates.append(list(argv))
            continue
        out = _flag(argv, "--output-dir") if _is_tool(argv, "train.py") else None
        if out is None:
            raise PlanError(f"{script.name}: the sweep runner schedules train.py runs and tools/results.py only; "
                            f"run this step directly: {' '.join(argv)}")
        path = _abs(out)
        if path in by_dir:
            if by_dir[path].argv != list(argv):
                raise PlanError(f"{script.name}: two different commands write {out}:\n  {' '.join(by_dir[path].argv)}"
                                f"\n  {' '.join(argv)}")
            continue  # the same run requested twice (a shared teacher or baseline): once is enough
        run = Run(len(runs), list(argv), out)
        runs.append(run)
        by_dir[path] = run
    for run in runs:
        own = run.path
        for i, arg in enumerate(run.argv):
            if i == 0 or arg.startswith("-") or not arg or arg == run.output_dir:
                continue
            p = _abs(arg)
            while p != p.parent and p != REPO:  # the named folder, or a folder above a named file
                dep = by_dir.get(p)
                if dep is not None and p != own:
                    if dep.index > run.index:
                        raise PlanError(f"{script.name}: {run.output_dir} needs {dep.output_dir}, which the "
                                        "script runs later")
                    if dep.index not in run.deps:
                        run.deps.append(dep.index)
                    break
                p = p.parent
    return Plan(table, script, runs, aggregates)


def plan_table(table: str, env: Optional[Mapping[str, str]] = None) -> Plan:
    """Run ``scripts/tables/<table>.sh`` in record mode and return its plan.

    ``env`` (default: this process's environment) carries the script's variables (SEEDS, DATASETS,
    METHODS, SMOKE, DATA, OUTPUT_ROOT, FORCE, ...). A script error (bad dataset, missing teacher) is
    raised as a PlanError with the script's message."""
    script = resolve_table(table)
    e = dict(os.environ if env is None else env)
    e.pop("LAUNCHER", None)
    with tempfile.TemporaryDirectory(prefix="sweep_plan_") as tmp:
        plan_file = Path(tmp) / "plan"
        plan_file.touch()
        e["SWEEP_PLAN"] = str(plan_file)
        res = subprocess.run(["bash", str(script)], env=e, capture_output=True, text=True)
        if res.returncode != 0:
            raise PlanError(f"{script.name} failed while listing its runs (exit {res.returncode}):\n"
                            f"{res.stderr.strip()}")
        commands = parse_plan_file(plan_file.read_bytes())
    if not commands:
        raise PlanError(f"{script.name} listed no command")
    return build_plan(script.stem, script, commands)
