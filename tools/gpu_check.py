"""One check of the GPU code paths: every trainer in every precision, the real-size pair's speed and memory.

    python tools/gpu_check.py [--out output/gpu_check]

Writes ``<out>/gpu_check.json`` (everything measured, the device, the versions) and ``<out>/gpu_check.md``
(the same as markdown tables) and prints the tables. Three parts:

1. **matrix** (any device): every trainer (PromptSRCTeacher, PromptKD, CoOp, CoCoOp, IVLP, MaPLe, PromptSRC,
   ZeroshotCLIP eval) x PREC fp32 / fp16 / amp / bf16 / bf16 with bf16-stored frozen towers, one epoch of a
   tiny random CLIP on a generated 4-class DTD root through ``train.main``: status, last loss, HM, seconds.
   On CPU, fp16 / amp run through the test-only switch ``PROMPTKD_TEST_ONLY_FP16_ON_CPU=1`` (the GPU code
   path on CPU; see trainers/common/precision.py), which this tool sets for the matrix only.
2. **pair** (CUDA; ``--pair-on-cpu`` runs it on CPU, for tests with tiny models): the PromptKD trainer with a
   ViT-L/14 teacher and a ViT-B/16 student (random weights: ``MODEL.BACKBONE.ALLOW_RANDOM_INIT``) at batch
   8, 32 and 256 (``--batches``): step time, images/s and peak memory of an online step (teacher forward +
   student forward/backward, ``forward_backward``) and of a cache-replay step (teacher logits read, student
   only), and evaluation images/s (``model_inference``), in each ``--pair-precs``.
3. **ddp**: a short training of the pair by ``train.py`` on 1 GPU and by ``torchrun --nproc_per_node 2`` at
   the same global batch: epoch time and images/s from metrics.csv. Skipped, with the reason, with fewer
   than 2 GPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

from engine.run_record import RESULTS_FILE, read_run_record  # noqa: E402

MATRIX_TRAINERS = {  # trainer -> (config node, tiny backbone, extra TRAINER.<node> options)
    "PromptSRCTeacher": ("PROMPTSRC", "teacher", ["PROMPT_DEPTH_VISION", "2", "PROMPT_DEPTH_TEXT", "2"]),
    "PromptKD": ("PROMPTKD", "student", ["PROMPT_DEPTH_VISION", "2", "TEACHER_TYPE", "zeroshot", "KD_WEIGHT", "10.0"]),
    "CoOp": ("COOP", "student", ["N_CTX", "4"]),
    "CoCoOp": ("COCOOP", "student", ["N_CTX", "4"]),
    "IVLP": ("IVLP", "student", ["PROMPT_DEPTH_VISION", "2", "PROMPT_DEPTH_TEXT", "2"]),
    "MaPLe": ("MAPLE", "student", ["PROMPT_DEPTH", "2"]),
    "PromptSRC": ("PROMPTSRC", "student", ["PROMPT_DEPTH_VISION", "2", "PROMPT_DEPTH_TEXT", "2"]),
    "ZeroshotCLIP": ("ZSCLIP", "student", []),
}
PRECS = ("fp32", "fp16", "amp", "bf16", "bf16-frozen")


def _quiet_env_info() -> None:
    from engine import utils as engine_utils

    engine_utils.collect_env_info = lambda: "skipped by tools/gpu_check.py"


def _reset_logging() -> None:
    from engine import utils as engine_utils

    torch.use_deterministic_algorithms(False)
    engine_utils.close_logger()


def _split_prec(prec: str):
    return ("bf16", "bf16") if prec == "bf16-frozen" else (prec, "auto")


@contextlib.contextmanager
def _cpu_half_switch(on: bool):
    from trainers.common.precision import ENV_CPU_HALF

    old = os.environ.get(ENV_CPU_HALF)
    if on:
        os.environ[ENV_CPU_HALF] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_CPU_HALF, None)
        else:
            os.environ[ENV_CPU_HALF] = old


def make_tiny_world(base: str) -> Dict[str, str]:
    """A generated 4-class DTD root and tiny random CLIP weight files (the tests' set-up)."""
    import clip
    from tests.helpers.fake_roots import make_root

    root = make_root("DescribableTextures", base, n_classes=4, per_class=6)
    torch.manual_seed(0)
    out = {"root": root}
    for key, name in (("student", "tiny-vit-student"), ("teacher", "tiny-vit-teacher")):
        out[key] = osp.join(base, f"{name}.pt")
        clip.save_openai_state_dict(clip.load(name, allow_random=True), out[key])
    return out


# ------------------------------------------------------------------------------------------------ matrix
def run_matrix(world: Dict[str, str], work: str, trainers: Sequence[str], precs: Sequence[str]) -> List[Dict]:
    import train

    rows = []
    cpu = not torch.cuda.is_available()
    for trainer in trainers:
        node, backbone, opts = MATRIX_TRAINERS[trainer]
        for label in precs:
            prec, frozen = _split_prec(label)
            out = osp.join(work, "matrix", f"{trainer}-{label}")
            argv = ["--root", world["root"], "--seed", "1", "--trainer", trainer, "--dataset-config-file",
                    "configs/datasets/dtd.yaml", "--output-dir", out, "--overwrite",
                    *(["--eval-only"] if trainer == "ZeroshotCLIP" else []), "MODEL.BACKBONE.NAME", world[backbone], "DATALOADER.NUM_WORKERS", "0", "INPUT.SIZE", "(32, 32)",
                    "OPTIM.MAX_EPOCH", "1", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.002", "DATALOADER.TRAIN_X.BATCH_SIZE",
                    "4", "DATALOADER.TEST.BATCH_SIZE", "8", "DATASET.EVAL_PROTOCOL", "base2novel",
                    f"TRAINER.{node}.PREC", prec, "MODEL.BACKBONE.FROZEN_PREC", frozen]
            argv += [x for k, v in zip(opts[::2], opts[1::2]) for x in (f"TRAINER.{node}.{k}", v)]
            if trainer == "PromptKD":
                argv += ["TRAINER.PROMPTKD.TEACHER_NAME", world["teacher"]]
            row: Dict[str, Any] = {"trainer": trainer, "prec": label}
            start = time.time()
            try:
                with _cpu_half_switch(cpu):
                    tr = train.main(argv)
                losses = [r.get("loss") for r in getattr(tr, "epoch_log", []) if r.get("loss") is not None]
                res = read_run_record(osp.join(out, RESULTS_FILE))
                trainable = [p for n in tr.get_model_names() for p in tr._models[n].parameters() if p.requires_grad]
                ok = (res.precision == prec and math.isfinite(res.hm) and all(math.isfinite(v) for v in losses)
                      and all(p.dtype == torch.float32 for p in trainable))
                row.update(status="ok" if ok else "FAIL", resolved=tr.prec, loss=losses[-1] if losses else None,
                           hm=res.hm)
            except Exception as exc:  # noqa: BLE001 - the report names every failure
                row.update(status="FAIL", error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()[-2000:])
            finally:
                _reset_logging()
            row["seconds"] = round(time.time() - start, 2)
            rows.append(row)
            print(f"[matrix] {trainer:16s} {label:12s} {row['status']} ({row['seconds']} s)", flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ pair
class _ReplayedLogits:
    """Stands in for a replayed teacher cache: ``logits`` returns logits recorded beforehand."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.recorded = logits

    def logits(self, images: torch.Tensor, class_weights: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        return self.recorded


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, warmup: int, steps: int) -> Dict[str, Optional[float]]:
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"step_s": seconds, "peak_mib": peak}


def build_pair(world: Dict[str, str], work: str, prec: str, teacher: str, student: str, size: int,
               opts: Sequence[str] = ()):
    """The PromptKD trainer (``--no-train``) with random-weight ``teacher`` / ``student`` CLIPs, teacher built."""
    import train

    prec, frozen = _split_prec(prec)
    out = osp.join(work, "pair", f"{prec}-{frozen}")
    argv = ["--root", world["root"], "--seed", "1", "--trainer", "PromptKD", "--no-train",
            "--dataset-config-file", "configs/datasets/dtd.yaml",
            "--config-file", "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml", "--output-dir", out,
            "--overwrite", "MODEL.BACKBONE.NAME", student, "MODEL.BACKBONE.ALLOW_RANDOM_INIT", "True",
            "MODEL.BACKBONE.FROZEN_PREC", frozen, "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot",
            "TRAINER.PROMPTKD.TEACHER_NAME", teacher, "TRAINER.PROMPTKD.PREC", prec,
            "INPUT.SIZE", f"({size}, {size})", "DATALOADER.NUM_WORKERS", "0", *opts]
    tr = train.main(argv)
    tr.build_teacher_encoder()
    return tr


def run_pair(world: Dict[str, str], work: str, precs: Sequence[str], batches: Sequence[int], teacher: str,
             student: str, size: int, warmup: int, steps: int, opts: Sequence[str] = ()) -> List[Dict]:
    rows = []
    for label in precs:
        try:
            tr = build_pair(world, work, label, teacher, student, size, opts)
        except Exception as exc:  # noqa: BLE001
            rows.append({"prec": label, "status": "FAIL", "error": f"{type(exc).__name__}: {exc}"})
            _reset_logging()
            continue
        device = torch.device(tr.device)
        for batch in batches:
            row: Dict[str, Any] = {"prec": label, "batch": batch, "teacher": teacher, "student": student}
            try:
                images = torch.randn(batch, 3, size, size, device=device)
                tr.set_model_mode("train")
                online_teacher = tr.teacher
                online = _timed(lambda: tr.forward_backward({"img": images}), device, warmup, steps)
                tr.teacher = _ReplayedLogits(online_teacher.logits(images, tr.teacher_class_weights))
                replay = _timed(lambda: tr.forward_backward({"img": images}), device, warmup, steps)
                tr.teacher = online_teacher
                tr.set_model_mode("eval")

                def infer():
                    with torch.no_grad(), tr.autocast():
                        tr.model_inference(images)
                evaluation = _timed(infer, device, warmup, steps)
                row.update(status="ok", online_step_s=online["step_s"], online_img_s=batch / online["step_s"],
                           online_peak_mib=online["peak_mib"], replay_step_s=replay["step_s"],
                           replay_img_s=batch / replay["step_s"], replay_peak_mib=replay["peak_mib"],
                           eval_img_s=batch / evaluation["step_s"], eval_peak_mib=evaluation["peak_mib"])
            except torch.cuda.OutOfMemoryError as exc:
                row.update(status="OOM", error=str(exc).splitlines()[0])
            except Exception as exc:  # noqa: BLE001
                row.update(status="FAIL", error=f"{type(exc).__name__}: {exc}")
            rows.append(row)
            print(f"[pair] {label:12s} batch {batch:4d} {row['status']}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        del tr
        _reset_logging()
    return rows


# ------------------------------------------------------------------------------------------------ ddp
def _epoch_time(out: str) -> Optional[float]:
    path = osp.join(out, "metrics.csv")
    if not osp.isfile(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["epoch_time_s"]) if rows else None


def run_ddp(world: Dict[str, str], work: str, teacher: str, student: str, size: int, global_batch: int,
            prec: str) -> Dict[str, Any]:
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpu < 2:
        return {"status": "skipped", "reason": f"needs 2 GPUs, this machine has {n_gpu}"}
    from tests.helpers.fake_roots import make_root

    root = make_root("DescribableTextures", osp.join(work, "ddp_data"), n_classes=8, per_class=2 * global_batch // 4)
    result: Dict[str, Any] = {"status": "ok", "global_batch": global_batch, "prec": prec}
    for name, launcher, per_rank in (("1gpu", [sys.executable, "train.py"], global_batch),
                                     ("torchrun2", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    "--nproc_per_node", "2", "train.py"], global_batch // 2)):
        out = osp.join(work, "ddp", name)
        cmd = launcher + ["--root", root, "--seed", "1", "--trainer", "PromptKD", "--dataset-config-file",
                          "configs/datasets/dtd.yaml", "--config-file",
                          "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml", "--output-dir", out,
                          "--overwrite", "MODEL.BACKBONE.NAME", student, "MODEL.BACKBONE.ALLOW_RANDOM_INIT", "True",
                          "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot", "TRAINER.PROMPTKD.TEACHER_NAME", teacher,
                          "TRAINER.PROMPTKD.PREC", prec, "INPUT.SIZE", f"({size}, {size})", "OPTIM.MAX_EPOCH", "2",
                          "DATALOADER.TRAIN_X.BATCH_SIZE", str(per_rank), "DATALOADER.NUM_WORKERS", "4",
                          "TEST.NO_TEST", "True"]
        start = time.time()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        entry = {"returncode": proc.returncode, "wall_s": round(time.time() - start, 1),
                 "epoch2_s": _epoch_time(out)}
        if proc.returncode != 0:
            entry["log_tail"] = (proc.stdout + proc.stderr)[-2000:]
            result["status"] = "FAIL"
        elif entry["epoch2_s"]:
            n_train = 8 * (2 * global_batch // 4) // 2
            entry["img_s"] = n_train / entry["epoch2_s"]
        result[name] = entry
    return result


# ------------------------------------------------------------------------------------------------ report
def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def markdown(report: Dict[str, Any]) -> str:
    lines = [f"# GPU check ({report['device']})", "",
             f"torch {report['torch']}, {report['platform']}, {report['date']}", ""]
    lines += ["## Precision matrix (tiny models, 1 epoch + evaluation)", "",
              "| trainer | " + " | ".join(report["matrix_precs"]) + " |",
              "|---|" + "---|" * len(report["matrix_precs"])]
    cells: Dict[str, Dict[str, Dict]] = {}
    for r in report["matrix"]:
        cells.setdefault(r["trainer"], {})[r["prec"]] = r
    for trainer, by_prec in cells.items():
        row = []
        for p in report["matrix_precs"]:
            r = by_prec.get(p)
            row.append("-" if r is None else (f"{r['status']} ({r['seconds']} s)"))
        lines.append(f"| {trainer} | " + " | ".join(row) + " |")
    lines += ["", "## Real-size pair (PromptKD: teacher / student, random weights)", ""]
    if isinstance(report["pair"], dict):
        lines.append(f"skipped: {report['pair']['reason']}")
    else:
        lines += ["| prec | batch | online step s | online img/s | online peak MiB | replay step s | replay img/s | "
                  "replay peak MiB | eval img/s | status |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["pair"]:
            lines.append("| " + " | ".join(_fmt(r.get(k)) for k in (
                "prec", "batch", "online_step_s", "online_img_s", "online_peak_mib", "replay_step_s", "replay_img_s",
                "replay_peak_mib", "eval_img_s", "status")) + " |")
    lines += ["", "## 1 GPU vs torchrun, 2 processes", ""]
    ddp = report["ddp"]
    if ddp.get("status") == "skipped":
        lines.append(f"skipped: {ddp['reason']}")
    else:
        lines += ["| run | epoch-2 s | img/s | return code |", "|---|---|---|---|"]
        for name in ("1gpu", "torchrun2"):
            e = ddp.get(name, {})
            lines.append(f"| {name} | {_fmt(e.get('epoch2_s'))} | {_fmt(e.get('img_s'))} | {e.get('returncode')} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="output/gpu_check", help="folder of gpu_check.json / gpu_check.md")
    p.add_argument("--trainers", nargs="+", default=list(MATRIX_TRAINERS), choices=list(MATRIX_TRAINERS))
    p.add_argument("--precs", nargs="+", default=list(PRECS), choices=list(PRECS))
    p.add_argument("--batches", nargs="+", type=int, default=[8, 32, 256], help="batch sizes of the pair")
    p.add_argument("--pair-precs", nargs="+", default=["fp16", "amp", "bf16"], choices=list(PRECS))
    p.add_argument("--teacher", default="ViT-L/14", help="teacher CLIP of the pair (random weights)")
    p.add_argument("--student", default="ViT-B/16", help="student CLIP of the pair (random weights)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--pair-on-cpu", action="store_true",
                   help="run the pair part on CPU as well (tests, with tiny --teacher / --student)")
    p.add_argument("--pair-opts", nargs="*", default=[],
                   help="extra KEY VALUE config options of the pair (e.g. a prompt depth that fits tiny models)")
    p.add_argument("--ddp-global-batch", type=int, default=64)
    args = p.parse_args(argv)

    _quiet_env_info()
    os.makedirs(args.out, exist_ok=True)
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.processor() or platform.machine()})"
    report: Dict[str, Any] = {"device": device, "cuda": cuda, "gpus": torch.cuda.device_count() if cuda else 0,
                              "torch": torch.__version__, "platform": platform.platform(),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "matrix_precs": list(args.precs),
                              "command": "python tools/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        world = make_tiny_world(work)
        report["matrix"] = run_matrix(world, work, args.trainers, args.precs)
        if cuda or args.pair_on_cpu:
            with _cpu_half_switch(not cuda):
                report["pair"] = run_pair(world, work, args.pair_precs, args.batches, args.teacher, args.student,
                                          args.image_size, args.warmup, args.steps, args.pair_opts)
        else:
            report["pair"] = {"status": "skipped", "reason": "needs CUDA (--pair-on-cpu runs it on CPU)"}
        report["ddp"] = run_ddp(world, work, args.teacher, args.student, args.image_size, args.ddp_global_batch,
                                args.pair_precs[0])
    with open(osp.join(args.out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=2)
    text = markdown(report)
    with open(osp.join(args.out, "gpu_check.md"), "w") as f:
        f.write(text)
    print(text)
    failed = [r for r in report["matrix"] if r["status"] != "ok"]
    failed += [r for r in report["pair"] if r.get("status") not in ("ok", "OOM")] if isinstance(report["pair"], list) else []
    return 1 if failed or report["ddp"].get("status") == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
