"""DDP through ``torchrun`` (2 CPU processes, gloo) for a tiny PromptKD student.

The same global batch (1 process x 20 images vs 2 processes x 10 images), seed and deterministic
transforms (one step per epoch over the whole training set, so the data order cannot matter) must give
the same student: stated tolerance 1e-4 on every prompt / projector tensor (float summation order
differs; the projector's BatchNorm uses global-batch statistics through engine.dist.DistributedBatchNorm)
and the same base / novel accuracy within one test image. The DDP evaluation covers every test image
exactly once: the per-rank shards are disjoint and their gathered total equals the set size.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

import train
from engine.data.samplers import DistributedEvalSampler
from engine.dist import DistributedBatchNorm, convert_sync_batchnorm, linear_scaled_lr, rank_seed
from tests.helpers.fake_roots import make_root
from tests.helpers.tiny_env import save_tiny_clips, start_torchrun, tiny_student_args

torch.set_num_threads(1)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAM_ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("fast_env_info")


def _common_args(root, student, teacher, out, batch):
    return tiny_student_args(root, student, teacher, out, batch, 3)


def _state(out):
    path = os.path.join(out, "VLPromptLearner", "model.pth.tar-3")
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_torchrun_two_processes_match_one_process(tmp_path):
    root = make_root("DescribableTextures", tmp_path, n_classes=4, per_class=10)  # 20 train, 6 base + 6 novel test
    clips = save_tiny_clips(tmp_path)
    student, teacher = clips["tiny-vit-student"], clips["tiny-vit-teacher"]

    ddp_out = tmp_path / "ddp"
    start = time.time()
    proc = start_torchrun(_common_args(root, student, teacher, ddp_out, 10), REPO)
    # the single-process run overlaps with the torchrun start-up
    single_out = tmp_path / "single"
    train.main(_common_args(root, student, teacher, single_out, 20))
    log, _ = proc.communicate(timeout=240)
    elapsed = time.time() - start
    assert proc.returncode == 0, log[-5000:]

    # ---- same student within the stated tolerance, and it really trained
    a, b = _state(single_out), _state(ddp_out)
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=PARAM_ATOL, rtol=0), k
    # ... and the runs really trained: far from the (seeded) initialisation
    fresh = train.main(["--no-train"] + _common_args(root, student, teacher, tmp_path / "init", 20))
    init = {k: v.detach() for k, v in fresh.model.state_dict().items() if k in a}
    assert max(float((a[k].float() - init[k].float()).abs().max()) for k in a) > 100 * PARAM_ATOL
    assert a["projector.1.num_batches_tracked"].item() == b["projector.1.num_batches_tracked"].item() == 3

    # ---- same accuracy (within one image) on the same evaluation sets
    rs = json.loads((single_out / "results.json").read_text())
    rd = json.loads((ddp_out / "results.json").read_text())
    for name in ("base", "novel"):
        n = rs["metrics"][name]["num_images"]
        assert n == rd["metrics"][name]["num_images"] == 6
        assert abs(rs["metrics"][name]["accuracy"] - rd["metrics"][name]["accuracy"]) <= 100.0 / n + 1e-9

    # ---- rank-0 logging, gathered evaluation over every test image exactly once
    text = (ddp_out / "log.txt").read_text()
    assert "Distributed run: rank 0 of 2" in text and "Global batch = 10 x 2 = 20" in text
    assert "1 BatchNorm layer(s) synchronised" in text
    assert text.count("* total: 6\n") == 2  # base and novel: 3 images on each rank, gathered
    assert not [f for f in os.listdir(ddp_out) if f.startswith("log.txt-")]
    assert sorted(os.listdir(ddp_out / "VLPromptLearner")) == ["checkpoint", "model.pth.tar-3"]
    assert elapsed < 120, f"torchrun test took {elapsed:.1f}s"


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_distributed_eval_shards_are_disjoint_and_exhaustive(world):
    for n in range(0, 11):
        data = list(range(n))
        shards = [list(DistributedEvalSampler(data, num_replicas=world, rank=r)) for r in range(world)]
        flat = [i for s in shards for i in s]
        assert sorted(flat) == data  # every item exactly once, no padding
        assert [len(s) for s in shards] == [len(DistributedEvalSampler(data, world, r)) for r in range(world)]


def test_sync_batchnorm_conversion_keeps_parameters_and_is_batchnorm_in_one_process():
    import copy

    from trainers.promptkd import build_projector

    torch.manual_seed(0)
    proj = build_projector(8, 16, 2)
    reference = copy.deepcopy(proj)
    bn = proj[1]
    optim = torch.optim.SGD(proj.parameters(), lr=0.1)
    assert convert_sync_batchnorm(proj) == 1 and isinstance(proj[1], DistributedBatchNorm)
    # the SAME parameter / buffer objects: the optimizer built before and the checkpoint keys still apply
    assert proj[1].weight is bn.weight and proj[1].running_mean is bn.running_mean
    assert any(p is proj[1].weight for g in optim.param_groups for p in g["params"])
    assert list(proj.state_dict()) == list(reference.state_dict())
    x = torch.randn(6, 8)
    proj.train(), reference.train()
    assert torch.allclose(proj(x), reference(x), atol=1e-6)
    assert torch.allclose(proj[1].running_var, reference[1].running_var, atol=1e-6)
    proj.eval(), reference.eval()
    assert torch.allclose(proj(x), reference(x), atol=1e-6)
    assert convert_sync_batchnorm(proj) == 0  # idempotent


def test_lr_scaling_rule_and_rank_seeds():
    assert linear_scaled_lr(0.005, 8, 256) == pytest.approx(0.16)  # the author's ImageNet setting
    assert linear_scaled_lr(0.005, 8, 16) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="positive"):
        linear_scaled_lr(0.005, 0, 8)
    assert rank_seed(1, 0) == 1 and rank_seed(1, 1) != rank_seed(1, 2) != 1
