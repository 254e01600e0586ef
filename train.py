"""Command-line entry point, flag-compatible with CoOp / PromptSRC / PromptKD ``train.py``.

    python train.py --root $DATA --seed 1 --trainer PromptKD \
        --dataset-config-file configs/datasets/dtd.yaml \
        --config-file configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml \
        --output-dir output/dtd/seed1 DATASET.NUM_SHOTS 16

Config merge order (reference §1.2): engine defaults -> ``datasets.extend_cfg`` /
``trainers.extend_cfg`` -> dataset yaml -> trainer yaml -> CLI flags -> trailing ``KEY VALUE``
opts -> freeze. ``--resume DIR`` keeps DIR (the reference PromptKD set it to "", defect §5.9).
Importing the ``datasets`` and ``trainers`` packages registers every dataset and trainer.
Launch with ``torchrun --nproc_per_node N train.py ...`` for DDP.
"""

from __future__ import annotations

import os
import sys

_REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
if not sys.path or sys.path[0] != _REPO_ROOT:
    sys.path.insert(0, _REPO_ROOT)

import argparse  # noqa: E402
import logging  # noqa: E402
from typing import Any, List, Optional  # noqa: E402

import torch  # noqa: E402

from engine import api  # noqa: E402
from engine import dist  # noqa: E402
from engine import utils as engine_utils  # noqa: E402
from engine.config import add_engine_extras, merge_from_file_checked, merge_from_list_checked  # noqa: E402
from engine.fileio import atomic_write_text  # noqa: E402

logger = logging.getLogger("train")

_DIST_MODES = ("auto", "none")


def build_parser() -> argparse.ArgumentParser:
    """The CoOp/PromptKD argument parser."""
    parser = argparse.ArgumentParser(description="PromptKD / CoOp-ecosystem prompt learning (Dassl-compatible)")
    parser.add_argument("--root", type=str, default="", help="path to the dataset root ($DATA)")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument(
        "--resume", type=str, default="", help="checkpoint directory to resume from (default: OUTPUT_DIR)"
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
    parser.add_argument(
        "opts",
        default=None,
        nargs=argparse.REMAINDER,
        help="modify config options using the command line (KEY VALUE pairs)",
    )
    return parser


def extend_cfg(cfg: Any) -> None:
    """Add the config nodes of the datasets and trainers packages (their ``extend_cfg``, when defined)."""
    import datasets
    import trainers

    for package in (datasets, trainers):
        if hasattr(package, "extend_cfg"):
            package.extend_cfg(cfg)


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
    extend_cfg(cfg)
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


def _log_args_and_cfg(args: argparse.Namespace, cfg: Any) -> None:
    lines = ["***************", "** Arguments **", "***************"]
    for key in sorted(vars(args)):
        lines.append(f"{key}: {getattr(args, key)}")
    lines += ["************", "** Config **", "************", str(cfg)]
    logger.info("\n".join(lines))


def _setup_logging(cfg: Any) -> None:
    if api.ENGINE_NAME == "builtin":
        api.setup_logger(cfg.OUTPUT_DIR)
    else:
        # Dassl tees stdout into log.txt; our logging handler then writes to that tee.
        api.setup_logger(cfg.OUTPUT_DIR)
        engine_utils.setup_logger(None)


def main(argv: Optional[List[str]] = None) -> Any:
    """Run training or evaluation; returns the trainer (handy for tests and notebooks)."""
    args = build_parser().parse_args(argv)
    cfg = setup_cfg(args)

    started_dist = False
    if cfg.TRAIN.DIST != "none" and not dist.is_dist():
        started_dist = dist.init_distributed_from_env()
    try:
        if cfg.SEED >= 0:
            # Superset of Dassl's set_random_seed (same RNGs) plus the optional deterministic mode.
            engine_utils.set_random_seed(cfg.SEED, deterministic=cfg.ENGINE.DETERMINISTIC)
        _setup_logging(cfg)
        if torch.cuda.is_available() and cfg.USE_CUDA and not cfg.ENGINE.DETERMINISTIC:
            torch.backends.cudnn.benchmark = True

        logger.info(api.describe_engine())
        if dist.is_dist():
            logger.info("Distributed run: rank %d of %d", dist.get_rank(), dist.get_world_size())
        _log_args_and_cfg(args, cfg)
        logger.info("Collecting env info ...\n** System info **\n%s\n", engine_utils.collect_env_info())
        if dist.is_main_process():
            atomic_write_text(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), cfg.dump())

        trainer = api.build_trainer(cfg)
        # recorded in results.json so result tables can tell two configs of one trainer apart
        trainer.config_file = args.config_file or None
        if args.eval_only:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
            return trainer
        if not args.no_train:
            trainer.train()
        return trainer
    finally:
        if started_dist:
            dist.destroy_distributed()


if __name__ == "__main__":
    main()
