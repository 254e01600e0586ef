"""Every user-facing error of the issue "Reliability and user experience", triggered through ``train.main``
(the command line) and checked for: what was expected, what was found, and how to fix it."""

from __future__ import annotations

import json
import os

import pytest
import torch

import clip
import train
from datasets.utils import DatasetError
from tests.helpers.fake_roots import make_root
from tests.helpers.tiny_env import make_tiny_env
from tests.test_reliability_resume import student_argv
from trainers.common.class_vectors import save_class_vectors

torch.set_num_threads(1)

DTD_NAMES = ["banded", "blotchy", "braided", "bubbly"]  # the 4 classes of the generated root


pytestmark = pytest.mark.usefixtures("run_hygiene")


@pytest.fixture(autouse=True)
def _no_weights_dir_env(monkeypatch):
    monkeypatch.delenv("CLIP_WEIGHTS_DIR", raising=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_tiny_env(tmp_path_factory.mktemp("errors"))


def run(env, out, opts=(), root=None, flags=()):
    argv = student_argv(env, out, list(opts), flags=list(flags), epochs=1)
    if root is not None:
        argv[argv.index("--root") + 1] = str(root)
    return train.main(argv)


def own_dtd_root(tmp_path):
    """A private copy of a generated DTD root that a test may damage."""
    return make_root("DescribableTextures", tmp_path / "data", n_classes=4, per_class=6)


# ------------------------------------------------------------------------------------------------ names
def test_unknown_trainer_dataset_and_config_key_suggest_the_closest_name(env, tmp_path):
    argv = student_argv(env, tmp_path / "a", epochs=1)
    argv[argv.index("--trainer") + 1] = "PromptKDD"
    with pytest.raises(KeyError, match=r"'PromptKDD' is not registered in the 'TRAINER' registry\. Did you mean "
                                       r"'PromptKD'\? Registered names: \[.*'PromptSRC'"):
        train.main(argv)
    with pytest.raises(KeyError, match=r"'DescribableTexture' is not registered in the 'DATASET' registry\. Did you "
                                       r"mean 'DescribableTextures'\?"):
        run(env, tmp_path / "b", ["DATASET.NAME", "DescribableTexture"])
    with pytest.raises(KeyError, match=r"Unknown config key 'TRAINER\.PROMPTKD\.KD_WEIGTH' in the command-line options\. "
                                       r"Did you mean: TRAINER\.PROMPTKD\.KD_WEIGHT"):
        run(env, tmp_path / "c", ["TRAINER.PROMPTKD.KD_WEIGTH", "10.0"])
    bad_yaml = tmp_path / "trainer.yaml"
    bad_yaml.write_text("OPTIM:\n  MAX_EPOCHS: 3\n")
    argv = student_argv(env, tmp_path / "d", flags=["--config-file", str(bad_yaml)], epochs=1)
    with pytest.raises(KeyError, match=rf"Unknown config key 'OPTIM\.MAX_EPOCHS' in config file {bad_yaml}\. "
                                       r"Did you mean: OPTIM\.MAX_EPOCH"):
        train.main(argv)


# ------------------------------------------------------------------------------------------------ data
def test_missing_data_root_and_split_file(env, tmp_path):
    missing = tmp_path / "no_data_here"
    with pytest.raises(FileNotFoundError, match=rf"DescribableTextures: dataset folder not found: {missing}/dtd "
                                                rf"\(DATASET.ROOT={missing}\); .*dtd"):
        run(env, tmp_path / "a", root=missing)
    argv = student_argv(env, tmp_path / "b", epochs=1)
    argv[argv.index("--root") + 1] = ""
    with pytest.raises(DatasetError, match="DATASET.ROOT is empty: pass --root <DATA>"):
        train.main(argv)

    # the split file and the raw annotations it could be regenerated from are missing (Oxford Pets)
    pets = make_root("OxfordPets", tmp_path / "pets", n_classes=4, per_class=6)
    split = os.path.join(pets, "oxford_pets", "split_zhou_OxfordPets.json")
    os.remove(split)
    os.remove(os.path.join(pets, "oxford_pets", "annotations", "trainval.txt"))
    argv = student_argv(env, tmp_path / "c", epochs=1)
    argv[argv.index("--root") + 1] = pets
    argv[argv.index("--dataset-config-file") + 1] = "configs/datasets/oxford_pets.yaml"
    with pytest.raises(FileNotFoundError, match=rf"OxfordPets: split file not found: {split} \(.*\); the raw "
                                                r"annotations needed to generate a split are missing too: .*trainval\.txt"):
        train.main(argv)
    # a corrupt split file is named, with the fix
    root2 = own_dtd_root(tmp_path / "second")
    split2 = os.path.join(root2, "dtd", "split_zhou_DescribableTextures.json")
    with open(split2, "w") as f:
        f.write("{not json")
    with pytest.raises(DatasetError, match=rf"{split2} is not valid JSON .*delete or re-download it"):
        run(env, tmp_path / "d", root=root2)


def test_unreadable_image_is_named(env, tmp_path):
    root = own_dtd_root(tmp_path)
    with open(os.path.join(root, "dtd", "split_zhou_DescribableTextures.json")) as f:
        first_train = json.load(f)["train"][0][0]
    bad = os.path.join(root, "dtd", "images", first_train)
    with open(bad, "wb") as f:
        f.write(b"this is not an image")
    with pytest.raises(OSError, match=rf"Cannot read image {bad}: UnidentifiedImageError"):
        run(env, tmp_path / "out", root=root)


# ------------------------------------------------------------------------------------------------ models
def test_missing_clip_weights_file_says_where_and_how(env, tmp_path):
    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        run(env, tmp_path / "a", ["MODEL.BACKBONE.NAME", "ViT-B/16", "MODEL.BACKBONE.WEIGHTS_DIR", str(empty)])
    msg = str(info.value)
    assert "CLIP weights for 'ViT-B/16' not found. Tried:" in msg and f"{empty}/ViT-B-16.pt" in msg
    assert "MODEL.BACKBONE.WEIGHTS_DIR" in msg and "CLIP_WEIGHTS_DIR" in msg and "openaipublic" in msg
    gone = tmp_path / "student_weights.pt"
    with pytest.raises(FileNotFoundError, match=rf"CLIP weights file '{gone}' does not exist"):
        run(env, tmp_path / "b", ["MODEL.BACKBONE.NAME", str(gone)])


def test_input_size_different_from_the_model(env, tmp_path):
    with pytest.raises(ValueError, match=r"INPUT.SIZE is \(64, 64\) but the CLIP model .* takes 32x32 images; set "
                                         r"INPUT.SIZE \(32, 32\)"):
        run(env, tmp_path / "a", ["INPUT.SIZE", "(64, 64)"])


def _teacher_checkpoint(env, path, text_width=None, extra_key=None):
    """A PromptSRCTeacher-style checkpoint (prompts only + meta) for the tiny teacher CLIP."""
    info = clip.model_info(clip.load(env["teacher"]))
    tw = text_width or info.text_width
    state = {"text_prompts.layer0": torch.randn(2, tw), "text_prompts.layer1": torch.randn(2, tw),
             "image_prompts.layer0": torch.randn(2, info.vision_width),
             "image_prompts.layer1": torch.randn(2, info.vision_width)}
    if extra_key:
        state[extra_key] = torch.zeros(3)
    torch.save({"state_dict": state, "epoch": 1,
                "meta": {"trainer": "PromptSRCTeacher", "backbone": env["teacher"], "ctx_init": "a photo of a"}}, path)
    return info


def test_teacher_checkpoint_missing_or_not_matching(env, tmp_path):
    teacher_opts = ["TRAINER.PROMPTKD.TEACHER_TYPE", "promptsrc"]
    missing = tmp_path / "teachers" / "model.pth.tar-20"
    with pytest.raises(FileNotFoundError, match=rf"Teacher checkpoint not found: {missing}\. Tried: {missing} \(none "
                                                r"exists\)\. Released PromptKD teachers go in teacher_model/<DATASET.NAME>/"
                                                r"VLPromptLearner/model-best.pth.tar.*train a teacher with the "
                                                r"PromptSRCTeacher trainer.*set TRAINER.PROMPTKD.TEACHER_CKPT"):
        run(env, tmp_path / "a", teacher_opts + ["TRAINER.PROMPTKD.TEACHER_CKPT", str(missing)])

    extra = tmp_path / "extra.pth.tar"
    _teacher_checkpoint(env, extra, extra_key="prompt_learner_v2.ctx")
    with pytest.raises(KeyError, match=r"unexpected keys \[prompt_learner_v2\.ctx\] \(1\); a teacher checkpoint holds "
                                       r"only text_prompts\.layer\* / image_prompts\.layer\*"):
        run(env, tmp_path / "b", teacher_opts + ["TRAINER.PROMPTKD.TEACHER_CKPT", str(extra)])

    wide = tmp_path / "wide.pth.tar"
    info = _teacher_checkpoint(env, wide, text_width=160)
    with pytest.raises(ValueError, match=rf"prompt widths \(text 160, vision {info.vision_width}\) do not match the CLIP "
                                         rf".*\(text {info.text_width}, vision {info.vision_width}\); set "
                                         r"TRAINER.PROMPTKD.TEACHER_NAME to the teacher's architecture"):
        run(env, tmp_path / "c", teacher_opts + ["TRAINER.PROMPTKD.TEACHER_CKPT", str(wide)])


def test_class_vectors_file_not_matching_the_run(env, tmp_path):
    identity = {"type": "zeroshot", "model": env["teacher"]}
    wrong_names = tmp_path / "cv_names.pt"
    save_class_vectors(str(wrong_names), torch.eye(4, 96), DTD_NAMES[:3] + ["zigzagged"], identity, 100.0)
    with pytest.raises(ValueError, match=rf"Class-vectors file {wrong_names} does not match the dataset: it lists 4 "
                                         r"classes, the dataset has 4; first difference at index 3: file has "
                                         r"'zigzagged', expected 'bubbly'.*delete it to recompute"):
        run(env, tmp_path / "a", ["TRAINER.PROMPTKD.CLASS_VECTORS", str(wrong_names)])

    wrong_dim = tmp_path / "cv_dim.pt"
    save_class_vectors(str(wrong_dim), torch.eye(4, 8), DTD_NAMES, identity, 100.0)
    with pytest.raises(ValueError, match=r"Teacher .* has 96-d features but the class vectors .*cv_dim\.pt are 8-d: "
                                         r"they come from another teacher"):
        run(env, tmp_path / "b", ["TRAINER.PROMPTKD.CLASS_VECTORS", str(wrong_dim)])
