"""Build the offline proving ground: target dataset + pre-trained teacher and student CLIPs.

Renders the target-domain dataset in CoOp's layout, pre-trains the teacher and the student CLIP on
the source domain (two single-thread processes side by side), reports their zero-shot accuracy on
both domains (all classes) and prints where everything is cached. A second run with the same
configuration only reads the cache.

    python tools/build_proving_ground.py                       # the demo world (preset "default")
    python tools/build_proving_ground.py --preset reduced      # the small world of the test suite
    python tools/build_proving_ground.py --json paths.json     # also write the paths/metrics as JSON

Cache root: --cache-dir, else $PROMPTKD_PG_DIR, else ./output/proving_ground.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from proving_ground.build import build, preset  # noqa: E402
from proving_ground.cache import ENV_VAR, atomic_write_json  # noqa: E402


def _row(name: str, art) -> str:
    zs = art.stats.get("zero_shot", {})
    src, tgt = zs.get("source", {}), zs.get("target", {})
    secs = art.stats.get("train_seconds")
    how = "cached" if art.cached else f"{secs:.0f} s" if secs is not None else "?"
    return (f"{name:<8} {src.get('accuracy', float('nan')):>7.1f} {tgt.get('accuracy', float('nan')):>7.1f} "
            f"{tgt.get('colour_accuracy', float('nan')):>8.1f} {tgt.get('shape_accuracy', float('nan')):>8.1f} "
            f"{tgt.get('base_accuracy', float('nan')):>7.1f} {tgt.get('novel_accuracy', float('nan')):>7.1f}   {how}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", choices=["default", "reduced", "tiny"], help="world and model sizes")
    p.add_argument("--seed", type=int, default=0, help="world and pre-training seed")
    p.add_argument("--cache-dir", default=None, help=f"cache root (default ${ENV_VAR} or ./output/proving_ground)")
    p.add_argument("--data-root", default=None, help="where to write proving_ground/ (default <cache>/data/<digest>)")
    p.add_argument("--workers", type=int, default=2, choices=[0, 1, 2],
                   help="2: teacher and student in parallel processes (1 thread each); 1: sequential; 0: in-process")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.add_argument("--json", default=None, help="also write the paths and metrics to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress logging")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    cfg = preset(args.preset, seed=args.seed)
    res = build(cfg, root=args.cache_dir, data_root=args.data_root, workers=args.workers, force=args.force)

    n = cfg.world.num_classes
    print(f"\nZero-shot accuracy (%), {n}-way over all classes, prompt 'a photo of a {{}}.':")
    print(f"{'model':<8} {'source':>7} {'target':>7} {'t-colour':>8} {'t-shape':>8} {'t-base':>7} {'t-novel':>7}   pre-training")
    print(_row("teacher", res.teacher))
    print(_row("student", res.student))
    print(f"\ndataset root (--root / DATASET.ROOT): {res.data_root}")
    print(f"dataset folder:                      {res.dataset_dir}")
    print(f"teacher weights (clip.load):         {res.teacher.weights}")
    print(f"student weights (clip.load):         {res.student.weights}")
    print(f"time: dataset {res.seconds['dataset']:.0f} s, pre-training {res.seconds['pretrain']:.0f} s, "
          f"total {res.seconds['total']:.0f} s")
    if args.json:
        atomic_write_json(args.json, {"preset": args.preset, "seed": args.seed, **res.to_dict()})
        print(f"paths and metrics written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
