"""TEACHER_CKPT resolution: the released layout by default, the Dassl ``checkpoint`` pointer, the highest
epoch, the released folder spellings, and a not-found error that lists what was tried."""

from __future__ import annotations

import os

import pytest

from trainers.common.teacher_paths import (
    DEFAULT_TEACHER_CKPT,
    TeacherCheckpointNotFoundError,
    find_teacher_checkpoint,
    resolve_teacher_path,
)


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x")
    return str(path)


def _resolve(dataset, template=DEFAULT_TEACHER_CKPT):
    return find_teacher_checkpoint(resolve_teacher_path(template, dataset, "/data"))


def test_default_finds_the_released_base2novel_teacher(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    best = _touch(tmp_path / "teacher_model" / "DescribableTextures" / "VLPromptLearner" / "model-best.pth.tar")
    assert os.path.samefile(_resolve("DescribableTextures"), best)


def test_released_folder_spellings(tmp_path, monkeypatch):
    """The released README's FGVCaircraft / StandfordCars folders are found for FGVCAircraft / StanfordCars."""
    monkeypatch.chdir(tmp_path)
    air = _touch(tmp_path / "teacher_model" / "FGVCaircraft" / "VLPromptLearner" / "model-best.pth.tar")
    cars = _touch(tmp_path / "teacher_model" / "StandfordCars" / "VLPromptLearner" / "model-best.pth.tar")
    assert os.path.samefile(_resolve("FGVCAircraft"), air)
    assert os.path.samefile(_resolve("StanfordCars"), cars)
    with pytest.raises(TeacherCheckpointNotFoundError) as err:
        _resolve("OxfordPets")
    assert "teacher_model/OxfordPets/VLPromptLearner" in str(err.value)


def test_cross_dataset_default_is_the_released_imagenet_teacher(tmp_path, monkeypatch):
    from engine.config import merge_from_file_checked
    from tests.test_scripts import REPO, _full_default_cfg

    cfg = _full_default_cfg()
    merge_from_file_checked(cfg, str(REPO / "configs/datasets/caltech101.yaml"))
    merge_from_file_checked(cfg, str(REPO / "configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets.yaml"))
    monkeypatch.chdir(tmp_path)
    ep20 = _touch(tmp_path / "teacher_model" / "ImageNet-xd" / "VLPromptLearner_large" / "model.pth.tar-20")
    assert os.path.samefile(_resolve("Caltech101", cfg.TRAINER.PROMPTKD.TEACHER_CKPT), ep20)


def test_folder_order_best_then_pointer_then_highest_epoch(tmp_path):
    run = tmp_path / "run"
    folder = run / "VLPromptLearner"
    for ep in (2, 10, 5):
        _touch(folder / f"model.pth.tar-{ep}")
    assert find_teacher_checkpoint(str(run)) == str(folder / "model.pth.tar-10")  # highest epoch, not the last listed
    (folder / "checkpoint").write_text("model.pth.tar-5\n")  # Dassl's pointer: the file the run saved last
    assert find_teacher_checkpoint(str(run)) == str(folder / "model.pth.tar-5")
    assert find_teacher_checkpoint(str(folder)) == str(folder / "model.pth.tar-5")
    for bad in ("model.pth.tar-7\n", "../outside.pth.tar\n", "\n"):  # missing or outside the folder: ignored
        (folder / "checkpoint").write_text(bad)
        assert find_teacher_checkpoint(str(run)) == str(folder / "model.pth.tar-10")
    best = _touch(folder / "model-best.pth.tar")
    assert find_teacher_checkpoint(str(run)) == best
    assert find_teacher_checkpoint(best) == best  # a file is taken as it is


def test_not_found_lists_what_was_tried_and_where_teachers_go(tmp_path):
    missing = tmp_path / "teacher_model" / "FGVCAircraft" / "VLPromptLearner"
    with pytest.raises(TeacherCheckpointNotFoundError) as err:
        find_teacher_checkpoint(str(missing))
    msg = str(err.value)
    assert f"Tried: {missing}; {tmp_path / 'teacher_model' / 'FGVCaircraft' / 'VLPromptLearner'} (none exists)" in msg
    assert "Released PromptKD teachers go in teacher_model/<DATASET.NAME>/VLPromptLearner/model-best.pth.tar" in msg
    assert isinstance(err.value, FileNotFoundError)

    empty = tmp_path / "empty_run"
    os.makedirs(empty / "VLPromptLearner")
    (empty / "VLPromptLearner" / "checkpoint").write_text("model.pth.tar-3\n")
    with pytest.raises(TeacherCheckpointNotFoundError) as err:
        find_teacher_checkpoint(str(empty))
    msg = str(err.value)
    sub = empty / "VLPromptLearner"
    for tried in (f"{sub / 'model-best.pth.tar'}", f"{sub / 'checkpoint'} (names model.pth.tar-3, which does not exist)",
                  f"{sub / 'model.pth.tar-<N>'}", f"{empty / 'model-best.pth.tar'}", f"{empty / 'checkpoint'} (absent)"):
        assert tried in msg
    assert "PromptSRCTeacher trainer" in msg


def test_placeholders(tmp_path):
    assert resolve_teacher_path("{root}/t/{dataset}", "DescribableTextures", "/data") == "/data/t/DescribableTextures"
    with pytest.raises(ValueError, match=r"only the placeholders \{dataset\} and \{root\}"):
        resolve_teacher_path("teacher_model/{name}", "DescribableTextures", "/data")
