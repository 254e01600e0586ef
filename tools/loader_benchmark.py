"""Data-loader throughput (images/s) of the engine's loaders on generated JPEGs.

    python tools/loader_benchmark.py                          # 256 JPEGs, workers 0 and 2, 3 epochs
    python tools/loader_benchmark.py --images 512 --workers 0 2 4 --batch 32 --epochs 3 --json out.json
    # per core, full vs reduced-scale JPEG decoding, on 2000 x 1500 photos loaded at 224 px:
    python tools/loader_benchmark.py --images 64 --image-size 2000 1500 --size 224 --workers 0 --threads 1 \
        --pipeline train test --decode full reduced --no-compare

The loader is the one every trainer gets (``engine.data.data_manager.build_data_loader``) with the
PromptKD training transform (random_resized_crop 224 bicubic + random_flip + normalize, CLIP
statistics): seeded sampler, persistent workers and prefetching (``prefetch_factor`` 2) when
``NUM_WORKERS > 0``, pinned memory when CUDA is used. For each worker count the first epoch
(including worker start-up) and the later epochs (steady state) are timed separately; with workers,
the same loader with ``persistent_workers=False`` (re-forked every epoch, as Dassl's loaders) is
measured for comparison. ``--pipeline test`` measures the evaluation transform
(resize + center crop + normalize) instead; ``--decode full reduced`` measures each loader with
``DATALOADER.REDUCED_JPEG_DECODE`` off and on (JPEGs decoded at 1/2, 1/4 or 1/8 scale where the
transform downsizes anyway). ``--image-size W H`` sets the generated JPEGs' size (default: ``--size``
square); ``--size`` is the loaded (transform output) size.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from engine.config import get_cfg_default  # noqa: E402
from engine.data.data_manager import build_data_loader  # noqa: E402
from engine.data.datasets import Datum  # noqa: E402
from engine.data.transforms import build_transform  # noqa: E402
from engine.fileio import atomic_write_json  # noqa: E402

__all__ = ["make_jpegs", "loader_config", "measure", "run", "main"]

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def make_jpegs(folder: str, n: int, size: int = 224, seed: int = 0, height: Optional[int] = None) -> List[Datum]:
    """Write ``n`` random-texture ``size`` x ``height`` (default square) JPEGs (quality 90) into ``folder``:
    a smooth random field with a gradient look (bilinear upsampling of a 1/8-size random image) plus
    pixel noise, i.e. photo-like JPEG sizes; return their Datums."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size, height or size
    items = []
    for i in range(n):
        path = os.path.join(folder, f"img_{width}x{height}_{i:05d}.jpg")
        if not os.path.isfile(path):
            low = rng.integers(0, 256, size=(max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
            img = Image.fromarray(low).resize((width, height), Image.BILINEAR)  # smooth content, realistic JPEG size
            noise = rng.integers(-12, 13, size=(height, width, 3))
            arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(path, quality=90)
        items.append(Datum(impath=path, label=i % 10, classname=f"class_{i % 10}"))
    return items


def loader_config(batch: int, workers: int, size: int = 224, seed: int = 1, reduced_decode: bool = True) -> Any:
    """Engine config with the PromptKD input pipeline (``reduced_decode``: DATALOADER.REDUCED_JPEG_DECODE)."""
    cfg = get_cfg_default()
    cfg.DATALOADER.REDUCED_JPEG_DECODE = reduced_decode
    cfg.SEED = seed
    cfg.USE_CUDA = torch.cuda.is_available()
    cfg.INPUT.SIZE = (size, size)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = CLIP_MEAN
    cfg.INPUT.PIXEL_STD = CLIP_STD
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = batch
    cfg.VERBOSE = False
    return cfg


def _epoch(loader: Any) -> int:
    n = 0
    for batch in loader:
        n += int(batch["img"].shape[0])
    return n


def measure(loader: Any, epochs: int) -> Dict[str, float]:
    """images/s of the first epoch (worker start-up included) and of the remaining epochs."""
    times, cpu, counts = [], [], []
    for epoch in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        start, start_cpu = time.perf_counter(), time.process_time()
        counts.append(_epoch(loader))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    out = {"first_epoch_images_per_s": counts[0] / times[0], "epoch_times_s": times, "epoch_cpu_s": cpu}
    if epochs > 1:
        out["steady_images_per_s"] = sum(counts[1:]) / sum(times[1:])
        # per core of this process (meaningful with 0 workers: all decoding runs here); other jobs on the
        # machine slow the wall clock, not this
        out["steady_images_per_cpu_s"] = sum(counts[1:]) / max(sum(cpu[1:]), 1e-9)
    return out


def run(items: Sequence[Datum], workers_list: Sequence[int], batch: int, epochs: int, size: int = 224,
        compare_non_persistent: bool = True, pipelines: Sequence[str] = ("train",),
        decodes: Sequence[str] = ("reduced",)) -> List[Dict[str, Any]]:
    """Measure the engine loader for each pipeline (train / test transform), decoding (full / reduced) and
    worker count (and its non-persistent twin when workers > 0)."""
    rows = []
    for pipeline, decode, workers in [(p, d, w) for p in pipelines for d in decodes for w in workers_list]:
        is_train = pipeline == "train"
        cfg = loader_config(batch, workers, size, reduced_decode=decode == "reduced")
        tfm = build_transform(cfg, is_train=is_train)
        loader = build_data_loader(cfg, "RandomSampler", list(items), batch_size=batch, tfm=tfm, is_train=is_train)
        row = {"pipeline": pipeline, "decode": decode, "decoded_size": loader.dataset.min_size,
               "workers": workers, "persistent_workers": workers > 0, "pin_memory": loader.pin_memory,
               "prefetch_factor": loader.prefetch_factor if workers > 0 else None, "batch": batch,
               **measure(loader, epochs)}
        rows.append(row)
        del loader
        if workers > 0 and compare_non_persistent:
            twin = build_data_loader(cfg, "RandomSampler", list(items), batch_size=batch, tfm=tfm, is_train=True)
            plain = DataLoader(twin.dataset, batch_size=batch, sampler=twin.sampler, num_workers=workers,
                               drop_last=twin.drop_last, pin_memory=twin.pin_memory, persistent_workers=False,
                               worker_init_fn=twin.worker_init_fn, generator=twin.generator)
            rows.append({"pipeline": pipeline, "decode": decode, "decoded_size": twin.dataset.min_size,
                         "workers": workers, "persistent_workers": False, "pin_memory": plain.pin_memory,
                         "prefetch_factor": plain.prefetch_factor, "batch": batch, **measure(plain, epochs)})
    return rows


def format_rows(rows: Sequence[Dict[str, Any]], n_images: int, size: int, image_size: Sequence[int] = ()) -> str:
    files = f"{image_size[0]}x{image_size[1]}" if image_size else f"{size}px"
    lines = [f"engine loaders on {n_images} generated {files} JPEGs loaded at {size} px (train: random_resized_crop + "
             "random_flip + normalize; test: resize + center_crop + normalize; bicubic)",
             f"{'pipeline':>8} {'decode':>7} {'workers':>7} {'persistent':>10} {'pin':>5} {'batch':>5} "
             f"{'1st epoch img/s':>16} {'steady img/s':>13} {'img/CPU-s':>10}"]
    for r in rows:
        steady = f"{r['steady_images_per_s']:.1f}" if "steady_images_per_s" in r else "-"
        per_cpu = f"{r['steady_images_per_cpu_s']:.1f}" if "steady_images_per_cpu_s" in r else "-"
        lines.append(f"{r.get('pipeline', 'train'):>8} {r.get('decode', 'reduced'):>7} {r['workers']:>7} "
                     f"{str(r['persistent_workers']):>10} {str(r['pin_memory']):>5} {r['batch']:>5} "
                     f"{r['first_epoch_images_per_s']:>16.1f} {steady:>13} {per_cpu:>10}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256, help="number of generated JPEGs")
    p.add_argument("--size", type=int, default=224, help="loaded image side in pixels (and generated, by default)")
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="generated JPEG size (default: --size square)")
    p.add_argument("--pipeline", nargs="+", choices=["train", "test"], default=["train"],
                   help="transform(s) measured: the training or the evaluation pipeline")
    p.add_argument("--decode", nargs="+", choices=["full", "reduced"], default=["reduced"],
                   help="JPEG decoding: full, or reduced scale where the transform downsizes (DATALOADER.REDUCED_JPEG_DECODE)")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="NUM_WORKERS values to measure")
    p.add_argument("--epochs", type=int, default=3, help="epochs per loader (first one includes worker start-up)")
    p.add_argument("--dir", default="", help="folder for the JPEGs (default: a temporary folder)")
    p.add_argument("--no-compare", action="store_true", help="skip the non-persistent comparison loaders")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    p.add_argument("--json", default="", help="output JSON (default output/benchmark/loader.json)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.images < args.batch:
        raise SystemExit(f"--images ({args.images}) must be at least --batch ({args.batch})")
    if args.epochs < 1 or any(w < 0 for w in args.workers):
        raise SystemExit("--epochs must be >= 1 and --workers >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="loader_bench_") as tmp:
        folder = args.dir or tmp
        width, height = args.image_size or (args.size, args.size)
        items = make_jpegs(folder, args.images, width, height=height)
        jpeg_kib = sum(os.path.getsize(d.impath) for d in items) / len(items) / 1024
        rows = run(items, args.workers, args.batch, args.epochs, args.size, not args.no_compare, args.pipeline,
                   args.decode)
    print(format_rows(rows, args.images, args.size, (width, height)))
    result = {"meta": {"images": args.images, "size": args.size, "image_size": [width, height],
                       "mean_jpeg_kib": jpeg_kib, "epochs": args.epochs, "threads": torch.get_num_threads(),
                       "machine": f"{platform.machine()} {os.cpu_count()} CPUs", "torch": torch.__version__,
                       "cuda": torch.cuda.is_available()},
              "rows": rows}
    path = args.json or os.path.join("output", "benchmark", "loader.json")
    atomic_write_json(path, result)
    print(f"\nJSON written to {path}")
    return result


if __name__ == "__main__":
    main()
