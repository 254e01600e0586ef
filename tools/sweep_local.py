"""Run a sweep's ``train.py`` commands on this machine: serially, or as a pool over GPUs / CPU processes.

Slots (``make_slots``): ``serial`` is one slot with the environment unchanged (what the table scripts
do); ``local`` gives every visible GPU ``per_gpu`` slots (the run sees only its GPU through
``CUDA_VISIBLE_DEVICES``), or without a GPU ``workers`` CPU processes with ``threads`` torch threads each
(``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, default 1). A run starts when every run it depends on has
finished (its ``DONE`` marker); the output of each run goes to ``<run folder>/sweep.log``. A failed run
does not stop the others; the runs that need it are not started. SIGINT/SIGTERM stop the running
runs (SIGTERM to each run's process group, SIGKILL after ``grace_s``); a later sweep resumes from the
runs' own checkpoints.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from tools.sweep_plan import REPO, Plan, Run
from tools.sweep_progress import Progress

LOG_NAME = "sweep.log"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Slot:
    """One place a run can execute: a name for the logs and the environment it adds."""

    name: str
    env: Dict[str, str] = field(default_factory=dict)


def visible_gpus() -> List[str]:
    """The GPU ids a child process may use: CUDA_VISIBLE_DEVICES's entries when set, else torch's count."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return [d.strip() for d in cvd.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def make_slots(launcher: str, workers: Optional[int] = None, per_gpu: int = 1, gpus: Optional[Sequence[str]] = None,
               threads: Optional[int] = None) -> List[Slot]:
    """The slots of the ``serial`` or ``local`` launcher (see the module docstring)."""
    if launcher == "serial":
        return [Slot("serial")]
    if launcher != "local":
        raise ValueError(f"make_slots: launcher must be serial or local, got {launcher!r}")
    if per_gpu < 1:
        raise ValueError(f"--per-gpu must be >= 1, got {per_gpu}")
    devices = list(gpus) if gpus is not None else visible_gpus()
    if devices:
        n = len(devices) * per_gpu
        t = threads or max(1, (os.cpu_count() or 1) // n)
        return [Slot(f"gpu {d}" + (f" #{k + 1}" if per_gpu > 1 else ""),
                     {"CUDA_VISIBLE_DEVICES": d, **{v: str(t) for v in THREAD_VARS}})
                for d in devices for k in range(per_gpu)]
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ValueError(f"--workers must be >= 1, got {n}")
    t = threads or 1
    return [Slot(f"cpu worker {k + 1}", {v: str(t) for v in THREAD_VARS}) for k in range(n)]


@dataclass
class Outcome:
    """What a sweep did: the runs it finished, the failures (run, reason, log), the runs never started."""

    finished: List[Run] = field(default_factory=list)
    failed: List[tuple] = field(default_factory=list)  # (run, reason, log path)
    blocked: List[tuple] = field(default_factory=list)  # (run, failed dependency)
    skipped: List[Run] = field(default_factory=list)  # DONE before the sweep
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failed or self.blocked or self.interrupted)


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise _Interrupted(signal.Signals(signum).name)


def run_plan(plan: Plan, slots: List[Slot], force: bool = False, progress_stream=None, bar: Optional[bool] = None,
             poll_s: float = 0.2, grace_s: float = 30.0) -> Outcome:
    """Execute ``plan``'s runs over ``slots`` in dependency order; DONE runs are skipped unless ``force``."""
    out = Outcome()
    todo = [r for r in plan.runs if force or not r.done]
    out.skipped = [r for r in plan.runs if r not in todo]
    finished = {r.index for r in out.skipped}
    bad: Dict[int, str] = {}  # failed or blocked run -> the failed run's folder
    waiting = list(todo)
    free = list(range(len(slots)))
    running: Dict[int, tuple] = {}  # run index -> (run, Popen, slot index, log file, log path)
    progress = Progress(plan.table, {r.label: r.trainer for r in todo}, len(out.skipped), len(slots),
                        stream=progress_stream, bar=bar)
    old = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while waiting or running:
            for run in list(waiting):  # runs whose dependency failed are never started
                failed_dep = next((d for d in run.deps if d in bad), None)
                if failed_dep is not None:
                    waiting.remove(run)
                    bad[run.index] = bad[failed_dep]
                    out.blocked.append((run, bad[failed_dep]))
                    progress.blocked_run(run.label, bad[failed_dep])
            for run in list(waiting):
                if not free:
                    break
                if all(d in finished for d in run.deps):
                    waiting.remove(run)
                    k = free.pop(0)
                    running[run.index] = _start(run, slots[k], k)
                    progress.started(run.label, slots[k].name)
            time.sleep(poll_s if running else 0)
            for idx, (run, proc, k, fh, log) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                fh.close()
                del running[idx]
                free.append(k)
                free.sort()
                if rc == 0 and run.done:
                    finished.add(idx)
                    out.finished.append(run)
                    progress.finished(run.label, True)
                else:
                    why = f"exit code {rc}" if rc != 0 else "exited without writing its DONE marker"
                    bad[idx] = run.output_dir
                    out.failed.append((run, why, log))
                    progress.finished(run.label, False, f"{why}; log: {log}")
    except _Interrupted as exc:
        out.interrupted = True
        progress.log(f"[sweep {plan.table}] {exc}: stopping {len(running)} running run(s); "
                     "the next sweep resumes them from their checkpoints")
        _stop(running, grace_s)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        progress.close()
    return out


def _start(run: Run, slot: Slot, k: int) -> tuple:
    run.path.mkdir(parents=True, exist_ok=True)
    log = run.path / LOG_NAME
    fh = open(log, "a", buffering=1)
    env = dict(os.environ)
    env.update(slot.env)
    fh.write(f"==== sweep {time.strftime('%Y-%m-%d %H:%M:%S')} on {slot.name}"
             + "".join(f" {k}={v}" for k, v in slot.env.items()) + "\n"
             + " ".join(run.argv) + "\n")
    proc = subprocess.Popen(run.argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    return run, proc, k, fh, log


def _die_with_parent() -> None:
    """Linux: the run gets SIGTERM when the sweep process dies, even by SIGKILL (no orphaned runs)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _stop(running: Dict[int, tuple], grace_s: float) -> None:
    for run, proc, _, _, _ in running.values():
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for run, proc, _, fh, _ in running.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        fh.close()
