"""Command-line entry point, flag-compatible with CoOp / PromptSRC / PromptKD ``train.py``.

    python train.py --root $DATA --seed 1 --trainer PromptKD \
        --dataset-config-file configs/datasets/dtd.yaml \
        --config-file configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml \
        --output-dir output/dtd/seed1 DATASET.NUM_SHOTS 16

Config merge order (docs/REFERENCE.md A1): engine defaults -> ``datasets.extend_cfg`` /
``trainers.extend_cfg`` -> the plug-ins' ``extend_cfg`` -> dataset yaml -> trainer yaml -> CLI flags
-> trailing ``KEY VALUE`` opts -> freeze. Plug-ins (``--plugin PATH_OR_MODULE``, repeatable, and
``$PROMPTKD_PLUGINS``; docs/PLUGINS.md) are imported after the built-in datasets and trainers.
``--resume DIR`` keeps DIR (the reference PromptKD set it to "", docs/REFERENCE.md D9).
Importing the ``datasets`` and ``trainers`` packages registers every dataset and trainer.
Launch with ``torchrun --nproc_per_node N train.py ...`` for DDP.

Run folder semantics (docs/RELIABILITY.md): ``--resume auto`` (the default when the flag is absent,
as Dassl) resumes OUTPUT_DIR if it holds a resumable state or checkpoints, ``--resume none`` never
resumes, ``--resume PATH`` resumes that run directory / ``last_state.pth.tar``. A finished run
(``OUTPUT_DIR/DONE``, written after results.json) is never silently redone: the same command again
says so and exits 0, unless ``--overwrite`` (start again from scratch in that folder) or an explicit
``--resume`` is given.
"""

from __future__ import annotations

import os
import sys

_REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
if not sys.path or sys.path[0] != _REPO_ROOT:
    sys.path.insert(0, _REPO_ROOT)

import argparse  # noqa: E402
import datetime  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence  # noqa: E402

import torch  # noqa: E402

from engine import api  # noqa: E402
from engine import dist  # noqa: E402
from engine import run_checks, run_guard  # noqa: E402
from engine import utils as engine_utils  # noqa: E402
from engine.config import add_engine_extras, merge_from_file_checked, merge_from_list_checked  # noqa: E402
from engine.checkpoint import DONE_NAME, PREV_STATE_NAME, RESUME_STATE_NAME  # noqa: E402
from engine.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from engine.run_header import header_lines, write_environment  # noqa: E402
from engine.plugins import describe_plugins, load_plugins, plugin_specs  # noqa: E402

logger = logging.getLogger("train")

_DIST_MODES = ("auto", "none")


def build_parser() -> argparse.ArgumentParser:
    """The CoOp/PromptKD argument parser."""
    parser = argparse.ArgumentParser(description="PromptKD / CoOp-ecosystem prompt learning (Dassl-compatible)")
    parser.add_argument("--root", type=str, default="", help="path to the dataset root ($DATA)")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument(
        "--resume",
        type=str,
        default="",
        help="auto (default: resume OUTPUT_DIR if it holds a resumable state or checkpoints; also re-opens a "
        "finished run) | none (never resume) | PATH (a run directory or its last_state.pth.tar)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start again from scratch in an OUTPUT_DIR that holds a finished or interrupted run (its DONE marker, "
        "results, resumable state, metrics.csv and checkpoints are removed first)",
    )
    parser.add_argument("--seed", type=int, default=None, help="only a non-negative value fixes the seed")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to the trainer config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to the dataset config file")
    parser.add_argument("--trainer", type=str, default="", help="name of the trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of the CNN/CLIP backbone")
    parser.add_argument("--head", type=str, default="", help="name of the head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("--resume-with-changes", action="store_true",
                        help="resume although result-affecting config keys changed (the new values apply; recorded)")
    parser.add_argument("--eval-untrained", action="store_true",
                        help="allow results for untrained weights (--eval-only without --model-dir, OPTIM.MAX_EPOCH 0); "
                        "recorded in results.json")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of an error on the console")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="PATH_OR_MODULE",
        help="import a plug-in (a .py file, a package directory or a module name) that registers trainers or "
        "datasets; repeatable, after those of $PROMPTKD_PLUGINS (':'-separated). See docs/PLUGINS.md",
    )
    parser.add_argument(
        "opts",
        default=None,
        nargs=argparse.REMAINDER,
        help="modify config options using the command line (KEY VALUE pairs)",
    )
    return parser


def extend_cfg(cfg: Any, plugins: Sequence[Any] = ()) -> None:
    """Add the config nodes of the datasets and trainers packages and of the plug-in modules ``plugins``
    (their ``extend_cfg``, when defined)."""
    import datasets
    import trainers

    for package in (datasets, trainers, *plugins):
        if hasattr(package, "extend_cfg"):
            package.extend_cfg(cfg)


def load_user_plugins(cli_specs: Optional[Sequence[str]]) -> List[Any]:
    """Import the plug-ins of $PROMPTKD_PLUGINS and ``--plugin`` after the built-in datasets and trainers
    (so a plug-in that reuses a built-in name is the one reported); returns their modules."""
    import datasets  # noqa: F401
    import trainers  # noqa: F401

    return load_plugins(plugin_specs(cli_specs))


def reset_cfg(cfg: Any, args: argparse.Namespace) -> None:
    """Apply the CLI flags to the config (only the flags that were given)."""
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed is not None:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


def setup_cfg(args: argparse.Namespace) -> Any:
    """defaults -> extend_cfg -> dataset yaml -> trainer yaml -> CLI flags -> opts -> freeze."""
    cfg = api.get_cfg_default()
    add_engine_extras(cfg)
    extend_cfg(cfg, load_user_plugins(getattr(args, "plugin", None)))
    if args.dataset_config_file:
        merge_from_file_checked(cfg, args.dataset_config_file)
    if args.config_file:
        merge_from_file_checked(cfg, args.config_file)
    reset_cfg(cfg, args)
    merge_from_list_checked(cfg, args.opts)
    if cfg.TRAIN.DIST not in _DIST_MODES:
        raise ValueError(f"TRAIN.DIST='{cfg.TRAIN.DIST}' is invalid; use one of {list(_DIST_MODES)}")
    cfg.freeze()
    return cfg


def read_done_marker(output_dir: str) -> Optional[Dict[str, Any]]:
    """Content of ``<output_dir>/DONE`` (None when the run is not finished)."""
    path = os.path.join(output_dir, DONE_NAME)
    if not os.path.isfile(path):
        return None
    try:
        return engine_utils.read_json(path)
    except ValueError:
        return {"finished_at": "unknown (unreadable DONE file)"}


def finished_run_message(output_dir: str, done: Dict[str, Any]) -> str:
    results = os.path.join(output_dir, "results.json")
    return (
        f"{output_dir} already holds a finished run (DONE marker written {done.get('finished_at', '?')}; results: "
        f"{results if os.path.isfile(results) else 'none'}). Nothing to do. To train again from scratch in this folder "
        "pass --overwrite; to re-open it (resume / re-evaluate) pass --resume auto; or choose another --output-dir."
    )


def clear_previous_run(output_dir: str) -> List[str]:
    """``--overwrite``: remove what marks or resumes a previous run in ``output_dir`` (DONE, results.json,
    the resumable state, metrics.csv and the Dassl checkpoint files of its model folders). Logs are kept
    (a new log.txt gets a time stamp, as in Dassl). Returns the removed paths."""
    removed = []
    candidates = [os.path.join(output_dir, n)
                  for n in (DONE_NAME, "results.json", RESUME_STATE_NAME, PREV_STATE_NAME, "metrics.csv")]
    for pattern in ("model.pth.tar-*", "model-best.pth.tar", "checkpoint"):
        candidates += glob.glob(os.path.join(output_dir, "*", pattern))
    for path in candidates:
        if os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", _REPO_ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "-C", _REPO_ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc.__class__.__name__})"


def _log_header(cfg: Any, args: argparse.Namespace, argv: List[str]) -> None:
    """A short header at the top of log.txt; the environment goes to env.txt, the config to config.yaml."""
    from datasets.templates import dataset_display_name

    if dist.is_main_process():
        write_environment(cfg, argv, args, code=_git_commit())
    logger.info("\n".join(header_lines(cfg, argv, args.config_file, args.dataset_config_file,
                                                dataset_display_name(cfg)) + [describe_plugins()]))


def _setup_logging(cfg: Any) -> None:
    # builtin: logging to stdout + log.txt; dassl: stdout (Dassl's prints and our log lines) copied into
    # log.txt until the run ends (api.end_run_logging)
    api.setup_logger(cfg.OUTPUT_DIR)


def main(argv: Optional[List[str]] = None) -> Any:
    """Run training or evaluation; returns the trainer (handy for tests and notebooks)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.overwrite and args.resume:
        raise ValueError(f"--overwrite starts from scratch but --resume {args.resume!r} asks to resume: pass only one")
    cfg = setup_cfg(args)
    done = read_done_marker(cfg.OUTPUT_DIR)
    explicit_resume = str(cfg.RESUME).strip().lower() not in ("", "none") and not args.eval_only
    if done is not None and not args.overwrite and not explicit_resume:
        engine_utils.setup_logger(None)  # console only: nothing is written into the finished run's folder
        logger.warning(finished_run_message(cfg.OUTPUT_DIR, done))
        return None

    # one process per output folder (rank 0 holds the lock; torchrun ranks share the folder)
    lock = run_guard.OutputLock(cfg.OUTPUT_DIR, _command(argv)) if int(os.environ.get("RANK", "0") or 0) == 0 else None
    if lock is not None:
        lock.acquire()
    try:
        if lock is not None:
            run_guard.remove_stale_temp_files(cfg.OUTPUT_DIR)
        changes = {} if args.eval_only or args.overwrite else run_checks.check_resume_config(cfg, args.resume_with_changes)
        with run_guard.preemption_handlers():
            return _run(args, argv, cfg, changes)
    finally:
        if lock is not None:
            lock.release()


def _command(argv: List[str]) -> str:
    return "python train.py " + " ".join(shlex.quote(a) for a in argv)


def _run(args: argparse.Namespace, argv: List[str], cfg: Any, changes: Dict[str, Any]) -> Any:
    started_dist = False
    if cfg.TRAIN.DIST != "none" and not dist.is_dist():
        started_dist = dist.init_distributed_from_env()
    try:
        if cfg.SEED >= 0:
            # Superset of Dassl's set_random_seed (same RNGs) plus the optional deterministic mode.
            engine_utils.set_random_seed(cfg.SEED, deterministic=cfg.ENGINE.DETERMINISTIC)
        removed: List[str] = []
        if args.overwrite:
            if dist.is_main_process():
                removed = clear_previous_run(cfg.OUTPUT_DIR)
            dist.barrier()
            cfg.defrost()
            cfg.RESUME = "none"
            cfg.freeze()
        _setup_logging(cfg)
        if torch.cuda.is_available() and cfg.USE_CUDA and not cfg.ENGINE.DETERMINISTIC:
            torch.backends.cudnn.benchmark = True

        _log_header(cfg, args, argv)
        if args.overwrite:
            logger.info("--overwrite: removed %d file(s) of the previous run in %s: %s", len(removed), cfg.OUTPUT_DIR,
                        removed)
        if dist.is_dist():
            logger.info("Distributed run: rank %d of %d", dist.get_rank(), dist.get_world_size())
        header = run_checks.changes_comment(changes, run_checks.resume_source(cfg) or "") if changes else ""
        if dist.is_main_process():
            atomic_write_text(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), header + cfg.dump())

        trainer = api.build_trainer(cfg)
        # recorded in results.json so result tables can tell two configs of one trainer apart
        trainer.config_file = args.config_file or None
        decisions: Dict[str, Any] = {}
        if changes:
            decisions["resumed_with_changes"] = {k: {"old": a, "new": b} for k, (a, b) in changes.items()}
        untrained = run_checks.check_untrained(cfg, trainer, args.eval_only, args.model_dir, args.eval_untrained)
        if untrained:
            decisions["untrained_weights"] = untrained + " (--eval-untrained)"
        trainer.run_decisions = decisions
        if args.eval_only:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
            mark_done(cfg, argv, "eval-only", decisions)
            return trainer
        if not args.no_train:
            trainer.train()
            mark_done(cfg, argv, "train", decisions)
        return trainer
    finally:
        api.end_run_logging()
        if started_dist:
            dist.destroy_distributed()


def mark_done(cfg: Any, argv: List[str], mode: str, decisions: Optional[Dict[str, Any]] = None) -> None:
    """Completion marker ``OUTPUT_DIR/DONE`` (after results.json, atomically); the resumable state is no
    longer needed and is removed (the Dassl epoch checkpoints stay)."""
    if not dist.is_main_process():
        return
    out = cfg.OUTPUT_DIR
    results = os.path.join(out, "results.json")
    atomic_write_json(os.path.join(out, DONE_NAME), {
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "mode": mode,
        "trainer": cfg.TRAINER.NAME,
        "results": "results.json" if os.path.isfile(results) else None,
        "command": "python train.py " + " ".join(shlex.quote(a) for a in argv),
        **({"decisions": decisions} if decisions else {}),
    })
    for state in (os.path.join(out, RESUME_STATE_NAME), os.path.join(out, PREV_STATE_NAME)):
        if os.path.isfile(state):
            os.remove(state)
    logger.info("Run complete: %s written", os.path.join(out, DONE_NAME))


if __name__ == "__main__":
    from engine.cli_errors import run_cli

    sys.exit(run_cli(main, "train.py"))
