"""End-to-end: train.main trains a tiny linear probe on generated PNGs, checkpoints it, resumes it
and reproduces its accuracy in --eval-only mode."""

import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from PIL import Image

import train
from engine import utils as engine_utils
from engine.api import (
    DATASET_REGISTRY,
    TRAINER_REGISTRY,
    DatasetBase,
    Datum,
    TrainerX,
    build_lr_scheduler,
    build_optimizer,
    compute_accuracy,
)
from engine.checkpoint import load_checkpoint

COLORS = {"blue": (30, 40, 200), "green": (40, 190, 40), "red": (210, 30, 30)}


class EngineTestTinyColors(DatasetBase):
    """Generated dataset: <ROOT>/tiny_colors/<split>/<class>/*.png (labels = sorted class folders)."""

    dataset_dir = "tiny_colors"

    def __init__(self, cfg):
        root = os.path.join(cfg.DATASET.ROOT, self.dataset_dir)
        splits = {}
        for split in ("train", "val", "test"):
            items = []
            for label, cname in enumerate(sorted(os.listdir(os.path.join(root, split)))):
                folder = os.path.join(root, split, cname)
                for fname in sorted(os.listdir(folder)):
                    items.append(Datum(impath=os.path.join(folder, fname), label=label, classname=cname))
            splits[split] = items
        super().__init__(train_x=splits["train"], val=splits["val"], test=splits["test"])


class EngineTestLinearProbe(TrainerX):
    """Linear probe on flattened images; records every test() result."""

    records = []

    def build_model(self):
        h, w = self.cfg.INPUT.SIZE
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(3 * h * w, self.num_classes)).to(self.device)
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("linear_probe", self.model, self.optim, self.sched)

    def forward_backward(self, batch):
        image, label, _domain = self.parse_batch_train(batch)
        output = self.model(image)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        if self.batch_idx + 1 == self.num_batches:
            self.update_lr()
        return {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}

    def model_inference(self, input):
        output = self.model(input)
        self._logit_sum += output.double().sum().item()
        return output

    def test(self, split=None):
        self._logit_sum = 0.0
        acc = super().test(split)
        type(self).records.append({"split": split, "epoch": self.epoch, "accuracy": acc, "logit_sum": self._logit_sum})
        return acc


def _make_images(root):
    gen = torch.Generator().manual_seed(0)
    counts = {"train": 6, "val": 2, "test": 4}
    for split, n in counts.items():
        for cname, rgb in COLORS.items():
            folder = root / "tiny_colors" / split / cname
            folder.mkdir(parents=True)
            for i in range(n):
                noise = torch.randint(-60, 60, (10, 10, 3), generator=gen)
                arr = (torch.tensor(rgb) + noise).clamp(0, 255).to(torch.uint8).numpy()
                Image.fromarray(arr).save(folder / f"{i}.png")


@pytest.fixture
def registered(monkeypatch):
    DATASET_REGISTRY.register(EngineTestTinyColors)
    TRAINER_REGISTRY.register(EngineTestLinearProbe)
    EngineTestLinearProbe.records = []
    # torch's collect_env shells out to pip/conda (seconds); the run only needs a string here
    monkeypatch.setattr(engine_utils, "collect_env_info", lambda: "env info (stubbed in tests)")
    torch.set_num_threads(1)
    yield
    DATASET_REGISTRY.unregister("EngineTestTinyColors")
    TRAINER_REGISTRY.unregister("EngineTestLinearProbe")
    engine_utils.close_logger()


def _argv(data_root, out, *extra):
    return [
        "--root",
        str(data_root),
        "--output-dir",
        str(out),
        "--seed",
        "1",
        "--trainer",
        "EngineTestLinearProbe",
        *extra,
        "DATASET.NAME",
        "EngineTestTinyColors",
        "INPUT.SIZE",
        "(8, 8)",
        "INPUT.TRANSFORMS",
        "['random_flip', 'normalize']",
        "DATALOADER.NUM_WORKERS",
        "0",
        "DATALOADER.TRAIN_X.BATCH_SIZE",
        "4",
        "DATALOADER.TEST.BATCH_SIZE",
        "5",
        "OPTIM.NAME",
        "sgd",
        "OPTIM.LR",
        "0.05",
        "OPTIM.MAX_EPOCH",
        "2",
        "OPTIM.LR_SCHEDULER",
        "cosine",
        "TRAIN.PRINT_FREQ",
        "2",
        "USE_CUDA",
        "False",
    ]


def test_train_checkpoint_resume_and_eval_only_reproduce(tmp_path, registered):
    _make_images(tmp_path / "data")
    out = tmp_path / "out"

    trainer = train.main(_argv(tmp_path / "data", out))
    records = EngineTestLinearProbe.records
    assert len(records) == 1 and records[0]["split"] is None  # final test after training (last_step)
    final = records[0]
    assert trainer.epoch == 1 and trainer.start_epoch == 0
    # cosine over 2 epochs, stepped once per epoch: 0.05 -> 0.025 -> 0
    assert trainer.get_current_lr() == trainer.get_specific_lr("linear_probe") == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(KeyError, match="linear_probe"):
        trainer.get_specific_lr("prompt_learner")

    # Dassl layout + our extras
    ck_dir = out / "linear_probe"
    assert sorted(os.listdir(ck_dir)) == ["checkpoint", "model.pth.tar-2"]
    assert (ck_dir / "checkpoint").read_text().strip() == "model.pth.tar-2"
    ck = load_checkpoint(str(ck_dir / "model.pth.tar-2"))
    assert ck["epoch"] == 2 and ck["val_result"] is None and ck["optimizer"] is not None
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out / "tensorboard"))
    saved_cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert saved_cfg["TRAINER"]["NAME"] == "EngineTestLinearProbe" and saved_cfg["SEED"] == 1
    log = (out / "log.txt").read_text()
    lines = log.splitlines()
    assert "Finish training" in lines and f"* accuracy: {final['accuracy']:.1f}%" in lines
    assert lines.index("Finish training") < lines.index(f"* accuracy: {final['accuracy']:.1f}%")
    assert "Engine: builtin" in log and "epoch [2/2] batch [4/4]" in log and "# train_x" in log

    # the same command again resumes at epoch 2 (= MAX_EPOCH): no training, only the final test
    engine_utils.close_logger()
    again = train.main(_argv(tmp_path / "data", out, "--resume", "auto"))
    assert again.start_epoch == 2
    assert EngineTestLinearProbe.records[-1]["logit_sum"] == pytest.approx(final["logit_sum"], rel=0, abs=1e-9)
    assert any(f.startswith("log.txt-") for f in os.listdir(out))  # the first log was not overwritten

    # eval-only from the saved epoch reproduces the post-training evaluation exactly
    engine_utils.close_logger()
    evaluator_run = train.main(
        _argv(tmp_path / "data", tmp_path / "eval", "--eval-only", "--model-dir", str(out), "--load-epoch", "2")
    )
    rec = EngineTestLinearProbe.records[-1]
    assert rec["accuracy"] == final["accuracy"]
    assert rec["logit_sum"] == pytest.approx(final["logit_sum"], rel=0, abs=1e-9)
    assert torch.equal(evaluator_run.model[1].weight, ck["state_dict"]["1.weight"])
    assert not (tmp_path / "eval" / "linear_probe").exists()  # eval-only writes no checkpoint


def test_best_val_selection_and_seed_reproducibility(tmp_path, registered):
    _make_images(tmp_path / "data")
    argv = _argv(tmp_path / "data", tmp_path / "a", "TEST.FINAL_MODEL", "best_val")
    train.main(argv)
    recs = EngineTestLinearProbe.records
    assert [r["split"] for r in recs] == ["val", "val", None]
    ck_dir = tmp_path / "a" / "linear_probe"
    assert sorted(os.listdir(ck_dir)) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-2"]
    assert (ck_dir / "checkpoint").read_text().strip() == "model.pth.tar-2"
    best = load_checkpoint(str(ck_dir / "model-best.pth.tar"))
    assert best["val_result"] == max(r["accuracy"] for r in recs[:2])

    # same seed, fresh output dir -> identical training
    engine_utils.close_logger()
    first = [r["logit_sum"] for r in recs]
    EngineTestLinearProbe.records = []
    train.main(_argv(tmp_path / "data", tmp_path / "b", "TEST.FINAL_MODEL", "best_val"))
    assert [r["logit_sum"] for r in EngineTestLinearProbe.records] == pytest.approx(first, rel=0, abs=1e-9)


def test_setup_cfg_merge_order_and_errors(tmp_path, registered):
    trainer_yaml = tmp_path / "t.yaml"
    trainer_yaml.write_text("OPTIM:\n  LR: 0.5\n  MAX_EPOCH: 7\n")
    dataset_yaml = tmp_path / "d.yaml"
    dataset_yaml.write_text("DATASET:\n  NAME: EngineTestTinyColors\nOPTIM:\n  LR: 0.1\n")
    parser = train.build_parser()
    args = parser.parse_args(
        [
            "--dataset-config-file",
            str(dataset_yaml),
            "--config-file",
            str(trainer_yaml),
            "--resume",
            "prev/run",
            "--seed",
            "0",
            "OPTIM.MAX_EPOCH",
            "3",
        ]
    )
    cfg = train.setup_cfg(args)
    assert cfg.OPTIM.LR == 0.5  # trainer yaml after dataset yaml
    assert cfg.OPTIM.MAX_EPOCH == 3  # opts last
    assert cfg.RESUME == "prev/run"  # kept (reference PromptKD reset it to "")
    assert cfg.SEED == 0 and cfg.DATASET.NAME == "EngineTestTinyColors" and cfg.is_frozen()
    with pytest.raises(KeyError, match="OPTIM.MAX_EPOCHS.*OPTIM.MAX_EPOCH"):
        train.setup_cfg(parser.parse_args(["OPTIM.MAX_EPOCHS", "3"]))
    with pytest.raises(KeyError, match="not registered.*EngineTestLinearProbe"):
        train.main(
            [
                "--trainer",
                "EngineTestLinearPrbe",
                "--output-dir",
                str(tmp_path / "x"),
                "USE_CUDA",
                "False",
                "DATASET.NAME",
                "EngineTestTinyColors",
                "DATASET.ROOT",
                str(tmp_path),
            ]
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run_then_cpu_eval_only(tmp_path, registered):
    _make_images(tmp_path / "data")
    out = tmp_path / "out"
    trainer = train.main(_argv(tmp_path / "data", out, "USE_CUDA", "True"))
    assert trainer.device.type == "cuda" and trainer.train_loader_x.pin_memory
    gpu = EngineTestLinearProbe.records[-1]
    engine_utils.close_logger()
    cpu_run = train.main(_argv(tmp_path / "data", tmp_path / "eval", "--eval-only", "--model-dir", str(out), "--load-epoch", "2"))
    assert cpu_run.device.type == "cpu"  # checkpoints are loaded onto the CPU, then onto the trainer's device
    cpu = EngineTestLinearProbe.records[-1]
    assert cpu["accuracy"] == gpu["accuracy"]
    assert cpu["logit_sum"] == pytest.approx(gpu["logit_sum"], abs=1e-3)


def test_a_trainer_without_build_model_cannot_be_instantiated():
    """The engine has no default model (no Dassl SimpleNet): build_model is abstract, so the omission is named at
    construction, before any data is read."""
    from engine.trainer import TrainerX as BuiltinTrainerX

    class NoModel(BuiltinTrainerX):
        pass

    with pytest.raises(TypeError, match="build_model"):
        NoModel(None)
