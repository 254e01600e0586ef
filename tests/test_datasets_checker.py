"""tools/check_datasets.py: OK on a correct root, an actionable message per problem on broken ones."""

import dataclasses
import os

import pytest

from datasets.catalog import CATALOG
from tests.helpers.fake_roots import fake_split_sizes, flatten_imagenet_val, make_root
from tools.check_datasets import check_dataset, main


def _expected(name, n, per):
    """The catalog entry with the miniature root's counts, so that a correct fake root is 'OK'."""
    train, val, test = fake_split_sizes(name, n, per)
    info = CATALOG[name]
    return dataclasses.replace(info, classes=n, train=train, val=val if info.val is not None else None, test=test,
                               test_base=None, test_novel=None)


@pytest.mark.parametrize("name", ["DescribableTextures", "OxfordPets", "ImageNet", "FGVCAircraft", "ImageNetR"])
def test_correct_root_is_ok_and_nothing_is_written(tmp_path, name):
    root = make_root(name, tmp_path, n_classes=4, per_class=6)
    before = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    report = check_dataset(name, root, expected=_expected(name, 4, 6))
    assert report.status == "OK" and report.problems == [], report.problems
    assert report.classes == 4
    assert sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs) == before


def test_counts_compared_with_the_benchmark(tmp_path):
    root = make_root("EuroSAT", tmp_path, n_classes=4, per_class=6)
    report = check_dataset("eurosat", root)
    assert report.status == "PROBLEM"
    assert any("4 classes found, expected 10" in p for p in report.problems)
    assert any("split sizes train/val/test/test_base/test_novel = 12/4/8/4/4, expected 13,500/5,400/8,100/4,200/3,900" in p
               for p in report.problems)


def test_missing_split_file_is_named(tmp_path):
    root = make_root("OxfordPets", tmp_path, with_split=False)
    report = check_dataset("OxfordPets", root, expected=_expected("OxfordPets", 4, 6))
    assert report.status == "PROBLEM"
    assert any(p.startswith("split_zhou_OxfordPets.json missing: download it from https://huggingface.co/datasets/"
                            "zhengli97/prompt_learning_dataset") for p in report.problems)
    assert not os.path.exists(os.path.join(root, "oxford_pets", "split_zhou_OxfordPets.json"))


def test_empty_class_folder_and_missing_image(tmp_path):
    root = make_root("DescribableTextures", tmp_path)
    os.makedirs(os.path.join(root, "dtd", "images", "zigzagged"))
    os.remove(os.path.join(root, "dtd", "images", "blotchy", "blotchy_0002.jpg"))
    report = check_dataset("dtd", root, expected=_expected("DescribableTextures", 4, 6))
    assert any(p.startswith("empty class folder") and p.split(":")[0].endswith("zigzagged") for p in report.problems)
    assert any("1 image file(s) listed by the DescribableTextures split do not exist" in p and "blotchy_0002.jpg" in p
               for p in report.problems)


def test_unreadable_image(tmp_path):
    root = make_root("DescribableTextures", tmp_path, n_classes=2, per_class=3)
    victim = os.path.join(root, "dtd", "images", "banded", "banded_0000.jpg")
    with open(victim, "wb") as f:
        f.write(b"not an image")
    report = check_dataset("dtd", root, expected=_expected("DescribableTextures", 2, 3), sample=100)
    assert any(p.startswith(f"unreadable image {victim}") for p in report.problems)


def test_imagenet_flat_val_message(tmp_path):
    root = make_root("ImageNet", tmp_path)
    flatten_imagenet_val(root)
    report = check_dataset("imagenet", root)
    assert any("has files but no class folders: run valprep.sh" in p for p in report.problems)


def test_cli_exit_codes_and_table(tmp_path, capsys):
    root = make_root("DescribableTextures", tmp_path)
    assert main(["--root", root, "--dataset", "dtd", "--skip-counts"]) == 0
    out = capsys.readouterr().out
    assert "DescribableTextures  dtd/" in out and "OK" in out and "All checked datasets are OK." in out
    assert main(["--root", root, "--dataset", "dtd", "--dataset", "eurosat", "--skip-counts"]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "- EuroSAT: eurosat/ not found under" in out
    assert main(["--root", root, "--dataset", "dtdx"]) == 1
    assert "unknown dataset 'dtdx'" in capsys.readouterr().err
