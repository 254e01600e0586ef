"""Unit tests of the shared trainer machinery (trainers/common) and of trainer-level formulas."""

from __future__ import annotations

import logging
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import clip
from trainers.common.checkpoints import CheckpointKeyError, checkpoint_keys, strict_load, trainable_state_dict
from trainers.common.class_vectors import load_class_vectors, save_class_vectors
from trainers.common.kd import get_kd_loss, kd_loss_names, kl_batchmean, kl_reference, register_kd_loss
from trainers.common.prompts import TextPromptLearner, VisualPromptStack

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return clip.load("tiny-vit-student", allow_random=True).requires_grad_(False)


# ------------------------------------------------------------------------------------------------ KD
def _manual_kl(s, t, temp):
    p_t = F.softmax(t / temp, dim=1)
    log_p_s = F.log_softmax(s / temp, dim=1)
    return (p_t * (p_t.log() - log_p_s)).sum()


@pytest.mark.parametrize("temp", [1.0, 2.0])
def test_kd_losses_match_hand_computation(temp):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=g) * 3, torch.randn(8, 5, generator=g) * 3
    ref = kl_reference(s, t, temp)
    assert ref.item() == pytest.approx((_manual_kl(s, t, temp) * temp ** 2 / (8 * 5)).item(), rel=1e-5)
    bm = kl_batchmean(s, t, temp)
    assert bm.item() == pytest.approx((_manual_kl(s, t, temp) * temp ** 2 / 8).item(), rel=1e-5)
    assert bm.item() == pytest.approx(5 * ref.item(), rel=1e-5)  # batchmean = C x reference
    assert kl_reference(s.half(), t.half(), temp).dtype == torch.float32  # computed in fp32
    assert kl_reference(t, t, temp).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_registry_errors():
    assert {"kl_reference", "kl_batchmean"} <= set(kd_loss_names())
    assert get_kd_loss("kl_reference") is kl_reference
    with pytest.raises(KeyError, match="kl_batchmean"):
        get_kd_loss("kl_typo")
    with pytest.raises(KeyError, match="already registered"):
        register_kd_loss("kl_reference")(lambda s, t, T: s.sum())
    with pytest.raises(ValueError, match="same shape"):
        kl_reference(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="TEMPERATURE"):
        kl_reference(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)


# ------------------------------------------------------------------------------------------------ class vectors
def _unit(n, d, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_class_vectors_roundtrip_select_and_mismatches(tmp_path):
    path = str(tmp_path / "cv" / "class_vectors.pt")
    feats = _unit(4, 8)
    names = ["cat", "dog", "red car", "tree"]
    save_class_vectors(path, feats, names, {"model": "tiny", "checkpoint_sha256": "ab"}, 100.0)
    assert os.listdir(tmp_path / "cv") == ["class_vectors.pt"]  # atomic: no temp file left behind
    cv = load_class_vectors(path, expected_classnames=names, expected_dim=8)
    assert torch.equal(cv.features, feats) and cv.classnames == names and cv.logit_scale == 100.0
    assert cv.teacher["checkpoint_sha256"] == "ab"
    assert torch.equal(cv.select(["tree", "cat"]), feats[[3, 0]])
    with pytest.raises(KeyError, match="'bird'"):
        cv.select(["cat", "bird"])
    with pytest.raises(ValueError, match=r"index 2: file has 'red car', expected 'truck'"):
        load_class_vectors(path, expected_classnames=["cat", "dog", "truck", "tree"])
    with pytest.raises(ValueError, match="lists 4 classes, the dataset has 3"):
        load_class_vectors(path, expected_classnames=["cat", "dog", "red car"])
    with pytest.raises(ValueError, match="8-d features but 16 are expected"):
        load_class_vectors(path, expected_dim=16)
    with pytest.raises(FileNotFoundError, match="make_class_vectors"):
        load_class_vectors(str(tmp_path / "missing.pt"))
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a class-vectors file"):
        load_class_vectors(str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="L2-normalised"):
        save_class_vectors(str(tmp_path / "bad.pt"), feats * 2, names, {}, 100.0)
    with pytest.raises(ValueError, match="duplicate"):
        save_class_vectors(str(tmp_path / "bad.pt"), feats, ["a", "a", "b", "c"], {}, 100.0)


# ------------------------------------------------------------------------------------------------ prompts
def test_visual_prompt_stack():
    torch.manual_seed(0)
    stack = VisualPromptStack(n_ctx=50, depth=3, width=64)
    names = [n for n, _ in stack.named_parameters()]
    assert names == ["layer0", "layer1", "layer2"]
    prompts = stack()
    assert len(prompts) == 3 and all(p.shape == (50, 64) and p.dtype == torch.float32 for p in prompts)
    std = torch.cat([p.detach().flatten() for p in prompts]).std().item()
    assert std == pytest.approx(0.02, rel=0.05)
    assert VisualPromptStack(4, 0, 64)() is None


def test_text_prompt_learner_init_buffers_and_classnames(tiny):
    tpl = TextPromptLearner(tiny, ["golden_retriever", "cat"], n_ctx=4, depth=2, ctx_init="a photo of a")
    ids = clip.tokenize(["a photo of a"], 77)
    words = clip.token_embedding(tiny, ids)[0, 1:5]
    assert torch.allclose(tpl.layer0, words)  # layer-0 context = the 4 word embeddings
    assert tpl.prompts_for(["golden_retriever"]) == ["a photo of a golden retriever."]
    assert sorted(tpl.state_dict()) == ["layer0", "layer1"]  # class-name buffers are not persistent
    embeds, token_ids, deep = tpl()
    assert embeds.shape == (2, 77, 64) and token_ids.shape == (2, 77) and len(deep) == 1
    full = clip.token_embedding(tiny, clip.tokenize(tpl.prompts_for(["golden_retriever", "cat"]), 77))
    assert torch.allclose(embeds, full, atol=1e-6)  # prefix | ctx | suffix reassembles the prompt exactly
    tpl.set_classnames(["a", "b", "c"])
    assert tpl().__getitem__(0).shape[0] == 3 and tpl.classnames == ["a", "b", "c"]

    # Nt = 2 < 4 words: "a photo" learnable, "of a" stays fixed in the suffix (docs/REFERENCE.md M2 note)
    short = TextPromptLearner(tiny, ["cat"], n_ctx=2, depth=1, ctx_init="a photo of a")
    assert torch.allclose(short.layer0, words[:2])
    of_a = clip.token_embedding(tiny, clip.tokenize(["a photo of a cat."], 77))[0, 3:5]
    assert torch.allclose(short.token_suffix[0, :2], of_a)
    # Nt larger than the words: random init and "X" placeholders
    rand = TextPromptLearner(tiny, ["cat"], n_ctx=5, depth=1, ctx_init="a photo of a")
    assert rand.prompt_prefix == "X X X X X" and not torch.allclose(rand.layer0[:4], words)
    with pytest.raises(ValueError, match="exceed the text context length"):
        tpl.set_classnames(["word " * 80])
    with pytest.raises(ValueError, match="N_CTX_TEXT >= 1"):
        TextPromptLearner(tiny, ["cat"], n_ctx=0, depth=1)


def test_text_prompt_learner_uses_model_context_length():
    cfg = dict(clip.TINY_CONFIGS["tiny-vit-student"])
    cfg["text_cfg"] = dict(cfg["text_cfg"], context_length=16)
    model = clip.build_from_config(cfg).requires_grad_(False)
    tpl = TextPromptLearner(model, ["cat", "dog"], n_ctx=4, depth=2, ctx_init="a photo of a")
    embeds, ids, deep = tpl()
    assert ids.shape == (2, 16) and embeds.shape == (2, 16, 64)
    feats = clip.encode_text(model, embeds, ids, deep_prompts=deep, n_ctx=4)
    assert feats.shape == (2, 64)


# ------------------------------------------------------------------------------------------------ checkpoints
class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(3, 3).requires_grad_(False)
        self.prompts = VisualPromptStack(2, 2, 3)
        self.proj = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        self.register_buffer("token_prefix", torch.zeros(1), persistent=False)


def test_checkpoint_keys_and_strict_load():
    toy = _Toy()
    keys = checkpoint_keys(toy)
    assert sorted(keys) == sorted(["prompts.layer0", "prompts.layer1", "proj.0.weight", "proj.0.bias", "proj.1.weight",
                                   "proj.1.bias", "proj.1.running_mean", "proj.1.running_var",
                                   "proj.1.num_batches_tracked"])
    state = trainable_state_dict(toy)
    other = _Toy()
    strict_load(other, {**state, "prompt_learner.token_prefix2": torch.zeros(2)}, "toy")  # class-name buffer skipped
    assert torch.equal(other.prompts.layer1, toy.prompts.layer1)
    bad = dict(state)
    bad.pop("prompts.layer1")
    bad["prompts.layer7"] = torch.zeros(2, 3)
    with pytest.raises(CheckpointKeyError) as err:
        strict_load(other, bad, "toy.pth")
    msg = str(err.value)
    assert "toy.pth" in msg and "missing: [prompts.layer1]" in msg and "unexpected: [prompts.layer7]" in msg
    wrong = dict(state)
    wrong["proj.0.weight"] = torch.zeros(5, 3)
    with pytest.raises(ValueError, match=r"proj.0.weight has shape \(5, 3\) in the checkpoint but \(4, 3\)"):
        strict_load(other, wrong, "toy")


# ------------------------------------------------------------------------------------------------ PromptSRC GPA
def test_gpa_weights_reference_values():
    from trainers.promptsrc import gpa_weights

    w = gpa_weights(15, 1, 20)
    assert len(w) == 20 and sum(w) == pytest.approx(1.0)
    assert [round(x, 3) for x in w[12:17]] == [0.054, 0.242, 0.399, 0.242, 0.054]
    assert round(w[11], 4) == 0.0044 and round(w[17], 4) == 0.0044
    flat = gpa_weights(6, 10, 20)
    assert 0.055 <= min(flat[:11]) and max(flat[:11]) <= 0.064 and round(flat[-1], 3) == 0.024
    with pytest.raises(ValueError, match="GPA_STD"):
        gpa_weights(15, 0, 20)


def test_gpa_accumulates_trainable_tensors_only():
    from trainers.promptsrc import PromptSRC, gpa_weights

    trainer = PromptSRC.__new__(PromptSRC)  # only the GPA state machine is exercised
    model = nn.Module()
    model.p = nn.Parameter(torch.zeros(3))
    model.frozen = nn.Parameter(torch.full((2,), 7.0), requires_grad=False)
    trainer.model, trainer.max_epoch = model, 3
    trainer.gpa_w = gpa_weights(2, 1, 3)
    trainer._reset_gpa()
    for epoch, value in enumerate([1.0, 2.0, 4.0]):
        trainer.epoch = epoch
        with torch.no_grad():
            model.p.fill_(value)
        trainer.on_epoch_end()
    w = trainer.gpa_w
    expected = w[0] * 1.0 + w[1] * 2.0 + w[2] * 4.0
    assert torch.allclose(model.p, torch.full((3,), expected))
    assert torch.equal(model.frozen, torch.full((2,), 7.0)) and set(trainer.gpa_state) == {"p"}
    trainer.epoch = 2
    with pytest.raises(RuntimeError, match="already accumulated"):
        trainer.on_epoch_end()


# ------------------------------------------------------------------------------------------------ base / config
def test_resolve_precision_and_hm(caplog):
    from engine.run_record import harmonic_mean
    from trainers.common.base import resolve_precision

    cpu = torch.device("cpu")
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("fp16", cpu, "TRAINER.X.PREC") == "fp32"
    assert "needs CUDA" in caplog.text
    assert resolve_precision("amp", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="'fp8'"):
        resolve_precision("fp8", cpu)
    assert harmonic_mean(85.84, 71.37) == pytest.approx(77.94, abs=0.01)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_projector_shapes_and_reference_count():
    from trainers.promptkd import build_projector

    two = build_projector(512, 768, 2)
    assert [type(m).__name__ for m in two] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert sum(p.numel() for p in two.parameters()) == 986_112  # docs/REFERENCE.md T7: 393,984 + 1,536 + 590,592
    assert sum(p.numel() for p in build_projector(64, 96, 1).parameters()) == 64 * 96 + 96
    assert len(build_projector(64, 96, 3)) == 7
    with pytest.raises(ValueError, match="PROJECT_LAYER"):
        build_projector(64, 96, 4)


def _cfg():
    import datasets
    import trainers
    from engine.api import get_cfg_default

    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    trainers.extend_cfg(cfg)
    return cfg


def test_extend_cfg_defaults_and_registry():
    from engine.api import TRAINER_REGISTRY

    cfg = _cfg()
    pk = cfg.TRAINER.PROMPTKD
    assert pk.TEACHER_NAME == "ViT-L/14" and pk.KD_WEIGHT == 1000.0 and pk.LOSS == "kl_reference"
    assert pk.TEACHER_CKPT == "teacher_model/{dataset}/VLPromptLearner"  # the released teachers' folder
    assert cfg.TRAINER.PROMPTSRC.GPA_MEAN == 15 and cfg.TRAINER.IVLP.N_CTX_TEXT == 2
    assert cfg.TRAINER.COOP.N_CTX == 16 and cfg.TRAINER.MAPLE.PROMPT_DEPTH == 9
    assert cfg.MODEL.BACKBONE.ALLOW_RANDOM_INIT is False and cfg.MODEL.BACKBONE.WEIGHTS_DIR == ""
    assert cfg.TEST.FINAL_MODEL == "last_step"
    names = set(TRAINER_REGISTRY.registered_names())
    assert {"ZeroshotCLIP", "ZeroshotCLIP2", "IVLP", "PromptSRC", "PromptSRCTeacher", "PromptKDStudent", "PromptKD"} <= names


def test_config_validation_messages():
    from trainers.promptkd import PromptKDStudent

    cfg = _cfg()
    cfg.TRAINER.PROMPTKD.CE_WEIGHT = 0.5
    with pytest.raises(ValueError, match="CE_WEIGHT"):
        PromptKDStudent.check_cfg(object.__new__(PromptKDStudent), cfg)
    cfg = _cfg()
    cfg.TRAINER.PROMPTKD.PREC = "fp8"
    with pytest.raises(ValueError, match="TRAINER.PROMPTKD.PREC"):
        PromptKDStudent.check_cfg(object.__new__(PromptKDStudent), cfg)
    cfg = _cfg()
    cfg.TEST.FINAL_MODEL = "best_test"
    with pytest.raises(ValueError, match="best_test_reference"):
        PromptKDStudent.check_cfg(object.__new__(PromptKDStudent), cfg)


def test_input_size_check(tiny):
    from trainers.common.backbone import check_input_size

    cfg = _cfg()
    cfg.INPUT.SIZE = (224, 224)
    with pytest.raises(ValueError, match=r"INPUT.SIZE is \(224, 224\) but the CLIP model 'tiny' takes 32x32"):
        check_input_size(cfg, tiny, "tiny")
    cfg.INPUT.SIZE = (32, 32)
    check_input_size(cfg, tiny, "tiny")


def test_optimize_step_grad_norm_and_non_finite_guard():
    from trainers.ivlp import IVLP

    model = nn.Linear(3, 1, bias=False)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    tr = IVLP.__new__(IVLP)  # only the optimisation step is exercised
    tr._models, tr._optims = {"m": model}, {"m": optim}
    tr._prec, tr.device = "fp32", torch.device("cpu")
    tr.epoch, tr.max_epoch, tr.batch_idx, tr.num_batches = 2, 5, 3, 10
    before = model.weight.detach().clone()
    x = torch.tensor([[1.0, 2.0, 2.0]])
    norm = tr.optimize(model(x).sum())
    assert norm == pytest.approx(3.0)  # d(w.x)/dw = x, |x| = 3
    assert torch.allclose(model.weight, before - 0.1 * x)
    with pytest.raises(FloatingPointError, match=r"Non-finite loss nan at epoch 3/5, step 4/10"):
        tr.optimize(model(x).sum() * float("nan"))
    assert torch.allclose(model.weight, before - 0.1 * x)  # no step was taken
