"""Two options beyond the paper (docs/ABLATIONS.md, "Beyond the paper"):

- ``LOSS topk_skl`` / ``TOPK``: the top-K symmetric KL, checked against a per-image hand computation
  (torch.topk, explicit sum p log(p / q)) for K < C and, for K = C, against the full symmetric KL;
- ``ENSEMBLE``: the ensemble teacher's logits equal a hand computation from each tiny teacher CLIP
  (its own class vectors and image features; confidence and uniform weightings), an end-to-end run records
  the ensemble, the config errors, and an empty ``ENSEMBLE.TYPES`` leaves the single-teacher loss as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import clip
import train
from tests.helpers.tiny_env import make_tiny_env, reset_run_state, skip_env_probe
from trainers.common import kd
from trainers.common.class_vectors import load_class_vectors
from trainers.common.teacher import OnlineTeacher
from trainers.common.teacher_ensemble import EnsembleTeacher

REPO = Path(__file__).resolve().parents[1]
ZS = ["TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot"]


@pytest.fixture(autouse=True)
def _hygiene(monkeypatch, one_thread):
    skip_env_probe(monkeypatch)
    yield
    reset_run_state()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("kd_options")
    return make_tiny_env(base, data_dir=base / "data")


def run(env, out, opts=(), no_train=True):
    """train.main for a tiny PromptKD student with the zero-shot tiny teacher."""
    argv = ["--root", env["root"], "--seed", "1", "--trainer", "PromptKD",
            "--dataset-config-file", str(REPO / "configs/datasets/dtd.yaml"),
            "--config-file", str(REPO / "configs/trainers/PromptKD/tiny_smoke.yaml"), "--output-dir", str(out),
            *(["--no-train"] if no_train else []), "MODEL.BACKBONE.NAME", env["student"],
            "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"], *ZS]
    return train.main(argv + list(opts))


def ensemble_opts(env, *extra):
    """One extra zero-shot teacher: the other tiny CLIP (the student architecture's weights)."""
    return ["TRAINER.PROMPTKD.ENSEMBLE.TYPES", "['zeroshot']",
            "TRAINER.PROMPTKD.ENSEMBLE.NAMES", f"['{env['student']}']",
            "TRAINER.PROMPTKD.ENSEMBLE.CKPTS", "['']", *extra]


def fixed_batch(trainer):
    torch.manual_seed(0)
    return next(iter(trainer.train_loader_x))["img"]


# ------------------------------------------------------------------------------------------------
# topk_skl
# ------------------------------------------------------------------------------------------------
def hand_topk_skl(s, t, T, k):
    """Per image: the teacher's top-k classes, both softmax(logits / T) over them, KL(t||s) + KL(s||t)."""
    B, C = s.shape
    total = 0.0
    for b in range(B):
        idx = torch.topk(t[b], k).indices
        p_t = torch.exp(t[b, idx] / T) / torch.exp(t[b, idx] / T).sum()
        p_s = torch.exp(s[b, idx] / T) / torch.exp(s[b, idx] / T).sum()
        total += float((p_t * torch.log(p_t / p_s)).sum() + (p_s * torch.log(p_s / p_t)).sum())
    return T * T * total / (B * C)


@pytest.mark.parametrize("T", [1.0, 2.5])
def test_topk_skl_equals_a_hand_computation(T):
    g = torch.Generator().manual_seed(0)
    s = 3 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    t = 3 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    for k in (1, 2, 4):
        assert kd.topk_skl(s, t, T, topk=k).item() == pytest.approx(hand_topk_skl(s, t, T, k), rel=1e-5, abs=1e-9)
    assert kd.topk_skl(s, t, T, topk=1).item() == 0.0  # one class: both renormalised distributions are [1]
    # K = C (and K > C): the full symmetric KL over all classes
    full = kd.kl_reference(s, t, T) + kd.kl_reference(t, s, T)
    assert kd.topk_skl(s, t, T, topk=7).item() == pytest.approx(full.item(), rel=1e-5)
    assert kd.topk_skl(s, t, T, topk=50).item() == pytest.approx(hand_topk_skl(s, t, T, 7), rel=1e-5)
    # the teacher chooses the classes: swapping the roles changes the set, hence the loss
    assert kd.topk_skl(t, s, T, topk=2).item() != pytest.approx(kd.topk_skl(s, t, T, topk=2).item(), rel=1e-3)
    with pytest.raises(ValueError, match="TRAINER.PROMPTKD.TOPK must be >= 1"):
        kd.topk_skl(s, t, T, topk=0)
    with pytest.raises(ValueError, match="same shape"):
        kd.topk_skl(s, t[:, :5], T)
    assert kd.bind_kd_loss("topk_skl", {"TOPK": 3}).keywords == {"topk": 3}
    assert kd.bind_kd_loss("kl_reference", {"TOPK": 3}).keywords == {}


def test_topk_skl_option_in_the_trainer(env, tmp_path):
    tr = run(env, tmp_path / "topk", ["TRAINER.PROMPTKD.LOSS", "topk_skl", "TRAINER.PROMPTKD.TOPK", "2"])
    tr.build_teacher_encoder()
    images = fixed_batch(tr)
    tr.set_model_mode("train")
    with torch.no_grad():
        s_logits, t_logits = tr.distillation_logits(images)
    expected = hand_topk_skl(s_logits.double(), t_logits.double(), 1.0, 2)
    stats = tr.forward_backward({"img": images})
    assert stats["kd"].item() == pytest.approx(expected, rel=1e-4)
    assert tr.results_extra()["distillation"]["topk"] == 2
    assert abs(hand_topk_skl(s_logits.double(), t_logits.double(), 1.0, 4) - expected) > 1e-6  # K matters here
    with pytest.raises(ValueError, match="TRAINER.PROMPTKD.TOPK must be >= 1"):
        run(env, tmp_path / "bad", ["TRAINER.PROMPTKD.LOSS", "topk_skl", "TRAINER.PROMPTKD.TOPK", "0"])


# ------------------------------------------------------------------------------------------------
# teacher ensemble
# ------------------------------------------------------------------------------------------------
def zeroshot_logits(path, template, classnames, images):
    """s * norm(image feature) norm(text feature of the template)^T of a tiny CLIP file, by hand."""
    model = clip.load(path)
    with torch.no_grad():
        w = F.normalize(model.encode_text(clip.tokenize([template.format(c) for c in classnames], 77)).float(), dim=-1)
        u = F.normalize(model.encode_image(images).float(), dim=-1)
        return model.logit_scale.exp().float() * u @ w.t()


def test_ensemble_logits_equal_a_hand_mixture_of_the_teachers(env, tmp_path):
    images = None
    for weighting in ("confidence", "uniform"):
        tr = run(env, tmp_path / weighting, ensemble_opts(env, "TRAINER.PROMPTKD.ENSEMBLE.WEIGHTING", weighting))
        assert isinstance(tr.teacher, EnsembleTeacher)
        tr.build_teacher_encoder()
        images = fixed_batch(tr) if images is None else images
        template, names = tr.class_vectors.teacher["template"], tr.train_classnames
        q = [zeroshot_logits(env["teacher"], template, names, images),
             zeroshot_logits(env["student"], template, names, images)]
        p = [torch.softmax(x, dim=1) for x in q]
        if weighting == "confidence":
            c = [x.max(dim=1, keepdim=True).values for x in p]
            w = [ci / (c[0] + c[1]) for ci in c]
        else:
            w = [0.5, 0.5]
        p_ens = w[0] * p[0] + w[1] * p[1]
        got = tr.teacher.logits(images, tr.teacher_class_weights)
        assert torch.allclose(got, torch.log(p_ens), atol=1e-4)
        assert not torch.allclose(got, torch.log_softmax(q[0], dim=1), atol=1e-3)  # the second teacher counts
        # the student's logits use the MAIN teacher's class vectors
        assert torch.allclose(tr.class_weights, tr.class_vectors.select(names), atol=0)
        assert tr.class_vectors.teacher["model"] == env["teacher"]


def test_ensemble_end_to_end_records_the_ensemble(env, tmp_path):
    out = tmp_path / "e2e"
    run(env, out, ensemble_opts(env), no_train=False)
    res = json.loads((out / "results.json").read_text())
    cv_extra = str(out / "class_vectors_DescribableTextures_ensemble1.pt")
    assert res["teacher"]["ensemble"] == {"weighting": "confidence", "teachers": [
        {"type": "zeroshot", "model": env["student"], "class_vectors": cv_extra}]}
    cv_main = str(out / "class_vectors_DescribableTextures.pt")
    assert res["teacher"]["model"] == env["teacher"] and res["teacher"]["class_vectors"] == cv_main
    # two teachers, two class-vector files, each from its own teacher
    assert load_class_vectors(cv_main).teacher["model"] == env["teacher"]
    assert load_class_vectors(cv_extra).teacher["model"] == env["student"]
    ckpt = torch.load(out / "VLPromptLearner/model.pth.tar-1", map_location="cpu", weights_only=True)
    assert ckpt["meta"]["teacher"]["ensemble"] == res["teacher"]["ensemble"]


def test_ensemble_config_errors(env, tmp_path):
    cases = [
        (ensemble_opts(env, "TRAINER.PROMPTKD.ENSEMBLE.CKPTS", "['', '']"), "one entry per extra teacher"),
        (ensemble_opts(env, "TRAINER.PROMPTKD.ENSEMBLE.TYPES", "['clip']"), "TYPES entries must be in"),
        (ensemble_opts(env, "TRAINER.PROMPTKD.ENSEMBLE.WEIGHTING", "max"), "WEIGHTING in"),
        (ensemble_opts(env, "TRAINER.PROMPTKD.LOSS", "feature_l1"), "needs a logit loss"),
        (ensemble_opts(env, "TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "record"), "TEACHER_CACHE.MODE off"),
        (ensemble_opts(env, "TRAINER.PROMPTKD.CLASS_VECTORS_SOURCE", "student_text"), "CLASS_VECTORS_SOURCE teacher"),
        (ensemble_opts(env, "TRAINER.PROMPTKD.CLASS_VECTORS", str(tmp_path / "cv.pt"),
                       "TRAINER.PROMPTKD.ENSEMBLE.CLASS_VECTORS", f"['{tmp_path / 'cv.pt'}']"),
         "share one class-vectors"),
        (["TRAINER.PROMPTKD.ENSEMBLE.NAMES", "['ViT-B/16']"], "one entry per extra teacher"),  # NAMES without TYPES
    ]
    for i, (opts, message) in enumerate(cases):
        with pytest.raises(ValueError, match=message):
            run(env, tmp_path / f"bad{i}", opts)
    assert not (tmp_path / "cv.pt").exists()  # refused before any teacher wrote it


def test_without_ensemble_the_single_teacher_loss_is_unchanged(env, tmp_path):
    tr = run(env, tmp_path / "single")
    assert type(tr.teacher) is OnlineTeacher
    tr.build_teacher_encoder()
    images = fixed_batch(tr)
    tr.set_model_mode("train")
    s_logits, t_logits = (x.detach() for x in tr.distillation_logits(images))  # with grad, as forward_backward
    q_t = zeroshot_logits(env["teacher"], tr.class_vectors.teacher["template"], tr.train_classnames, images)
    assert torch.allclose(t_logits, q_t, atol=1e-3)
    hand = (torch.softmax(t_logits, 1) * (torch.log_softmax(t_logits, 1) - torch.log_softmax(s_logits, 1))).sum()
    stats = tr.forward_backward({"img": images})
    assert stats["kd"].item() == kd.kl_reference(s_logits, t_logits, 1.0).item()  # exactly the registered loss
    assert stats["kd"].item() == pytest.approx(hand.item() / s_logits.numel(), rel=1e-5)
    assert tr.results_extra()["distillation"] == {"kd_weight": float(tr.cfg.TRAINER.PROMPTKD.KD_WEIGHT),
                                                  "loss": "kl_reference", "temperature": 1.0}
    assert "ensemble" not in tr.teacher_identity()
    assert tr.kd_loss.func is kd.kl_reference and not tr.kd_loss.keywords

    # an ensemble of the main teacher with itself is the main teacher again (p_ens = p_t, at T = 1 the same loss)
    same = run(env, tmp_path / "self", ensemble_opts(env, "TRAINER.PROMPTKD.ENSEMBLE.NAMES", f"['{env['teacher']}']"))
    same.build_teacher_encoder()
    same.set_model_mode("train")
    with torch.no_grad():
        s2, t2 = same.distillation_logits(images)
    assert torch.allclose(s2, s_logits, atol=1e-5)  # the same seed: the same student
    single = kd.kl_reference(s_logits, t_logits, 1.0).item()
    assert kd.kl_reference(s2, t2, 1.0).item() == pytest.approx(single, rel=1e-4)


def test_ensemble_members_are_single_teacher_configs(env, tmp_path):
    """Each extra teacher is the single teacher of a cloned config: a checkpoint teacher's class vectors go next to
    its (resolved) checkpoint, a zero-shot one's to OUTPUT_DIR under its own name; only the main teacher is loaded
    before training."""
    ckpt = tmp_path / "teachers" / "{dataset}" / "model.pth.tar-5"
    opts = ["TRAINER.PROMPTKD.ENSEMBLE.TYPES", "['promptsrc', 'zeroshot']",
            "TRAINER.PROMPTKD.ENSEMBLE.NAMES", f"['{env['teacher']}', '{env['student']}']",
            "TRAINER.PROMPTKD.ENSEMBLE.CKPTS", f"['{ckpt}', '']", "TRAINER.PROMPTKD.ENSEMBLE.WEIGHTING", "uniform"]
    tr = run(env, tmp_path / "members", opts)  # the checkpoint does not exist: nothing reads it before training
    resolved = str(ckpt).replace("{dataset}", "DescribableTextures")
    assert tr.teacher.identity() == {"weighting": "uniform", "teachers": [
        {"type": "promptsrc", "model": env["teacher"], "checkpoint": resolved,
         "class_vectors": str(Path(resolved).parent / "class_vectors_DescribableTextures.pt")},
        {"type": "zeroshot", "model": env["student"],
         "class_vectors": str(tmp_path / "members" / "class_vectors_DescribableTextures_ensemble2.pt")}]}
    assert [t.cfg.TRAINER.PROMPTKD.TEACHER_TYPE for t in tr.teacher.members] == ["zeroshot", "promptsrc", "zeroshot"]
    assert tr.cfg.TRAINER.PROMPTKD.TEACHER_TYPE == "zeroshot"  # the trainer's own config is untouched
    with pytest.raises(FileNotFoundError):
        tr.build_teacher_encoder()  # the extra checkpoint teacher is loaded by the single-teacher path
