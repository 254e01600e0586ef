"""Atomic file writes (temp file in the destination folder + ``os.replace``).

A crash or an exception in the middle of a save never leaves a truncated file behind: either the
previous file is still there untouched, or the new one is complete. Used for checkpoints, the
``checkpoint`` pointer file, ``config.yaml``, ``results.json`` and few-shot split caches.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any, Callable, IO

import torch

logger = logging.getLogger(__name__)

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save"]


def atomic_write(path: str, write_fn: Callable[[IO[bytes]], None]) -> None:
    """Call ``write_fn(fileobj)`` on a temp file next to ``path``, fsync it, then ``os.replace`` it.

    The parent folder is created if missing. On any exception the temp file is removed and the
    exception propagates; ``path`` keeps its previous content.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.remove(tmp_path)
        except FileNotFoundError:
            pass
        raise


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
    atomic_write(path, lambda f: torch.save(obj, f))
