"""The epoch log of a training run (docs/RELIABILITY.md): one row of scalars per finished epoch in
``OUTPUT_DIR/metrics.csv`` and tensorboard ``epoch/*``; within an epoch, Dassl's periodic progress line,
tensorboard ``train/*`` scalars and a tqdm bar (rank 0, on a terminal only).

:class:`EpochLog` is a small object owned by the trainer (``trainer.epoch_logger``); it reads the trainer's
position (``epoch``, ``batch_idx``, ``num_batches``, ``max_epoch``), its LR and its tensorboard writer.
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
import os.path as osp
import sys
import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional

from tqdm import tqdm

from engine import dist
from engine.fileio import atomic_write_text
from engine.utils import AverageMeter, MetricMeter

logger = logging.getLogger(__name__)

#: per-epoch scalars of a run (one row per epoch), in OUTPUT_DIR
METRICS_CSV_NAME = "metrics.csv"


def progress_enabled() -> bool:
    """Progress bars on rank 0 and a terminal only (never in log files)."""
    return dist.is_main_process() and sys.stderr.isatty()


def _number(key: str, value: str) -> Any:
    """A ``metrics.csv`` cell as written: the epoch an int, other numbers floats, anything else the text."""
    try:
        return int(value) if key == "epoch" else float(value)
    except ValueError:
        return value


class EpochLog:
    """Rows of per-epoch scalars (``rows``) and the running loss meters of the epoch in progress (``meters``)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.rows: List[Dict[str, Any]] = []
        self.meters: Optional[MetricMeter] = None
        self._scalars: Dict[str, float] = {}
        self._lr: Optional[float] = None
        self._t0 = time.time()

    def start_epoch(self) -> None:
        """New loss meters; the LR of the epoch and its start time for the epoch's row."""
        self.meters = MetricMeter()
        self._lr = self.trainer.get_current_lr()
        self._t0 = time.time()

    def add_scalar(self, name: str, value: float) -> None:
        self._scalars[name] = float(value)

    def end_epoch(self) -> None:
        """One row (LR used, mean of every loss term and of the gradient norm, added scalars) to
        ``metrics.csv`` and tensorboard ``epoch/*``."""
        tr = self.trainer
        row: Dict[str, Any] = {"epoch": tr.epoch + 1, "lr": tr.get_current_lr() if self._lr is None else self._lr}
        if self.meters is not None:
            self.meters.materialize()
            row.update((k, m.avg) for k, m in self.meters.meters.items())
        row.update(self._scalars)
        self._scalars = {}
        row["epoch_time_s"] = round(time.time() - self._t0, 3)
        self.rows = [r for r in self.rows if r.get("epoch") != row["epoch"]] + [row]
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                tr.write_scalar(f"epoch/{k}", v, tr.epoch + 1)
        self.write_csv()

    def update_last_row(self, values: Dict[str, float]) -> None:
        if self.rows:
            self.rows[-1].update({k: float(v) for k, v in values.items() if isinstance(v, (int, float))})
            self.write_csv()

    def write_csv(self) -> None:
        if not dist.is_main_process() or not self.rows:
            return
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(osp.join(self.trainer.output_dir, METRICS_CSV_NAME), buf.getvalue())

    def restore_csv(self, path: str, start_epoch: int) -> None:
        """The rows of epochs ``<= start_epoch`` from a run's ``metrics.csv`` (resume from epoch checkpoints)."""
        if not osp.isfile(path):
            return
        with open(path, "r", encoding="utf-8", newline="") as f:
            rows = [{k: _number(k, v) for k, v in raw.items() if v not in ("", None)} for raw in csv.DictReader(f)]
        self.rows = [row for row in rows if isinstance(row.get("epoch"), int) and row["epoch"] <= start_epoch]

    def progress_bar(self, initial: int = 0) -> Any:
        tr = self.trainer
        return tqdm(total=tr.num_batches, initial=initial, disable=not progress_enabled(), leave=False,
                    desc=f"epoch {tr.epoch + 1}/{tr.max_epoch}", dynamic_ncols=True)

    def progress(self, batch_time: AverageMeter, data_time: AverageMeter, bar: Any) -> None:
        """Every ``TRAIN.PRINT_FREQ`` steps (every step when the epoch is shorter): the log line, the
        tensorboard ``train/*`` scalars and the progress-bar values. The loss values stay on the device in
        between (read here with one synchronisation), so a training step itself does not wait for the device."""
        tr, losses = self.trainer, self.meters
        bar.update(1)  # a no-op on a disabled bar
        freq = tr.cfg.TRAIN.PRINT_FREQ
        if (tr.batch_idx + 1) % freq != 0 and tr.num_batches >= freq:
            return
        losses.materialize()
        nb_remain = tr.num_batches - tr.batch_idx - 1 + (tr.max_epoch - tr.epoch - 1) * tr.num_batches
        eta = str(datetime.timedelta(seconds=int(batch_time.avg * nb_remain)))
        lr = tr.get_current_lr()
        logger.info("%s", f"epoch [{tr.epoch + 1}/{tr.max_epoch}] batch [{tr.batch_idx + 1}/{tr.num_batches}] "
                    f"time {batch_time.val:.3f} ({batch_time.avg:.3f}) data {data_time.val:.3f} ({data_time.avg:.3f}) "
                    f"{losses} lr {lr:.4e} eta {eta}")
        n_iter = tr.epoch * tr.num_batches + tr.batch_idx
        for name, meter in losses.meters.items():
            tr.write_scalar("train/" + name, meter.avg, n_iter)
        tr.write_scalar("train/lr", lr, n_iter)
        if not bar.disable:
            bar.set_postfix(OrderedDict([*((k, f"{m.avg:.4f}") for k, m in losses.meters.items()),
                                         ("lr", f"{lr:.2e}"), ("eta", eta)]), refresh=False)
