"""The baseline trainers CoOp, CoCoOp and MaPLe (docs/REFERENCE.md M3, M4, T2-T4).

CPU only: tiny random CLIP architectures (the run tests load them from a weight file so that the
training and the ``--eval-only`` run share the same frozen backbone), a generated 4-class DTD root,
32 px images, 1-2 epochs, no data-loader workers.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

import clip
import train
from tests.helpers.fake_roots import make_root
from tests.helpers.reference_layouts import maple_reference_layout
from tests.helpers.tiny_env import save_tiny_clips
from trainers.cocoop import CoCoOpCLIP, CoCoOpPromptLearner
from trainers.common.checkpoints import CheckpointKeyError
from trainers.coop import CoOpCLIP, CoOpPromptLearner, class_token_layout
from trainers.maple import MaPLeCLIP, map_maple_reference_state

torch.set_num_threads(1)

# text width 64, vision width 128, embedding 48: different sizes expose any hard-coded dimension
ODD_DIMS = {"embed_dim": 48, "quick_gelu": True,
            "vision_cfg": {"image_size": 32, "layers": 3, "width": 128, "patch_size": 8},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 3}}


pytestmark = pytest.mark.usefixtures("fast_env_info")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("coop_maple")
    root = make_root("DescribableTextures", base, n_classes=4, per_class=6)
    weights = save_tiny_clips(base, ["tiny-vit-student"])["tiny-vit-student"]
    return {"base": base, "root": root, "weights": weights}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return clip.load("tiny-vit-student", allow_random=True).requires_grad_(False)


@pytest.fixture(scope="module")
def odd():
    torch.manual_seed(1)
    return clip.build_from_config(ODD_DIMS).requires_grad_(False).eval()


def run(env, trainer, out, opts=(), eval_only=False, model_dir=None, load_epoch=None, epochs=2, no_train=False):
    """train.main with the trainer's tiny smoke config and the shared tiny backbone file."""
    argv = ["--root", env["root"], "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/dtd.yaml",
            "--config-file", f"configs/trainers/{trainer}/tiny_smoke.yaml", "--output-dir", str(out)]
    if eval_only:
        argv.append("--eval-only")
    if no_train:
        argv.append("--no-train")
    if model_dir:
        argv += ["--model-dir", str(model_dir)]
    if load_epoch is not None:
        argv += ["--load-epoch", str(load_epoch)]
    argv += ["MODEL.BACKBONE.NAME", env["weights"], "OPTIM.MAX_EPOCH", str(epochs), "OPTIM.LR", "0.01",
             "TRAIN.PRINT_FREQ", "10", "DATASET.EVAL_PROTOCOL", "base2novel"]
    return train.main(argv + list(opts))


def results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def ckpt(out, name, epoch):
    return torch.load(os.path.join(out, name, f"model.pth.tar-{epoch}"), map_location="cpu", weights_only=False)


def check_gradients(trainer, batch, trainable_names):
    """After one step exactly ``trainable_names`` (names in ``trainer.model``) require and receive gradients."""
    trainer.set_model_mode("train")
    trainer.forward_backward(batch)
    seen = set()
    for name, p in trainer.model.named_parameters():
        if name in trainable_names:
            assert p.requires_grad and p.dtype == torch.float32, name
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"
            seen.add(name)
        else:
            assert not p.requires_grad and p.grad is None, f"frozen {name} has a gradient"
    assert seen == set(trainable_names)


def check_eval_only_reproduces(env, trainer, out, tmp_path, registered, trained_model):
    """--eval-only --model-dir on the last checkpoint gives the same metrics and loads the same tensors."""
    ev = tmp_path / f"{trainer}_eval"
    tr2 = run(env, trainer, ev, eval_only=True, model_dir=out, load_epoch=2)
    res, res2 = results(out), results(ev)
    assert res2["metrics"] == res["metrics"]
    assert res2["selection"] == "loaded_checkpoint" and res2["epoch"] == 2
    state = ckpt(out, registered, 2)["state_dict"]
    own = tr2.get_model_names()
    assert own == [registered]
    loaded = dict(tr2._models[registered].named_parameters())
    for k, v in state.items():
        assert torch.equal(loaded[k].detach(), v)
    trained = dict(trained_model.named_parameters())
    for k, v in state.items():
        assert torch.equal(trained[k].detach(), v), k  # the checkpoint holds the final weights
    return res


# ------------------------------------------------------------------------------------------------ CoOp
def test_coop_train_eval_only_checkpoint_and_gradients(env, tmp_path):
    out = tmp_path / "coop"
    tr = run(env, "CoOp", out)
    res = results(out)
    assert res["trainer"] == "CoOp" and res["epoch"] == 2 and set(res["metrics"]) == {"base", "novel"}
    assert res["trainable_params"] == 4 * 64  # N_CTX 4 generic contexts of the text width 64
    c = ckpt(out, "prompt_learner", 2)
    assert list(c["state_dict"]) == ["ctx"] and c["state_dict"]["ctx"].shape == (4, 64)
    assert c["meta"]["class_token_position"] == "end" and c["meta"]["csc"] is False
    check_eval_only_reproduces(env, "CoOp", out, tmp_path, "prompt_learner", tr.model.prompt_learner)
    check_gradients(tr, next(iter(tr.train_loader_x)), {"prompt_learner.ctx"})

    # MODEL.INIT_WEIGHTS with a reference-layout CoOp file (ctx + class-name buffers, fp16) sets the context
    ctx_ref = torch.randn(4, 64)
    ref_file = tmp_path / "coop_reference.pth"
    torch.save({"state_dict": {"ctx": ctx_ref.half(), "token_prefix": torch.zeros(4, 1, 64),
                               "token_suffix": torch.zeros(4, 72, 64)}, "epoch": 200}, ref_file)
    tr3 = run(env, "CoOp", tmp_path / "coop_init", ["MODEL.INIT_WEIGHTS", str(ref_file)], no_train=True)
    assert torch.equal(tr3.model.prompt_learner.ctx.detach(), ctx_ref.half().float())
    torch.save({"state_dict": {"context": ctx_ref}}, ref_file)
    with pytest.raises(CheckpointKeyError, match=r"missing: \[ctx\].*\n.*unexpected: \[context\]"):
        run(env, "CoOp", tmp_path / "coop_init_bad", ["MODEL.INIT_WEIGHTS", str(ref_file)], no_train=True)


def _word_embeddings(model, words):
    ids = clip.tokenize([" ".join(words)], 77)
    return clip.token_embedding(model, ids)[0, 1:1 + len(words)]


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_coop_class_token_positions(tiny, position):
    names = ["banded", "crystalline_structure", "zigzagged"]
    words = ["one", "two", "three", "four", "five"]  # one BPE token each; distinct so their order is visible
    learner = CoOpPromptLearner(tiny, names, 16, " ".join(words), csc=False, class_token_position=position)
    assert learner.n_ctx == 5  # CTX_INIT overrides N_CTX with its token count
    name_lens = [len(clip.tokenize([n.replace("_", " ")], 77)[0].nonzero()) - 2 for n in names]
    assert learner.name_lens.tolist() == name_lens and name_lens[1] >= 2
    embeds, ids = learner()
    for c, name in enumerate(names):
        name = name.replace("_", " ")
        half = len(words) // 2
        text = {"end": f"{' '.join(words)} {name}.",
                "front": f"{name} {' '.join(words)}.",
                "middle": f"{' '.join(words[:half])} {name} {' '.join(words[half:])}."}[position]
        ref_ids = clip.tokenize([text], 77)
        ref = clip.token_embedding(tiny, ref_ids)[0]
        assert torch.equal(ids[c], clip.tokenize([f"{' '.join(words)} {name}."], 77)[0])
        assert ids[c].argmax() == ref_ids[0].argmax()  # same EOT position in every layout
        assert torch.allclose(embeds[c], ref, atol=1e-6), f"{position}: prompt of {name!r} is not {text!r}"
    # the learned context sits at the expected positions: ctx rows vs name tokens
    ctx_pos = {"end": list(range(1, 6)), "front": [1 + name_lens[0] + i for i in range(5)],
               "middle": [1, 2] + [3 + name_lens[0] + i for i in range(3)]}[position]
    assert torch.equal(embeds[0, ctx_pos], learner.ctx.detach())
    # encoding the assembled prompts equals CLIP's own text encoder on the reference text
    model = CoOpCLIP(tiny, learner)
    texts = {"end": [f"one two three four five {n.replace('_', ' ')}." for n in names],
             "front": [f"{n.replace('_', ' ')} one two three four five." for n in names],
             "middle": [f"one two {n.replace('_', ' ')} three four five." for n in names]}[position]
    with torch.no_grad():
        assert torch.allclose(model.encode_text(), tiny.encode_text(clip.tokenize(texts, 77)), atol=1e-5)


def test_coop_layout_index_and_errors():
    idx = class_token_layout(4, [2], 10, "middle")
    assert idx[0].tolist() == [0, 1, 2, 5, 6, 3, 4, 7, 8, 9]
    assert class_token_layout(4, [2], 10, "front")[0].tolist() == [0, 5, 6, 1, 2, 3, 4, 7, 8, 9]
    assert class_token_layout(4, [2], 10, "end")[0].tolist() == list(range(10))
    with pytest.raises(ValueError, match="CLASS_TOKEN_POSITION = 'back'"):
        class_token_layout(4, [2], 10, "back")


def test_coop_csc_contexts_per_training_class(tiny):
    torch.manual_seed(0)
    names = ["banded", "bubbly", "cracked", "dotted"]
    learner = CoOpPromptLearner(tiny, names, 3, "", csc=True, class_token_position="middle")
    assert learner.ctx.shape == (4, 3, 64)
    embeds, _ = learner()
    for c in range(4):  # middle, n_ctx 3: ctx[c, :1], name (1 token), ctx[c, 1:]
        assert torch.equal(embeds[c, 1], learner.ctx[c, 0].detach())
        assert torch.equal(embeds[c, 3:5], learner.ctx[c, 1:].detach())
    # a subset of the training classes, in another order, uses their own rows
    learner.set_classnames(["dotted", "bubbly"])
    sub, _ = learner()
    assert torch.equal(sub[0, 3:5], learner.ctx[3, 1:].detach()) and torch.equal(sub[1, 1], learner.ctx[1, 0].detach())
    with pytest.raises(ValueError, match=r"CSC = True.*'striped'.*CSC False"):
        learner.set_classnames(["banded", "striped"])
    # CTX_INIT with CSC: one context per class, each initialised from the words
    init = CoOpPromptLearner(tiny, names, 16, "a photo of a", csc=True)
    assert init.ctx.shape == (4, 4, 64)
    assert torch.equal(init.ctx[2].detach(), _word_embeddings(tiny, ["a", "photo", "of", "a"]))


def test_coop_csc_runs_and_refuses_novel_classes(env, tmp_path):
    base_opts = ["TRAINER.COOP.CSC", "True", "TRAINER.COOP.PREC", "bf16", "DATASET.SUBSAMPLE_CLASSES", "base",
                 "DATASET.EVAL_PROTOCOL", "subsample"]
    out = tmp_path / "csc"
    tr = run(env, "CoOp", out, base_opts, epochs=1)
    assert tr.prec == "bf16" and tr.model.prompt_learner.ctx.dtype == torch.float32
    res = results(out)
    assert set(res["metrics"]) == {"test"} and res["metrics"]["test"]["num_images"] == 4
    c = ckpt(out, "prompt_learner", 1)
    assert list(c["state_dict"]) == ["ctx"] and c["state_dict"]["ctx"].shape == (2, 4, 64)
    assert c["meta"]["ctx_classnames"] == tr.train_classnames
    # the novel classes have no context: an eval-only run on them refuses the base-class checkpoint
    novel = [o if o != "base" else "new" for o in base_opts]
    with pytest.raises(ValueError, match="CSC checkpoint has class-specific contexts for classes"):
        run(env, "CoOp", tmp_path / "csc_novel", novel, eval_only=True, model_dir=out, load_epoch=1)
    # base-to-novel evaluation after base training is refused before any training step
    with pytest.raises(ValueError, match=r"evaluation set 'novel' has 2 untrained class"):
        run(env, "CoOp", tmp_path / "csc_b2n", base_opts[:6] + ["DATASET.EVAL_PROTOCOL", "base2novel"], epochs=1)


# ------------------------------------------------------------------------------------------------ CoCoOp
def test_cocoop_train_eval_only_checkpoint_and_gradients(env, tmp_path):
    out = tmp_path / "cocoop"
    tr = run(env, "CoCoOp", out, ["TRAINER.COCOOP.TEXT_CHUNK_SIZE", "5"])  # 4 images x 4 classes: 4 chunks
    res = results(out)
    assert res["trainer"] == "CoCoOp" and set(res["metrics"]) == {"base", "novel"}
    state = ckpt(out, "prompt_learner", 2)["state_dict"]
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    # meta-net: Linear(64 -> 64 // 16) -> ReLU -> Linear(-> 64); ctx from "a photo of a" (4 tokens)
    assert shapes == {"ctx": (4, 64), "meta_net.linear1.weight": (4, 64), "meta_net.linear1.bias": (4,),
                      "meta_net.linear2.weight": (64, 4), "meta_net.linear2.bias": (64,)}
    assert res["trainable_params"] == 4 * 64 + 4 * 64 + 4 + 64 * 4 + 64
    check_eval_only_reproduces(env, "CoCoOp", out, tmp_path, "prompt_learner", tr.model.prompt_learner)
    check_gradients(tr, next(iter(tr.train_loader_x)), {f"prompt_learner.{k}" for k in state})


def test_cocoop_logits_are_conditioned_per_image(odd):
    torch.manual_seed(0)
    names = ["banded", "bubbly", "crystalline_structure"]
    learner = CoCoOpPromptLearner(odd, names, 4, "a photo of a")
    # dimensions from the model: vis_dim = embed_dim 48 -> 48 // 16 = 3 -> text width 64
    assert learner.meta_net.linear1.weight.shape == (3, 48) and learner.meta_net.linear2.weight.shape == (64, 3)
    model = CoCoOpCLIP(odd, learner, chunk_size=2)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        assert logits.shape == (3, 3)
        img = F.normalize(model.encode_image(images), dim=-1)
        contexts = learner.conditional_contexts(img)
        bias = contexts - learner.ctx.unsqueeze(0)
        # the same shift pi_i for every context vector, equal to meta_net(normalised feature i), per image
        pi = learner.meta_net(img)
        assert torch.allclose(bias, pi.unsqueeze(1).expand_as(bias), atol=1e-6)
        assert not torch.allclose(pi[0], pi[1], atol=1e-4)
        # per-image independence and chunking: batched == one image at a time == one big chunk
        for i in range(3):
            assert torch.allclose(logits[i], model(images[i:i + 1])[0], atol=1e-5)
        model.chunk_size = 1000
        assert torch.allclose(model(images), logits, atol=1e-5)
        # reference computation for image 1: "a photo of a <name>." embeddings with ctx + pi_1 at positions 1..4
        ids = clip.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in names], 77)
        emb = clip.token_embedding(odd, ids).clone()
        emb[:, 1:5] = learner.ctx + pi[1]
        text = F.normalize(clip.encode_text(odd, emb, ids), dim=-1)
        ref = odd.logit_scale.exp() * img[1] @ text.t()
        assert torch.allclose(logits[1], ref, atol=1e-4)


# ------------------------------------------------------------------------------------------------ MaPLe
MAPLE_KEYS = ["couplings.0.bias", "couplings.0.weight", "couplings.1.bias", "couplings.1.weight",
              "text_prompts.layer0", "text_prompts.layer1"]


def test_maple_train_eval_only_checkpoint_and_gradients(env, tmp_path):
    out = tmp_path / "maple"
    tr = run(env, "MaPLe", out)
    res = results(out)
    assert res["trainer"] == "MaPLe" and set(res["metrics"]) == {"base", "novel"}
    # N 2, depth 2, widths 64: 2 text prompts [2, 64] + 2 couplings Linear(64 -> 64)
    assert res["trainable_params"] == 2 * 2 * 64 + 2 * (64 * 64 + 64)
    state = ckpt(out, "MultiModalPromptLearner", 2)["state_dict"]
    assert sorted(state) == MAPLE_KEYS
    check_eval_only_reproduces(env, "MaPLe", out, tmp_path, "MultiModalPromptLearner", tr.model)
    check_gradients(tr, next(iter(tr.train_loader_x)), set(MAPLE_KEYS))


def test_maple_coupling_structure(odd):
    torch.manual_seed(0)
    model = MaPLeCLIP(odd, ["banded", "bubbly"], 2, 3, "a photo of a")
    # dimensions from the model: text width 64 -> vision width 128
    assert [tuple(c.weight.shape) for c in model.couplings] == [(128, 64)] * 3
    # deep couplings are deep copies of ONE initialised Linear; the layer-0 projection is separate
    assert torch.equal(model.couplings[1].weight, model.couplings[2].weight)
    assert model.couplings[1].weight.data_ptr() != model.couplings[2].weight.data_ptr()
    assert not torch.equal(model.couplings[0].weight, model.couplings[1].weight)
    # layer-0 text context = embeddings of "a photo"; "of a" stays as fixed tokens in the prompt
    ctx = model.text_prompts.layer0
    assert torch.equal(ctx.detach(), _word_embeddings(odd, ["a", "photo"]))
    embeds, ids, deep = model.text_prompts()
    ref_ids = clip.tokenize(["a photo of a banded.", "a photo of a bubbly."], 77)
    assert torch.equal(ids, ref_ids) and torch.allclose(embeds, clip.token_embedding(odd, ref_ids), atol=1e-6)
    assert len(deep) == 2 and all(d.shape == (2, 64) for d in deep)
    # visual prompt i = coupling_i(text prompt i)
    vis = model.visual_prompts()
    layers = [ctx] + deep
    for i in range(3):
        lin = model.couplings[i]
        assert vis[i].shape == (2, 128)
        assert torch.allclose(vis[i], layers[i] @ lin.weight.t() + lin.bias, atol=1e-6)
    # the image tower gets exactly these prompts (and they matter)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = model.encode_image(images)
        assert torch.allclose(got, clip.encode_image(odd.visual, images, prompts=vis), atol=1e-5)
        assert not torch.allclose(got, odd.encode_image(images), atol=1e-3)
    # gradients reach the couplings through the image tower and the text prompts through both towers
    model.requires_grad_(False)
    for p in list(model.text_prompts.parameters()) + list(model.couplings.parameters()):
        p.requires_grad_(True)
    loss = model(images).logsumexp(dim=1).sum()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.couplings.parameters())
    assert all(p.grad.abs().sum() > 0 for p in model.text_prompts.parameters())
    with pytest.raises(ValueError, match="PROMPT_DEPTH = 4"):
        MaPLeCLIP(odd, ["banded"], 2, 4)


def test_maple_trainable_parameter_count_vit_b16():
    torch.manual_seed(0)
    vit_b16 = clip.load("ViT-B/16", allow_random=True).requires_grad_(False)
    model = MaPLeCLIP(vit_b16, ["banded", "bubbly"], n_ctx=2, depth=9, ctx_init="a photo of a")
    counts = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            group = name.split(".")[0]
            counts[group] = counts.get(group, 0) + p.numel()
    # docs/REFERENCE.md M3: ctx 2x512, proj 512x768+768, 8 compound text prompts 2x512, 8 couplings 512x768+768
    assert counts["text_prompts"] == 9 * 2 * 512
    assert counts["couplings"] == 9 * (512 * 768 + 768)
    assert sum(counts.values()) == 3_555_072 == 2 * 512 + (512 * 768 + 768) + 8 * (2 * 512) + 8 * (512 * 768 + 768)


def test_maple_reference_checkpoint_round_trip(env, tmp_path):
    tr = run(env, "MaPLe", tmp_path / "maple_ref_run", no_train=True)
    torch.manual_seed(3)
    prompts = {k: torch.randn_like(v) * 0.1 for k, v in tr.model.named_parameters() if v.requires_grad}
    assert sorted(prompts) == MAPLE_KEYS
    class_buffers = {"prompt_learner.token_prefix": torch.zeros(4, 1, 64),
                     "prompt_learner.token_suffix": torch.zeros(4, 74, 64)}
    ref = maple_reference_layout(tr.model, prompts, extra=class_buffers)

    mapped = map_maple_reference_state(ref)
    assert sorted(mapped.prompts) == MAPLE_KEYS and not mapped.unexpected
    assert sorted(mapped.skipped) == ["prompt_learner.token_prefix", "prompt_learner.token_suffix"]
    assert "visual.conv1.weight" in mapped.backbone and "transformer.resblocks.0.attn.in_proj_weight" in mapped.backbone

    def save(state, folder):
        path = tmp_path / folder / "MultiModalPromptLearner"
        path.mkdir(parents=True)
        torch.save({"state_dict": state, "epoch": 5}, path / "model.pth.tar-5")
        return tmp_path / folder

    tr.load_model(str(save(ref, "released")), epoch=5)
    for k, v in tr.model.named_parameters():
        if k in prompts:
            assert torch.equal(v.detach(), prompts[k].half().float()), k

    wrong = dict(ref)
    wrong["prompt_learner.compound_prompts_txt.0"] = wrong.pop("prompt_learner.compound_prompts_text.0")
    with pytest.raises(CheckpointKeyError, match=r"prompt_learner\.compound_prompts_txt\.0"):
        tr.load_model(str(save(wrong, "wrong_key")), epoch=5)
    missing = {k: v for k, v in ref.items() if k != "prompt_learner.proj.bias"}
    with pytest.raises(CheckpointKeyError, match=r"missing: \[couplings\.0\.bias\]"):
        tr.load_model(str(save(missing, "missing_key")), epoch=5)
    other_clip = dict(ref)
    other_clip["image_encoder.conv1.weight"] = other_clip["image_encoder.conv1.weight"] + 1.0
    with pytest.raises(ValueError, match=r"CLIP tensors differ.*visual\.conv1\.weight"):
        tr.load_model(str(save(other_clip, "other_clip")), epoch=5)
