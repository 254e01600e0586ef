"""FLOPs, wall time and peak memory of a PromptKD distillation step and of inference: ours vs the reference.

    python tools/benchmark.py --tiny                      # tiny architectures: ~10 s of CPU time
    python tools/benchmark.py                             # ViT-L/14 teacher, ViT-B/16 student (random weights)
    python tools/benchmark.py --classes 47 1000 --batch 32 --test-batch 100 --reps 3 --json out.json

Two paths over the same random-weight models (no weight files are needed):

- ``ours`` (trainers/promptkd.py): the teacher's class vectors W are computed once, outside the step.
  A distillation step = teacher image tower with its visual prompts (no grad) + prompted student
  forward/backward + projector + KD loss + SGD step. Inference = student + projector + W (no teacher).
- ``reference`` (PromptKD's trainers/promptkd.py, reproduced here ONLY as a comparison mode): the
  teacher's text branch (prompt assembly + ViT-L/14 text tower with deep prompts) runs over ALL C
  classes on every training step and on every test batch, where the teacher's image features are
  also computed and thrown away (docs/REFERENCE.md T7, D17-D18).

Both paths share the model code; the reference path runs inside ``clip.full_blocks()``: every block of
the image towers computes all tokens, as open_clip's forward and the reference do, whereas ours computes
the last block for the pooled class token only and skips the image-token part of the student's
first-block backward (clip/encoders.py).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device (exact,
shape-only, no compute), with the fused MHA inference fast path DISABLED so attention is counted
(the fast path's fused kernel is not seen by the counter); forward and backward are included. "text" /
"teacher" columns are the FLOPs spent inside the teacher's text blocks / text blocks + image encoder
(forward hooks). The last table line is a teacher-cache replay step (recorded logits, student only).
Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` of a real step; otherwise the live-tensor
accounting of :class:`PeakTensorMemory` on the meta device (parameters and buffers of the modules the
path holds, optimizer state, activations, gradients and temporaries; no allocator overhead).
Wall time: median of ``--reps`` real runs on ``--device`` (fast path on, as in training), ours and
reference interleaved so that both see the same machine load (on CPU also the process's CPU time, which
other jobs on a shared machine do not inflate); for the reference with more than
``--max-timed-classes`` classes, the text branch is timed on that many classes and scaled linearly in C
(marked in the table; text FLOPs are exactly linear in C).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import clip  # noqa: E402
from clip.configs import get_config  # noqa: E402
from clip.weights import OPENAI_MODELS  # noqa: E402
from engine.fileio import atomic_write_json  # noqa: E402
from tools.measure import PeakTensorMemory, count_flops, meta_safe_autocast, peak_memory, time_median  # noqa: E402
from trainers.common.kd import get_kd_loss  # noqa: E402
from trainers.common.prompts import VisualPromptStack  # noqa: E402
from trainers.common.teacher import TeacherImageEncoder  # noqa: E402
from trainers.common.vl_model import cast_prompts, cosine_logits, tower_dtype  # noqa: E402
from trainers.promptkd import PromptKDStudentModel  # noqa: E402

__all__ = ["ArchSpec", "ARCHS", "BenchModels", "ReferenceTextBranch", "PeakTensorMemory", "count_flops", "peak_memory",
           "run_benchmark", "format_table", "main"]

PATHS = ("ours", "reference")


@dataclass(frozen=True)
class ArchSpec:
    """Teacher / student CLIPs and the prompt settings of the PromptKD configs (docs/REFERENCE.md T7)."""

    name: str
    teacher: str
    student: str
    image_size: int
    student_ctx: int
    student_depth: int
    teacher_vision_ctx: int
    teacher_vision_depth: int
    teacher_text_ctx: int
    teacher_text_depth: int


ARCHS = {
    "real": ArchSpec("ViT-L/14 -> ViT-B/16", "ViT-L/14", "ViT-B/16", 224, 4, 9, 4, 9, 4, 9),
    "tiny": ArchSpec("tiny-vit-teacher -> tiny-vit-student", "tiny-vit-teacher", "tiny-vit-student", 32, 2, 2, 2, 2, 2, 2),
}


def _model_config(name: str) -> Dict[str, Any]:
    cfg = get_config(OPENAI_MODELS.get(name, name))
    if cfg is None:
        raise ValueError(f"unknown architecture {name!r}: not an OpenAI CLIP name nor a registered (tiny) config")
    cfg = dict(cfg)
    cfg["quick_gelu"] = True  # OpenAI CLIP
    return cfg


def build_random_clip(name: str, device: torch.device, precision: str = "fp32") -> nn.Module:
    """A frozen CLIP of architecture ``name`` with random weights (on ``meta``: no memory, no init cost)."""
    ctx = torch.device("meta") if device.type == "meta" else contextlib.nullcontext()
    with ctx:
        model = clip.build_from_config(_model_config(name), precision=precision, device=device)
    model.requires_grad_(False)
    return model.eval()


class ReferenceTextBranch(nn.Module):
    """The reference teacher's text side (CustomCLIP_teacher + VLPromptLearner): per call, assemble
    [SOS | ctx | "<class>." tokens] for all C classes and run the prompted text tower with deep prompts,
    then L2-normalise. Token buffers hold random values (their content does not change the cost)."""

    def __init__(self, clip_model: nn.Module, n_classes: int, n_ctx: int, depth: int) -> None:
        super().__init__()
        info = clip.model_info(clip_model)
        device = clip_model.positional_embedding.device
        width, length = int(info.text_width), int(info.context_length)
        self.clip_model = clip_model
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(torch.zeros(n_ctx, width, device=device), requires_grad=False)
        self.deep = nn.ParameterList([nn.Parameter(torch.zeros(n_ctx, width, device=device), requires_grad=False)
                                      for _ in range(depth - 1)])
        self.register_buffer("token_prefix", torch.zeros(n_classes, 1, width, device=device))
        self.register_buffer("token_suffix", torch.zeros(n_classes, length - 1 - n_ctx, width, device=device))
        ids = torch.zeros(n_classes, length, dtype=torch.long, device=device)
        if device.type != "meta":
            ids[:, 0] = clip.SOT_TOKEN_ID
            ids[:, 1:1 + n_ctx + 2] = 320  # any word tokens; EOT after "<ctx> <class> ."
            ids[:, 1 + n_ctx + 2] = clip.EOT_TOKEN_ID
        self.register_buffer("token_ids", ids)
        if device.type != "meta":
            nn.init.normal_(self.token_prefix, std=0.02)
            nn.init.normal_(self.token_suffix, std=0.02)
            nn.init.normal_(self.ctx, std=0.02)
            for p in self.deep:
                nn.init.normal_(p, std=0.02)

    def forward(self) -> torch.Tensor:
        n_cls = self.token_prefix.shape[0]
        ctx = self.ctx.unsqueeze(0).expand(n_cls, -1, -1)
        embeds = torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)
        dtype = tower_dtype(self.clip_model.transformer)
        feats = clip.encode_text(self.clip_model, embeds.to(dtype), self.token_ids,
                                 deep_prompts=cast_prompts(list(self.deep), dtype), n_ctx=self.n_ctx)
        return F.normalize(feats.float(), dim=-1)


class BenchModels:
    """Teacher CLIP (+ its visual prompts), the PromptKD student model, and the autocast of ``prec``."""

    def __init__(self, arch: ArchSpec, device: torch.device, prec: str = "fp32") -> None:
        self.arch = arch
        self.device = device
        self.prec = prec
        storage = "fp16" if prec == "fp16" else "fp32"  # fp16: frozen towers in half, as the reference
        self.teacher_clip = build_random_clip(arch.teacher, device, storage)
        student_clip = build_random_clip(arch.student, device, storage)
        t_info, s_info = clip.model_info(self.teacher_clip), clip.model_info(student_clip)
        prompts = VisualPromptStack(arch.teacher_vision_ctx, arch.teacher_vision_depth, t_info.vision_width).to(device)
        self.teacher_encoder = TeacherImageEncoder(self.teacher_clip.visual, prompts)
        self.teacher_scale = 100.0
        self.student = PromptKDStudentModel(
            student_clip.visual, arch.student_ctx, arch.student_depth, s_info.vision_width,
            in_dim=s_info.embed_dim, out_dim=t_info.embed_dim, project_layers=2, logit_scale=100.0,
        ).to(device)
        self.student.train()
        self.embed_dim = int(t_info.embed_dim)
        self.trainable = [p for p in self.student.parameters() if p.requires_grad]
        self.optim = torch.optim.SGD(self.trainable, lr=0.005, momentum=0.9, weight_decay=5e-4)
        self.scaler = torch.amp.GradScaler(device.type) if prec == "amp" else None
        self.kd_loss = get_kd_loss("kl_reference")
        self._text: Dict[int, ReferenceTextBranch] = {}
        self._weights: Dict[int, torch.Tensor] = {}

    def autocast(self):
        if self.prec == "amp":
            return torch.autocast(self.device.type, dtype=torch.float16)
        if self.prec == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def text_branch(self, n_classes: int) -> ReferenceTextBranch:
        if n_classes not in self._text:
            self._text[n_classes] = ReferenceTextBranch(self.teacher_clip, n_classes, self.arch.teacher_text_ctx,
                                                        self.arch.teacher_text_depth)
        return self._text[n_classes]

    def class_vectors(self, n_classes: int) -> torch.Tensor:
        """Ours: W [C, D], computed once before training (here: random unit vectors)."""
        if n_classes not in self._weights:
            w = torch.empty(n_classes, self.embed_dim, device=self.device)
            if self.device.type != "meta":
                w = F.normalize(torch.randn(n_classes, self.embed_dim, device=self.device), dim=-1)
            self._weights[n_classes] = w
        return self._weights[n_classes]

    def images(self, batch: int) -> torch.Tensor:
        shape = (batch, 3, self.arch.image_size, self.arch.image_size)
        if self.device.type == "meta":
            return torch.empty(shape, device=self.device)
        return torch.randn(shape, device=self.device)

    def modules_of(self, path: str, n_classes: int, kind: str = "step") -> List[Any]:
        """What a run of ``path`` holds in memory (for the memory accounting): ours = student (+ the
        teacher's image tower and the optimizer when training) + W; the reference also keeps the whole
        teacher CLIP with its text tower and prompt learner, at test time too."""
        held: List[Any] = [self.student]
        if kind == "step":
            held.append(self.optim)
        if path == "reference":
            held += [self.teacher_encoder, self.teacher_clip, self.text_branch(n_classes)]
        else:
            if kind == "step":
                held.append(self.teacher_encoder)
            held.append(self.class_vectors(n_classes))
        return held

    # ------------------------------------------------------------------ the measured computations
    def _student_backward(self, loss: torch.Tensor) -> None:
        self.optim.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            loss.backward()
            self.optim.step()

    def step(self, path: str, images: torch.Tensor, n_classes: int) -> torch.Tensor:
        """One distillation step (KD_WEIGHT 1000, T = 1, kl_reference)."""
        with self._blocks(path):
            return self._step(path, images, n_classes)

    #: ``--ours-full-blocks``: ours also runs every block whole (the computation before the partial blocks)
    ours_full_blocks = False

    def _blocks(self, path: str):
        """The reference runs every block of the image towers on all tokens (open_clip's forward)."""
        full = path == "reference" or self.ours_full_blocks
        return clip.full_blocks() if full else contextlib.nullcontext()

    def _step(self, path: str, images: torch.Tensor, n_classes: int) -> torch.Tensor:
        self.student.train()
        with torch.no_grad():
            with self.autocast():
                if path == "reference":
                    weights = self.text_branch(n_classes)()  # all C classes, every step (docs/REFERENCE.md D17)
                else:
                    weights = self.class_vectors(n_classes)
                u_t = self.teacher_encoder(images)
            teacher_logits = cosine_logits(u_t, weights, self.teacher_scale)
        with self.autocast():
            f_s = self.student(images)
        student_logits = cosine_logits(f_s, weights, self.student.logit_scale)
        loss = 1000.0 * self.kd_loss(student_logits, teacher_logits, 1.0)
        self._student_backward(loss)
        return loss.detach()

    def replay_step(self, images: torch.Tensor, n_classes: int) -> torch.Tensor:
        """A teacher-cache replay step (ours): the recorded teacher logits are read, not computed; the
        step is the student's forward / backward + KD loss + SGD step."""
        self.student.train()
        shape = (images.shape[0], n_classes)
        teacher_logits = (torch.empty(shape, device=self.device) if self.device.type == "meta"
                          else torch.randn(shape, device=self.device))
        with self._blocks("ours"), self.autocast():
            f_s = self.student(images)
        student_logits = cosine_logits(f_s, self.class_vectors(n_classes), self.student.logit_scale)
        loss = 1000.0 * self.kd_loss(student_logits, teacher_logits, 1.0)
        self._student_backward(loss)
        return loss.detach()

    @torch.no_grad()
    def infer(self, path: str, images: torch.Tensor, n_classes: int) -> torch.Tensor:
        """Test-time logits of one batch."""
        self.student.eval()
        with self._blocks(path), self.autocast():
            if path == "reference":
                weights = self.text_branch(n_classes)()  # per test batch (docs/REFERENCE.md D18)
                u_t = self.teacher_encoder(images)  # computed, used for nothing but the unused teacher logits
                cosine_logits(u_t, weights, self.teacher_scale)
            else:
                weights = self.class_vectors(n_classes)
            f_s = self.student(images)
        return cosine_logits(f_s, weights, self.student.logit_scale)

    @torch.no_grad()
    def student_forward(self, images: torch.Tensor) -> torch.Tensor:
        """The student alone (eval mode): image tower + prompts + projector, no logits."""
        self.student.eval()
        with self._blocks("ours"), self.autocast():
            return self.student(images)

    @torch.no_grad()
    def text_only(self, n_classes: int) -> torch.Tensor:
        with self.autocast():
            return self.text_branch(n_classes)()


def _sections(models: BenchModels) -> Dict[str, Sequence[nn.Module]]:
    """Modules whose forward calls bracket a section's FLOPs. The image towers are bracketed by their
    callers (the teacher's image encoder, the student model): their first / last blocks are computed
    partially from the blocks' own modules (clip/encoders.py), without calling the block as a whole."""
    teacher = models.teacher_clip
    return {"text": list(teacher.transformer.resblocks),
            "teacher": list(teacher.transformer.resblocks) + [models.teacher_encoder],
            "student": [models.student]}


# ------------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------------
def _count_all(meta: "BenchModels", sections: Dict[str, Sequence[nn.Module]], classes: Sequence[int],
               batches: Sequence[int], test_batch: int, device: torch.device) -> Tuple[List[Dict[str, Any]], int]:
    """FLOPs (and, off CUDA, peak memory) of every (row, C, path) on the meta device."""
    rows: List[Dict[str, Any]] = []
    plan = [("step", b) for b in batches] + [("infer", test_batch)]
    for kind, batch in plan:
        for c in classes:
            for path in PATHS:
                images = meta.images(batch)
                fn = (lambda p=path, x=images, n=c: meta.step(p, x, n)) if kind == "step" else (
                    lambda p=path, x=images, n=c: meta.infer(p, x, n))
                flops = count_flops(fn, sections)
                held = meta.modules_of(path, c, kind)
                mem = peak_memory(fn, held, torch.device("meta")) if device.type != "cuda" else None
                rows.append({"kind": kind, "batch": batch, "classes": c, "path": path, "flops": flops["total"],
                             "text_flops": flops["text"], "teacher_flops": flops["teacher"],
                             "student_fwd_flops": flops["student"], "peak_bytes": mem,
                             "time_s": None, "time_note": None})
    # student-only forward FLOPs of a test batch (the inference must-show)
    student_only = count_flops(lambda: meta.student_forward(meta.images(test_batch)))["total"]
    # a teacher-cache replay step at the first training batch and class count
    replay = {"batch": batches[0], "classes": classes[0],
              "flops": count_flops(lambda: meta.replay_step(meta.images(batches[0]), classes[0]))["total"]}
    return rows, student_only, replay


def _time_rows(real: BenchModels, rows: List[Dict[str, Any]], reps: int, warmup: int, timing: bool,
               max_timed_classes: int, log: Callable[[str], None], time_kinds: Sequence[str]) -> None:
    """CUDA peak memory and wall / CPU time of every (row, C, path) with the real models, into ``rows``."""
    device = real.device
    by_key = {(r["kind"], r["batch"], r["classes"], r["path"]): r for r in rows}
    for kind, batch, c in dict.fromkeys((r["kind"], r["batch"], r["classes"]) for r in rows):
        images = real.images(batch)
        call = real.step if kind == "step" else real.infer
        fns = {path: (lambda p=path: call(p, images, c)) for path in PATHS}
        if device.type == "cuda":
            for path in PATHS:
                by_key[(kind, batch, c, path)]["peak_bytes"] = peak_memory(fns[path], real.modules_of(path, c, kind),
                                                                           device)
        if not timing or kind not in time_kinds:
            continue
        scaled = c > max_timed_classes
        if scaled:  # the reference text branch is timed on max_timed_classes classes and scaled in C
            fns["reference"] = lambda: call("reference", images, max_timed_classes)
            fns["text"] = lambda: real.text_only(max_timed_classes)
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times: Dict[str, List[float]] = {k: [] for k in fns}
        cpu: Dict[str, List[float]] = {k: [] for k in fns}  # CPU time of this process (load-independent)
        for _ in range(max(1, reps)):  # interleaved, so that both paths see the same machine load
            for k, fn in fns.items():
                start_cpu = time.process_time()
                times[k].append(time_median(fn, device, 1, 0)[0])
                cpu[k].append(time.process_time() - start_cpu)
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        low = {k: min(v) for k, v in times.items()}
        for path in PATHS:
            row = by_key[(kind, batch, c, path)]
            row["time_s"] = med[path]
            row["time_min_s"] = low[path]
            row["times_s"] = times[path]
            row["cpu_time_s"] = med_cpu[path]
            row["time_note"] = f"median of {len(times[path])}"
            if path == "reference" and scaled:
                factor = (c - max_timed_classes) / max_timed_classes
                row["time_s"] = med["reference"] + med["text"] * factor
                row["time_min_s"] = low["reference"] + low["text"] * factor
                row["cpu_time_s"] = med_cpu["reference"] + med_cpu["text"] * factor
                row["text_times_s"] = times["text"]
                row["time_note"] += (f"; text branch timed on {max_timed_classes} classes, scaled "
                                     f"x{c / max_timed_classes:.2f}")
            log(f"[benchmark] {kind}@{batch} C={c} {path}: {row['time_s']:.3f} s")


def _add_ratios(rows: List[Dict[str, Any]], device: torch.device) -> None:
    """Reference / ours ratios and per-image inference numbers, into ``rows``."""
    by_key = {(r["kind"], r["batch"], r["classes"], r["path"]): r for r in rows}
    for r in rows:
        ours = by_key[(r["kind"], r["batch"], r["classes"], "ours")]
        r["flop_ratio_ref_over_ours"] = r["flops"] / ours["flops"] if r["path"] == "reference" else 1.0
        if r["path"] == "reference" and r["time_s"] and ours["time_s"]:
            r["time_ratio_ref_over_ours"] = r["time_s"] / ours["time_s"]
            if device.type == "cpu" and r.get("cpu_time_s") and ours.get("cpu_time_s"):
                r["cpu_time_ratio_ref_over_ours"] = r["cpu_time_s"] / ours["cpu_time_s"]
            r["min_time_ratio_ref_over_ours"] = r["time_min_s"] / ours["time_min_s"]
        else:
            r["time_ratio_ref_over_ours"] = 1.0 if r["time_s"] else None
        if r["kind"] == "infer":
            r["flops_per_image"] = r["flops"] / r["batch"]
            r["time_per_image_s"] = r["time_s"] / r["batch"] if r["time_s"] else None


def _run_info(arch: ArchSpec, device: torch.device, prec: str, reps: int, warmup: int, timing: bool,
              time_kinds: Sequence[str]) -> Dict[str, Any]:
    """The "meta" block of a result: architecture, machine and how each number was measured."""
    return {
        "arch": arch.name, "teacher": arch.teacher, "student": arch.student, "image_size": arch.image_size,
        "prompts": {"student": [arch.student_ctx, arch.student_depth],
                    "teacher_vision": [arch.teacher_vision_ctx, arch.teacher_vision_depth],
                    "teacher_text": [arch.teacher_text_ctx, arch.teacher_text_depth]},
        "device": str(device), "prec": prec, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs".strip(),
        "flops_method": "FlopCounterMode on the meta device, MHA fast path disabled, forward+backward",
        "memory_method": "torch.cuda.max_memory_allocated" if device.type == "cuda" else
        "live-tensor accounting on the meta device (params+buffers+activations+grads+optimizer+temps)",
        "time_method": (f"median of {reps} runs after {warmup} warm-up(s) on {device}"
                        + ("" if set(time_kinds) >= {"step", "infer"} else f", {'/'.join(time_kinds)} rows only")
                        if timing else "not timed"),
        "weights": "random (architecture only)",
    }


def run_benchmark(arch: ArchSpec, classes: Sequence[int], batches: Sequence[int], test_batch: int,
                  device: torch.device, prec: str = "fp32", reps: int = 3, warmup: int = 0, timing: bool = True,
                  max_timed_classes: int = 128, log: Callable[[str], None] = print,
                  time_kinds: Sequence[str] = ("step", "infer")) -> Dict[str, Any]:
    """Measure every (row, C, path); returns {"meta", "rows", "checks"} (see the module docstring)."""
    log(f"[benchmark] counting FLOPs / memory on the meta device ({arch.name})")
    meta = BenchModels(arch, torch.device("meta"), "fp32")
    sections = _sections(meta)
    with meta_safe_autocast():
        rows, student_only, replay = _count_all(meta, sections, classes, batches, test_batch, device)
    del meta

    if timing or device.type == "cuda":
        log(f"[benchmark] building the real models on {device} ({prec})")
        real = BenchModels(arch, device, prec)
        _time_rows(real, rows, reps, warmup, timing, max_timed_classes, log, time_kinds)
        del real

    _add_ratios(rows, device)
    checks = _checks(rows, classes, batches, student_only / test_batch)
    online = next(r["flops"] for r in rows if (r["kind"], r["batch"], r["classes"], r["path"])
                  == ("step", replay["batch"], replay["classes"], "ours"))
    checks["replay_step"] = dict(replay, online_flops=online, online_over_replay=online / replay["flops"])
    return {"meta": _run_info(arch, device, prec, reps, warmup, timing, time_kinds), "rows": rows, "checks": checks}


def _checks(rows: List[Dict[str, Any]], classes: Sequence[int], batches: Sequence[int],
            student_only_per_image: float) -> Dict[str, Any]:
    out: Dict[str, Any] = {"student_only_forward_flops_per_image": student_only_per_image}
    ours_infer = [r for r in rows if r["kind"] == "infer" and r["path"] == "ours"]
    out["ours_inference_teacher_flops"] = max(r["teacher_flops"] for r in ours_infer)
    out["ours_inference_flops_per_image_over_student_only"] = {
        str(r["classes"]): r["flops_per_image"] / student_only_per_image for r in ours_infer}
    out["ours_step_text_flops"] = max(r["text_flops"] for r in rows if r["kind"] == "step" and r["path"] == "ours")
    out["step_flop_ratio_ref_over_ours"] = {
        f"C={r['classes']},B={r['batch']}": r["flop_ratio_ref_over_ours"]
        for r in rows if r["kind"] == "step" and r["path"] == "reference"}
    out["step_time_ratio_ref_over_ours"] = {
        f"C={r['classes']},B={r['batch']}": r["time_ratio_ref_over_ours"]
        for r in rows if r["kind"] == "step" and r["path"] == "reference"}
    out["step_cpu_time_ratio_ref_over_ours"] = {
        f"C={r['classes']},B={r['batch']}": r.get("cpu_time_ratio_ref_over_ours")
        for r in rows if r["kind"] == "step" and r["path"] == "reference"}
    return out


def format_table(result: Dict[str, Any]) -> str:
    """The result as a fixed-width text table (what the CLI prints)."""
    meta = result["meta"]
    head = (f"{'row':<10} {'C':>5} {'path':<9} {'GFLOPs':>11} {'text GF':>10} {'teacher GF':>11} "
            f"{'time':>10} {'peak MiB':>9} {'FLOP x':>7} {'time x':>7}  note")
    lines = [f"PromptKD benchmark: {meta['arch']} ({meta['image_size']} px), device {meta['device']}, prec "
             f"{meta['prec']}, {meta['threads']} threads",
             f"FLOPs: {meta['flops_method']}; memory: {meta['memory_method']}; time: {meta['time_method']}",
             "step rows: per distillation step of the batch; infer rows: per test IMAGE (batch shown)", head,
             "-" * len(head)]
    for r in result["rows"]:
        per = r["batch"] if r["kind"] == "infer" else 1
        gf = r["flops"] / per / 1e9
        tf = r["text_flops"] / per / 1e9
        th = r["teacher_flops"] / per / 1e9
        t = r["time_s"] / per if r["time_s"] is not None else None
        time_s = "-" if t is None else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")
        mem = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.0f}"
        fx = f"{r['flop_ratio_ref_over_ours']:.2f}" if r["path"] == "reference" else ""
        tx = f"{r['time_ratio_ref_over_ours']:.2f}" if r["path"] == "reference" and r["time_ratio_ref_over_ours"] else ""
        note = "text timing scaled" if r["time_note"] and "scaled" in r["time_note"] else ""
        lines.append(f"{r['kind'] + '@' + str(r['batch']):<10} {r['classes']:>5} {r['path']:<9} {gf:>11.4g} "
                     f"{tf:>10.4g} {th:>11.4g} {time_s:>10} {mem:>9} {fx:>7} {tx:>7}  {note}")
    c = result["checks"]
    lines.append("")
    lines.append(f"inference (ours): teacher GFLOPs = {c['ours_inference_teacher_flops'] / 1e9:g}; GFLOPs/image = "
                 f"student-only forward x {', '.join(f'{v:.4f} (C={k})' for k, v in c['ours_inference_flops_per_image_over_student_only'].items())} "
                 f"(student-only forward {c['student_only_forward_flops_per_image'] / 1e9:.4g} GFLOPs/image; the rest is the "
                 "C-class logits)")
    lines.append(f"distillation step (ours): text-encoder GFLOPs = {c['ours_step_text_flops'] / 1e9:g}")
    if "replay_step" in c:
        rp = c["replay_step"]
        lines.append(f"teacher-cache replay step (ours, batch {rp['batch']}, C={rp['classes']}): "
                     f"{rp['flops'] / 1e9:.2f} GFLOPs, {rp['online_over_replay']:.2f}x fewer than the online step "
                     f"({rp['online_flops'] / 1e9:.2f})")
    lines.append("reference/ours per step: FLOPs " + ", ".join(f"{k}: {v:.2f}" for k, v in
                                                            c["step_flop_ratio_ref_over_ours"].items()))
    if any(v for v in c["step_time_ratio_ref_over_ours"].values()):
        lines.append("reference/ours per step: wall time " + ", ".join(
            f"{k}: {v:.2f}" for k, v in c["step_time_ratio_ref_over_ours"].items() if v))
    if any(v for v in c.get("step_cpu_time_ratio_ref_over_ours", {}).values()):
        lines.append("reference/ours per step: CPU time " + ", ".join(
            f"{k}: {v:.2f}" for k, v in c["step_cpu_time_ratio_ref_over_ours"].items() if v))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny random architectures (32 px): runs in seconds")
    p.add_argument("--classes", type=int, nargs="+", default=[47, 1000], help="class counts (DTD 47, ImageNet 1000)")
    p.add_argument("--batch", type=int, nargs="+", default=[32],
                   help="training batch size(s) measured in addition to the paper's batch 8")
    p.add_argument("--test-batch", type=int, default=100, help="inference batch (reference config: 100)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="device for timing")
    p.add_argument("--prec", choices=["fp32", "bf16", "fp16", "amp"], default="fp32",
                   help="precision of the timed runs (fp16 / amp need CUDA)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions, interleaved ours/reference (median)")
    p.add_argument("--warmup", type=int, default=0, help="untimed warm-up runs per configuration")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 with --tiny, else torch's)")
    p.add_argument("--no-time", action="store_true", help="FLOPs and memory only (no real compute)")
    p.add_argument("--ours-full-blocks", action="store_true",
                   help="ours runs every image-tower block whole (the computation before the partial blocks)")
    p.add_argument("--time-kinds", nargs="+", choices=["step", "infer"], default=["step", "infer"],
                   help="which rows are timed (the others get FLOPs and memory only)")
    p.add_argument("--max-timed-classes", type=int, default=None,
                   help="reference text branch beyond this many classes is timed on this many and scaled linearly "
                   "(default 8 tiny, 128 real)")
    p.add_argument("--json", default="", help="output JSON (default output/benchmark/benchmark_<tiny|real>.json)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.tiny:
        torch.set_num_threads(1)  # tiny ops: extra threads only add synchronisation (10x slower on a busy machine)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    if args.prec in ("fp16", "amp") and device.type != "cuda":
        raise SystemExit(f"--prec {args.prec} needs CUDA (CPU supports fp32 and bf16)")
    if any(c < 1 for c in args.classes) or any(b < 1 for b in args.batch) or args.test_batch < 1:
        raise SystemExit("--classes, --batch and --test-batch must be positive")
    arch = ARCHS["tiny" if args.tiny else "real"]
    BenchModels.ours_full_blocks = bool(args.ours_full_blocks)
    warmup = args.warmup
    reps = args.reps
    max_timed = args.max_timed_classes if args.max_timed_classes is not None else (8 if args.tiny else 128)
    batches = sorted({8, *args.batch})
    result = run_benchmark(arch, args.classes, batches, args.test_batch, device, args.prec, reps, warmup,
                           timing=not args.no_time, max_timed_classes=max_timed, time_kinds=args.time_kinds)
    print(format_table(result))
    path = args.json or os.path.join("output", "benchmark", f"benchmark_{'tiny' if args.tiny else 'real'}.json")
    atomic_write_json(path, result)
    print(f"\nJSON written to {path}")
    return result


if __name__ == "__main__":
    main()
