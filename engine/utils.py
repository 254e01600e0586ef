"""General utilities with Dassl's names (``dassl.utils``): logging, seeding, environment info, file
helpers and meters.

Differences from Dassl, on purpose:
- ``setup_logger`` configures Python ``logging`` (stdout + ``log.txt``) instead of teeing ``print``;
  INFO lines are written without any prefix, so ``parse_test_res.py`` style tools that match
  "Finish training" / "* accuracy: X%" lines keep working.
- ``set_random_seed(seed, deterministic=True)`` additionally makes cuDNN/cuBLAS deterministic
  (docs/REFERENCE.md D15).
- ``write_json`` is atomic.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import os.path as osp
import random
import sys
import time
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from engine.fileio import atomic_write_json

logger = logging.getLogger(__name__)

__all__ = ["setup_logger", "close_logger", "set_random_seed", "collect_env_info", "count_num_param", "mkdir_if_missing",
           "check_isfile", "read_json", "write_json", "read_image", "listdir_nohidden", "tolist_if_not", "AverageMeter",
           "MetricMeter"]

# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------

_HANDLER_TAG = "_promptkd_engine_handler"


class _PlainFormatter(logging.Formatter):
    """INFO and below: the bare message (Dassl's log.txt format); WARNING and above: 'LEVEL: msg'."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            msg = f"{record.levelname}: {msg}"
        if record.exc_info:
            msg = msg + "\n" + self.formatException(record.exc_info)
        return msg


class _TqdmAwareStreamHandler(logging.StreamHandler):
    """Console handler writing through ``tqdm.write`` (log lines do not break progress bars).

    The stream is looked up at emit time (``sys.stdout`` by default), so a replaced stdout (a
    pytest capture, Dassl's tee) is always honoured.
    """

    def __init__(self) -> None:
        super().__init__(stream=sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            msg = self.format(record)
            tqdm.write(msg, file=sys.stdout)
            sys.stdout.flush()
        except Exception:  # logging must never raise; defer to the stdlib error path
            self.handleError(record)


def _resolve_log_path(output: str) -> str:
    """The log file for ``output`` (a folder or a .txt/.log path), its folder created."""
    fpath = output if output.endswith((".txt", ".log")) else osp.join(output, "log.txt")
    mkdir_if_missing(osp.dirname(osp.abspath(fpath)))
    # Dassl behaviour: never overwrite an existing log, add a time stamp instead.
    return fpath + time.strftime("-%Y-%m-%d-%H-%M-%S") if osp.exists(fpath) else fpath


def setup_logger(output: Optional[str] = None, level: int = logging.INFO, rank: Optional[int] = None) -> Optional[str]:
    """Send all ``logging`` output to stdout and (on rank 0) to ``<output>/log.txt``.

    ``output`` may be a folder (``log.txt`` inside it) or a ``.txt``/``.log`` file path. An existing
    log file is never overwritten: a ``-YYYY-MM-DD-HH-MM-SS`` suffix is appended (as Dassl does).
    Calling it again replaces the handlers installed by a previous call (closing the old file).
    Non-zero distributed ranks only print warnings and write no file.

    Returns the log file path (or None when no file is written).
    """
    if rank is None:
        from engine.dist import get_rank

        rank = get_rank()
    close_logger()
    root = logging.getLogger()
    root.setLevel(level)

    def add(handler: logging.Handler, handler_level: int) -> None:
        handler.setLevel(handler_level)
        handler.setFormatter(_PlainFormatter())
        setattr(handler, _HANDLER_TAG, True)
        root.addHandler(handler)

    add(_TqdmAwareStreamHandler(), level if rank == 0 else logging.WARNING)
    fpath = None
    if output and rank == 0:
        fpath = _resolve_log_path(output)
        add(logging.FileHandler(fpath, mode="a", encoding="utf-8"), level)
    logging.captureWarnings(True)
    return fpath


def close_logger() -> None:
    """Remove and close the handlers installed by ``setup_logger`` (e.g. at the end of a test)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()


# --------------------------------------------------------------------------------------------
# Seeding and environment
# --------------------------------------------------------------------------------------------


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed ``random``, numpy and torch (CPU and every CUDA device), as Dassl does.

    With ``deterministic=True`` (config ``ENGINE.DETERMINISTIC``) also: cuDNN deterministic and no
    benchmark, ``torch.use_deterministic_algorithms(True, warn_only=True)`` and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (fix for docs/REFERENCE.md D15). DataLoader workers are
    seeded separately by ``build_data_loader`` from ``cfg.SEED``.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


@functools.lru_cache(maxsize=1)
def collect_env_info() -> str:
    """Environment report: torch's ``collect_env`` output plus Pillow, torchvision and open_clip versions.

    Never raises (offline machines, missing tools): a failing probe is reported inline instead.
    Cached per process (torch's probe shells out to pip/conda and takes seconds).
    """
    lines: List[str] = []
    try:
        from torch.utils.collect_env import get_pretty_env_info

        lines.append(get_pretty_env_info())
    except Exception as exc:  # collect_env shells out to nvidia-smi/pip; report instead of crashing
        lines.append(f"torch: {torch.__version__} (torch.utils.collect_env failed: {exc!r})")
    for mod_name, label in (("PIL", "Pillow"), ("torchvision", "torchvision"), ("open_clip", "open_clip")):
        try:
            mod = __import__(mod_name)
            lines.append(f"{label} version: {getattr(mod, '__version__', 'unknown')}")
        except Exception as exc:
            lines.append(f"{label} version: not available ({exc.__class__.__name__}: {exc})")
    return "\n".join(lines)


def count_num_param(model: Optional[nn.Module] = None, params: Optional[Iterable[torch.Tensor]] = None) -> int:
    """Number of parameter *elements* (not tensors; cf. docs/REFERENCE.md D26)."""
    if model is None and params is None:
        raise ValueError("count_num_param: give either model= or params=")
    return sum(p.numel() for p in (model.parameters() if model is not None else params))


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def mkdir_if_missing(dirname: str) -> None:
    """Create ``dirname`` (and parents) if it does not exist."""
    if dirname:
        os.makedirs(dirname, exist_ok=True)


def check_isfile(fpath: str) -> bool:
    """True if ``fpath`` is an existing file; logs a warning otherwise (Dassl semantics)."""
    isfile = osp.isfile(fpath)
    if not isfile:
        logger.warning('No file found at "%s"', fpath)
    return isfile


def read_json(fpath: str) -> Any:
    """Read a JSON file; errors name the file."""
    try:
        with open(fpath, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"JSON file not found: {fpath}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"Invalid JSON in {fpath}: {e}. Fix or delete the file.") from e


def write_json(obj: Any, fpath: str) -> None:
    """Write ``obj`` as JSON (indent 4) atomically, creating the parent folder."""
    atomic_write_json(fpath, obj, indent=4)


def read_image(path: str, min_size: Optional[Sequence[int]] = None):
    """Read an image with PIL and convert it to RGB; an unreadable file raises an error naming it.

    ``min_size`` (width, height): the caller downsizes the image to at least this size anyway, so a JPEG
    may be decoded at a reduced scale (1/2, 1/4 or 1/8, in the DCT domain: PIL's ``Image.draft``) as
    long as both sides stay >= ``min_size``. Other formats, and JPEGs smaller than twice ``min_size``,
    are decoded in full. ``engine.data.transforms.decode_size`` derives ``min_size`` from a transform.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            if min_size is not None and img.format == "JPEG":
                img.draft(None, (int(min_size[0]), int(min_size[1])))
            return img.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {path}") from None
    except Exception as e:
        raise OSError(f"Cannot read image {path}: {e.__class__.__name__}: {e}") from e


def listdir_nohidden(path: str, sort: bool = False) -> List[str]:
    """List non-hidden entries (not starting with '.') of ``path``; optionally sorted."""
    if not osp.isdir(path):
        raise FileNotFoundError(f"listdir_nohidden: directory not found: {path}")
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    return sorted(items) if sort else items


def tolist_if_not(x: Any) -> list:
    """Wrap a non-list into a one-element list."""
    return x if isinstance(x, list) else [x]


# --------------------------------------------------------------------------------------------
# Meters
# --------------------------------------------------------------------------------------------


class AverageMeter:
    """Track the latest value and the running average (optionally an EMA with factor 0.9).

    Example::

        meter = AverageMeter()
        meter.update(loss.item(), n=batch_size)

    A tensor value (e.g. a loss on the GPU) is accumulated where it lives, without reading it: the
    host reads it (one device-to-host synchronisation) only when ``val`` / ``avg`` / ``sum`` are read,
    e.g. every ``TRAIN.PRINT_FREQ`` steps, not at every step (EMA meters read it at once).
    """

    def __init__(self, ema: bool = False) -> None:
        self.ema = ema
        self.reset()

    def reset(self) -> None:
        self._pending: Optional[List[torch.Tensor]] = None  # [last value, sum of value x n] not yet read
        self._val = self._avg = self._sum = 0.0
        self.count = 0

    def update(self, val: Union[float, torch.Tensor], n: int = 1) -> None:
        if isinstance(val, torch.Tensor) and not self.ema:
            v = val.detach().reshape(()).double()
            self._pending = [v, v * n if self._pending is None else self._pending[1] + v * n]
            self.count += n
            return
        if isinstance(val, torch.Tensor):
            val = val.item()
        self.materialize()
        self._val = val
        self._sum += val * n
        self.count += n
        self._avg = self._avg * 0.9 + self._val * 0.1 if self.ema else self._sum / self.count

    def materialize(self, values: Optional[Sequence[float]] = None) -> None:
        """Read the pending tensors (``values``: already read by :meth:`MetricMeter.materialize`)."""
        if self._pending is None:
            return
        last, total = values if values is not None else torch.stack(self._pending).tolist()
        self._pending = None
        self._val = float(last)
        self._sum += float(total)
        self._avg = self._sum / self.count if self.count else 0.0

    def _read(self, name: str) -> float:
        self.materialize()
        return getattr(self, name)

    val = property(lambda self: self._read("_val"))
    avg = property(lambda self: self._read("_avg"))
    sum = property(lambda self: self._read("_sum"))


class MetricMeter:
    """A dict of ``AverageMeter``s fed with ``update({"loss": ..., "acc": ...})``.

    ``str(meter)`` gives Dassl's "name val (avg)" string joined by spaces. Tensor values stay on their
    device until read; :meth:`materialize` reads every meter's pending values with one synchronisation.
    """

    def __init__(self, delimiter: str = " ") -> None:
        self.meters: Dict[str, AverageMeter] = OrderedDict()
        self.delimiter = delimiter

    def update(self, input_dict: Optional[Dict[str, Any]]) -> None:
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError("MetricMeter.update expects a dict of scalars (what forward_backward returns), got "
                            f"{type(input_dict).__name__}")
        for k, v in input_dict.items():
            self.meters.setdefault(k, AverageMeter()).update(v)

    def materialize(self) -> None:
        """Read the pending device values of all meters with one device-to-host copy per device."""
        by_device: Dict[torch.device, List[AverageMeter]] = OrderedDict()
        for meter in self.meters.values():
            if meter._pending is not None:  # device tensors not read yet
                by_device.setdefault(meter._pending[0].device, []).append(meter)
        for meters in by_device.values():
            values = torch.stack([t for m in meters for t in m._pending]).tolist()
            for i, meter in enumerate(meters):
                meter.materialize(values[2 * i:2 * i + 2])

    def state(self) -> Dict[str, Dict[str, float]]:
        """Each meter's ``val``, ``sum`` and ``count`` (what a resumable state stores mid-epoch)."""
        self.materialize()
        return {k: {"val": float(m.val), "sum": float(m.sum), "count": int(m.count)} for k, m in self.meters.items()}

    @classmethod
    def from_state(cls, state: Dict[str, Dict[str, float]]) -> "MetricMeter":
        """Inverse of :meth:`state`."""
        meters = cls()
        for k, v in state.items():
            meters.meters[k] = m = AverageMeter()
            m._val, m._sum, m.count = float(v["val"]), float(v["sum"]), int(v["count"])
            m._avg = m._sum / m.count if m.count else 0.0
        return meters

    def __str__(self) -> str:
        self.materialize()
        return self.delimiter.join(f"{name} {meter.val:.4f} ({meter.avg:.4f})" for name, meter in self.meters.items())
