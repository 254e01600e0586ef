"""Throughput of tools/predict.py in-process (interpreter start-up and imports excluded).

    python tools/predict_benchmark.py student.pt imgs/*.jpg --repeat 4 --batch-size 32 [--workers 2]
        [--precision bf16] [--full-decode] [--repo OTHER_CHECKOUT]

Calls ``tools.predict.predict`` once on 8 images (warm-up: model build, first decodes), then on the
images repeated ``--repeat`` times, and prints images/s of the wall clock and images per CPU-second
(this process and its loader workers, ``resource.getrusage``). ``--repo`` times the ``tools/predict.py``
of another checkout (e.g. an older commit, with an artefact that commit writes); options that its
``predict()`` does not take are left out.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import sys
import time
from typing import Any, Dict, List, Optional


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artefact")
    p.add_argument("images", nargs="+")
    p.add_argument("--repeat", type=int, default=4, help="the image list is predicted this many times in one call")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--full-decode", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.repo))
    import torch

    torch.set_num_threads(args.threads)
    from tools import predict

    wanted = {"batch_size": args.batch_size, "workers": args.workers, "precision": args.precision,
              "reduced_decode": not args.full_decode}
    accepted = inspect.signature(predict.predict).parameters
    kwargs = {k: v for k, v in wanted.items() if k in accepted}
    images = list(args.images) * args.repeat
    predict.predict(args.artefact, images[:8], **kwargs)
    start, start_cpu = time.perf_counter(), _cpu_s()
    out = predict.predict(args.artefact, images, **kwargs)
    wall, cpu = time.perf_counter() - start, _cpu_s() - start_cpu
    if len(out) != len(images):
        raise SystemExit(f"predict returned {len(out)} results for {len(images)} images")
    result = {"repo": args.repo, "options": kwargs, "images": len(images), "wall_s": wall,
              "images_per_s": len(images) / wall, "cpu_s": cpu, "images_per_cpu_s": len(images) / cpu}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
