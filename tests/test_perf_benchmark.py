"""tools/benchmark.py and tools/loader_benchmark.py: the must-show FLOP properties and the tools' outputs.

FLOPs are deterministic; the real architectures (ViT-L/14 teacher, ViT-B/16 student) are counted on the
meta device, so this needs neither weights nor compute.
"""

from __future__ import annotations

import json

import pytest
import torch

import clip
from tools import benchmark as bench
from tools import loader_benchmark as lb

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def real_meta():
    models = bench.BenchModels(bench.ARCHS["real"], torch.device("meta"))
    return models, bench._sections(models)


def _count(models, sections, fn):
    with bench.meta_safe_autocast():
        return bench.count_flops(fn, sections)


def test_real_architectures_step_flops_ratio_and_no_text_work(real_meta):
    models, sections = real_meta
    x = models.images(8)
    ours = {c: _count(models, sections, lambda c=c: models.step("ours", x, c)) for c in (47, 1000)}
    ref = {c: _count(models, sections, lambda c=c: models.step("reference", x, c)) for c in (47, 1000)}
    # the reference's teacher image tower runs its last block on all N tokens; ours on the class token:
    # analytic matmul FLOPs of one ViT-L/14 block (2*m*n*k per product): full = 24 N W^2 + 4 N^2 W
    # (qkv 6, out 2, MLP 16 N W^2; scores + weighted values 4 N^2 W), class token only =
    # 4 N W^2 (k, v of all tokens) + 2 W^2 (q) + 2 W^2 (out) + 16 W^2 (MLP) + 4 N W (attention)
    n, w = 1 + 16 * 16 + 4, 1024
    saved_per_image = (24 * n * w * w + 4 * n * n * w) - (4 * n * w * w + 20 * w * w + 4 * n * w)
    for c in (47, 1000):
        assert ours[c]["text"] == 0  # the distillation step never runs the text encoder
        assert ours[c]["teacher"] > 0
        assert ref[c]["teacher"] - ref[c]["text"] - ours[c]["teacher"] == 8 * saved_per_image
    # the reference re-encodes all class prompts every step: exactly linear in C
    assert ref[1000]["text"] * 47 == ref[47]["text"] * 1000
    r47 = ref[47]["total"] / ours[47]["total"]
    r1000 = ref[1000]["total"] / ours[1000]["total"]
    assert r47 >= 1.39 and r1000 >= 8.3, (r47, r1000)
    # orders of magnitude of design.md: ViT-L/14 image ~165 GFLOPs, text ~13 GFLOPs per 77-token prompt
    assert 150e9 < ours[47]["teacher"] / 8 < 180e9
    assert 10e9 < ref[47]["text"] / 47 < 20e9


def test_real_architectures_inference_is_student_only(real_meta):
    models, sections = real_meta
    x = models.images(4)
    student_only = _count(models, sections, lambda: models.student_forward(x))["total"]
    for c in (47, 1000):
        ours = _count(models, sections, lambda c=c: models.infer("ours", x, c))
        assert ours["teacher"] == 0 and ours["text"] == 0
        # student forward + the [B, D] x [D, C] logits matmul, nothing else
        assert ours["total"] == student_only + 2 * 4 * models.embed_dim * c
        ref = _count(models, sections, lambda c=c: models.infer("reference", x, c))
        assert ref["teacher"] > 4 * ours["total"] and ref["text"] > 0


def test_tiny_benchmark_end_to_end(tmp_path):
    result = bench.run_benchmark(bench.ARCHS["tiny"], classes=[3, 12], batches=[8], test_batch=4,
                                 device=torch.device("cpu"), reps=1, warmup=0, timing=True, max_timed_classes=6,
                                 log=lambda msg: None)
    rows = result["rows"]
    assert [(r["kind"], r["batch"], r["classes"], r["path"]) for r in rows] == [
        (k, b, c, p) for k, b in (("step", 8), ("infer", 4)) for c in (3, 12) for p in ("ours", "reference")]
    by = {(r["kind"], r["classes"], r["path"]): r for r in rows}
    for r in rows:
        assert r["flops"] > 0 and r["time_s"] > 0 and r["peak_bytes"] > 0
        if r["path"] == "reference":
            assert r["flop_ratio_ref_over_ours"] == r["flops"] / by[(r["kind"], r["classes"], "ours")]["flops"]
            assert r["time_ratio_ref_over_ours"] > 0
            # the reference keeps the teacher's text tower in memory and encodes C prompts
            assert r["peak_bytes"] > by[(r["kind"], r["classes"], "ours")]["peak_bytes"]
    assert "scaled" in by[("step", 12, "reference")]["time_note"]  # 12 > max_timed_classes
    assert "scaled" not in by[("step", 3, "reference")]["time_note"]
    # the reference step costs exactly ours with every block on all tokens + its text branch over all classes
    meta = bench.BenchModels(bench.ARCHS["tiny"], torch.device("meta"))
    text12 = _count(meta, {}, lambda: meta.text_only(12))["total"]
    with clip.full_blocks():
        ours_full = _count(meta, {}, lambda: meta.step("ours", meta.images(8), 12))["total"]
    assert by[("step", 12, "reference")]["flops"] == ours_full + text12
    assert ours_full > by[("step", 12, "ours")]["flops"]
    checks = result["checks"]
    assert checks["ours_step_text_flops"] == 0 and checks["ours_inference_teacher_flops"] == 0
    table = bench.format_table(result)
    assert "step@8" in table and "infer@4" in table and "text-encoder GFLOPs = 0" in table

    out = tmp_path / "bench.json"
    bench.main(["--tiny", "--no-time", "--classes", "3", "--batch", "4", "--test-batch", "2", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["meta"]["flops_method"].startswith("FlopCounterMode") and "fast path disabled" in saved["meta"]["flops_method"]
    assert {(r["kind"], r["batch"]) for r in saved["rows"]} == {("step", 4), ("step", 8), ("infer", 2)}
    assert all(r["time_s"] is None for r in saved["rows"])


def test_peak_tensor_memory_counts_live_tensors():
    held = torch.zeros(1024)  # 4 KiB

    def work():
        a = held * 2  # +4 KiB
        b = torch.cat([a, a])  # +8 KiB -> peak 16 KiB
        del a, b
        c = held + 1  # back to 8 KiB
        return c

    assert bench.peak_memory(work, [held], torch.device("cpu")) == 16 * 1024
    lin = torch.nn.Linear(256, 256)  # 257 KiB of parameters
    assert bench.peak_memory(lambda: None, [lin], torch.device("cpu")) == (256 * 256 + 256) * 4


def test_loader_benchmark(tmp_path):
    items = lb.make_jpegs(str(tmp_path / "jpg"), 8, size=32)
    assert len(items) == 8 and all(d.impath.endswith(".jpg") for d in items)
    rows = lb.run(items, [0, 1], batch=4, epochs=2, size=32)
    assert [(r["workers"], r["persistent_workers"]) for r in rows] == [(0, False), (1, True), (1, False)]
    assert rows[1]["prefetch_factor"] == 2 and rows[1]["pin_memory"] == torch.cuda.is_available()
    for r in rows:
        assert r["first_epoch_images_per_s"] > 0 and r["steady_images_per_s"] > 0 and len(r["epoch_times_s"]) == 2
    out = tmp_path / "loader.json"
    lb.main(["--images", "8", "--size", "32", "--batch", "4", "--workers", "0", "--epochs", "2",
             "--dir", str(tmp_path / "jpg2"), "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["meta"]["images"] == 8 and saved["rows"][0]["workers"] == 0
