"""Proving ground: world rendering, captions, pre-training determinism, cache, dataset, CLI."""

import hashlib
import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from proving_ground import build as B
from proving_ground import captions as C
from proving_ground import cache
from proving_ground import dataset as D
from proving_ground import pretrain as P
from proving_ground import world as W
from proving_ground import world_config as WC


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_world(seed=0):
    return B.preset("tiny", seed=seed).world


# ------------------------------------------------------------------------------------------ classes


@pytest.mark.parametrize("nc,ns", [(8, 8), (3, 3), (4, 3), (2, 5)])
def test_class_order_puts_every_colour_and_shape_in_base_and_novel(nc, ns):
    world = W.WorldConfig(colours=tuple(W.COLOUR_RGB)[:nc], shapes=WC.SHAPES[:ns])
    classes = W.class_list(world)
    n = nc * ns
    n_base = math.ceil(n / 2)
    assert [c.label for c in classes] == list(range(n))
    assert [c.base for c in classes] == [True] * n_base + [False] * (n - n_base)
    for half in (classes[:n_base], classes[n_base:]):
        assert {c.colour for c in half} == set(range(nc))
        assert {c.shape for c in half} == set(range(ns))
    assert len({c.name for c in classes}) == n
    assert all(c.name == f"{world.colours[c.colour]} {world.shapes[c.shape]}" for c in classes)
    assert all(c.folder == c.name.replace(" ", "_") for c in classes)
    held = [c for c in classes if c.held_out]
    assert held and all(not c.base for c in held)  # only novel classes are held out
    assert len({c.colour for c in held}) == len(held) and len({c.shape for c in held}) == len(held)
    assert set(W.pretrain_labels(world)) == {c.label for c in classes if not c.held_out}


def test_default_world_holds_out_one_combination_per_colour_and_shape():
    classes = W.class_list(W.WorldConfig())
    held = [c for c in classes if c.held_out]
    assert len(classes) == 64 and len(held) == 8
    assert {c.colour for c in held} == set(range(8)) and {c.shape for c in held} == set(range(8))
    assert classes[0].name == "red circle" and classes[32].base is False


# ------------------------------------------------------------------------------------------ world


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


def test_generation_is_deterministic_and_seed_dependent():
    world = W.WorldConfig(seed=3)
    a, la = W.generate_balanced(world, "target", "test", 2, chunk=50)
    b, lb = W.generate_balanced(world, "target", "test", 2, chunk=50)
    assert a.dtype == np.uint8 and a.shape == (128, 32, 32, 3)
    assert _sha(a) == _sha(b) and np.array_equal(la, lb)
    assert np.array_equal(la, np.repeat(np.arange(64), 2))
    c, _ = W.generate_balanced(W.WorldConfig(seed=4), "target", "test", 2, chunk=50)
    d, _ = W.generate_balanced(world, "source", "test", 2, chunk=50)
    e, _ = W.generate_balanced(world, "target", "val", 2, chunk=50)
    assert len({_sha(a), _sha(c), _sha(d), _sha(e)}) == 4


def _scene(world, shape, texture="solid", background="plain", **over):
    """A single hand-set scene: centred, unrotated, noise-free, on a uniform grey background."""
    rng = W.make_rng(world, "source", "custom", 0)
    label = next(c.label for c in W.class_list(world) if c.colour == 0 and c.shape == world.shapes.index(shape))
    sc = W.sample_scenes(world, "source", np.array([label]), rng)
    sc.cx[:] = 0.0
    sc.cy[:] = 0.0
    sc.angle[:] = 0.0
    sc.scale[:] = 0.8
    sc.noise_std[:] = 0.0
    sc.global_brightness[:] = 1.0
    sc.contrast[:] = 1.0
    sc.colour_cast[:] = 1.0
    sc.texture[:] = W.TEXTURES.index(texture)
    sc.background[:] = W.BACKGROUNDS.index(background)
    sc.fill_rgb[:] = W.COLOUR_RGB[world.colours[0]]
    sc.bg_rgb1[:] = 0.5
    sc.bg_rgb2[:] = 0.2
    for k, v in over.items():
        getattr(sc, k)[:] = v
    return W.render(world, sc, rng)[0]


def test_render_draws_the_class_colour_and_distinct_shapes():
    world = W.WorldConfig(image_size=32)
    red = np.round(np.array(W.COLOUR_RGB["red"]) * 255)
    grey = np.round(np.full(3, 0.5) * 255)
    masks = {}
    for shape in WC.SHAPES:
        img = _scene(world, shape).astype(float)
        assert np.abs(img[0, 0] - grey).max() <= 1, shape  # corner: background
        is_obj = np.abs(img - red).max(axis=-1) <= 1
        is_bg = np.abs(img - grey).max(axis=-1) <= 1
        assert is_obj.sum() > 40, shape
        # every pixel is the object, the background, or an anti-aliased mix on the boundary
        assert (is_obj | is_bg).mean() > 0.75, shape
        masks[shape] = is_obj
    assert masks["ring"][16, 16] == 0 and masks["circle"][16, 16] == 1  # the ring has a hole
    assert masks["square"][8, 7] == 1 and masks["circle"][8, 7] == 0  # the square fills its corners
    assert masks["triangle"][10, 16] == 1 and masks["triangle"][10, 9] == 0  # apex up ...
    assert masks["triangle"][24, 9] == 1  # ... wide base at the bottom
    for a in WC.SHAPES:
        for b in WC.SHAPES:
            if a < b:
                assert (masks[a] != masks[b]).sum() > 20, (a, b)


def test_textures_backgrounds_and_noise_change_pixels():
    world = W.WorldConfig(image_size=32)
    solid = _scene(world, "square")
    for tex in ("striped", "spotted", "checkered"):
        assert (np.abs(_scene(world, "square", texture=tex).astype(int) - solid).max(axis=-1) > 30).sum() > 20, tex
    plain = _scene(world, "circle")
    for bg in ("gradient", "checker", "stripes", "blotches"):
        assert (_scene(world, "circle", background=bg) != plain).sum() > 50, bg
    noisy = _scene(world, "circle", noise_std=0.1)
    # Gaussian pixel noise of std 0.1: mean absolute deviation 0.1 * 255 * sqrt(2 / pi) = 20.3 grey levels
    assert np.abs(noisy.astype(float) - plain).mean() == pytest.approx(0.1 * 255 * math.sqrt(2 / math.pi), abs=1.5)


def test_target_domain_is_shifted_from_source():
    world = W.WorldConfig()
    rng = W.make_rng(world, "source", "custom", 1)
    src = W.sample_scenes(world, "source", np.zeros(400, dtype=int), rng)
    tgt = W.sample_scenes(world, "target", np.zeros(400, dtype=int), rng)
    assert set(W.BACKGROUNDS[k] for k in src.background) == {"plain", "gradient", "blotches"}
    assert set(W.BACKGROUNDS[k] for k in tgt.background) == {"checker", "stripes", "blotches"}
    assert "checkered" not in {W.TEXTURES[k] for k in src.texture}
    assert "checkered" in {W.TEXTURES[k] for k in tgt.texture}
    assert np.all(src.contrast == 1.0) and np.all(src.colour_cast == 1.0)
    assert tgt.contrast.min() < 0.85 and np.abs(tgt.colour_cast - 1).max() > 0.04
    assert tgt.noise_std.min() >= 0.02 and tgt.noise_std.mean() > src.noise_std.mean()
    assert np.abs(tgt.angle).max() > np.deg2rad(20) > np.deg2rad(15) >= np.abs(src.angle).max()
    assert tgt.scale.mean() < src.scale.mean()


def test_world_config_round_trip_and_errors():
    world = W.WorldConfig(seed=5, colours=("red", "blue"), shapes=("star", "ring"))
    again = W.WorldConfig.from_dict(json.loads(json.dumps(world.to_dict())))
    assert again == world and again.digest() == world.digest()
    assert W.WorldConfig(seed=6).digest() != W.WorldConfig(seed=5).digest()
    with pytest.raises(ValueError, match="unknown colours \\['mauve'\\]"):
        W.WorldConfig(colours=("red", "mauve"))
    with pytest.raises(ValueError, match="at least 2 colours and 2 shapes"):
        W.WorldConfig(shapes=("circle",))
    with pytest.raises(ValueError, match="unknown world config keys \\['colors'\\]"):
        W.WorldConfig.from_dict({"colors": ["red"]})
    with pytest.raises(ValueError, match="version 99"):
        W.WorldConfig.from_dict({**world.to_dict(), "version": 99})
    bad = WC.default_source_domain().__class__(**{**WC.default_source_domain().__dict__, "textures": (("solid", 0.5),)})
    with pytest.raises(ValueError, match="source.textures.*summing to 1"):
        W.WorldConfig(source=bad)
    with pytest.raises(ValueError, match="labels must lie in \\[0, 64\\)"):
        W.sample_scenes(W.WorldConfig(), "source", np.array([64]), np.random.default_rng(0))


# ------------------------------------------------------------------------------------------ captions


def test_captions_name_the_class_and_fit_the_context():
    world = W.WorldConfig()
    rng = W.make_rng(world, "source", "pretrain", 0, 0)
    labels = np.arange(64).repeat(4)
    sc = W.sample_scenes(world, "source", labels, rng)
    caps = C.make_captions(world, sc, rng)
    assert len(caps) == 256 and len(set(caps)) > 100
    for cap, lab in zip(caps, labels):
        colour, shape = W.classnames(world)[lab].split()
        assert colour in cap.split() or shape in cap.replace(".", "").split(), cap
    assert C.longest_caption_tokens(world) <= 16
    tok = C.CaptionTokenizer(16)
    ids = tok(caps)
    assert ids.shape == (256, 16) and (ids.argmax(dim=1) > 0).all()  # EOT is the largest id
    assert set(ids.unique().tolist()) <= set(C.grammar_token_ids(world, tok)) | {0}
    with pytest.raises(ValueError, match="more than the context length 16"):
        tok(["a " * 20])


# ------------------------------------------------------------------------------------------ pre-training


def _tiny_models():
    cfg = B.preset("tiny")
    return cfg.world, cfg.teacher, P.TrainConfig(steps=3, batch_size=12, lr=1e-3, seed=1)


def test_pretraining_is_deterministic_and_trains_only_used_token_rows():
    world, mcfg, tcfg = _tiny_models()
    m1, s1 = P.pretrain(world, mcfg, tcfg)
    m2, s2 = P.pretrain(world, mcfg, tcfg)
    sd1, sd2 = m1.state_dict(), m2.state_dict()
    assert sd1.keys() == sd2.keys()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    init = P.build_model(mcfg, tcfg.seed).state_dict()
    assert not torch.equal(init["visual.conv1.weight"], sd1["visual.conv1.weight"])
    used = C.grammar_token_ids(world, C.CaptionTokenizer(16))
    emb0, emb1 = init["token_embedding.weight"], sd1["token_embedding.weight"]
    assert emb1.shape == (49408, 64)
    unused = torch.ones(49408, dtype=torch.bool)
    unused[used] = False
    unused[0] = False
    assert torch.equal(emb0[unused], emb1[unused])  # rows no caption uses never move (full-table AdamW)
    assert not torch.equal(emb0[used], emb1[used])
    m3, _ = P.pretrain(world, mcfg, P.TrainConfig(steps=3, batch_size=12, lr=1e-3, seed=2))
    assert not torch.equal(m3.state_dict()["visual.proj"], sd1["visual.proj"])
    assert s1["final_loss"] == s2["final_loss"] and math.isfinite(s1["final_loss"])


def test_compact_embedding_matches_full_table_adamw():
    """The compact-vocabulary trick equals AdamW on the full 49408-row table (embedding not decayed)."""
    world, mcfg, _ = _tiny_models()
    tcfg = P.TrainConfig(steps=2, batch_size=8, lr=1e-3, seed=3, precision="fp32")
    fast, _ = P.pretrain(world, mcfg, tcfg)
    model = P.build_model(mcfg, tcfg.seed)
    model.train()
    opt = torch.optim.AdamW(P._param_groups(model, tcfg.weight_decay), lr=tcfg.lr, betas=tcfg.betas, eps=1e-6)
    loss_fn = __import__("open_clip").loss.ClipLoss()
    tok = C.CaptionTokenizer(mcfg.context_length)
    for step in range(tcfg.steps):
        for g in opt.param_groups:
            g["lr"] = P.lr_at(step, tcfg)
        images, text, _ = P.pretrain_batch(world, step, tcfg.batch_size, tcfg.seed, tok)
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            f_i, f_t, s = model(images, text)
        loss = loss_fn(f_i, f_t, s)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_model_config_errors_and_open_clip_dict():
    with pytest.raises(ValueError, match="vision_width=96 must be a positive multiple of 64"):
        P.ModelConfig("x", 64, 96, 1, 64, 1)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        P.ModelConfig("x", 64, 64, 1, 64, 1, image_size=30)
    cfg = P.ModelConfig("pg_x", 128, 192, 4, 128, 2).open_clip_config()
    assert cfg["quick_gelu"] is True and cfg["text_cfg"]["heads"] == 2 and cfg["vision_cfg"]["head_width"] == 64
    assert cfg["text_cfg"]["vocab_size"] == 49408 and cfg["text_cfg"]["context_length"] == 16
    world, mcfg, tcfg = _tiny_models()
    short = P.ModelConfig("pg_short", 64, 64, 1, 64, 1, image_size=16, context_length=8)
    with pytest.raises(ValueError, match="context_length 8 is shorter than the longest caption"):
        P.pretrain(world, short, tcfg)
    with pytest.raises(ValueError, match="precision must be"):
        P.TrainConfig(precision="fp16")


def test_image_tensor_equals_the_data_layer_preprocessing(tmp_path):
    """Pre-training sees exactly what torchvision's ToTensor + Normalize(CLIP stats) gives the trainers."""
    from torchvision import transforms as T

    images, _ = W.generate_balanced(_tiny_world(), "target", "val", 1)
    tf = T.Compose([T.ToTensor(), T.Normalize(P.CLIP_MEAN, P.CLIP_STD)])
    for i, img in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(D.png_bytes(img))
    ref = torch.stack([tf(Image.open(tmp_path / f"{i}.png").convert("RGB")) for i in range(len(images))])
    assert torch.equal(P.images_to_tensor(images), ref)


def test_lr_schedule_warms_up_then_decays():
    cfg = P.TrainConfig(steps=100, lr=1.0, warmup_frac=0.1)
    lrs = [P.lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01


def test_accuracy_report_counts_colour_shape_and_splits():
    world = W.WorldConfig(colours=("red", "green"), shapes=("circle", "square"), holdout=False)
    classes = W.class_list(world)  # base: red circle, green square; novel: red square, green circle
    labels = np.array([0, 1, 2, 3])
    pred = np.array([0, 3, 2, 0])  # right, same colour, right, same shape
    rep = P.accuracy_report(world, pred, labels)
    assert [c.name for c in classes] == ["red circle", "green square", "red square", "green circle"]
    assert rep["accuracy"] == 50.0 and rep["base_accuracy"] == 50.0 and rep["novel_accuracy"] == 50.0
    assert rep["colour_accuracy"] == 75.0 and rep["shape_accuracy"] == 75.0 and "held_out_accuracy" not in rep


# ------------------------------------------------------------------------------------------ dataset + reader


def test_dataset_on_disk_matches_the_generator_and_is_reused(tmp_path):
    world = _tiny_world()
    data = D.DatasetConfig(train_per_class=2, val_per_class=1, test_per_class=2)
    ds_dir = D.write_dataset(world, data, tmp_path)
    assert ds_dir == tmp_path / "proving_ground"
    split = json.loads((ds_dir / "split_zhou_ProvingGround.json").read_text())
    assert {k: len(v) for k, v in split.items()} == {"train": 18, "val": 9, "test": 18}
    test_imgs, test_labels = W.generate_balanced(world, "target", "test", 2)
    names = W.classnames(world)
    for (rel, label, name), img, lab in zip(split["test"], test_imgs, test_labels):
        assert label == lab and name == names[lab] and rel.startswith(name.replace(" ", "_") + "/")
        assert np.array_equal(np.asarray(Image.open(ds_dir / "images" / rel)), img)
    meta = json.loads((ds_dir / "world.json").read_text())
    assert meta["digest"] == D.data_digest(world, data) and meta["classnames"] == names
    files = sorted((ds_dir / "images").rglob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in files}
    hashes = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert D.write_dataset(world, data, tmp_path) == ds_dir  # reused, untouched
    assert {p: p.stat().st_mtime_ns for p in files} == before
    # same seed, another folder: the same bytes
    other = D.write_dataset(world, data, tmp_path / "again")
    assert {p.relative_to(ds_dir): h for p, h in hashes.items()} == {
        p.relative_to(other): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((other / "images").rglob("*.png"))
    }
    with pytest.raises(ValueError, match="another configuration"):
        D.write_dataset(_tiny_world(seed=9), data, tmp_path)
    D.write_dataset(_tiny_world(seed=9), data, tmp_path, overwrite=True)
    assert json.loads((ds_dir / "world.json").read_text())["world"]["seed"] == 9
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".proving_ground")]  # no temp folders left


def test_registered_dataset_reads_the_root_with_the_protocol(tmp_path):
    import datasets  # noqa: F401  (registers ProvingGround)
    from engine.api import DATASET_REGISTRY, get_cfg_default

    world = _tiny_world()
    D.write_dataset(world, D.DatasetConfig(train_per_class=4, val_per_class=1, test_per_class=2), tmp_path)
    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    cfg.merge_from_file(os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "datasets", "proving_ground.yaml"))
    assert cfg.DATASET.NAME == "ProvingGround" and tuple(cfg.INPUT.SIZE) == (32, 32)
    cfg.DATASET.ROOT = str(tmp_path)
    cfg.DATASET.EVAL_PROTOCOL = "base2novel"
    cfg.DATASET.SUBSAMPLE_CLASSES = "base"
    cfg.DATASET.NUM_SHOTS = 2
    cfg.SEED = 1
    ds = DATASET_REGISTRY.get("ProvingGround")(cfg)
    names = W.classnames(world)
    assert ds.all_classnames == names
    assert list(ds.eval_sets["base"].classnames) == names[:5]
    assert list(ds.eval_sets["novel"].classnames) == names[5:]
    assert len(ds.train_x) == 5 * 2 and {it.label for it in ds.train_x} == set(range(5))
    assert all(os.path.isfile(it.impath) for it in ds.eval_sets["novel"].items)
    assert len(ds.eval_sets["novel"].items) == 4 * 2


def test_registered_dataset_errors_name_the_missing_piece(tmp_path):
    import datasets  # noqa: F401
    from datasets.utils import DatasetFileNotFoundError
    from engine.api import DATASET_REGISTRY, get_cfg_default

    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    cfg.DATASET.NAME = "ProvingGround"
    cfg.DATASET.ROOT = str(tmp_path)
    with pytest.raises(DatasetFileNotFoundError, match="build_proving_ground.py"):
        DATASET_REGISTRY.get("ProvingGround")(cfg)
    (tmp_path / "proving_ground" / "images").mkdir(parents=True)
    with pytest.raises(DatasetFileNotFoundError, match="split file not found.*split_zhou_ProvingGround.json"):
        DATASET_REGISTRY.get("ProvingGround")(cfg)


# ------------------------------------------------------------------------------------------ build / cache / CLI


def test_cache_root_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.ENV_VAR, raising=False)
    assert cache.cache_root() == cache.Path("output") / "proving_ground"
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "env"))
    assert cache.cache_root() == tmp_path / "env"
    assert cache.cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_atomic_writes_leave_no_partial_file(tmp_path):
    target = tmp_path / "x.json"
    cache.atomic_write_json(target, {"a": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.atomic_torch_save({"bad": Boom()}, target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    target.write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON.*delete it"):
        cache.read_json(target, "pre-training stats")


def test_build_caches_by_config_and_weights_load_through_clip(tmp_path, monkeypatch):
    import open_clip

    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "pg"))
    cfg = B.preset("tiny")
    res = B.build(cfg, workers=0, log_every=0)
    assert res.data_root == tmp_path / "pg" / "data" / D.data_digest(cfg.world, cfg.data)
    assert (res.dataset_dir / "split_zhou_ProvingGround.json").is_file()
    for art, mcfg in ((res.teacher, cfg.teacher), (res.student, cfg.student)):
        assert not art.cached and art.weights.is_file() and art.weights.parent.parent == tmp_path / "pg" / "models"
        assert json.loads(art.config.read_text()) == mcfg.open_clip_config()
        zs = art.stats["zero_shot"]
        assert set(zs) == {"source", "target"} and 0 <= zs["target"]["accuracy"] <= 100
        sd = torch.load(art.weights, weights_only=True)
        assert set(sd) == set(open_clip.model.CLIP(**{k: v for k, v in mcfg.open_clip_config().items()}).state_dict())
        assert "visual.proj" in sd and "text_projection" in sd and sd["positional_embedding"].shape[0] == 16
    assert res.teacher.key != res.student.key
    assert json.loads((tmp_path / "pg" / "last_build.json").read_text())["teacher"]["weights"] == str(res.teacher.weights)

    # the model loads like OpenAI weights through the project's loader, and through open_clip by name
    import clip

    model = B.load_model(res.teacher.weights)
    loaded = clip.load(str(res.teacher.weights))
    x = torch.randn(2, 3, 16, 16)
    text = C.CaptionTokenizer(16)(["a photo of a red circle.", "a blue square."])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x))
        torch.testing.assert_close(loaded.encode_text(text), model.encode_text(text))
    assert "pg_teacher" in open_clip.list_models()

    again = B.build(cfg, workers=0, log_every=0)
    assert again.teacher.cached and again.student.cached and again.teacher.weights == res.teacher.weights
    assert again.teacher.stats["zero_shot"] == res.teacher.stats["zero_shot"]
    changed = B.BuildConfig(**{**cfg.__dict__, "student_train": P.TrainConfig(steps=2, batch_size=16)})
    res3 = B.build(changed, workers=0, log_every=0)
    assert res3.teacher.cached and not res3.student.cached and res3.student.key != res.student.key


def test_cli_builds_in_worker_processes_and_prints_paths(tmp_path, capsys):
    """The process-pool path of the CLI (one spawned worker here, to keep the test fast)."""
    from tools.build_proving_ground import main

    out_json = tmp_path / "paths.json"
    argv = ["--preset", "tiny", "--cache-dir", str(tmp_path / "c"), "--json", str(out_json), "--quiet", "--workers", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    info = json.loads(out_json.read_text())
    assert f"dataset root (--root / DATASET.ROOT): {info['data_root']}" in text
    assert info["teacher"]["weights"] in text and info["student"]["weights"] in text
    assert os.path.isfile(info["teacher"]["weights"]) and os.path.isfile(info["student"]["weights"])
    assert "9-way over all classes" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith(("teacher  ", "student  "))}
    for name in ("teacher", "student"):
        zs = info[name]["zero_shot"]
        assert float(rows[name][1]) == round(zs["source"]["accuracy"], 1)
        assert float(rows[name][2]) == round(zs["target"]["accuracy"], 1)
