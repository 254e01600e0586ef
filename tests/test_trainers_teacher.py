"""The PromptKD teacher: our checkpoints, the released PromptSRC key layout (docs/REFERENCE.md M6), strictness,
and ``tools/make_class_vectors.py``."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import clip
from trainers.common.checkpoints import CheckpointKeyError, trainable_state_dict
from trainers.common.teacher import compute_class_vectors, load_teacher_checkpoint
from trainers.common.vl_model import VLPromptCLIP

torch.set_num_threads(1)

CLASSES = ["banded", "blotchy", "braided_hair", "bubbly", "bumpy"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    weights = str(base / "tiny-teacher.pt")
    clip.save_openai_state_dict(clip.load("tiny-vit-teacher", allow_random=True), weights)
    backbone = clip.load(weights).requires_grad_(False)
    # a teacher as our PromptSRC trainer would hold it: Nt 4 x Jt 2 text, Nv 3 x Jv 3 visual prompts
    model = VLPromptCLIP(backbone, CLASSES, 4, 2, "a photo of a", 3, 3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return {"base": base, "weights": weights, "model": model}


def _cfg(weights):
    import datasets
    import trainers
    from engine.api import get_cfg_default

    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    trainers.extend_cfg(cfg)
    cfg.TRAINER.PROMPTKD.TEACHER_NAME = weights
    cfg.DATASET.NAME = "DescribableTextures"
    return cfg


def to_reference_layout(model: VLPromptCLIP, half: bool = True) -> dict:
    """Our IVLP-style model -> the released PromptSRC CustomCLIP state dict (docs/REFERENCE.md M6), in fp16."""
    sd = {}
    for k, v in model.backbone.state_dict().items():
        if k.startswith("visual."):
            sd["image_encoder." + k[len("visual."):]] = v
        elif k.startswith("transformer.") or k.startswith("ln_final.") or k in ("positional_embedding", "text_projection"):
            sd["text_encoder." + k] = v
        elif k == "logit_scale":
            sd[k] = v
    sd["prompt_learner.ctx"] = model.text_prompts.layer0
    for i in range(1, model.text_prompts.depth):
        sd[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"] = getattr(model.text_prompts, f"layer{i}")
    sd["image_encoder.VPT"] = model.image_prompts.layer0
    for i in range(1, model.image_prompts.depth):
        sd[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = getattr(model.image_prompts, f"layer{i}")
    sd["prompt_learner.token_prefix"] = model.text_prompts.token_prefix
    sd["prompt_learner.token_suffix"] = model.text_prompts.token_suffix
    for k, v in model.backbone.visual.state_dict().items():
        sd["prompt_learner.ZS_image_encoder." + k] = v
    return {k: v.detach().clone().half() if half and v.is_floating_point() else v.detach().clone() for k, v in sd.items()}


def _save(path, state):
    torch.save({"state_dict": state, "epoch": 20, "optimizer": None, "scheduler": None, "val_result": None}, path)
    return str(path)


def _expected(model, images, names):
    with torch.no_grad():
        ref = copy.deepcopy(model)
        ref.set_classnames(names)
        return F.normalize(ref.encode_text(), dim=-1), F.normalize(ref.encode_image(images), dim=-1)


def test_released_layout_loads_strictly_with_identical_outputs(setup, tmp_path):
    model = setup["model"]
    ref_model = copy.deepcopy(model)
    with torch.no_grad():  # the checkpoint's CLIP tower weights must be the ones used (not TEACHER_NAME's)
        ref_model.backbone.visual.ln_post.weight.mul_(1.5)
        ref_model.backbone.ln_final.bias.add_(0.1)
        for name, p in ref_model.named_parameters():  # fp16 round trip as in the released files, which
            if name != "backbone.token_embedding.weight":  # lack the token embedding (from TEACHER_NAME)
                p.copy_(p.half().float())
    path = _save(tmp_path / "model.pth.tar-20", to_reference_layout(ref_model))
    teacher = load_teacher_checkpoint(_cfg(setup["weights"]), path, "cpu", "fp32")
    assert teacher.identity.format == "reference"
    assert teacher.identity.prompt == {"n_ctx_text": 4, "depth_text": 2, "n_ctx_vision": 3, "depth_vision": 3,
                                          "ctx_init": "a photo of a"}
    images = torch.randn(3, 3, 32, 32)
    exp_text, exp_img = _expected(ref_model, images, CLASSES)
    assert torch.allclose(compute_class_vectors(teacher, CLASSES, batch_size=2), exp_text, atol=1e-5)
    assert torch.allclose(teacher.image_encoder()(images), exp_img, atol=1e-5)
    assert all(not p.requires_grad for p in teacher.vl_model.parameters())


def test_our_checkpoint_loads_with_identical_outputs(setup, tmp_path):
    model = setup["model"]
    path = tmp_path / "ours" / "model.pth.tar-2"
    os.makedirs(path.parent)
    torch.save({"state_dict": trainable_state_dict(model), "epoch": 2,
                "meta": {"backbone": setup["weights"], "ctx_init": "a photo of a", "trainer": "PromptSRCTeacher"}}, path)
    cfg = _cfg("ViT-L/14")  # ignored: the checkpoint names its backbone
    teacher = load_teacher_checkpoint(cfg, str(path.parent.parent / "ours"), "cpu", "fp32")  # a run dir works too
    assert teacher.identity.format == "ours" and teacher.identity.model == setup["weights"]
    images = torch.randn(2, 3, 32, 32)
    exp_text, exp_img = _expected(model, images, CLASSES)
    assert torch.allclose(compute_class_vectors(teacher, CLASSES), exp_text, atol=1e-6)
    assert torch.allclose(teacher.image_encoder()(images), exp_img, atol=1e-6)


@pytest.mark.parametrize("case", ["missing_backbone_key", "missing_deep_prompt", "extra_key", "wrong_prompt_shape",
                                  "wrong_backbone_shape", "student_checkpoint"])
def test_wrong_released_checkpoint_fails_with_key_lists(setup, tmp_path, case):
    sd = to_reference_layout(setup["model"])
    if case == "missing_backbone_key":
        sd.pop("image_encoder.ln_post.weight")
        err, match = CheckpointKeyError, r"missing: \[visual.ln_post.weight\]"
    elif case == "missing_deep_prompt":
        sd.pop("image_encoder.transformer.resblocks.1.VPT_shallow")
        err, match = CheckpointKeyError, r"missing: \[image_prompts.layer1\]"
    elif case == "extra_key":
        sd["prompt_learner.meta_net.linear1.weight"] = torch.zeros(2, 2)
        err, match = CheckpointKeyError, r"unexpected keys \[prompt_learner.meta_net.linear1.weight\]"
    elif case == "wrong_prompt_shape":
        sd["image_encoder.VPT"] = torch.zeros(5, 128)
        err, match = ValueError, r"image_prompts.layer0: \(5, 128\)"
    elif case == "wrong_backbone_shape":
        sd["image_encoder.proj"] = torch.zeros(128, 32)
        err, match = ValueError, r"visual.proj has shape \(128, 32\)"
    else:
        sd = {"image_encoder.VPT": torch.zeros(3, 128), "VPT_image_trans.conv1.0.weight": torch.zeros(96, 64, 1, 1)}
        err, match = CheckpointKeyError, r"unexpected keys \[VPT_image_trans"
    path = _save(tmp_path / "bad.pth.tar", sd)
    with pytest.raises(err, match=match):
        load_teacher_checkpoint(_cfg(setup["weights"]), path, "cpu", "fp32")


def test_make_class_vectors_tool(setup, tmp_path):
    from tests.helpers.fake_roots import make_root
    from trainers.common.class_vectors import load_class_vectors

    root = make_root("DescribableTextures", tmp_path / "data", n_classes=4, per_class=6)
    model = setup["model"]
    ckpt = _save(tmp_path / "released.pth.tar", to_reference_layout(model))
    out = tmp_path / "cv.pt"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, os.path.join(repo, "tools", "make_class_vectors.py"), ckpt,
         "--dataset-config-file", os.path.join(repo, "configs", "datasets", "dtd.yaml"), "--root", root,
         "--out", str(out), "--teacher-name", setup["weights"], "TRAINER.PROMPTKD.PREC", "fp32"],
        capture_output=True, text=True, cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cv = load_class_vectors(str(out))
    assert cv.classnames == ["banded", "blotchy", "braided", "bubbly"] and cv.teacher["format"] == "reference"
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name != "backbone.token_embedding.weight":
                p.copy_(p.half().float())
    exp_text, _ = _expected(ref, torch.zeros(1, 3, 32, 32), cv.classnames)
    assert torch.allclose(cv.features, exp_text, atol=1e-5)
    assert "4 classes" in proc.stdout
