"""Teacher-output cache (trainers/common/teacher_cache.py): record once, replay without a teacher.

A recording run (online teacher) and its replay (same seed and hyper-parameters, no teacher built, no
text encoder run) must produce the same student: prompts / projector within 1e-6 and the same accuracy.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import clip
import train
from engine.utils import read_image
from tests.helpers.tiny_env import make_tiny_env
from trainers.common import teacher_cache as tc_mod

torch.set_num_threads(1)


pytestmark = pytest.mark.usefixtures("fast_env_info")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("teacher_cache"))  # 12 train images


def run(env, out, opts=(), seed=1):
    argv = ["--root", env["root"], "--seed", str(seed), "--trainer", "PromptKDStudent",
            "--dataset-config-file", "configs/datasets/dtd.yaml",
            "--config-file", "configs/trainers/PromptKD/tiny_smoke.yaml", "--output-dir", str(out),
            "MODEL.BACKBONE.NAME", env["student"], "TRAINER.PROMPTKD.TEACHER_TYPE", "zeroshot",
            "TRAINER.PROMPTKD.TEACHER_NAME", env["teacher"], "TRAINER.PROMPTKD.KD_WEIGHT", "10.0",
            "OPTIM.MAX_EPOCH", "2", "OPTIM.LR", "0.05", "DATALOADER.TRAIN_X.BATCH_SIZE", "5",
            "TRAIN.PRINT_FREQ", "100"]
    return train.main(argv + list(opts))


def _ckpt_state(out, epoch=2):
    path = os.path.join(out, "VLPromptLearner", f"model.pth.tar-{epoch}")
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def _forbid_teacher(monkeypatch):
    """Any attempt to build a teacher or run a text encoder fails the test."""
    import trainers.common.teacher as teacher_mod
    import trainers.promptkd as promptkd_mod

    def boom(*args, **kwargs):
        raise AssertionError("the teacher / a text encoder was used during a replay")

    for mod in (teacher_mod, promptkd_mod):
        for name in ("build_teacher", "build_zeroshot_teacher", "load_teacher_checkpoint", "compute_class_vectors"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, boom)
    monkeypatch.setattr(teacher_mod.TeacherImageEncoder, "forward", boom)
    monkeypatch.setattr(clip, "encode_text", boom)


def test_record_then_replay_gives_the_same_student_without_a_teacher(env, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    rec_out = tmp_path / "record"
    opts = ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "record", "TRAINER.PROMPTKD.TEACHER_CACHE.DIR", str(cache_dir)]
    rec = run(env, rec_out, opts)
    assert rec.teacher.mode == "record"

    # ---- the cache: complete, every (epoch, image) recorded, fp16 logits over the 4 training classes
    meta = json.loads((cache_dir / "meta.json").read_text())
    assert meta["complete"] and meta["epochs"] == 2 and meta["num_images"] == 12
    assert not os.path.exists(str(cache_dir) + ".partial")
    logits = np.load(cache_dir / "logits.npy")
    aug = np.load(cache_dir / "aug.npy")
    assert logits.dtype == np.float16 and logits.shape == (2, 12, 4)
    assert aug.dtype == np.int32 and aug.shape == (2, 12, len(tc_mod.AUG_FIELDS))
    assert np.load(cache_dir / "filled.npy").all()
    # random_resized_crop + random_flip of the smoke config: box fields set, random_crop fields unused
    assert (aug[..., 0:2] == -1).all() and (aug[..., 4:6] > 0).all() and set(np.unique(aug[..., 6])) <= {0, 1}
    assert not np.array_equal(aug[0], aug[1])  # each epoch has its own augmentation
    assert meta["bytes"] == tc_mod.cache_bytes(12, 2, 4) == 12 * 2 * (2 * 4 + 29)
    # a recorded logit row is the teacher's output on the replayed augmentation of that image
    item = rec.dm.dataset.train_x[7]
    image = tc_mod.ReplayableAugment(rec.cfg).apply(read_image(item.impath), aug[1, 7])
    expected = rec.teacher.logits(image.unsqueeze(0), rec.teacher_class_weights)[0]
    assert torch.allclose(torch.from_numpy(logits[1, 7]).float(), expected, atol=0.05)

    # ---- replay with the same seed: no teacher, same student, same accuracy
    _forbid_teacher(monkeypatch)
    rep_out = tmp_path / "replay"
    rep = run(env, rep_out, ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "replay",
                             "TRAINER.PROMPTKD.TEACHER_CACHE.DIR", str(cache_dir)])
    assert rep.teacher.encoder is None and rep.teacher._teacher is None
    a, b = _ckpt_state(rec_out), _ckpt_state(rep_out)
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=0), k
    ra, rb = _results(rec_out), _results(rep_out)
    assert ra["metrics"] == rb["metrics"] and ra.get("hm") == rb.get("hm")
    assert rb["teacher"]["type"] == "zeroshot"  # identity of the recorded teacher, from the cache

    # ---- a replay with ANOTHER seed (other data order and student init) finds every (epoch, image)
    other = run(env, tmp_path / "replay_seed2", ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "replay",
                                                 "TRAINER.PROMPTKD.TEACHER_CACHE.DIR", str(cache_dir)], seed=2)
    assert not torch.allclose(_ckpt_state(tmp_path / "replay_seed2")["projector.0.weight"], b["projector.0.weight"])
    # its loader yields exactly the recorded augmentation of each (epoch, image)
    other.train_loader_x.sampler.set_epoch(1)
    batch = next(iter(other.train_loader_x))
    for img, idx, ep, a_row in zip(batch["img"], batch["index"], batch["epoch"], batch["aug"]):
        assert int(ep) == 1 and np.array_equal(a_row.numpy(), aug[1, int(idx)])
        src = read_image(other.dm.dataset.train_x[int(idx)].impath)
        assert torch.equal(img, tc_mod.ReplayableAugment(other.cfg).apply(src, aug[1, int(idx)]))


def test_cache_errors_are_explicit(env, tmp_path):
    cache_dir = tmp_path / "cache"
    rec = ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "record", "TRAINER.PROMPTKD.TEACHER_CACHE.DIR", str(cache_dir),
           "OPTIM.MAX_EPOCH", "1", "TEST.NO_TEST", "True"]
    run(env, tmp_path / "rec", rec)
    with pytest.raises(FileExistsError, match="already exists"):
        run(env, tmp_path / "rec_again", rec)
    replay = ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "replay", "TRAINER.PROMPTKD.TEACHER_CACHE.DIR", str(cache_dir)]
    with pytest.raises(ValueError, match="holds 1 epochs but OPTIM.MAX_EPOCH is 2"):
        run(env, tmp_path / "rep_long", replay)
    with pytest.raises(ValueError, match="augmentation settings differ"):
        run(env, tmp_path / "rep_flip", replay + ["OPTIM.MAX_EPOCH", "1", "INPUT.TRANSFORMS",
                                                  "['random_resized_crop', 'normalize']"])
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        run(env, tmp_path / "rep_missing", ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "replay",
                                            "TRAINER.PROMPTKD.TEACHER_CACHE.DIR", str(tmp_path / "nothing")])
    with pytest.raises(ValueError, match="colorjitter"):
        run(env, tmp_path / "rec_cj", ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "record", "INPUT.TRANSFORMS",
                                       "['random_resized_crop', 'colorjitter', 'normalize']"])
    with pytest.raises(ValueError, match="needs TRAINER.PROMPTKD.TEACHER_CACHE.DIR"):
        run(env, tmp_path / "rep_nodir", ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "replay"])
    with pytest.raises(ValueError, match="needs a logit loss"):
        run(env, tmp_path / "rec_feat", ["TRAINER.PROMPTKD.TEACHER_CACHE.MODE", "record", "TRAINER.PROMPTKD.LOSS",
                                         "feature_l1"])


def test_replayable_augment_matches_its_parameters(env):
    from yacs.config import CfgNode as CN

    cfg = CN()
    cfg.INPUT = CN()
    cfg.INPUT.SIZE = (12, 12)
    cfg.INPUT.INTERPOLATION = "bilinear"
    cfg.INPUT.TRANSFORMS = ("random_crop", "random_flip", "normalize")
    cfg.INPUT.CROP_PADDING = 2
    cfg.INPUT.RRCROP_SCALE = (0.5, 1.0)
    cfg.INPUT.PIXEL_MEAN = [0.5, 0.5, 0.5]
    cfg.INPUT.PIXEL_STD = [0.25, 0.25, 0.25]
    aug = tc_mod.ReplayableAugment(cfg)
    from PIL import Image

    img = Image.fromarray(np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3))
    torch.manual_seed(3)
    params = aug.sample(img)
    assert 0 <= params[0] <= 16 + 4 - 12 and 0 <= params[1] <= 16 + 4 - 12 and params[6] in (0, 1)
    assert (params[2:6] == -1).all()
    out = aug.apply(img, params)
    # by hand: pad 2, crop 12x12 at (top, left), optional flip, to tensor, normalise
    arr = np.pad(np.asarray(img), ((2, 2), (2, 2), (0, 0)))
    crop = arr[params[0]:params[0] + 12, params[1]:params[1] + 12]
    if params[6]:
        crop = crop[:, ::-1]
    manual = (torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    assert out.shape == (3, 12, 12) and torch.allclose(out, manual, atol=1e-6)
