"""One device-to-host synchronisation per training step (docs/PERFORMANCE.md "Host synchronisations").

On CPU nothing waits for a device, so the test counts the calls that WOULD synchronise with a GPU: every
read of a tensor's value by the host (``Tensor.item``, ``tolist``, ``numpy``, ``cpu``, and the implicit
ones ``bool(t)`` / ``if t``, ``float(t)``, ``int(t)``, ``t.__index__``), patched on ``torch.Tensor`` while a
training step (``_run_step``: forward, backward, guard, optimiser step) and its logging (``_log_progress``)
run. Data loading (host tensors on a GPU machine too) is outside the counted region.

Expected: 1 per step (the non-finite guard in ``PromptTrainer.optimize``), plus one read of all the loss
meters at each ``TRAIN.PRINT_FREQ`` step. The values logged are the ones the steps produced: the epoch
means in metrics.csv equal the mean of the per-step values read after the fact.
"""

from __future__ import annotations

import math

import pytest
import torch

import train
from tests.helpers.tiny_env import make_tiny_env
from trainers.common.base import PromptTrainer

READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")

pytestmark = pytest.mark.usefixtures("run_hygiene", "one_thread")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("host_sync"))


class SyncCounter:
    """Counts host reads of tensor values inside the counted region (see the module docstring)."""

    def __init__(self, monkeypatch):
        self.active = False
        self.count = 0
        self.per_step = []  # (step index, reads in _run_step, reads in _log_progress)
        self.step_values = []  # the step's summary, read AFTER the counted region
        for name in READS:
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(real))
        real_run, real_log = PromptTrainer._run_step, PromptTrainer._log_progress
        counter = self

        def run_step(tr, *batches):
            n0 = counter._enter()
            out = real_run(tr, *batches)
            counter.per_step.append([tr.batch_idx, counter._leave(n0), None])
            counter.step_values.append(out)
            return out

        def log_progress(tr, *args):
            n0 = counter._enter()
            real_log(tr, *args)
            counter.per_step[-1][2] = counter._leave(n0)

        monkeypatch.setattr(PromptTrainer, "_run_step", run_step)
        monkeypatch.setattr(PromptTrainer, "_log_progress", log_progress)

    def _wrap(self, real):
        counter = self

        def read(t, *args, **kwargs):
            if counter.active:
                counter.count += 1
            return real(t, *args, **kwargs)
        return read

    def _enter(self):
        self.active = True
        return self.count

    def _leave(self, n0):
        self.active = False
        return self.count - n0


@pytest.mark.parametrize("trainer,node,backbone,extra", [
    ("PromptKD", "PROMPTKD", "student", ["TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot",
                                        "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "2"]),
    ("IVLP", "IVLP", "student", ["TRAINER.IVLP.PROMPT_DEPTH_VISION", "2", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2"]),
    ("PromptSRC", "PROMPTSRC", "student", ["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
                                          "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2"]),
])
def test_one_host_sync_per_step(env, tmp_path, monkeypatch, trainer, node, backbone, extra):
    counter = SyncCounter(monkeypatch)
    out = tmp_path / "run"
    tr = train.main(["--root", env["root"], "--seed", "1", "--trainer", trainer, "--dataset-config-file",
                     "configs/datasets/dtd.yaml", "--output-dir", str(out), "MODEL.BACKBONE.NAME", env[backbone],
                     "DATALOADER.NUM_WORKERS", "0", "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
                     "OPTIM.NAME", "sgd", "OPTIM.LR", "0.002", "DATALOADER.TRAIN_X.BATCH_SIZE", "2",
                     "TRAIN.PRINT_FREQ", "3", "TEST.NO_TEST", "True", f"TRAINER.{node}.PREC", "fp32",
                     "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"]] + extra)
    steps = counter.per_step
    assert [s[0] for s in steps] == list(range(6))  # 12 training images, batch 2
    for idx, in_step, in_log in steps:
        assert in_step == 1, f"step {idx + 1}: {in_step} host reads in the step (expected 1: the guard)"
        expected = 1 if (idx + 1) % 3 == 0 else 0
        assert in_log == expected, f"step {idx + 1}: {in_log} host reads in the logging (expected {expected})"
    # what was logged is what the steps produced (read after the fact, outside the counted region)
    row = tr.epoch_log[-1]
    for key in ("loss", "grad_norm"):
        values = [float(v[key]) for v in counter.step_values]
        assert all(math.isfinite(v) for v in values)
        assert row[key] == pytest.approx(sum(values) / len(values), rel=1e-9), key


def test_steps_equal_a_plain_pytorch_step(env, tmp_path):
    """The trainer's steps (deferred reads, guard after backward) give the same losses, gradient norms and
    parameters as a plain ``zero_grad / backward / step`` loop on an identically initialised copy."""
    def build(out):
        tr = train.main(["--root", env["root"], "--seed", "1", "--trainer", "PromptKD", "--no-train",
                         "--dataset-config-file", "configs/datasets/dtd.yaml", "--output-dir", str(out),
                         "--config-file", "configs/trainers/PromptKD/tiny_smoke.yaml",
                         "MODEL.BACKBONE.NAME", env["student"], "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot",
                         "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"], "TRAINER.PROMPTKD.PREC", "fp32",
                         "OPTIM.LR", "0.05"])
        tr.build_teacher_encoder()
        tr.set_model_mode("train")
        return tr

    ours, ref = build(tmp_path / "a"), build(tmp_path / "b")
    torch.manual_seed(3)
    pk = ref.cfg.TRAINER.PROMPTKD
    for _ in range(3):
        images = torch.randn(4, 3, 32, 32)
        got = ours.forward_backward({"img": images})
        s, t = ref.distillation_logits(images)
        loss = float(pk.KD_WEIGHT) * ref.kd_loss(s, t, float(pk.TEMPERATURE))
        ref.optim.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in ref.model.parameters() if p.requires_grad]
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        ref.optim.step()
        assert float(got["loss"]) == pytest.approx(loss.item(), rel=1e-6)
        assert float(got["grad_norm"]) == pytest.approx(norm.item(), rel=1e-6)
    for (name, a), b in zip(ours.model.named_parameters(), ref.model.parameters()):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), name
