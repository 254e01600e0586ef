"""Atomic file writes (temp file in the destination folder + ``os.replace``).

A crash or an exception in the middle of a save never leaves a truncated file behind: either the
previous file is still there untouched, or the new one is complete. Used for checkpoints, the
``checkpoint`` pointer file, ``config.yaml``, ``results.json`` and few-shot split caches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from typing import Any, Callable, IO

logger = logging.getLogger(__name__)

__all__ = ["FileWriteError", "atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save"]


class FileWriteError(OSError):
    """A save failed (disk full, quota, read-only folder, ...); the message names the file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, write_fn: Callable[[IO[bytes]], None]) -> None:
    """Call ``write_fn(fileobj)`` on a temp file next to ``path``, fsync it, then ``os.replace`` it.

    The parent folder is created if missing. The file gets the mode a plain ``open`` would give it
    (0666 minus the umask; the temp file itself starts private). On any exception the temp file is
    removed and ``path`` keeps its previous content; a failed write (disk full, read-only folder, ...)
    raises :class:`FileWriteError` naming ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        if isinstance(exc, FileWriteError):
            raise
        if isinstance(exc, OSError) or (isinstance(exc, RuntimeError) and "write" in str(exc).lower()):
            raise _write_error(path, exc) from exc
        raise


def _write_error(path: str, exc: BaseException) -> FileWriteError:
    import errno
    import shutil

    directory = os.path.dirname(os.path.abspath(path))
    try:
        free = f"{shutil.disk_usage(directory).free / 2**20:.1f} MiB free there"
    except OSError:
        free = "free space unknown"
    code = getattr(exc, "errno", None)
    detail = " ".join(str(exc).split())[:200]
    if code in (errno.ENOSPC, errno.EDQUOT) or "space" in detail.lower() or "write" in detail.lower():
        fix = "free disk space (or use another --output-dir) and run the same command again (it resumes)"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable or write elsewhere (e.g. another --output-dir)"
    else:
        fix = "check the disk and the folder, then run the same command again"
    return FileWriteError(code or errno.EIO, f"Cannot write {path} ({exc.__class__.__name__}: {detail}; {free}): {fix}")


def atomic_write_text(path: str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    data = text.encode(encoding)
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str, obj: Any, indent: int = 4) -> None:
    """Serialise ``obj`` as JSON (Dassl's ``write_json`` style: indent 4) and write it atomically."""
    text = json.dumps(obj, indent=indent, separators=(",", ": "))
    atomic_write_text(path, text + "\n")


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` through a temp file + ``os.replace``."""
    import torch  # here, so that text/JSON writers (tools/results.py) do not pay for importing torch

    atomic_write(path, lambda f: torch.save(obj, f))
