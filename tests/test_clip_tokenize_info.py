"""clip.tokenize and clip.model_info."""
import pytest
import torch
from open_clip import CLIP

import clip


pytestmark = pytest.mark.usefixtures("one_thread")


def test_tokenize_sot_eot_padding():
    ids = clip.tokenize(["a photo of a cat.", "dog"])
    assert ids.dtype == torch.long and ids.shape == (2, 77)
    assert (ids[:, 0] == clip.SOT_TOKEN_ID).all() and clip.SOT_TOKEN_ID == 49406
    eot = ids.argmax(dim=-1)
    assert (ids[torch.arange(2), eot] == clip.EOT_TOKEN_ID).all() and clip.EOT_TOKEN_ID == 49407
    assert eot.tolist() == [7, 2]  # SOT + "a photo of a cat ." (6 tokens) + EOT; SOT + "dog" + EOT
    assert ids[0, 1:5].tolist() == [320, 1125, 539, 320]  # CLIP BPE ids of "a photo of a"
    assert (ids[0, 8:] == 0).all() and (ids[1, 3:] == 0).all()
    assert torch.equal(clip.tokenize("dog"), ids[1:2])


def test_tokenize_context_16_and_truncation_keeps_eot_last():
    ids = clip.tokenize(["a photo of a large red triangle on a noisy striped background, rotated"], context_length=16)
    assert ids.shape == (1, 16)
    assert ids[0, -1].item() == clip.EOT_TOKEN_ID and ids.argmax(-1).item() == 15
    assert (ids[0] != 0).all()
    short = clip.tokenize("red star", context_length=16)
    assert short.argmax(-1).item() == 3 and (short[0, 4:] == 0).all()
    with pytest.raises(ValueError, match="context_length must be >= 2"):
        clip.tokenize("a", context_length=1)
    with pytest.raises(TypeError):
        clip.tokenize(["a", 3])


def test_model_info_tiny():
    torch.manual_seed(0)
    s = clip.model_info(clip.load("tiny-vit-student", allow_random=True))
    assert s == clip.ModelInfo(embed_dim=64, vision_width=64, vision_layers=2, vision_heads=1, patch_size=8,
                               image_size=32, text_width=64, text_layers=2, context_length=77, vocab_size=49408)
    t = clip.model_info(clip.load("tiny-vit-teacher", allow_random=True))
    assert (t.embed_dim, t.vision_width, t.vision_layers, t.vision_heads, t.text_width, t.text_layers) == \
        (96, 128, 3, 2, 128, 2)


def test_model_info_vit_b16_random(tmp_path):
    torch.manual_seed(0)
    info = clip.model_info(clip.load("ViT-B/16", allow_random=True, weights_dir=tmp_path))
    assert info == clip.ModelInfo(embed_dim=512, vision_width=768, vision_layers=12, vision_heads=12, patch_size=16,
                                  image_size=224, text_width=512, text_layers=12, context_length=77,
                                  vocab_size=49408)


def test_model_info_vit_l14():
    # built on the meta device: same modules as clip.load('ViT-L/14', allow_random=True), no 1.7 GB init
    cfg = clip.configs.get_config(clip.OPENAI_MODELS["ViT-L/14"])
    with torch.device("meta"):
        model = CLIP(**cfg)
    info = clip.model_info(model)
    assert (info.embed_dim, info.vision_width, info.text_width) == (768, 1024, 768)
    assert (info.vision_layers, info.vision_heads, info.patch_size, info.image_size) == (24, 16, 14, 224)
    assert (info.text_layers, info.context_length) == (12, 77)
    with pytest.raises(TypeError, match="expected an open_clip CLIP"):
        clip.model_info(torch.nn.Linear(2, 2))


def test_available_models():
    names = clip.available_models()
    for n in ("ViT-B/16", "ViT-B/32", "ViT-L/14", "ViT-L/14@336px", "RN50", "RN101", "RN50x4", "RN50x16",
              "RN50x64", "tiny-vit-student", "tiny-vit-teacher"):
        assert n in names
