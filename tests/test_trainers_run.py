"""End-to-end runs of the core trainers through ``train.main`` on a generated DTD root and tiny CLIPs.

CPU only: tiny random CLIP architectures saved to weight files (so every run of a test loads the same
weights), 4 classes, 32 px images, 1-2 epochs, no data-loader workers.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

import clip
import train
from tests.helpers.tiny_env import make_tiny_env, skip_env_probe

torch.set_num_threads(1)

DEPTH2 = ["PROMPT_DEPTH_TEXT", "2", "PROMPT_DEPTH_VISION", "2"]


pytestmark = pytest.mark.usefixtures("fast_env_info")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("trainers_run"))


def run(env, trainer, out, opts=(), node=None, eval_only=False, model_dir=None, load_epoch=None, backbone=None,
        resume=None):
    """train.main with the small common settings; ``node`` prefixes DEPTH2-style short keys."""
    argv = ["--root", env["root"], "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/dtd.yaml", "--output-dir", str(out)]
    if eval_only:
        argv.append("--eval-only")
    if model_dir:
        argv += ["--model-dir", str(model_dir)]
    if load_epoch is not None:
        argv += ["--load-epoch", str(load_epoch)]
    if resume:
        argv += ["--resume", resume]
    argv += ["MODEL.BACKBONE.NAME", backbone or env["student"], "DATALOADER.NUM_WORKERS", "0",
             "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "2", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.01",
             "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "8", "TRAIN.PRINT_FREQ", "10",
             "DATASET.EVAL_PROTOCOL", "base2novel"]
    if node:
        argv += [f"TRAINER.{node}.PREC", "fp32"]
    opts = list(opts)
    if node:
        opts = [f"TRAINER.{node}.{o}" if i % 2 == 0 and "." not in o else o for i, o in enumerate(opts)]
    return train.main(argv + opts)


def results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def ckpt(out, epoch, name="VLPromptLearner"):
    return torch.load(os.path.join(out, name, f"model.pth.tar-{epoch}"), map_location="cpu", weights_only=False)


def check_gradients(trainer, batch, trainable_prefixes):
    """After one step exactly the parameters under ``trainable_prefixes`` require and receive gradients."""
    trainer.set_model_mode("train")
    trainer.forward_backward(batch)
    seen = 0
    for name, p in trainer.model.named_parameters():
        if name.startswith(trainable_prefixes):
            assert p.requires_grad, name
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"
            assert p.dtype == torch.float32, name
            seen += 1
        else:
            assert not p.requires_grad and p.grad is None, f"frozen {name} has a gradient"
    assert seen > 0


# ------------------------------------------------------------------------------------------------
def test_ivlp_train_eval_only_and_checkpoint(env, tmp_path):
    out = tmp_path / "ivlp"
    tr = run(env, "IVLP", out, DEPTH2 + ["OPTIM.LR_SCHEDULER", "cosine"], node="IVLP")
    assert tr.sched.last_epoch == 2  # the LR schedule is stepped once per epoch
    res = results(out)
    assert res["trainer"] == "IVLP" and res["selection"] == "last_step" and res["epoch"] == 2
    assert res["protocol"] == "base2novel" and set(res["metrics"]) == {"base", "novel"}
    b, n = res["base_acc"], res["novel_acc"]
    assert res["hm"] == pytest.approx(0 if b + n == 0 else 2 * b * n / (b + n))
    assert res["metrics"]["base"]["num_images"] == 4 and res["metrics"]["novel"]["num_images"] == 4
    # IVLP default N_CTX 2, depth 2 per tower, widths 64: 4 tensors of [2, 64]
    assert res["trainable_params"] == 4 * 2 * 64
    state = ckpt(out, 2)["state_dict"]
    assert sorted(state) == ["image_prompts.layer0", "image_prompts.layer1", "text_prompts.layer0", "text_prompts.layer1"]
    assert all(v.shape == (2, 64) for v in state.values())
    trained = {k: v.clone() for k, v in state.items()}

    ev = tmp_path / "ivlp_eval"
    tr2 = run(env, "IVLP", ev, DEPTH2, node="IVLP", eval_only=True, model_dir=out, load_epoch=2)
    res2 = results(ev)
    assert res2["metrics"] == res["metrics"] and res2["selection"] == "loaded_checkpoint" and res2["epoch"] == 2
    for k, v in tr2.model.named_parameters():
        if k in trained:
            assert torch.equal(v.detach(), trained[k])

    # a released-style checkpoint (whole CustomCLIP in the reference key layout) of the same weights
    from tests.test_trainers_teacher import to_reference_layout

    ref_dir = tmp_path / "ivlp_reference"
    os.makedirs(ref_dir / "VLPromptLearner")
    torch.save({"state_dict": to_reference_layout(tr.model, half=False), "epoch": 20, "val_result": None},
               ref_dir / "VLPromptLearner" / "model.pth.tar-20")
    ev2 = tmp_path / "ivlp_eval_reference"
    run(env, "IVLP", ev2, DEPTH2, node="IVLP", eval_only=True, model_dir=ref_dir, load_epoch=20)
    assert results(ev2)["metrics"] == res["metrics"]
    check_gradients(tr, next(iter(tr.train_loader_x)), ("text_prompts.", "image_prompts."))


def test_ivlp_best_val_selection_and_bf16(env, tmp_path):
    out = tmp_path / "ivlp_best"
    tr = run(env, "IVLP", out, DEPTH2 + ["PREC", "bf16"], node="IVLP")
    assert tr.prec == "bf16"
    images = next(iter(tr.train_loader_x))["img"]
    with torch.no_grad(), tr.autocast():
        assert tr.model(images).dtype == torch.float32  # logits stay fp32 under bf16 autocast
    assert torch.isfinite(torch.tensor(results(out)["hm"]))
    # (a second run) best_val selection on the real val split is recorded as such
    out2 = tmp_path / "ivlp_bestval"
    run(env, "IVLP", out2, DEPTH2 + ["TEST.FINAL_MODEL", "best_val"], node="IVLP")
    res = results(out2)
    assert res["selection"] == "best_val" and res["epoch"] in (1, 2)
    best = torch.load(out2 / "VLPromptLearner" / "model-best.pth.tar", weights_only=False)
    assert best["epoch"] == res["epoch"] and best["val_result"] is not None
    assert all(p.dtype == torch.float32 for p in tr.model.parameters() if p.requires_grad)
    # the reference's selection on base-class TEST accuracy exists only under its explicit name
    out3 = tmp_path / "ivlp_besttest"
    run(env, "IVLP", out3, DEPTH2 + ["TEST.FINAL_MODEL", "best_test_reference"], node="IVLP")
    res3 = results(out3)
    assert res3["selection"] == "best_test_reference"
    best3 = torch.load(out3 / "VLPromptLearner" / "model-best.pth.tar", weights_only=False)
    assert best3["epoch"] == res3["epoch"] and res3["metrics"]["base"]["accuracy"] == pytest.approx(best3["val_result"])


def test_promptsrc_losses_gpa_and_resume(env, tmp_path):
    from trainers.common.templates import IMAGENET_TEMPLATES
    from trainers.promptsrc import gpa_weights

    out = tmp_path / "src"
    opts = DEPTH2 + ["GPA_MEAN", "2", "GPA_STD", "1", "TRAIN.CHECKPOINT_FREQ", "1"]
    tr = run(env, "PromptSRC", out, opts, node="PROMPTSRC")
    w = gpa_weights(2, 1, 2)
    c1, c2 = ckpt(out, 1), ckpt(out, 2)
    assert c1["gpa"]["epochs"] == [1] and c2["gpa"]["epochs"] == [1, 2]
    for k in c1["state_dict"]:
        # accumulator after epoch 1 = w1 * theta_1; the final model IS the aggregate w1*theta_1 + w2*theta_2
        assert torch.allclose(c1["gpa"]["state"][k], w[0] * c1["state_dict"][k], atol=1e-7)
        assert torch.allclose(c2["state_dict"][k], c2["gpa"]["state"][k], atol=1e-7)
    assert sorted(c2["state_dict"]) == ["image_prompts.layer0", "image_prompts.layer1", "text_prompts.layer0",
                                        "text_prompts.layer1"]  # trainable tensors only
    ev = tmp_path / "src_eval"
    run(env, "PromptSRC", ev, opts, node="PROMPTSRC", eval_only=True, model_dir=out, load_epoch=2)
    assert results(ev)["metrics"] == results(out)["metrics"]

    # fixed embeddings: mean of the UNnormalised frozen text features over the 60 templates
    model = tr.model
    ids = torch.cat([clip.tokenize([t.format("banded") for t in IMAGENET_TEMPLATES], 77)])
    manual = model.backbone.encode_text(ids).mean(dim=0)
    assert torch.allclose(tr.fixed_embeddings[0], manual, atol=1e-5)

    # each loss term on a fixed batch equals a hand computation
    batch = next(iter(tr.train_loader_x))
    images, labels = batch["img"], batch["label"]
    with torch.no_grad():
        t = F.normalize(model.encode_text(), dim=-1)
        i = F.normalize(model.encode_image(images), dim=-1)
        i0 = F.normalize(model.encode_image(images, prompted=False), dim=-1)
        t0 = F.normalize(tr.fixed_embeddings, dim=-1)
        z, z0 = 100.0 * i @ t.t(), 100.0 * i0 @ t0.t()
        from trainers.promptsrc import promptsrc_losses

        got = promptsrc_losses(z, z0, labels, t, t0, i, i0, 25.0, 10.0)
    p0 = z0.softmax(1)
    assert got["loss_ce"].item() == pytest.approx(-(z.log_softmax(1)[torch.arange(4), labels]).mean().item(), rel=1e-5)
    assert got["loss_scl_logits"].item() == pytest.approx(
        (p0 * (p0.log() - z.log_softmax(1))).sum().item() / z.numel(), rel=1e-4, abs=1e-7)
    assert got["loss_scl_text"].item() == pytest.approx(25.0 * (t - t0).abs().mean().item(), rel=1e-5)
    assert got["loss_scl_image"].item() == pytest.approx(10.0 * (i - i0).abs().mean().item(), rel=1e-5)
    assert got["loss"].item() == pytest.approx(sum(got[k].item() for k in got if k != "loss"), rel=1e-6)
    summary = tr.forward_backward(batch)
    assert {"loss", "loss_ce", "loss_scl_logits", "loss_scl_text", "loss_scl_image"} <= set(summary)
    check_gradients(tr, batch, ("text_prompts.", "image_prompts."))

    # resume after epoch 1: the GPA state comes back from the checkpoint and the run completes
    os.remove(out / "VLPromptLearner" / "model.pth.tar-2")
    tr2 = run(env, "PromptSRC", out, opts, node="PROMPTSRC", resume="auto")
    assert tr2.start_epoch == 1 and tr2.gpa_epochs == [1, 2]
    c2b = ckpt(out, 2)
    for k in c2b["state_dict"]:
        assert torch.allclose(c2b["state_dict"][k], c2b["gpa"]["state"][k], atol=1e-7)


def test_zeroshot_clip_eval_only(env, tmp_path):
    from trainers.zsclip import ZeroshotCLIP2

    out = tmp_path / "zs"
    tr = run(env, "ZeroshotCLIP", out, ["TRAINER.ZSCLIP.PREC", "fp32"], eval_only=True)
    res = results(out)
    assert res["selection"] == "none" and res["trainable_params"] == 0 and set(res["metrics"]) == {"base", "novel"}
    # the text features of the last evaluated class set (restored to the training classes) are "<name> texture."
    names = tr.train_classnames
    ids = clip.tokenize([f"{n.replace('_', ' ')} texture." for n in names], 77)
    manual = F.normalize(tr.clip_model.encode_text(ids), dim=-1)
    assert torch.allclose(tr.text_features, manual, atol=1e-6)

    tr2 = run(env, "ZeroshotCLIP2", tmp_path / "zs2", ["TRAINER.ZSCLIP.PREC", "fp32"], eval_only=True)
    tr3 = run(env, "ZeroshotCLIP2", tmp_path / "zs3", ["TRAINER.ZSCLIP.PREC", "fp32"], eval_only=True)
    assert len(tr2.template_list) == 8 and tr2.template_list == tr3.template_list  # no accumulation (docs/REFERENCE.md D13)
    assert tr2.template_list[-1] == "{} texture."
    assert isinstance(tr2, ZeroshotCLIP2)


# ------------------------------------------------------------------------------------------------
# The PromptKD pipeline, one test per stage. Each stage's runs happen once, in a module-scoped fixture
# that builds on the previous stage's outputs; a failing run or assertion names its stage.
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def promptkd_stage1(env, tmp_path_factory):
    """Stage I: PromptSRCTeacher on the tiny "teacher" CLIP (writes the class vectors of all classes), then an
    --eval-only run of it that writes the class vectors again."""
    tmp = tmp_path_factory.mktemp("promptkd_stage1")
    with pytest.MonkeyPatch.context() as mp:
        skip_env_probe(mp)
        tout = tmp / "teacher"
        teacher = run(env, "PromptSRCTeacher", tout, DEPTH2 + ["OPTIM.MAX_EPOCH", "1"], node="PROMPTSRC",
                      backbone=env["teacher"])
        cv_again = tmp / "cv_again.pt"
        run(env, "PromptSRCTeacher", tmp / "teacher_eval",
            DEPTH2 + ["OPTIM.MAX_EPOCH", "1", "WRITE_CLASS_VECTORS", "True", "CLASS_VECTORS_OUT", str(cv_again)],
            node="PROMPTSRC", backbone=env["teacher"], eval_only=True, model_dir=tout, load_epoch=1)
    cv = torch.load(tout / "VLPromptLearner" / "class_vectors_DescribableTextures.pt", weights_only=True)
    return {"tmp": tmp, "tout": tout, "teacher": teacher, "cv": cv, "cv_again": cv_again}


@pytest.fixture(scope="module")
def promptkd_stage2(env, promptkd_stage1):
    """Stage II: the student trained from the stage I teacher without labels, counting the teacher text
    branch's calls; then a second student run that reuses the class-vector file."""
    tmp, tout = promptkd_stage1["tmp"], promptkd_stage1["tout"]
    calls = {"n": 0}
    real_encode_text = clip.encode_text

    def counting(*a, **k):
        calls["n"] += 1
        return real_encode_text(*a, **k)

    student_cv = tmp / "cv" / "student_cv.pt"
    sopts = ["TRAINER.PROMPTKD.PREC", "fp32", "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "2",
             "TRAINER.PROMPTKD.TEACHER_CKPT", str(tout / "VLPromptLearner" / "model.pth.tar-1"),
             "TRAINER.PROMPTKD.CLASS_VECTORS", str(student_cv), "TRAINER.PROMPTKD.KD_WEIGHT", "10.0",
             "DATASET.TRAIN_LABELS", "drop"]
    sout = tmp / "student"
    with pytest.MonkeyPatch.context() as mp:
        skip_env_probe(mp)
        mp.setattr(clip, "encode_text", counting)
        st = run(env, "PromptKD", sout, sopts)
        first_calls = calls["n"]
        mtime = os.path.getmtime(student_cv)
        calls["n"] = 0
        run(env, "PromptKD", tmp / "student2", sopts + ["OPTIM.MAX_EPOCH", "1"])
    return {"student_cv": student_cv, "sopts": sopts, "sout": sout, "st": st, "first_calls": first_calls,
            "second_calls": calls["n"], "mtime": mtime, "mtime_after": os.path.getmtime(student_cv)}


@pytest.fixture(scope="module")
def promptkd_stage3(env, promptkd_stage1, promptkd_stage2):
    """Stage III: --eval-only runs of the stage II student, once from our checkpoint and once from the same
    weights in the released reference layout (1x1-conv projector), with the teacher and every text encoder
    forbidden."""
    import trainers.common.teacher as teacher_mod

    tmp, st, sout, sopts = (promptkd_stage1["tmp"], promptkd_stage2["st"], promptkd_stage2["sout"],
                            promptkd_stage2["sopts"])

    def forbidden(*a, **k):
        raise AssertionError("the teacher / a text encoder was used at evaluation time")

    trained = ckpt(sout, 2)["state_dict"]
    ref = {"image_encoder." + k: v for k, v in st.model.visual.state_dict().items()}
    ref["image_encoder.VPT"] = trained["image_prompts.layer0"]
    ref["image_encoder.transformer.resblocks.1.VPT_shallow"] = trained["image_prompts.layer1"]
    ref["logit_scale"] = torch.tensor(st.model.logit_scale.item()).log()
    for k, v in trained.items():
        if k.startswith("projector."):
            v = v[:, :, None, None] if k.endswith("weight") and v.dim() == 2 else v
            ref["VPT_image_trans.conv1." + k[len("projector."):]] = v
    ref_dir = tmp / "student_reference"
    os.makedirs(ref_dir / "VLPromptLearner")
    torch.save({"state_dict": ref, "epoch": 20}, ref_dir / "VLPromptLearner" / "model-best.pth.tar")

    ev, ev2 = tmp / "student_eval", tmp / "student_eval_reference"
    with pytest.MonkeyPatch.context() as mp:
        skip_env_probe(mp)
        mp.setattr(clip, "encode_text", forbidden)
        mp.setattr(teacher_mod, "build_teacher", forbidden)
        mp.setattr(teacher_mod, "load_teacher_checkpoint", forbidden)
        run(env, "PromptKD", ev, sopts, eval_only=True, model_dir=sout, load_epoch=2)
        run(env, "PromptKD", ev2, sopts, eval_only=True, model_dir=ref_dir)
    return {"ev": ev, "ev2": ev2, "ref": ref, "ref_dir": ref_dir}


def test_promptkd_stage1_teacher_and_class_vectors(promptkd_stage1):
    teacher, cv, tout, tmp = (promptkd_stage1[k] for k in ("teacher", "cv", "tout", "tmp"))
    assert cv["classnames"] == list(teacher.dm.dataset.all_classnames)
    with torch.no_grad():
        teacher.model.set_classnames(cv["classnames"])
        direct = F.normalize(teacher.model.encode_text(), dim=-1)
    assert torch.allclose(cv["features"], direct, atol=1e-5)
    assert cv["teacher"]["checkpoint_sha256"] is not None and cv["features"].shape == (4, 96)
    # an --eval-only run of the teacher reproduces its accuracy and, when asked, the class vectors
    assert results(tmp / "teacher_eval")["metrics"] == results(tout)["metrics"]
    again = torch.load(promptkd_stage1["cv_again"], weights_only=True)
    assert torch.allclose(again["features"], cv["features"], atol=1e-6)
    assert again["teacher"]["checkpoint_sha256"] == cv["teacher"]["checkpoint_sha256"]


def test_promptkd_stage2_student_training(promptkd_stage1, promptkd_stage2):
    cv = promptkd_stage1["cv"]
    st, sout, student_cv = promptkd_stage2["st"], promptkd_stage2["sout"], promptkd_stage2["student_cv"]
    # class vectors computed exactly once (counting the teacher text branch)
    assert promptkd_stage2["first_calls"] == 1  # 4 classes in one batch, never again during 2 epochs of training
    assert all(d.label == -1 for d in st.dm.dataset.train_x)  # trained without any label
    assert torch.allclose(torch.load(student_cv, weights_only=True)["features"], cv["features"], atol=1e-6)
    res = results(sout)
    assert res["trainer"] == "PromptKD" and res["teacher"]["checkpoint_sha256"] == cv["teacher"]["checkpoint_sha256"]
    assert res["teacher"]["class_vectors"] == str(student_cv)
    assert res["distillation"] == {"kd_weight": 10.0, "loss": "kl_reference", "temperature": 1.0}
    assert st.model.projector[0].in_features == 64 and st.model.projector[-1].out_features == 96  # inferred dims
    state = ckpt(sout, 2)["state_dict"]
    assert sorted(state) == sorted([
        "image_prompts.layer0", "image_prompts.layer1", "projector.0.weight", "projector.0.bias",
        "projector.1.weight", "projector.1.bias", "projector.1.running_mean", "projector.1.running_var",
        "projector.1.num_batches_tracked", "projector.3.weight", "projector.3.bias"])

    # KD loss of the trainer on a fixed batch equals the hand-written reference formula
    batch = next(iter(st.train_loader_x))
    st.set_model_mode("eval")
    with torch.no_grad():
        s_logits, t_logits = st.distillation_logits(batch["img"])
        p_t = t_logits.softmax(1)
        manual = (p_t * (p_t.log() - s_logits.log_softmax(1))).sum() / s_logits.numel()
        assert st.kd_loss(s_logits, t_logits, 1.0).item() == pytest.approx(manual.item(), rel=1e-4, abs=1e-8)
    # labels are never read: a batch without labels trains; teacher gets no gradients
    check_gradients(st, {"img": batch["img"]}, ("image_prompts.", "projector."))
    assert all(not p.requires_grad and p.grad is None for p in st.teacher.encoder.parameters())

    # second student run: the file is reused, the teacher text branch never runs
    assert promptkd_stage2["second_calls"] == 0 and promptkd_stage2["mtime_after"] == promptkd_stage2["mtime"]


def test_promptkd_stage3_teacher_free_evaluation(env, promptkd_stage1, promptkd_stage2, promptkd_stage3):
    tmp, tout = promptkd_stage1["tmp"], promptkd_stage1["tout"]
    sout, sopts = promptkd_stage2["sout"], promptkd_stage2["sopts"]
    res = results(sout)
    # evaluation built no teacher and ran no text encoder (the fixture forbids both) and reproduces training's
    assert results(promptkd_stage3["ev"])["metrics"] == res["metrics"]
    assert results(promptkd_stage3["ev"])["teacher"] == res["teacher"]
    # a released PromptKD student checkpoint (reference layout: 1x1-conv projector) of the same weights
    assert results(promptkd_stage3["ev2"])["metrics"] == res["metrics"]
    ref, ref_dir = promptkd_stage3["ref"], promptkd_stage3["ref_dir"]
    ref["VPT_image_trans.conv1.9.weight"] = torch.zeros(1)
    torch.save({"state_dict": ref, "epoch": 20}, ref_dir / "VLPromptLearner" / "model-best.pth.tar")
    with pytest.MonkeyPatch.context() as mp:
        skip_env_probe(mp)
        with pytest.raises(KeyError, match=r"unexpected: \[projector.9.weight\]"):
            run(env, "PromptKD", tmp / "student_eval_bad", sopts, eval_only=True, model_dir=ref_dir)

        # class vectors made by another teacher checkpoint are refused (stale file)
        other = torch.load(tout / "VLPromptLearner" / "model.pth.tar-1", weights_only=False)
        other["epoch"] = 7
        torch.save(other, tmp / "other_teacher.pth.tar")
        stale = sopts + ["TRAINER.PROMPTKD.TEACHER_CKPT", str(tmp / "other_teacher.pth.tar")]
        with pytest.raises(ValueError, match="sha256"):
            run(env, "PromptKD", tmp / "student_stale", stale, eval_only=True, model_dir=sout)


def test_student_with_zeroshot_teacher_and_batchmean(env, tmp_path):
    out = tmp_path / "zs_teacher"
    opts = ["TRAINER.PROMPTKD.PREC", "fp32", "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", "1",
            "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot", "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"],
            "TRAINER.PROMPTKD.LOSS", "kl_batchmean", "TRAINER.PROMPTKD.PROJECT_LAYER", "1", "OPTIM.MAX_EPOCH", "1"]
    st = run(env, "PromptKDStudent", out, opts)
    cv = torch.load(out / "class_vectors_DescribableTextures.pt", weights_only=True)
    assert cv["teacher"]["type"] == "zeroshot" and cv["teacher"]["template"] == "{} texture."
    tclip = clip.load(env["teacher"])
    ids = clip.tokenize([f"{n} texture." for n in cv["classnames"]], 77)
    assert torch.allclose(cv["features"], F.normalize(tclip.encode_text(ids), dim=-1), atol=1e-5)
    assert [type(m).__name__ for m in st.model.projector] == ["Linear"]
    assert results(out)["teacher"]["type"] == "zeroshot"
