"""Write the class-vectors file of a PromptKD teacher for every class of a dataset.

The teacher's prompted text branch runs once, after its weights are loaded, over all class names of
the dataset (base and novel); the L2-normalised features, the class names, the teacher's identity and
its logit scale are saved atomically (see trainers/common/class_vectors.py). Works with checkpoints
of our PromptSRCTeacher / PromptSRC / IVLP runs and with the released PromptSRC / PromptKD teachers
(docs/REFERENCE.md M6 key layout), or with vanilla CLIP (``--teacher-type zeroshot``).

    python tools/make_class_vectors.py teacher_model/DescribableTextures/VLPromptLearner/model-best.pth.tar \\
        --dataset-config-file configs/datasets/dtd.yaml --root $DATA --out class_vectors_dtd.pt

Released teachers do not contain CLIP's token embedding: ``--teacher-name`` (default
TRAINER.PROMPTKD.TEACHER_NAME, ViT-L/14) provides it (``MODEL.BACKBONE.WEIGHTS_DIR`` or
``$CLIP_WEIGHTS_DIR`` say where the weight file is). Trailing ``KEY VALUE`` pairs override the config.
"""

from __future__ import annotations

import argparse
import logging
import os.path as osp
import sys
from typing import List, Optional

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402

logger = logging.getLogger("make_class_vectors")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("items", nargs="*", metavar="TEACHER [KEY VALUE ...]",
                   help="teacher checkpoint file or run directory (omitted with --teacher-type zeroshot), "
                        "then config overrides as KEY VALUE pairs")
    p.add_argument("--dataset-config-file", required=True, help="dataset yaml (configs/datasets/<name>.yaml)")
    p.add_argument("--root", required=True, help="dataset root ($DATA)")
    p.add_argument("--out", default="", help="output file (default: class_vectors_<DATASET>.pt next to the checkpoint)")
    p.add_argument("--config-file", default="", help="optional trainer yaml (e.g. the PromptKD student config)")
    p.add_argument("--teacher-type", choices=("promptsrc", "zeroshot"), default="promptsrc")
    p.add_argument("--teacher-name", default="", help="teacher CLIP (default TRAINER.PROMPTKD.TEACHER_NAME)")
    p.add_argument("--ctx-init", default=None, help="teacher CTX_INIT for released checkpoints (default from config)")
    p.add_argument("--device", default="", help="cpu | cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=256, help="classes per text-encoder batch")
    return p


def main(argv: Optional[List[str]] = None) -> str:
    args = build_parser().parse_intermixed_args(argv)
    items = list(args.items)
    args.teacher = items.pop(0) if args.teacher_type == "promptsrc" and items else ""
    args.opts = items
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import datasets
    import trainers
    from engine.api import build_dataset, get_cfg_default
    from engine.config import add_engine_extras, merge_from_file_checked, merge_from_list_checked
    from trainers.common.base import resolve_precision
    from trainers.common.class_vectors import save_class_vectors
    from trainers.common.teacher import (build_zeroshot_teacher, compute_class_vectors, find_teacher_checkpoint,
                                         load_teacher_checkpoint)

    cfg = get_cfg_default()
    add_engine_extras(cfg)
    datasets.extend_cfg(cfg)
    trainers.extend_cfg(cfg)
    merge_from_file_checked(cfg, args.dataset_config_file)
    if args.config_file:
        merge_from_file_checked(cfg, args.config_file)
    cfg.DATASET.ROOT = args.root
    merge_from_list_checked(cfg, args.opts)
    if args.teacher_name:
        cfg.TRAINER.PROMPTKD.TEACHER_NAME = args.teacher_name
    cfg.TRAINER.PROMPTKD.TEACHER_TYPE = args.teacher_type
    cfg.freeze()

    dataset = build_dataset(cfg)
    classnames = list(dataset.all_classnames)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prec = resolve_precision(cfg.TRAINER.PROMPTKD.PREC, device, "TRAINER.PROMPTKD.PREC")

    if args.teacher_type == "zeroshot":
        teacher = build_zeroshot_teacher(cfg, device, prec)
        default_dir = "."
    else:
        if not args.teacher:
            raise SystemExit("error: a teacher checkpoint or run directory is required (or --teacher-type zeroshot)")
        ckpt = find_teacher_checkpoint(args.teacher)
        teacher = load_teacher_checkpoint(cfg, ckpt, device, prec, teacher_name=args.teacher_name or None,
                                          ctx_init=args.ctx_init)
        default_dir = osp.dirname(ckpt) or "."

    def autocast():
        if prec == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if prec == "amp":
            return torch.autocast(device_type=device.type, dtype=torch.float16)
        return torch.autocast(device_type=device.type, enabled=False)

    feats = compute_class_vectors(teacher, classnames, batch_size=args.batch_size, autocast=autocast)
    out = args.out or osp.join(default_dir, f"class_vectors_{cfg.DATASET.NAME}.pt")
    save_class_vectors(out, feats, classnames, teacher.identity.as_dict(), teacher.logit_scale)
    print(f"Wrote {out}: {len(classnames)} classes x {feats.shape[1]} dims "
          f"(teacher {teacher.identity.model}, {teacher.identity.type})")
    return out


if __name__ == "__main__":
    from engine.cli_errors import run_cli

    sys.exit(run_cli(main, "make_class_vectors"))
