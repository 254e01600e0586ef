"""Output-folder lock, preemption signals and stale temporary files (docs/RELIABILITY.md).

- :class:`OutputLock`: ``OUTPUT_DIR/.lock`` names the process that holds the folder (pid, host, start
  time, command). A second run into the same folder is refused with a named error; a lock whose
  process is gone (same host, dead pid) is taken over with a warning.
- :func:`preemption_handlers`: SIGTERM / SIGUSR1 (the signals cluster schedulers send before killing a
  job) only set a flag; the trainer checks it after every training step, writes the resumable state
  and raises :class:`Preempted` (a ``SystemExit`` with :data:`PREEMPTED_EXIT_CODE`). A second signal
  gets the default action (the process ends at once).
- :func:`remove_stale_temp_files`: the ``.NAME.XXXXXXXX.tmp`` files an atomic save leaves when the
  process is SIGKILLed mid-write (removed at start, once the lock is held).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import re
import signal
import socket
import sys
from typing import Any, Dict, Iterator, List, Optional

logger = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "PREEMPTED_EXIT_CODE", "OutputLockedError", "OutputLock", "Preempted", "preemption_handlers",
           "preemption_requested", "remove_stale_temp_files"]

LOCK_NAME = ".lock"
#: exit status of a run stopped by SIGTERM / SIGUSR1 after writing its resumable state (EX_TEMPFAIL:
#: "try again"; the same command resumes it)
PREEMPTED_EXIT_CODE = 75
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")


class OutputLockedError(RuntimeError):
    """Another live process writes into the same output folder."""


class Preempted(SystemExit):
    """Raised after a SIGTERM / SIGUSR1 once the resumable state is written; exit status 75."""

    def __init__(self, message: str) -> None:
        super().__init__(PREEMPTED_EXIT_CODE)
        self.message = message

    def __str__(self) -> str:
        return self.message


# ------------------------------------------------------------------------------------------------
# lock
# ------------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """``OUTPUT_DIR/.lock`` held by this process from :meth:`acquire` to :meth:`release`."""

    def __init__(self, output_dir: str, command: str = "") -> None:
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.command = command
        self.held = False

    def _info(self) -> Dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().isoformat(timespec="seconds"), "command": self.command}

    def read(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.path, "r", encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"pid": -1, "host": "?", "started": "?", "command": "(unreadable lock file)"}

    def acquire(self) -> "OutputLock":
        """Create the lock atomically; refuse when a live process holds it; take over a stale one."""
        os.makedirs(self.output_dir, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                holder = self.read()
                if holder is None:
                    continue  # released in between
                pid, host = int(holder.get("pid", -1) or -1), str(holder.get("host", "?"))
                same_host = host == socket.gethostname()
                if same_host and (pid == os.getpid() or not _pid_alive(pid)):
                    logger.warning("Output folder %s: taking over the stale lock of pid %s (host %s, started %s), "
                                   "whose process is gone", self.output_dir, pid, host, holder.get("started"))
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path)
                    continue
                raise OutputLockedError(
                    f"Output folder {self.output_dir} is in use by pid {pid} on host {host} (started "
                    f"{holder.get('started')}; command: {holder.get('command') or '?'}). Wait for that run to end, "
                    f"choose another --output-dir, or delete {self.path} if that process no longer exists"
                )
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._info(), f)
            self.held = True
            return self
        raise OutputLockedError(f"Output folder {self.output_dir}: could not create {self.path} (it keeps appearing)")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = self.read()
        if holder is not None and int(holder.get("pid", -1) or -1) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


# ------------------------------------------------------------------------------------------------
# preemption signals
# ------------------------------------------------------------------------------------------------
_PREEMPT_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGUSR1") if hasattr(signal, n))
_requested: Dict[str, Optional[int]] = {"signum": None}


def preemption_requested() -> Optional[int]:
    """The signal number received (SIGTERM / SIGUSR1) since the handlers were installed, else None."""
    return _requested["signum"]


def _handler(signum: int, frame: Any) -> None:
    if _requested["signum"] is not None:  # second signal: give up at once
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _requested["signum"] = signum
    try:
        sys.stderr.write(f"\n{signal.Signals(signum).name} received: the resumable state is written after the "
                         "current training step, then the run exits (status 75); send it again to stop at once\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def preemption_handlers() -> Iterator[None]:
    """Install the SIGTERM / SIGUSR1 handlers for the duration of the block (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _PREEMPT_SIGNALS}
    _requested["signum"] = None
    for s in _PREEMPT_SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _requested["signum"] = None


# ------------------------------------------------------------------------------------------------
# temporary files of interrupted atomic saves
# ------------------------------------------------------------------------------------------------
def remove_stale_temp_files(output_dir: str, depth: int = 2) -> List[str]:
    """Remove ``.NAME.XXXXXXXX.tmp`` files (left by a process killed during an atomic save) in
    ``output_dir`` and its sub-folders up to ``depth`` levels; returns the removed paths. Call it only
    while holding the folder's :class:`OutputLock` (a live writer's temp file would be removed)."""
    removed: List[str] = []  # a missing folder: os.walk yields nothing
    base_depth = output_dir.rstrip(os.sep).count(os.sep)
    for folder, dirs, files in os.walk(output_dir):
        if folder.rstrip(os.sep).count(os.sep) - base_depth >= depth:
            dirs[:] = []
        dirs[:] = [d for d in dirs if d != "tensorboard"]
        for name in files:
            if _TEMP_RE.match(name):
                path = os.path.join(folder, name)
                try:
                    os.remove(path)
                    removed.append(path)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        logger.warning("Could not remove the stale temporary file %s: %s", path, exc)
    if removed:
        logger.warning("Removed %d temporary file(s) left by an interrupted save: %s", len(removed), removed)
    return removed
