"""The resumable state of a training run (docs/RELIABILITY.md): ``RESUME`` auto / none / path, one state file
``OUTPUT_DIR/last_state.pth.tar`` written atomically every ``TRAIN.CHECKPOINT_STEPS`` steps and at every epoch
end (weights, optimiser, scheduler, trainer state, position in the epoch, RNG states, meters, epoch log), the
exact mid-epoch resume (the data loader is replayed to the saved batch, then the RNG states and meters of that
point are restored), the previous state kept for a rollback after a non-finite loss, and the LR schedule
rebuilt by ``--resume-with-changes``.

:class:`ResumableState` is a small object owned by the trainer (``trainer.resumer``). What a registered model
puts into the state is the trainer's choice (hooks ``state_for_resume`` / ``load_state_for_resume`` /
``extra_resume_state`` / ``load_extra_resume_state``); the rest is read from the trainer's registry
(``_models``, ``_optims``, ``_scheds``), position and epoch log (``trainer.epoch_logger``).
"""

from __future__ import annotations

import logging
import math
import os
import os.path as osp
import shutil
import signal
import warnings
from typing import Any, Dict, Optional, Tuple

import torch

from engine import dist, run_guard
from engine.checkpoint import (BEST_NAME, POINTER_NAME, PREV_STATE_NAME, RESUME_STATE_NAME, capture_rng_state,
                               load_resume_state, numbered_checkpoints, restore_rng_state, save_resume_state)
from engine.epoch_log import METRICS_CSV_NAME
from engine.optim import build_lr_scheduler
from engine.utils import MetricMeter

logger = logging.getLogger(__name__)


def _rank_entry(per_rank: Any, path: str) -> Optional[Dict[str, Any]]:
    """This rank's RNG states of a per-rank list (None when the state was written by another world size)."""
    if not per_rank:
        return None
    if len(per_rank) != dist.get_world_size():
        logger.warning("Resumable state %s was written by %d process(es), this run has %d: RNG states are not "
                       "restored (the data order of the rest of the run differs)", path, len(per_rank),
                       dist.get_world_size())
        return None
    return per_rank[dist.get_rank()]


class ResumableState:
    """Saves and restores the trainer's resumable state and decides where a run starts."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.point: Optional[Dict[str, Any]] = None  # where a resume into an epoch continues (until replayed)
        self.last_saved: Optional[Tuple[int, int]] = None  # (epoch, batches_done) of the last / previous save
        self.previous_saved: Optional[Tuple[int, int]] = None
        self.rng_epoch_start: Optional[Dict[str, Any]] = None
        self.path = osp.join(trainer.output_dir, RESUME_STATE_NAME)  # the single resumable state of the run
        self.previous_path = osp.join(trainer.output_dir, PREV_STATE_NAME)  # the one before (non-finite rollback)

    # ------------------------------------------------------------------ where the run starts
    def resume_or_start(self) -> int:
        """Apply ``RESUME`` and return the epoch to start from.

        ``none``: train from scratch (a stale resumable state in OUTPUT_DIR is removed). ``""`` / ``auto``:
        resume OUTPUT_DIR from its resumable state (exact, also mid-epoch), else from its Dassl epoch
        checkpoints (``resume_model_if_exist``), else start from scratch. A path: that run directory (same
        order) or a ``last_state.pth.tar`` file; a path that does not exist is an error.
        """
        tr = self.trainer
        mode = str(tr.cfg.RESUME or "").strip()
        if mode.lower() == "none":
            if dist.is_main_process():
                self._remove_stale_run_files()
            dist.barrier()
            return 0
        auto = mode.lower() in ("", "auto")
        target = tr.output_dir if auto else osp.expanduser(mode)
        if not osp.exists(target):
            if auto:
                return 0
            raise FileNotFoundError(
                f"RESUME / --resume {mode!r}: no such file or directory. Use 'auto' (resume OUTPUT_DIR when it holds "
                "a resumable state or checkpoints), 'none' (start from scratch), or a run directory / its "
                f"{RESUME_STATE_NAME}")
        state_file = target if osp.isfile(target) else osp.join(target, RESUME_STATE_NAME)
        if osp.isfile(state_file):
            return self._check_resumed(self.load(state_file), target, auto)
        start = self._check_resumed(tr.resume_model_if_exist(target), target, auto)
        if start > 0:
            logger.info("No %s in %s: resumed from the epoch-%d checkpoint (RNG states are not restored, so the rest "
                        "of the run is not bit-identical to an uninterrupted one)", RESUME_STATE_NAME, target, start)
            tr.epoch_logger.restore_csv(osp.join(target, METRICS_CSV_NAME), start)
        elif not auto and tr.get_model_names():
            raise FileNotFoundError(
                f"RESUME / --resume {mode!r}: the folder holds neither {RESUME_STATE_NAME} nor epoch checkpoints of "
                f"{tr.get_model_names()} (files: {sorted(os.listdir(target))}); pass the output directory of the "
                "run to resume, or --resume none to start from scratch")
        return start

    def _remove_stale_run_files(self) -> None:
        """``RESUME none``: the previous run's resumable state and Dassl checkpoints in OUTPUT_DIR go (a stale
        ``model.pth.tar-N`` of a longer abandoned run would otherwise be taken for this run's, e.g. as a teacher)."""
        out = self.trainer.output_dir
        stale = [self.path] if osp.isfile(self.path) else []
        for name in self.trainer.get_model_names():
            folder = osp.join(out, name)
            stale += [path for _, path in numbered_checkpoints(folder)]
            stale += [osp.join(folder, f) for f in (BEST_NAME, POINTER_NAME) if osp.isfile(osp.join(folder, f))]
        for path in stale:
            os.remove(path)
        if stale:
            logger.info("RESUME none: removed %d file(s) of the previous run in %s: %s", len(stale), out, stale)

    def _check_resumed(self, start: int, target: str, auto: bool) -> int:
        """After a resume: refuse to relabel another run's finished training as this run, and apply accepted
        optimiser changes (``--resume-with-changes``) instead of the saved LR schedule."""
        tr = self.trainer
        folder = target if osp.isdir(target) else osp.dirname(target)
        if not auto and osp.realpath(folder) != osp.realpath(tr.output_dir) and start >= tr.max_epoch:
            raise ValueError(
                f"--resume {target}: that run already trained {start} epoch(s) and OPTIM.MAX_EPOCH is {tr.max_epoch}, "
                f"so nothing would be trained and {osp.join(tr.output_dir, 'results.json')} would label its weights "
                f"as this run. To evaluate it use --eval-only --model-dir {folder}; to train it longer raise "
                "OPTIM.MAX_EPOCH and pass --resume-with-changes")
        changed = (getattr(tr, "run_decisions", None) or {}).get("resumed_with_changes") or {}
        if any(k.startswith("OPTIM.") for k in changed):
            self._reschedule(start)
        return start

    def _reschedule(self, epochs_done: int) -> None:
        """Replace the restored LR schedule by the configured one at the same position: each optimiser's
        groups get the LR they were built with (this config), then the scheduler is rebuilt and stepped
        ``epochs_done`` times. Optimiser state (momentum, Adam moments) is kept."""
        tr = self.trainer
        for name in tr.get_model_names():
            optim, sched = tr._optims[name], tr._scheds[name]
            built = getattr(tr, "_built_lrs", {}).get(name)
            if optim is None or sched is None or built is None:
                continue
            for group, lr in zip(optim.param_groups, built):
                group["lr"] = lr
                group.pop("initial_lr", None)
            new_sched = build_lr_scheduler(optim, tr.cfg.OPTIM)
            with warnings.catch_warnings():  # stepping without optimiser steps is the point here
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
                for _ in range(epochs_done):
                    new_sched.step()
            tr._scheds[name] = new_sched
            if getattr(tr, "sched", None) is sched:
                tr.sched = new_sched
            logger.info("--resume-with-changes: %s LR schedule rebuilt from OPTIM (LR now %.4g after %d epoch(s))",
                        name, optim.param_groups[0]["lr"], epochs_done)

    # ------------------------------------------------------------------ save
    def generators(self) -> Dict[str, Optional[torch.Generator]]:
        """The ``torch.Generator`` of the training loader (it sets the data order; its random sampler shares it)."""
        return {"train_loader_x.generator": getattr(self.trainer.train_loader_x, "generator", None)}

    def save(self, epoch: int, batches_done: int) -> None:
        """Write the resumable state (rank 0, atomically): ``epoch`` = 0-based epoch in progress with
        ``batches_done`` batches trained (``batches_done`` 0: the epoch has not started). Call on every rank."""
        tr = self.trainer
        rng_now = dist.all_gather_object(capture_rng_state(self.generators()))
        rng_start = dist.all_gather_object(self.rng_epoch_start) if batches_done > 0 else rng_now
        if dist.is_main_process():
            self._check_finite_weights(epoch, batches_done)
            models = {name: dict(tr.state_for_resume(name), **tr.optim_state_dicts(name))
                      for name in tr.get_model_names()}
            best = float(tr.best_result) if math.isfinite(float(tr.best_result)) else None
            state = {  # "config": what the state continues (train.py compares it on resume)
                "trainer": type(tr).__name__, "epoch": int(epoch), "batches_done": int(batches_done),
                "num_batches": int(getattr(tr, "num_batches", 0) or 0), "max_epoch": int(tr.max_epoch),
                "models": models, "extra": tr.extra_resume_state(), "rng_epoch_start": rng_start, "rng_now": rng_now,
                "meters": tr.epoch_logger.meters.state() if batches_done > 0 else {},
                "epoch_log": [dict(r) for r in tr.epoch_logger.rows], "best_result": best,
                "best_epoch": tr.best_epoch, "config": tr.cfg.dump()}
            self._keep_previous_state()
            save_resume_state(state, self.path)
        self.previous_saved, self.last_saved = self.last_saved, (int(epoch), int(batches_done))
        dist.barrier()

    def _keep_previous_state(self) -> None:
        """The current resumable state becomes ``prev_state.pth.tar`` (hard link, else copy) before it is
        replaced, so a state whose weights turn out to diverge can be rolled back."""
        last, prev = self.path, self.previous_path
        if not osp.isfile(last):
            return
        tmp = prev + ".link"
        try:
            if osp.lexists(tmp):
                os.remove(tmp)
            try:
                os.link(last, tmp)
            except OSError:
                shutil.copyfile(last, tmp)
            os.replace(tmp, prev)
        except OSError as exc:
            logger.warning("Could not keep the previous resumable state as %s: %s", prev, exc)

    def _check_finite_weights(self, epoch: int, batches_done: int) -> None:
        """Never keep non-finite weights as the resumable state (the "last good state" must be good)."""
        for name in self.trainer.get_model_names():
            for key, value in self.trainer._models[name].state_dict().items():  # registered models are never wrapped
                if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
                    raise FloatingPointError(
                        f"Non-finite weights in {name}.{key} at epoch {epoch + (1 if batches_done else 0)}, after "
                        f"{batches_done} batch(es): not saved as the resumable state")

    # ------------------------------------------------------------------ failures
    def roll_back(self) -> None:
        """After a non-finite loss: a resumable state saved with the very weights that produced it is not a
        good state; the previous one replaces it (or it is removed when there is none)."""
        failing = (int(self.trainer.epoch), int(getattr(self.trainer, "batch_idx", 0)))
        if not dist.is_main_process() or self.last_saved != failing or not osp.isfile(self.path):
            return
        if self.previous_saved is not None and osp.isfile(self.previous_path):
            os.replace(self.previous_path, self.path)
            logger.warning("The resumable state saved at epoch %d, %d batch(es) holds the weights that gave the "
                           "non-finite loss: rolled back to the previous state (epoch %d, %d batch(es))",
                           failing[0] + 1, failing[1], self.previous_saved[0] + 1, self.previous_saved[1])
            self.last_saved, self.previous_saved = self.previous_saved, None
        else:
            os.remove(self.path)
            self.last_saved = None
            logger.warning("The resumable state holds the weights that gave the non-finite loss and there is no "
                           "earlier one: removed")

    def last_good_state_message(self) -> str:
        if self.last_saved is not None and osp.isfile(self.path):
            epoch, done = self.last_saved
            where = f"after epoch {epoch}" if done == 0 else f"epoch {epoch + 1}, {done} batch(es) done"
            return (f"The last good resumable state is kept: {self.path} ({where}); fix the cause "
                    "(e.g. lower OPTIM.LR) and run the same command with --resume-with-changes (the new LR schedule "
                    "replaces the saved one)")
        return ("No resumable state was saved before the failure (set TRAIN.CHECKPOINT_STEPS to save within "
                "epochs); earlier epoch checkpoints, if any, are untouched")

    def check_preemption(self) -> None:
        """SIGTERM / SIGUSR1 received (engine.run_guard): write the resumable state at this step and exit
        with status 75; the same command resumes exactly here."""
        tr = self.trainer
        signum = run_guard.preemption_requested()
        if dist.is_dist():  # every rank stops at the same step (one tiny all-reduce per step under DDP)
            anyone = float(dist.all_reduce_sum(1.0 if signum else 0.0))
            signum = signum if signum else (-1 if anyone > 0 else None)
        if signum is None:
            return
        self.save(tr.epoch, tr.batch_idx + 1)
        name = signal.Signals(signum).name if signum > 0 else "a preemption signal"
        message = (f"{name} received: resumable state written to {self.path} (epoch {tr.epoch + 1}/"
                   f"{tr.max_epoch}, {tr.batch_idx + 1} of {tr.num_batches} batches done); exiting with status "
                   f"{run_guard.PREEMPTED_EXIT_CODE}. Run the same command to resume")
        logger.warning(message)
        raise run_guard.Preempted(message)

    # ------------------------------------------------------------------ restore
    def load(self, path: str) -> int:
        """Restore a resumable state (weights, optimisers, schedulers, trainer state, logs, position, RNGs);
        returns the epoch to start from. The RNGs are restored when that epoch starts (:meth:`begin_epoch`)."""
        tr = self.trainer
        state = load_resume_state(path)
        if state.get("trainer") != type(tr).__name__:
            raise ValueError(f"Resumable state {path} was written by trainer {state.get('trainer')!r}, not "
                             f"{type(tr).__name__!r}; resume with the same --trainer or pass --resume none")
        names = tr.get_model_names()
        saved = state.get("models") or {}
        if sorted(saved) != sorted(names):
            raise KeyError(f"Resumable state {path} holds models {sorted(saved)} but the trainer registers "
                           f"{sorted(names)}; it comes from another configuration (pass --resume none to start "
                           "from scratch)")
        for name in names:
            tr.load_state_for_resume(name, saved[name], path)
            for obj, key in ((tr._optims[name], "optimizer"), (tr._scheds[name], "scheduler")):
                if obj is not None and saved[name].get(key) is not None:
                    obj.load_state_dict(saved[name][key])
        tr.load_extra_resume_state(dict(state.get("extra") or {}))
        if state.get("best_result") is not None:
            tr.best_result = float(state["best_result"])
        tr.best_epoch = state.get("best_epoch")
        tr.epoch_logger.rows = [dict(r) for r in state.get("epoch_log") or []]
        epoch, done, num = int(state["epoch"]), int(state["batches_done"]), int(state.get("num_batches") or 0)
        rng_start, rng_now = _rank_entry(state.get("rng_epoch_start"), path), _rank_entry(state.get("rng_now"), path)
        logger.info("Resuming from %s: epoch %d/%d, %d of %d batches done", path, epoch + 1 if epoch < tr.max_epoch
                    else epoch, tr.max_epoch, done, num)
        if epoch >= tr.max_epoch:
            if rng_now is not None:
                restore_rng_state(rng_now, self.generators())
            return epoch
        self.point = {"epoch": epoch, "batches_done": done, "num_batches": num, "rng_epoch_start": rng_start,
                      "rng_now": rng_now, "meters": state.get("meters") or {}, "path": path}
        return epoch

    def begin_epoch(self) -> int:
        """Call after ``num_batches`` is set and before the epoch's loader iterators are created: records the
        epoch-start RNG states, or, when resuming into this epoch, restores them and returns the number of
        batches already trained (to replay without training, :meth:`replay`)."""
        tr, point, gens = self.trainer, self.point, self.generators()
        if point is None or point["epoch"] != tr.epoch:
            self.point = None
            self.rng_epoch_start = capture_rng_state(gens)
            return 0
        if point["num_batches"] and point["num_batches"] != tr.num_batches:
            raise ValueError(
                f"Resumable state {point['path']} was saved with {point['num_batches']} batches per epoch but the "
                f"training loader now has {tr.num_batches}: the data, batch size or world size changed. Resume with "
                "the same configuration, or pass --resume none to start from scratch")
        if point["rng_epoch_start"] is not None:
            restore_rng_state(point["rng_epoch_start"], gens)
        self.rng_epoch_start = point["rng_epoch_start"] or capture_rng_state(gens)
        if point["batches_done"] == 0:
            self._finish()
        return int(point["batches_done"])

    def replay(self, fetch: Any, count: int) -> None:
        """Draw ``count`` batches without training (same data order, same worker streams), then restore the
        RNG states and meters of the interrupted run at that point."""
        tr = self.trainer
        logger.info("Resuming epoch %d/%d at batch %d/%d: replaying the data loader over %d batch(es) without "
                    "training", tr.epoch + 1, tr.max_epoch, count + 1, tr.num_batches, count)
        for _ in range(count):
            fetch()
        self._finish()

    def _finish(self) -> None:
        """The resume point is reached (:meth:`begin_epoch` / :meth:`replay`, only while resuming into an epoch):
        the interrupted run's RNG states and meters at that point."""
        point, self.point = self.point, None
        if point["rng_now"] is not None:
            restore_rng_state(point["rng_now"], self.generators())
        self.trainer.epoch_logger.meters = MetricMeter.from_state(point["meters"])
