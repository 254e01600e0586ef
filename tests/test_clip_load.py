"""clip.load: weight formats round trip, name resolution, error messages."""
import copy
import os
import warnings

import open_clip
import pytest
import torch

import clip
from clip import weights as clip_weights


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _no_env_weights_dir(monkeypatch):
    monkeypatch.delenv("CLIP_WEIGHTS_DIR", raising=False)


def _inputs(model, seed=0):
    info = clip.model_info(model)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, info.image_size, info.image_size, generator=g)
    prompts = [torch.randn(3, info.vision_width, generator=g) for _ in range(2)]
    ids = clip.tokenize(["a photo of a cat.", "a photo of a red star."], context_length=info.context_length)
    deep = [torch.randn(2, info.text_width, generator=g)]
    return images, prompts, ids, deep


def _outputs(model, seed=0):
    images, prompts, ids, deep = _inputs(model, seed)
    with torch.no_grad():
        emb = clip.token_embedding(model, ids)
        return [
            clip.encode_image(model.visual, images),
            clip.encode_image(model.visual, images, prompts),
            clip.encode_text(model, emb, ids),
            clip.encode_text(model, emb, ids, deep, n_ctx=2),
        ]


def _assert_identical(a, b):
    for x, y in zip(_outputs(a), _outputs(b)):
        assert (x - y).abs().max().item() == 0.0
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _tiny(name, seed):
    torch.manual_seed(seed)
    return clip.load(name, allow_random=True)


# ------------------------------------------------------------------------------------------------
# (3) round trips through load()
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny-vit-student", "tiny-vit-teacher"])
def test_openai_state_dict_round_trip(tmp_path, name):
    model = _tiny(name, 0)
    path = clip.save_openai_state_dict(model, tmp_path / "w.pt")
    assert sorted(os.listdir(tmp_path)) == ["w.pt"]  # atomic write leaves no temp file
    loaded = clip.load(str(path))
    assert isinstance(loaded, open_clip.CLIP) and not loaded.training
    assert clip.model_info(loaded) == clip.model_info(model)
    _assert_identical(model, loaded)


@pytest.mark.parametrize("name", ["tiny-vit-student", "tiny-vit-teacher"])
def test_open_clip_checkpoint_round_trip(tmp_path, name):
    model = _tiny(name, 1)
    path = clip.save_open_clip_checkpoint(model, tmp_path / "ckpt.pt", name)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["model_name"] == name and set(ckpt) == {"state_dict", "model_name", "model_cfg"}
    _assert_identical(model, clip.load(str(path)))
    # the same file through open_clip.create_model via the open_clip: spec
    _assert_identical(model, clip.load(f"open_clip:{name}:{path}"))


def test_round_trip_proving_ground_like_architecture(tmp_path):
    """Widths 128/96, context length 16: heads = width // 64 must be inferred from the keys."""
    cfg = {
        "embed_dim": 128, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 96, "heads": 1, "layers": 2},
    }
    torch.manual_seed(2)
    model = clip.build_from_config(cfg)
    inferred = clip.config_from_openai_state_dict(model.state_dict())
    assert inferred["text_cfg"]["context_length"] == 16 and inferred["text_cfg"]["heads"] == 1
    assert inferred["vision_cfg"]["width"] // inferred["vision_cfg"]["head_width"] == 2
    _assert_identical(model, clip.load(str(clip.save_openai_state_dict(model, tmp_path / "pg.pt"))))
    _assert_identical(model, clip.load(str(clip.save_open_clip_checkpoint(model, tmp_path / "pg_oc.pt", "pg"))))


def test_torchscript_archive_round_trip(tmp_path):
    model = _tiny("tiny-vit-student", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(
            model, {"encode_image": (torch.ones(1, 3, 32, 32),), "encode_text": (torch.zeros(1, 77, dtype=torch.long),)}
        )
        torch.jit.save(traced, str(tmp_path / "ViT-B-16.pt"))
    wf = clip.read_weights_file(tmp_path / "ViT-B-16.pt")
    assert wf.kind == "openai" and wf.jit and "attn_mask" not in wf.state_dict
    # found by OpenAI name in weights_dir, like the reference's ./clip/ViT-B-16.pt
    _assert_identical(model, clip.load("ViT-B/16", weights_dir=tmp_path))


def test_fp16_file_loads_into_fp32_and_fp16(tmp_path):
    model = _tiny("tiny-vit-student", 3)
    sd = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "half.pt")
    loaded = clip.load(str(tmp_path / "half.pt"))
    assert loaded.visual.conv1.weight.dtype == torch.float32
    assert torch.equal(loaded.visual.conv1.weight, sd["visual.conv1.weight"].float())
    lp = clip.load(str(tmp_path / "half.pt"), precision="fp16")
    assert lp.visual.conv1.weight.dtype == torch.float16
    assert lp.visual.ln_pre.weight.dtype == torch.float32
    assert lp.token_embedding.weight.dtype == torch.float32  # OpenAI convert_weights keeps embeddings fp32


def test_save_openai_refuses_models_the_layout_cannot_describe(tmp_path):
    cfg = copy.deepcopy(clip.TINY_CONFIGS["tiny-vit-student"])
    cfg["quick_gelu"] = False
    with pytest.raises(ValueError, match="QuickGELU.*save_open_clip_checkpoint"):
        clip.save_openai_state_dict(clip.build_from_config(cfg), tmp_path / "x.pt")
    cfg = copy.deepcopy(clip.TINY_CONFIGS["tiny-vit-teacher"])
    cfg["text_cfg"]["heads"] = 4
    with pytest.raises(ValueError, match="text tower has 4 heads, the rule heads = width // 64 gives 2"):
        clip.save_openai_state_dict(clip.build_from_config(cfg), tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_shipped_configs_follow_the_heads_rule():
    assert {"tiny-vit-student", "tiny-vit-teacher"} <= set(clip.TINY_CONFIGS)
    for name, cfg in clip.TINY_CONFIGS.items():
        assert cfg["text_cfg"]["heads"] == clip.openai_heads(cfg["text_cfg"]["width"]), name
        assert cfg["vision_cfg"].get("head_width", 64) * clip.openai_heads(cfg["vision_cfg"]["width"]) \
            == cfg["vision_cfg"]["width"], name
        assert cfg.get("quick_gelu") is True, name
    s = clip.TINY_CONFIGS["tiny-vit-student"]
    assert (s["embed_dim"], s["vision_cfg"]["width"], s["vision_cfg"]["layers"], s["vision_cfg"]["patch_size"],
            s["vision_cfg"]["image_size"], s["text_cfg"]["width"], s["text_cfg"]["layers"]) == (64, 64, 2, 8, 32, 64, 2)
    t = clip.TINY_CONFIGS["tiny-vit-teacher"]
    assert (t["embed_dim"], t["vision_cfg"]["width"], t["vision_cfg"]["layers"], t["text_cfg"]["width"],
            t["text_cfg"]["layers"]) == (96, 128, 3, 128, 2)
    assert "tiny-vit-student" in open_clip.list_models()  # registered with open_clip at import


def test_tiny_weights_depend_on_the_name_only():
    """A tiny architecture gets the same weights in every build, whatever the global seed, and the global
    RNG stream is not consumed; the weights are open_clip's init under the seed derived from the name."""
    a, b = _tiny("tiny-vit-student", 5), _tiny("tiny-vit-student", 6)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    clip.load("tiny-vit-teacher", allow_random=True)
    assert torch.equal(torch.rand(3), expected_next)  # global RNG untouched
    torch.manual_seed(clip.tiny_seed("tiny-vit-student"))
    ref = open_clip.create_model("tiny-vit-student", pretrained=None).state_dict()
    assert all(torch.equal(sa[k], ref[k]) for k in sa)
    assert clip.tiny_seed("tiny-vit-student") != clip.tiny_seed("tiny-vit-teacher")


# ------------------------------------------------------------------------------------------------
# (4) name resolution and error messages
# ------------------------------------------------------------------------------------------------
def test_missing_openai_weights_error_names_paths_and_remedies(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        clip.load("ViT-B/16", weights_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "ViT-B-16.pt") in msg
    assert "openaipublic.azureedge.net/clip/models/" in msg and "ViT-B-16.pt" in msg
    assert "MODEL.BACKBONE.WEIGHTS_DIR" in msg and "CLIP_WEIGHTS_DIR" in msg and "./clip/ViT-B-16.pt" in msg
    assert "pretrained='openai'" in msg and "allow_random=True" in msg


def test_default_search_order_env_then_reference_dir_then_cache(tmp_path, monkeypatch):
    assert [str(p) for p in clip_weights.weight_search_dirs(None)] == ["clip", os.path.expanduser("~/.cache/clip")]
    monkeypatch.setenv("CLIP_WEIGHTS_DIR", str(tmp_path / "env"))
    paths = clip.candidate_weight_paths("ViT-L/14@336px")
    assert paths[0] == tmp_path / "env" / "ViT-L-14-336px.pt"  # OpenAI release file name
    assert tmp_path / "env" / "ViT-L-14@336px.pt" in paths
    assert os.path.join("clip", "ViT-L-14-336px.pt") in [str(p) for p in paths]
    # explicit weights_dir wins and is the only folder searched
    assert clip.candidate_weight_paths("ViT-B-16", tmp_path / "x") == [tmp_path / "x" / "ViT-B-16.pt"]


def test_env_var_weights_dir_is_used(tmp_path, monkeypatch):
    model = _tiny("tiny-vit-student", 7)
    clip.save_openai_state_dict(model, tmp_path / "ViT-B-32.pt")
    monkeypatch.setenv("CLIP_WEIGHTS_DIR", str(tmp_path))
    assert clip.resolve_weights_path("ViT-B/32") == tmp_path / "ViT-B-32.pt"
    _assert_identical(model, clip.load("ViT-B/32"))
    with pytest.raises(FileNotFoundError, match="Tried"):
        clip.load("ViT-B/32", weights_dir=tmp_path / "empty")


def test_allow_random_builds_openai_architecture(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="clip"):
        torch.manual_seed(0)
        model = clip.load("RN50", weights_dir=tmp_path, allow_random=True)
    assert "RANDOM weights" in caplog.text and str(tmp_path / "RN50.pt") in caplog.text
    info = clip.model_info(model)
    assert not info.is_vit and info.embed_dim == 1024 and info.vision_width == 2048 and info.image_size == 224


def test_tiny_names_require_allow_random():
    with pytest.raises(ValueError, match="allow_random=True.*MODEL.BACKBONE.ALLOW_RANDOM_INIT"):
        clip.load("tiny-vit-student")


def test_unknown_names_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="Did you mean \\['tiny-vit-student'"):
        clip.load("tiny-vit-studnet")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        clip.load(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="precision 'fp8'"):
        clip.load("tiny-vit-student", allow_random=True, precision="fp8")
    with pytest.raises(ValueError, match="empty model name"):
        clip.load(" ")
    custom_text = dict(copy.deepcopy(clip.TINY_CONFIGS["tiny-vit-student"]), custom_text=True)
    with pytest.raises(ValueError, match="build_from_config: CoCa / custom-text models .* are not supported"):
        clip.build_from_config(custom_text)
    with pytest.raises(ValueError, match="needs an open_clip CLIP model, got Linear"):
        clip.token_embedding(torch.nn.Linear(2, 2), torch.zeros(1, 3, dtype=torch.long))


def test_unreadable_or_unknown_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt: cannot read"):
        clip.load(str(garbage))
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: unrecognised state dict layout"):
        clip.load(str(tmp_path / "other.pt"))
    model = _tiny("tiny-vit-student", 8)
    # an open_clip training checkpoint: state_dict under "module." but no architecture recorded
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "name": "run", "state_dict": sd}, tmp_path / "epoch_3.pt")
    with pytest.raises(ValueError, match="open_clip:<architecture>:"):
        clip.load(str(tmp_path / "epoch_3.pt"))
    _assert_identical(model, clip.load(f"open_clip:tiny-vit-student:{tmp_path / 'epoch_3.pt'}"))
    # weights that do not fit the recorded architecture
    ckpt = {"state_dict": model.state_dict(), "model_name": "tiny-vit-teacher"}
    torch.save(ckpt, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="mismatch.pt.*do not fit"):
        clip.load(str(tmp_path / "mismatch.pt"))


def test_open_clip_spec_errors(monkeypatch):
    with pytest.raises(ValueError, match="not an open_clip architecture"):
        clip.load("open_clip:ViT-Q-99")
    with pytest.raises(ValueError, match="laion2b_s34b_b79k"):
        clip.load("open_clip:ViT-B-32:no-such-tag")
    with pytest.raises(ValueError, match="allow_random=True"):
        clip.load("open_clip:tiny-vit-student")
    torch.manual_seed(0)
    a = clip.load("open_clip:tiny-vit-student", allow_random=True)
    _assert_identical(a, _tiny("tiny-vit-student", 0))

    calls = {}

    def offline_create_model(name, **kwargs):
        calls.update(kwargs, name=name)
        raise RuntimeError("Failed to download weights for tag 'laion2b_s34b_b79k': connection refused")

    monkeypatch.setattr(open_clip, "create_model", offline_create_model)
    with pytest.raises(RuntimeError, match="needs internet access.*open_clip:ViT-B-32:/path/to/"):
        clip.load("open_clip:ViT-B/32:laion2b_s34b_b79k")
    assert calls["name"] == "ViT-B-32" and calls["pretrained"] == "laion2b_s34b_b79k"
    with pytest.raises(RuntimeError):
        clip.load("open_clip:ViT-B-16:openai")
    assert calls["force_quick_gelu"] is True  # OpenAI weights need QuickGELU


def test_resnet_round_trip_and_plain_encoders(tmp_path):
    cfg = {
        "embed_dim": 64, "quick_gelu": True,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
    }
    torch.manual_seed(4)
    model = clip.build_from_config(cfg)
    loaded = clip.load(str(clip.save_openai_state_dict(model, tmp_path / "rn.pt")))
    info = clip.model_info(loaded)
    assert not info.is_vit and (info.vision_width, info.vision_layers, info.image_size) == (256, 4, 64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(clip.encode_image(loaded.visual, x), model.encode_image(x))
    with pytest.raises(ValueError, match="need a ViT image tower"):
        clip.encode_image(loaded.visual, x, [torch.zeros(2, 256)])
    sa, sb = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
