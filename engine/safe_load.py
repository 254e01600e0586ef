"""The one way this project reads a torch file: ``torch.load(..., weights_only=True)``, nothing else.

A checkpoint is a pickle; a full unpickle runs whatever code the file names. Every checkpoint, resume
state, teacher, class-vectors file and exported student is therefore read with torch's restricted
unpickler (tensors, containers, numbers, strings), and a file that needs more is refused with a named
error before anything in it runs:

- :class:`UnsafeCheckpointError` - the file names Python objects outside the allow-list (a pickle
  payload, or a released checkpoint whose ``scheduler`` / ``optimizer`` entries are pickled objects).
  The message lists the objects and how to convert a file you trust once with
  ``tools/convert_checkpoint.py`` (which says what it trusts);
- :class:`CorruptCheckpointError` - the file is truncated or not a torch file (name and fix);
- ``FileNotFoundError`` naming the file.

There is no fallback to a full unpickle anywhere (``tests/test_safe_loading.py``).
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from typing import Any, List

import torch

logger = logging.getLogger(__name__)

__all__ = ["UnsafeCheckpointError", "CorruptCheckpointError", "safe_torch_load", "unsafe_globals"]

CONVERT_TOOL = "tools/convert_checkpoint.py"


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A torch file needs more than ``weights_only`` loading (it would execute or build Python objects)."""


class CorruptCheckpointError(ValueError):
    """A torch file is truncated, empty or not a torch file."""


def unsafe_globals(path: str) -> List[str]:
    """The Python objects (``module.name``) that ``path`` references beyond torch's ``weights_only``
    allow-list, read from the pickle opcodes without executing anything ([] when none or unreadable)."""
    try:
        return sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
    except Exception:  # noqa: BLE001 - only used to enrich an error message
        return []


def safe_torch_load(path: str, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with named errors (module docstring).

    ``what`` names the file's role in messages (e.g. ``"teacher checkpoint"``,
    ``"TRAINER.PROMPTKD.TEACHER_CKPT"``).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a folder; pass the checkpoint file inside it")
    if os.path.getsize(path) == 0:
        raise CorruptCheckpointError(f"{what} {path} is empty (0 bytes; an interrupted copy or download?): "
                                     "copy or download it again")
    try:
        return _load(path)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise CorruptCheckpointError(
                f"{what} {path} is truncated or not a torch file (UnpicklingError: {_first_line(exc)}); copy or "
                "download it again"
            ) from exc
        names = unsafe_globals(path)
        found = f"it references {', '.join(names)}" if names else f"torch refused it: {_first_line(exc)}"
        raise UnsafeCheckpointError(
            f"{what} {path} cannot be loaded safely: {found}. Nothing from the file was executed. Only tensors and "
            f"plain values are read (weights_only=True). If it is a released checkpoint you trust, convert it once "
            f"with: python {CONVERT_TOOL} {path} OUT_FILE (it keeps the tensors and drops the pickled objects)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, (PermissionError, FileNotFoundError, IsADirectoryError)):
            raise  # not corruption: report it as it is
        raise CorruptCheckpointError(
            f"{what} {path} is truncated or not a torch file ({exc.__class__.__name__}: {_first_line(exc)}); "
            f"copy or download it again (its size is {os.path.getsize(path)} bytes)"
        ) from exc


def _load(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UnicodeDecodeError:
        # legacy (non-zip) files pickled under Python 2; still the restricted unpickler
        return torch.load(path, map_location="cpu", weights_only=True, encoding="latin1")


def _first_line(exc: BaseException) -> str:
    return next((line.strip()[:300] for line in str(exc).splitlines() if line.strip()), exc.__class__.__name__)
