"""Trainable-parameter counts on the real architectures (random weights): docs/REFERENCE.md M2 / T7.

ViT-B/16 is built for real (random weights, ~2 s); the ViT-L/14 teacher is only needed for its
dimensions, so it is instantiated on the meta device and read through ``clip.model_info`` — the same
function the trainers use to size prompts and projectors.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import clip
import train
from tests.helpers.fake_roots import make_root
from trainers.common.class_vectors import save_class_vectors

torch.set_num_threads(1)


pytestmark = pytest.mark.usefixtures("fast_env_info")


@pytest.fixture(scope="module")
def l14_info():
    import open_clip

    cfg = clip.configs.get_config("ViT-L/14-quickgelu")
    with torch.device("meta"):
        model = open_clip.CLIP(**cfg)
    return clip.model_info(model)


def _argv(tmp_path, trainer, opts):
    root = make_root("DescribableTextures", tmp_path / "data", n_classes=4, per_class=6)
    empty = tmp_path / "no_weights"
    empty.mkdir()
    return (["--root", root, "--trainer", trainer, "--dataset-config-file", "configs/datasets/dtd.yaml",
             "--output-dir", str(tmp_path / "out"), "--no-train",
             "MODEL.BACKBONE.NAME", "ViT-B/16", "MODEL.BACKBONE.WEIGHTS_DIR", str(empty),
             "MODEL.BACKBONE.ALLOW_RANDOM_INIT", "True", "DATALOADER.NUM_WORKERS", "0"] + opts)


def test_ivlp_4plus4_depth9_on_vit_b16(tmp_path):
    tr = train.main(_argv(tmp_path, "IVLP", [
        "TRAINER.IVLP.N_CTX_TEXT", "4", "TRAINER.IVLP.N_CTX_VISION", "4", "TRAINER.IVLP.PREC", "fp32"]))
    text = sum(p.numel() for n, p in tr.model.named_parameters() if p.requires_grad and n.startswith("text_prompts."))
    vision = sum(p.numel() for n, p in tr.model.named_parameters() if p.requires_grad and n.startswith("image_prompts."))
    assert text == 18_432 and vision == 27_648  # 9 x 4 x 512 and 9 x 4 x 768
    assert tr.num_trainable_params() == 46_080


def test_promptkd_b16_student_l14_teacher(tmp_path, l14_info):
    assert (l14_info.embed_dim, l14_info.vision_width, l14_info.text_width) == (768, 1024, 768)
    names = ["banded", "blotchy", "braided", "bubbly"]
    cv = tmp_path / "cv.pt"
    feats = F.normalize(torch.randn(4, l14_info.embed_dim), dim=-1)
    save_class_vectors(str(cv), feats, names, {"type": "promptsrc", "model": "ViT-L/14"}, 100.0)
    tr = train.main(_argv(tmp_path, "PromptKD", [
        "TRAINER.PROMPTKD.PREC", "fp32", "TRAINER.PROMPTKD.CLASS_VECTORS", str(cv)]))
    prompts = sum(p.numel() for n, p in tr.model.named_parameters() if p.requires_grad and n.startswith("image_prompts."))
    projector = sum(p.numel() for p in tr.model.projector.parameters())
    assert tr.model.projector[0].in_features == 512 and tr.model.projector[-1].out_features == 768
    assert prompts == 27_648 and projector == 986_112
    assert tr.num_trainable_params() == 1_013_760
