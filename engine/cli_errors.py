"""One-line errors for ``train.py`` and the tools.

``run_cli(main, prog)`` runs a command-line ``main(argv)``; an exception ends the program with ONE
line on stderr (the error's message, which names the file / config key and the fix, folded onto one
line) and exit status 1. The full traceback goes to the run's ``log.txt`` when one is open, and to the
console as well with ``--debug`` (or ``PROMPTKD_DEBUG=1``). A run stopped by SIGTERM / SIGUSR1
(:class:`engine.run_guard.Preempted`) exits with status 75; Ctrl-C with 130.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any, Callable, List, Optional

from engine.run_guard import PREEMPTED_EXIT_CODE, Preempted

__all__ = ["run_cli", "one_line"]

DEBUG_FLAG = "--debug"


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (``KeyError`` quotes removed), prefixed by its type."""
    text = str(exc)
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str) and type(exc).__str__ is KeyError.__str__:
        text = exc.args[0]
    text = " ".join(part.strip() for part in text.splitlines() if part.strip()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


def _traceback_to_logs(exc: BaseException) -> List[str]:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    written = []
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler) and h.stream is not None:
            try:
                with h.lock:
                    h.stream.write("Traceback of the error below:\n" + text)
                    h.flush()
                written.append(h.baseFilename)
            except (OSError, ValueError):
                pass
    return written


def run_cli(main: Callable[[Optional[List[str]]], Any], prog: str, argv: Optional[List[str]] = None) -> int:
    """Run ``main(argv)`` (``--debug`` is taken out of argv); returns the exit status (see module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("PROMPTKD_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        rc = main(argv)
    except Preempted as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return PREEMPTED_EXIT_CODE
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted (Ctrl-C); run the same command to resume\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - the point: one line instead of a traceback
        logs = _traceback_to_logs(exc)
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        where = (f"traceback in {logs[0]}" if logs else "no log file yet") + ("" if debug else f"; {DEBUG_FLAG} prints it")
        sys.stderr.write(f"{prog}: error: {one_line(exc)} [{where}]\n")
        return 1
    return rc if isinstance(rc, int) else 0
