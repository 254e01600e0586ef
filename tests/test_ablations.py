"""The paper's ablations as options of the existing trainers (docs/ABLATIONS.md).

Part 1: each option changes exactly what it claims (tiny CLIPs saved to weight files, generated DTD root):
which parameters train, which loss is computed (equal to a hand computation on a fixed batch), which
text features the logits use, what the MaPLe teacher contributes, how many unlabeled images per class
the loader yields.
Part 2: tools/results.py renders the paper's layouts (synthetic results with known values).
Part 3: every table / figure script in smoke mode (SMOKE=1, one seed, one epoch, two values per axis):
the script's commands (DRY_RUN=1) are executed in this process (one import of torch for all runs), and
one script is run for real through bash.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import clip
import train
from engine import utils as engine_utils
from tests.helpers.fake_roots import make_root
from tests.helpers.reference_layouts import maple_reference_layout
from tests.helpers.tiny_env import make_tiny_env, skip_env_probe
from tools import results as R
from trainers.common import kd
from trainers.common.checkpoints import CheckpointKeyError
from trainers.maple import MaPLeCLIP
from trainers.promptkd import PromptKDStudentModel

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATASET_CFG = str(REPO / "configs/datasets/dtd.yaml")
STUDENT_CFG = str(REPO / "configs/trainers/PromptKD/tiny_smoke.yaml")
ZS = ["TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot"]
PAPER = R.load_paper_numbers()


@pytest.fixture(autouse=True)
def _fast_env_info(monkeypatch):
    skip_env_probe(monkeypatch)
    root = logging.getLogger()
    level = root.level
    yield
    # train.main installs stdout / log-file handlers on the root logger: leave none behind for other tests
    engine_utils.close_logger()
    root.setLevel(level)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("ablations")
    return make_tiny_env(base, data_dir=base / "data")


def run(env, out, opts=(), seed=1, no_train=False, eval_only=False, model_dir=None, load_epoch=None):
    """train.main for a tiny PromptKD student (tiny_smoke config, the saved tiny weights)."""
    argv = ["--root", env["root"], "--seed", str(seed), "--trainer", "PromptKD", "--dataset-config-file", DATASET_CFG,
            "--config-file", STUDENT_CFG, "--output-dir", str(out)]
    if no_train:
        argv.append("--no-train")
    if eval_only:
        argv += ["--eval-only", "--model-dir", str(model_dir), "--load-epoch", str(load_epoch)]
    argv += ["MODEL.BACKBONE.NAME", env["student"], "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"]]
    return train.main(argv + list(opts))


def results(out):
    return json.loads((Path(out) / "results.json").read_text())


def fixed_batch(trainer):
    torch.manual_seed(0)
    return next(iter(trainer.train_loader_x))["img"]


def trainable(model):
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------------
# Part 1: options
# ------------------------------------------------------------------------------------------------
def test_feature_losses_and_the_registry(monkeypatch):
    s = torch.tensor([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0]])
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]])
    # |diff| = [.4 .8 0 | 0 .4 .8] -> mean 0.4; diff^2 = [.16 .64 0 | 0 .16 .64] -> mean 1.6 / 6
    assert kd.get_kd_loss("feature_l1")(s, t, 1.0).item() == pytest.approx(0.4)
    assert kd.get_kd_loss("feature_mse")(s, t, 4.0).item() == pytest.approx(1.6 / 6)  # T unused
    assert kd.kd_loss_inputs("feature_l1") == kd.kd_loss_inputs("feature_mse") == "features"
    assert kd.kd_loss_inputs("kl_reference") == kd.kd_loss_inputs("kl_batchmean") == "logits"
    with pytest.raises(ValueError, match="same shape"):
        kd.feature_mse(s, t[:, :2])
    with pytest.raises(KeyError, match="registered: .*feature_l1"):
        kd.kd_loss_inputs("feature_l3")
    # a new loss is one decorated function
    monkeypatch.setattr(kd, "_KD_LOSSES", dict(kd._KD_LOSSES))
    monkeypatch.setattr(kd, "_KD_INPUTS", dict(kd._KD_INPUTS))

    @kd.register_kd_loss("cosine_distance", inputs="features")
    def cosine_distance(student, teacher, temperature):
        return (1 - (student * teacher).sum(dim=1)).mean()

    assert "cosine_distance" in kd.kd_loss_names() and kd.kd_loss_inputs("cosine_distance") == "features"
    assert kd.get_kd_loss("cosine_distance")(s, t, 1.0).item() == pytest.approx(1 - (0.6 + 0.6) / 2)
    with pytest.raises(KeyError, match="already registered"):
        kd.register_kd_loss("cosine_distance")(cosine_distance)
    with pytest.raises(ValueError, match="inputs must be one of"):
        kd.register_kd_loss("x", inputs="images")


def test_feature_loss_option_compares_projected_student_and_teacher_image_features(env, tmp_path):
    tr = run(env, tmp_path / "fmse", ZS + ["TRAINER.PROMPTKD.LOSS", "feature_mse"], no_train=True)
    tr.build_teacher_encoder()
    images = fixed_batch(tr)
    tr.set_model_mode("train")
    with torch.no_grad():
        f_s, u_t = tr.distillation_features(images)
    teacher = clip.load(env["teacher"])
    with torch.no_grad():
        u_hand = F.normalize(teacher.encode_image(images).float(), dim=-1)
        f_hand = F.normalize(tr.model.projector(tr.model.image_features(images)), dim=-1)
    assert f_s.shape == u_t.shape == (images.shape[0], 96)  # projected into the teacher's space
    assert torch.allclose(u_t, u_hand, atol=1e-5) and torch.allclose(f_s, f_hand, atol=1e-5)
    expected = ((f_s - u_t) ** 2).mean().item()
    stats = tr.forward_backward({"img": images})  # the loss is computed before the optimiser step
    assert stats["kd"] == pytest.approx(expected, rel=1e-5)
    assert stats["loss"] == pytest.approx(float(tr.cfg.TRAINER.PROMPTKD.KD_WEIGHT) * expected, rel=1e-5)
    # the logit loss on the same batch is a different number (the option really switches the loss)
    with torch.no_grad():
        s_logits, t_logits = tr.distillation_logits(images)
    assert abs(kd.kl_reference(s_logits, t_logits).item() - expected) > 1e-6


def test_train_modes_choose_what_trains(env, tmp_path):
    default = run(env, tmp_path / "pp", ZS, no_train=True)
    assert trainable(default.model) == sorted(
        ["image_prompts.layer0", "image_prompts.layer1"] + [n for n, _ in default.model.projector.named_parameters(
            prefix="projector")])

    proj = run(env, tmp_path / "po", ZS + ["TRAINER.PROMPTKD.TRAIN_MODE", "projector_only"], no_train=True)
    assert all(n.startswith("projector.") for n in trainable(proj.model))
    assert not any("image_prompts" in n for n, _ in proj.model.named_parameters())  # no prompt parameters at all
    assert proj.model.image_prompts() is None
    assert proj.num_trainable_params() == sum(p.numel() for p in proj.model.projector.parameters())

    ff_opts = ZS + ["TRAINER.PROMPTKD.TRAIN_MODE", "full_finetune"]
    ff = run(env, tmp_path / "ff", ff_opts + ["OPTIM.MAX_EPOCH", "1"])
    visual = sorted(f"visual.{n}" for n, _ in ff.model.visual.named_parameters())
    projector = [n for n, _ in ff.model.projector.named_parameters(prefix="projector")]
    assert trainable(ff.model) == sorted(visual + projector)
    assert not any("image_prompts" in n for n, _ in ff.model.named_parameters())
    assert all(p.dtype == torch.float32 for p in ff.model.visual.parameters())
    state = torch.load(tmp_path / "ff/VLPromptLearner/model.pth.tar-1", map_location="cpu", weights_only=False)
    assert set(visual) <= set(state["state_dict"])  # the fine-tuned tower is saved ...
    ff.set_model_mode("train")
    ff.forward_backward({"img": fixed_batch(ff)})
    no_grad = [n for n, p in ff.model.visual.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad  # ... and every tensor of the student image tower receives a gradient
    assert all(p.grad is None for p in ff.teacher.encoder.parameters())
    # ... and an eval-only run with the same mode reloads it strictly and reproduces the accuracy
    ev = run(env, tmp_path / "ff_eval", ff_opts, eval_only=True, model_dir=tmp_path / "ff", load_epoch=1)
    assert results(tmp_path / "ff_eval")["metrics"] == results(tmp_path / "ff")["metrics"]
    n_params = sum(p.numel() for p in ev.model.visual.parameters()) + sum(p.numel() for p in ev.model.projector.parameters())
    assert results(tmp_path / "ff")["trainable_params"] == n_params

    visual_half = clip.load(env["student"]).visual.half()
    with pytest.raises(ValueError, match="must be fp32"):
        PromptKDStudentModel(visual_half, 2, 2, 64, 64, 96, 2, 100.0, train_mode="full_finetune")
    with pytest.raises(ValueError, match="TRAIN_MODE = 'prompts_only'"):
        run(env, tmp_path / "bad", ZS + ["TRAINER.PROMPTKD.TRAIN_MODE", "prompts_only"], no_train=True)


def test_student_text_class_vectors_use_the_students_own_frozen_text_tower(env, tmp_path):
    tr = run(env, tmp_path / "st", ZS + ["TRAINER.PROMPTKD.CLASS_VECTORS_SOURCE", "student_text"], no_train=True)
    names = list(tr.dm.dataset.all_classnames)
    student, teacher = clip.load(env["student"]), clip.load(env["teacher"])
    with torch.no_grad():
        w_s = F.normalize(student.encode_text(clip.tokenize([f"a photo of a {n}." for n in names], 77)).float(), dim=-1)
        template = tr.class_vectors.teacher["template"]
        w_t = F.normalize(teacher.encode_text(clip.tokenize([template.format(n) for n in names], 77)).float(), dim=-1)
    assert torch.allclose(tr.student_class_vectors.features, w_s, atol=1e-5)
    assert torch.allclose(tr.class_weights, w_s[[names.index(n) for n in tr.train_classnames]], atol=1e-5)
    assert torch.allclose(tr.teacher_class_weights, w_t[[names.index(n) for n in tr.train_classnames]], atol=1e-5)
    assert tr.model.projector[-1].out_features == 64  # projected into the student's own text space
    assert not any("text" in n for n in trainable(tr.model))  # the text side stays frozen

    tr.build_teacher_encoder()
    images = fixed_batch(tr)
    tr.set_model_mode("eval")
    with torch.no_grad():
        s_logits, t_logits = tr.distillation_logits(images)
        f_s = tr.model(images)
        u_t = F.normalize(teacher.encode_image(images).float(), dim=-1)
        assert torch.allclose(s_logits, tr.model.logit_scale * f_s @ tr.class_weights.t(), atol=1e-4)
        assert torch.allclose(t_logits, teacher.logit_scale.exp() * u_t @ tr.teacher_class_weights.t(), atol=1e-3)
        assert torch.allclose(tr.model_inference(images), s_logits, atol=1e-5)  # inference uses the student's W too

    with pytest.raises(ValueError, match="student_text"):
        run(env, tmp_path / "bad1", ZS + ["TRAINER.PROMPTKD.CLASS_VECTORS_SOURCE", "student_text",
                                          "TRAINER.PROMPTKD.LOSS", "feature_l1"], no_train=True)
    with pytest.raises(ValueError, match="N_CTX_TEXT must be in 1..4"):
        run(env, tmp_path / "bad2", ZS + ["TRAINER.PROMPTKD.CLASS_VECTORS_SOURCE", "student_text",
                                          "TRAINER.PROMPTKD.N_CTX_TEXT", "6"], no_train=True)


def test_maple_checkpoint_as_teacher(env, tmp_path):
    teacher_clip = clip.load(env["teacher"])
    maple = MaPLeCLIP(teacher_clip, ["object"], n_ctx=2, depth=2, ctx_init="a photo of a")
    torch.manual_seed(3)
    state = {}
    for name, p in maple.named_parameters():
        if name.startswith(("text_prompts.", "couplings.")):
            p.data.add_(0.2 * torch.randn_like(p))
            state[name] = p.detach().clone()
    run_dir = tmp_path / "maple_run"
    (run_dir / "MultiModalPromptLearner").mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": 1, "meta": {"trainer": "MaPLe", "backbone": env["teacher"]}},
               run_dir / "MultiModalPromptLearner" / "model.pth.tar-1")

    opts = ["TRAINER.PROMPTKD.TEACHER_TYPE", "maple", "TRAINER.PROMPTKD.TEACHER_CKPT", str(run_dir)]
    tr = run(env, tmp_path / "student", opts, no_train=True)
    names = list(tr.dm.dataset.all_classnames)
    maple.set_classnames(names)
    images = fixed_batch(tr)
    with torch.no_grad():
        w = F.normalize(maple.encode_text(), dim=-1)
        u_maple = F.normalize(maple.encode_image(images), dim=-1)
        u_plain = F.normalize(teacher_clip.encode_image(images).float(), dim=-1)
    # its class vectors = its prompted text features; its image tower runs with the coupled visual prompts
    assert torch.allclose(tr.class_vectors.features, w, atol=1e-5)
    assert tr.class_vectors.teacher["type"] == "maple" and tr.class_vectors.teacher["prompt"]["depth"] == 2
    tr.build_teacher_encoder()
    u_t = tr.teacher.encoder(images)
    assert torch.allclose(u_t, u_maple, atol=1e-5) and not torch.allclose(u_t, u_plain, atol=1e-3)

    # a released-layout MaPLe checkpoint (whole CustomCLIP in fp16) gives the same teacher
    torch.save({"state_dict": maple_reference_layout(maple, state), "epoch": 5}, tmp_path / "maple_ref.pth.tar")
    ref_opts = ["TRAINER.PROMPTKD.TEACHER_TYPE", "maple", "TRAINER.PROMPTKD.TEACHER_CKPT",
                str(tmp_path / "maple_ref.pth.tar"), "TRAINER.PROMPTKD.CLASS_VECTORS", str(tmp_path / "cv_ref.pt")]
    tr_ref = run(env, tmp_path / "student_ref", ref_opts, no_train=True)
    assert tr_ref.class_vectors.teacher["format"] == "reference"
    assert torch.allclose(tr_ref.class_vectors.features, w, atol=2e-2)

    with pytest.raises(CheckpointKeyError, match="TEACHER_TYPE maple"):
        run(env, tmp_path / "wrong_type", ["TRAINER.PROMPTKD.TEACHER_TYPE", "promptsrc",
                                           "TRAINER.PROMPTKD.TEACHER_CKPT", str(run_dir),
                                           "TRAINER.PROMPTKD.CLASS_VECTORS", str(tmp_path / "cv_x.pt")], no_train=True)


def test_images_per_class_cap_is_what_the_loader_yields(env, tmp_path):
    def per_class(trainer):
        return Counter(Path(d.impath).parent.name for d in trainer.dm.dataset.train_x)

    capped = run(env, tmp_path / "cap1", ZS + ["DATASET.MAX_IMAGES_PER_CLASS", "2"], no_train=True)
    assert sorted(per_class(capped).values()) == [2, 2, 2, 2]
    assert sum(b["img"].shape[0] for b in capped.train_loader_x) == 8  # what one epoch distils on
    assert all(d.label == -1 for d in capped.dm.dataset.train_x)  # unlabeled
    other_seed = run(env, tmp_path / "cap2", ZS + ["DATASET.MAX_IMAGES_PER_CLASS", "2"], seed=2, no_train=True)
    assert sorted(per_class(other_seed).values()) == [2, 2, 2, 2]
    assert {d.impath for d in other_seed.dm.dataset.train_x} != {d.impath for d in capped.dm.dataset.train_x}
    full = run(env, tmp_path / "all", ZS + ["DATASET.MAX_IMAGES_PER_CLASS", "-1"], no_train=True)
    assert sorted(per_class(full).values()) == [3, 3, 3, 3]  # the generated train split: 3 images per class


# ------------------------------------------------------------------------------------------------
# Part 2: paper layouts in tools/results.py
# ------------------------------------------------------------------------------------------------
def write_run(root, rel, trainer, dataset, seed, base, novel, cfg):
    d = Path(root) / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "results.json").write_text(json.dumps({"trainer": trainer, "dataset": dataset, "seed": seed,
                                                "base_acc": base, "novel_acc": novel}))
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return d


def kd_cfg(**pk):
    node = {"LOSS": "kl_reference", "TRAIN_MODE": "prompts_projector", "CLASS_VECTORS_SOURCE": "teacher",
            "TEACHER_TYPE": "promptsrc", "TEACHER_NAME": "ViT-L/14", "TEMPERATURE": 1.0, "PROJECT_LAYER": 2}
    node.update(pk)
    return {"MODEL": {"BACKBONE": {"NAME": "ViT-B/16"}}, "TRAINER": {"PROMPTKD": node},
            "DATASET": {"MAX_IMAGES_PER_CLASS": 64}, "OPTIM": {"MAX_EPOCH": 20}}


def layout_rows(agg, dataset):
    (block,) = [b for b in agg["datasets"] if b["dataset"] == dataset]
    return {r["row"]: r for r in block["rows"]}


def test_table_layout_rows_means_paper_numbers_and_deltas(tmp_path):
    for seed, (b, n) in {1: (80.0, 70.0), 2: (78.0, 74.0)}.items():
        write_run(tmp_path, f"kl/seed_{seed}", "PromptKD", "ImageNet", seed, b, n, kd_cfg())
        write_run(tmp_path, f"l1/seed_{seed}", "PromptKD", "ImageNet", seed, b - 5, n - 5, kd_cfg(LOSS="feature_l1"))
    write_run(tmp_path, "dtd/seed_1", "PromptKD", "DescribableTextures", 1, 60.0, 50.0, kd_cfg(LOSS="feature_l1"))
    write_run(tmp_path, "stray/seed_1", "PromptKD", "ImageNet", 1, 1.0, 1.0, kd_cfg(LOSS="another_loss"))
    agg = R.aggregate_layout(R.collect_runs([tmp_path]), "table4", PAPER)
    rows = layout_rows(agg, "ImageNet")
    assert list(rows) == ["Feature L1", "Feature MSE", "Logit KL (PromptKD)"]  # the paper's order
    kl = rows["Logit KL (PromptKD)"]
    assert kl["ours"]["base"]["mean"] == pytest.approx(79.0) and kl["ours"]["base"]["std"] == pytest.approx(1.0)
    assert kl["ours"]["hm"] == pytest.approx(2 * 79.0 * 72.0 / 151.0)  # HM of the means
    assert kl["paper"] == {"base": 79.27, "novel": 73.39, "hm": 76.22}
    assert kl["delta"]["hm"] == pytest.approx(2 * 79.0 * 72.0 / 151.0 - 76.22)
    assert rows["Feature L1"]["ours"]["novel"]["mean"] == pytest.approx(67.0)
    assert rows["Feature MSE"]["ours"] is None and rows["Feature MSE"]["paper"]["hm"] == 68.91
    other = layout_rows(agg, "DescribableTextures")  # another dataset: paper numbers shown, no delta
    assert other["Feature L1"]["paper"]["hm"] == 69.35 and other["Feature L1"]["delta"] is None
    assert any("stray" in note and "matches no row" in note for note in agg["notes"])  # reported, not silent
    md = R.render_layout_markdown(agg)
    assert "| Logit KL (PromptKD) | 79.00 ± 1.00 | 72.00 ± 2.00 | 75.34 | 1,2 | 79.27 / 73.39 / 76.22 | -0.88 |" in md
    assert "ours: DescribableTextures; paper: ImageNet" in md
    csv_text = R.render_layout_csv(agg)
    assert csv_text.splitlines()[0].startswith("dataset,row,series,x,n_seeds")
    # two runs of one seed in one row are an error naming both
    write_run(tmp_path, "kl_again/seed_1", "PromptKD", "ImageNet", 1, 1.0, 1.0, kd_cfg())
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\] appear more than once"):
        R.aggregate_layout(R.collect_runs([tmp_path]), "table4", PAPER)


def test_reference_rows_aliases_and_figure_sweeps(tmp_path):
    # Table 3: published rows of methods not implemented here are shown from the paper
    write_run(tmp_path / "t3", "kd/seed_1", "PromptKD", "OxfordFlowers", 1, 99.0, 82.0, kd_cfg())
    agg = R.aggregate_layout(R.collect_runs([tmp_path / "t3"]), "table3", PAPER)
    rows = layout_rows(agg, "OxfordFlowers")
    assert list(rows)[:3] == ["CLIP", "PromptSRC", "CLIP-PR"] and rows["GRIP"]["reference_only"]
    assert rows["GRIP"]["paper"]["hm"] == 88.54 and rows["GRIP"]["ours"] is None
    assert "GRIP (paper only)" in R.render_layout_markdown(agg)
    # Table 6 in smoke runs: tiny model names are matched as the paper's through aliases
    write_run(tmp_path / "t6", "t/seed1", "ZeroshotCLIP", "ImageNet", 1, 79.0, 74.0,
              {"MODEL": {"BACKBONE": {"NAME": "tiny-vit-teacher"}}})
    write_run(tmp_path / "t6", "s/seed_1", "PromptKD", "ImageNet", 1, 76.0, 72.0,
              kd_cfg(TEACHER_TYPE="zeroshot", TEACHER_NAME="tiny-vit-teacher"))
    runs = R.collect_runs([tmp_path / "t6"])
    no_alias = R.aggregate_layout(runs, "table6", PAPER)
    assert len(no_alias["notes"]) == 2 and not no_alias["datasets"]
    agg = R.aggregate_layout(runs, "table6", PAPER, R.parse_aliases(["tiny-vit-teacher=ViT-L/14"]))
    rows = layout_rows(agg, "ImageNet")
    assert rows["Teacher: CLIP zero-shot (ViT-L/14)"]["ours"]["base"]["mean"] == 79.0
    assert rows["PromptKD student of CLIP zero-shot teacher"]["ours"]["novel"]["mean"] == 72.0
    with pytest.raises(ValueError, match="OUR_NAME=PAPER_NAME"):
        R.parse_aliases(["tiny-vit-teacher"])
    # Figure 4: rows from the paper's sweep plus our extra values, -1 ("all") last; a line plot
    for v, (b, n) in {2: (70.0, 60.0), 64: (79.0, 73.0), -1: (81.0, 75.0)}.items():
        cfg = kd_cfg()
        cfg["DATASET"]["MAX_IMAGES_PER_CLASS"] = v
        write_run(tmp_path / "f4", f"v{v}/seed_1", "PromptKD", "ImageNet", 1, b, n, cfg)
    agg = R.aggregate_layout(R.collect_runs([tmp_path / "f4"]), "fig4", PAPER)
    rows = layout_rows(agg, "ImageNet")
    assert [r["x"] for r in rows.values()] == [2, 16, 32, 64, 128, 256, -1]
    assert rows["PromptKD (MAX_IMAGES_PER_CLASS=2)"]["paper"] is None
    assert rows["PromptKD (full train split)"]["ours"]["base"]["mean"] == 81.0
    assert rows["PromptKD (64 images per class)"]["delta"]["hm"] == pytest.approx(2 * 79 * 73 / 152 - 76.22)
    png = R.plot_layout_lines(agg, tmp_path / "fig4.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the CLI writes the table, its JSON and (figures) the plot
    assert R.main([str(tmp_path / "f4"), "--table", "fig4", "--out", str(tmp_path / "out")]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"results_fig4.md", "results_fig4.json", "fig4.png"}
    assert R.main([str(tmp_path / "f4"), "--table", "fig4", "--alias", "bad"]) == 2


# ------------------------------------------------------------------------------------------------
# Part 3: the table / figure scripts in smoke mode
# ------------------------------------------------------------------------------------------------
SCRIPT_ENV = ("DATA", "OUTPUT_ROOT", "PYTHON", "DRY_RUN", "FORCE", "CFG", "RUN_DIR", "SEEDS", "DATASETS", "SMOKE",
              "TEACHER_CKPT", "CLASS_VECTORS", "TRAIN_TEACHERS", "TEACHER_ROOT", "TEACHER_SEED", "VALUES",
              "REFERENCE_ROWS", "MAPLE_TEACHER_CKPT", "IMAGES_PER_CLASS")


def script_env(**extra):
    e = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    e.update({k: str(v) for k, v in extra.items()})
    return e


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    base = tmp_path_factory.mktemp("smoke")
    return {"data": make_root("DescribableTextures", base / "data", n_classes=4, per_class=6), "out": base / "out"}


# script, extra environment, --table kind, rows that our runs must fill
SMOKE_CASES = [
    ("table3_flowers_unlabeled.sh", {}, "table3", ["CLIP", "PromptSRC", "PromptKD"]),
    ("table4_distillation_form.sh", {"VALUES": "kl_reference feature_l1"}, "table4",
     ["Feature L1", "Logit KL (PromptKD)"]),
    ("table5_distillation_variants.sh", {}, "table5",
     ["CLIP", "Projector only (no prompts)", "Full fine-tune (CLIP-KD style)", "Without shared teacher text features",
      "PromptKD"]),
    ("table6_teacher_type.sh", {}, "table6", [r.paper for r in R.LAYOUTS["table6"].rows]),
    ("table12_projector_depth.sh", {"VALUES": "1 3"}, "table12",
     ["PromptKD (1-layer projector)", "PromptKD (3-layer projector)"]),
    ("table13_student_size.sh", {}, "table13", [r.paper for r in R.LAYOUTS["table13"].rows]),
    ("table14_epochs.sh", {"VALUES": "1 2"}, "table14", ["PromptKD (MAX_EPOCH=1)", "PromptKD (MAX_EPOCH=2)"]),
    ("figure4_images_per_class.sh", {"VALUES": "2 -1"}, "fig4",
     ["PromptKD (MAX_IMAGES_PER_CLASS=2)", "PromptKD (full train split)"]),
    ("figure5_teacher_capacity.sh", {}, "fig5",
     ["Teacher ViT-B/16", "PromptKD (teacher ViT-B/16)", "Teacher ViT-L/14", "PromptKD (teacher ViT-L/14)"]),
    ("figure6_temperature.sh", {"VALUES": "0.5 1.0"}, "fig6", ["PromptKD (T=0.5)", "PromptKD (T=1)"]),
]


@pytest.mark.parametrize("script,extra,table,filled", SMOKE_CASES, ids=[c[0] for c in SMOKE_CASES])
def test_table_script_smoke_end_to_end(smoke, monkeypatch, script, extra, table, filled):
    res = subprocess.run(["bash", str(REPO / "scripts/tables" / script)], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env=script_env(SMOKE=1, DRY_RUN=1, DATA=smoke["data"], OUTPUT_ROOT=smoke["out"],
                                                     **extra))
    assert res.returncode == 0, res.stderr
    cmds = [shlex.split(line) for line in res.stdout.splitlines() if line.strip()]
    last = cmds[-1]
    assert last[:2] == ["python", "tools/results.py"] and last[last.index("--table") + 1] == table
    monkeypatch.chdir(REPO)
    for cmd in cmds:  # the script's commands, in order, in this process
        assert cmd[0] == "python", cmd
        if cmd[1] == "train.py":
            train.main(cmd[2:])
        else:
            assert cmd[1] == "tools/results.py" and R.main(cmd[2:]) == 0, cmd
    out = Path(last[last.index("--out") + 1])
    agg = json.loads((out / f"results_{table}.json").read_text())
    rows = layout_rows(agg, "DescribableTextures")
    for name in filled:
        ours = rows[name]["ours"]
        assert ours is not None and ours["n"] == 1 and 0.0 <= ours["hm"] <= 100.0, (name, rows[name])
    paper_rows = PAPER["tables"][R.LAYOUTS[table].paper_table]["data"][agg["paper_dataset"]]
    for name, numbers in paper_rows.items():  # every published row is shown with the paper's numbers
        assert rows[name]["paper"] == numbers
    assert not agg["notes"], agg["notes"]  # every run of the script landed in a row
    md = (out / f"results_{table}.md").read_text()
    assert R.LAYOUTS[table].caption in md
    if table.startswith("fig"):
        assert (out / f"{table}.png").read_bytes()[:4] == b"\x89PNG"


def test_figure6_script_runs_for_real_through_bash(smoke):
    """A real run of one script (bash -> train.py -> tools/results.py): finished runs are skipped, the new
    temperature is trained and the figure gains its row."""
    done_before = (smoke["out"] / "ablations/fig6_temperature/dtd/TEMPERATURE_1.0/seed_1/results.json").exists()
    res = subprocess.run(["bash", str(REPO / "scripts/tables/figure6_temperature.sh")], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env=script_env(SMOKE=1, DATA=smoke["data"], OUTPUT_ROOT=smoke["out"],
                                                                VALUES="1.0 2.0"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("TEMPERATURE_1.0/seed_1 (results.json); skipping" in res.stderr) == done_before
    rows = layout_rows(json.loads((smoke["out"] / "tables/fig6_temperature/results_fig6.json").read_text()),
                       "DescribableTextures")
    assert rows["PromptKD (T=2)"]["ours"]["n"] == 1 and rows["PromptKD (T=2)"]["paper"]["hm"] == 75.77
    run_dir = smoke["out"] / "ablations/fig6_temperature/dtd/TEMPERATURE_2.0/seed_1"
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["TRAINER"]["PROMPTKD"]["TEMPERATURE"] == 2.0 and cfg["OPTIM"]["MAX_EPOCH"] == 1
    assert "| PromptKD (T=2) |" in res.stdout
