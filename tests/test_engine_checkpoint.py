"""Checkpoints: Dassl layout, pointer file, atomic writes, load_model/resume behaviour."""

import os

import pytest
import torch
import torch.nn as nn

from engine.checkpoint import load_checkpoint, load_pretrained_weights, resume_from_checkpoint, save_checkpoint
from engine.trainer import TrainerBase


class _Holder(TrainerBase):
    """Minimal concrete TrainerBase (no data) to exercise the model registry and checkpoint methods."""

    def run_epoch(self):
        pass

    def test(self, split=None):
        return 0.0

    def parse_batch_train(self, batch):
        return batch

    def parse_batch_test(self, batch):
        return batch

    def model_inference(self, input):
        return input


def _linear(seed):
    torch.manual_seed(seed)
    return nn.Linear(4, 3)


def _holder(model, with_optim=True):
    h = _Holder()
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if with_optim else None
    sched = torch.optim.lr_scheduler.StepLR(optim, 1) if with_optim else None
    h.register_model("prompt_learner", model, optim, sched)
    return h


def test_save_model_dassl_layout_and_pointer(tmp_path):
    h = _holder(_linear(0))
    h.save_model(1, str(tmp_path))  # epoch index 1 -> file "-2"
    d = tmp_path / "prompt_learner"
    assert sorted(os.listdir(d)) == ["checkpoint", "model.pth.tar-2"]
    assert (d / "checkpoint").read_text() == "model.pth.tar-2\n"
    ck = load_checkpoint(str(d / "model.pth.tar-2"))
    assert set(ck) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result"}
    assert ck["epoch"] == 2 and ck["val_result"] is None
    assert torch.equal(ck["state_dict"]["weight"], h._models["prompt_learner"].weight)

    # a model-best save writes the file but keeps the pointer on the last regular save (docs/REFERENCE.md D9 fix)
    h.save_model(0, str(tmp_path), val_result=55.5, model_name="model-best.pth.tar")
    assert (d / "checkpoint").read_text() == "model.pth.tar-2\n"
    assert load_checkpoint(str(d / "model-best.pth.tar"))["val_result"] == 55.5


def test_save_checkpoint_strips_module_and_is_best_copy(tmp_path):
    state = {"state_dict": {"module.w": torch.ones(2)}, "epoch": 3}
    path = save_checkpoint(state, str(tmp_path), is_best=True)
    assert os.path.basename(path) == "model.pth.tar-3"
    assert list(load_checkpoint(path)["state_dict"]) == ["w"]
    assert torch.equal(load_checkpoint(str(tmp_path / "model-best.pth.tar"))["state_dict"]["w"], torch.ones(2))


def test_save_is_atomic_when_torch_save_fails(tmp_path, monkeypatch):
    model = _linear(0)
    save_checkpoint({"state_dict": model.state_dict(), "epoch": 1}, str(tmp_path))
    before = (tmp_path / "model.pth.tar-1").read_bytes()

    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # write the full payload ...
        f.seek(10)
        f.truncate()  # ... then leave a truncated file and crash, as a killed process would
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"state_dict": _linear(1).state_dict(), "epoch": 1}, str(tmp_path))
    monkeypatch.setattr(torch, "save", real_save)

    assert (tmp_path / "model.pth.tar-1").read_bytes() == before
    assert torch.equal(load_checkpoint(str(tmp_path / "model.pth.tar-1"))["state_dict"]["weight"], model.weight)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.pth.tar-1"]  # no temp file left behind


def test_load_model_with_val_result_none_and_strictness(tmp_path, caplog):
    src = _holder(_linear(0))
    src.save_model(4, str(tmp_path))  # model.pth.tar-5, val_result None (crashed Dassl's load_model)
    dst = _holder(_linear(1), with_optim=False)
    with caplog.at_level("INFO"):
        dst.load_model(str(tmp_path), epoch=5)
    assert torch.equal(dst._models["prompt_learner"].weight, src._models["prompt_learner"].weight)
    assert "epoch=5, val_result=None" in caplog.text

    # strict by default: a mismatching model raises with the file name and the keys
    other = _Holder()
    other.register_model("prompt_learner", nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(RuntimeError, match=r"model\.pth\.tar-5.*missing keys \['0.weight', '0.bias'\]"):
        other.load_model(str(tmp_path), epoch=5)
    # non-strict: warns instead of silently ignoring
    with caplog.at_level("WARNING"):
        other.load_model(str(tmp_path), epoch=5, strict=False)
    assert "unexpected keys ['weight', 'bias']" in caplog.text

    with pytest.raises(FileNotFoundError, match=r"model\.pth\.tar-9.*model\.pth\.tar-5"):
        dst.load_model(str(tmp_path), epoch=9)
    dst.load_model("")  # empty directory: skipped with a note, no error


def test_resume_restores_model_optimizer_scheduler(tmp_path):
    src = _holder(_linear(0))
    model = src._models["prompt_learner"]
    model(torch.randn(2, 4)).sum().backward()
    src._optims["prompt_learner"].step()
    src._scheds["prompt_learner"].step()
    src.save_model(2, str(tmp_path))

    dst = _holder(_linear(1))
    assert dst.resume_model_if_exist(str(tmp_path)) == 3
    assert torch.equal(dst._models["prompt_learner"].weight, model.weight)
    assert dst._optims["prompt_learner"].param_groups[0]["lr"] == pytest.approx(0.01)
    assert dst._scheds["prompt_learner"].last_epoch == 1
    assert "momentum_buffer" in next(iter(dst._optims["prompt_learner"].state.values()))

    assert _holder(_linear(2)).resume_model_if_exist(str(tmp_path / "elsewhere")) == 0
    with pytest.raises(FileNotFoundError, match="pointer"):
        resume_from_checkpoint(str(tmp_path / "elsewhere"), _linear(3))


def test_load_checkpoint_missing_and_pretrained_partial(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(str(tmp_path / "nothing.pth"))
    big = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    donor = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5))  # second layer has another shape
    torch.save({"state_dict": {"module." + k: v for k, v in donor.state_dict().items()}}, tmp_path / "w.pth")
    with caplog.at_level("INFO"):
        load_pretrained_weights(big, str(tmp_path / "w.pth"))
    assert torch.equal(big[0].weight, donor[0].weight)
    assert "discarded" in caplog.text and "1.weight" in caplog.text


def test_numbered_checkpoints_lists_only_epoch_files_in_epoch_order(tmp_path):
    from engine.checkpoint import numbered_checkpoint_name, numbered_checkpoints

    for name in ["model.pth.tar-2", "model.pth.tar-10", "model.pth.tar-3.tmp", "model-best.pth.tar", "checkpoint"]:
        (tmp_path / name).write_bytes(b"")
    assert numbered_checkpoints(str(tmp_path)) == [(2, str(tmp_path / "model.pth.tar-2")),
                                                   (10, str(tmp_path / "model.pth.tar-10"))]
    assert numbered_checkpoints(str(tmp_path / "missing")) == []
    assert numbered_checkpoint_name(7) == "model.pth.tar-7"
