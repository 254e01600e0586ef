"""Live progress of a sweep: done / running / failed / waiting counts and the time left.

The time left is estimated from the runs finished in this sweep: the mean duration of the finished runs
of the same trainer (or of all finished runs when that trainer has none yet) for every waiting run, the
rest of that mean for every running run, divided by the number of parallel slots. One log line per event
goes to the stream; on a terminal a tqdm bar over the runs to do shows the same counts.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Dict, List, Optional, TextIO

import tqdm as _tqdm
from tqdm import tqdm

_tqdm.tqdm.monitor_interval = 0  # no monitor thread: the runner starts its runs with a preexec_fn


def format_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class Progress:
    """Counts and ETA of one sweep (``todo``: label -> trainer of the runs to do; ``finished_before`` runs
    already DONE)."""

    def __init__(self, name: str, todo: Dict[str, str], finished_before: int, slots: int,
                 stream: Optional[TextIO] = None, bar: Optional[bool] = None) -> None:
        self.name = name
        self.pending = dict(todo)  # waiting runs: label -> trainer
        self.total = len(todo)
        self.finished_before = finished_before
        self.slots = max(1, slots)
        self.stream = stream or sys.stderr
        self.done = 0
        self.failed = 0
        self.blocked = 0
        self.running: Dict[str, tuple] = {}  # label -> (trainer, start time)
        self.durations: Dict[str, List[float]] = defaultdict(list)
        # bar=None: a tqdm bar only when the stream is a terminal
        self._bar = tqdm(total=self.total, desc=name, unit="run", file=self.stream, disable=None if bar is None else not bar,
                         dynamic_ncols=True)

    # ------------------------------------------------------------------ counts
    @property
    def waiting(self) -> int:
        return len(self.pending)

    def eta_seconds(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds left (None until a run has finished in this sweep)."""
        all_d = [d for ds in self.durations.values() for d in ds]
        if not all_d:
            return None
        now = time.monotonic() if now is None else now
        overall = sum(all_d) / len(all_d)

        def mean(trainer: str) -> float:
            ds = self.durations.get(trainer)
            return sum(ds) / len(ds) if ds else overall

        work = sum(max(mean(tr) - (now - t0), 0.0) for tr, t0 in self.running.values())
        work += sum(mean(tr) for tr in self.pending.values())
        return work / self.slots

    def status(self) -> str:
        eta = self.eta_seconds()
        parts = [f"done {self.done}/{self.total}", f"running {len(self.running)}", f"failed {self.failed}",
                 f"waiting {self.waiting}"]
        if self.blocked:
            parts.append(f"blocked {self.blocked}")
        if self.finished_before:
            parts.append(f"{self.finished_before} finished before")
        parts.append(f"~{format_seconds(eta)} left" if eta is not None else "time left: after the first run")
        return f"[sweep {self.name}] " + " | ".join(parts)

    # ------------------------------------------------------------------ events
    def log(self, msg: str) -> None:
        if self._bar.disable:
            print(msg, file=self.stream, flush=True)
        else:
            self._bar.write(msg, file=self.stream)

    def _update(self) -> None:
        if self._bar.disable:
            print(self.status(), file=self.stream, flush=True)
        else:
            eta = self.eta_seconds()
            self._bar.set_postfix_str(f"running {len(self.running)}, failed {self.failed}, waiting {self.waiting}"
                                      + (f", ~{format_seconds(eta)} left" if eta is not None else ""))

    def started(self, label: str, where: str) -> None:
        trainer = self.pending.pop(label)
        self.running[label] = (trainer, time.monotonic())
        self.log(f"[sweep {self.name}] start  {label} ({trainer}, {where})")

    def finished(self, label: str, ok: bool, detail: str = "") -> float:
        trainer, t0 = self.running.pop(label)
        dur = time.monotonic() - t0
        if ok:
            self.done += 1
            self.durations[trainer].append(dur)
            self.log(f"[sweep {self.name}] done   {label} in {format_seconds(dur)}")
        else:
            self.failed += 1
            self.log(f"[sweep {self.name}] FAILED {label} after {format_seconds(dur)}: {detail}")
        self._bar.update(1)
        self._update()
        return dur

    def blocked_run(self, label: str, dep: str) -> None:
        self.pending.pop(label)
        self.blocked += 1
        self.log(f"[sweep {self.name}] not started: {label} (it needs {dep}, which failed)")
        self._bar.update(1)
        self._update()

    def close(self) -> None:
        self._bar.close()
