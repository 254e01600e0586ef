"""The 15 benchmark readers on miniature roots in their exact on-disk layouts, and their errors."""

import json
import os
import random

import pytest

import datasets
from datasets.utils import DatasetError, DatasetFileNotFoundError
from engine.api import DATASET_REGISTRY
from tests.helpers.fake_roots import (fake_classnames, fake_split_sizes, flatten_imagenet_val, make_dataset_cfg,
                                     make_root)

ALL = [cls.__name__ for cls in datasets.BENCHMARKS]
VARIANTS = ["ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR"]
# datasets whose split is generated from raw annotations when the split json is absent
GENERATES = ["Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "SUN397",
             "DescribableTextures", "EuroSAT", "UCF101"]
SPLIT_FILE = {n: datasets.CATALOG[n].split_file for n in GENERATES}


def _n(name):
    return 5 if name == "Caltech101" else 4


def _per(name):
    return 3 if name in VARIANTS else 6


def _build(root, name, **keys):
    return DATASET_REGISTRY.get(name)(make_dataset_cfg(root, name, **keys))


def _dtd_split(tmp_path):
    """A generated DTD root, the path of its split file and the file's content."""
    root = make_root("DescribableTextures", tmp_path)
    path = os.path.join(root, "dtd", "split_zhou_DescribableTextures.json")
    with open(path) as f:
        return root, path, json.load(f)


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def test_every_config_name_is_registered():
    assert sorted(datasets.CONFIG_NAMES.values()) == sorted(ALL)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for stem, name in datasets.CONFIG_NAMES.items():
        with open(os.path.join(here, "configs", "datasets", stem + ".yaml")) as f:
            assert f'NAME: "{name}"' in f.read()
        assert name in DATASET_REGISTRY


@pytest.mark.parametrize("name", ALL)
def test_reader_loads_fake_root(tmp_path, name):
    n, per = _n(name), _per(name)
    root = make_root(name, tmp_path, n_classes=n, per_class=per)
    ds = _build(root, name)
    n_train, n_val, n_test = fake_split_sizes(name, n, per)
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (n_train, n_val, n_test)
    expected = fake_classnames(name, n)
    assert ds.classnames == expected and ds.all_classnames == expected
    assert ds.num_classes == n and ds.lab2cname == dict(enumerate(expected))
    for split in (ds.train_x, ds.val, ds.test):
        for it in split:
            assert os.path.isfile(it.impath)
            assert it.classname == expected[it.label]
    assert {it.label for it in ds.train_x} == set(range(n))
    assert set(ds.eval_sets) == {"test"} and ds.eval_sets["test"].items == ds.test
    if name in VARIANTS:  # test-only: train_x is the test set
        assert [it.impath for it in ds.train_x] == [it.impath for it in ds.test]


def test_reader_details(tmp_path):
    root = str(tmp_path)
    make_root("Caltech101", root, n_classes=5)
    cal = _build(root, "Caltech101")
    assert not any("BACKGROUND_Google" in it.impath or "Faces_easy" in it.impath for it in cal.test + cal.train_x)
    assert cal.classnames[:3] == ["face", "leopard", "motorbike"]
    make_root("StanfordCars", root)
    cars = _build(root, "StanfordCars")
    assert os.path.relpath(cars.train_x[0].impath, os.path.join(root, "stanford_cars")).startswith("cars_train")
    assert cars.classnames[0] == "2000 AM General Hummer SUV"
    make_root("ImageNetA", root)
    ina = _build(root, "ImageNetA")
    # a subset of the classnames.txt wnids, README.txt ignored
    assert ina.classnames == ["tench", "great white shark", "tiger shark", "electric ray"]
    make_root("ImageNetV2", root, n_classes=3)
    v2 = _build(root, "ImageNetV2")
    assert [os.path.basename(os.path.dirname(it.impath)) for it in v2.test if it.label == 2][0] == "2"


@pytest.mark.parametrize("name", GENERATES)
def test_split_generated_and_saved_when_json_absent(tmp_path, name):
    root = make_root(name, tmp_path, n_classes=4, per_class=10, with_split=False)
    split_path = os.path.join(root, datasets.CATALOG[name].folder, SPLIT_FILE[name])
    assert not os.path.exists(split_path)
    random.seed(0)
    ds = _build(root, name)
    assert os.path.isfile(split_path)
    with open(split_path) as f:
        saved = json.load(f)
    assert set(saved) == {"train", "val", "test"}
    assert all(not os.path.isabs(e[0]) for e in saved["train"])
    assert len(saved["train"]) == len(ds.train_x) and len(saved["test"]) == len(ds.test)
    assert ds.classnames == fake_classnames(name, 4)
    # per class of 10 images: 50/20/30 -> 5/2/3 (folder datasets, flowers); official lists (7 trainval,
    # 3 test) -> trainval split 80/20 -> 6/1/3
    trainval_based = name in ("OxfordPets", "StanfordCars", "SUN397", "UCF101")
    want = (6, 1, 3) if trainval_based else (5, 2, 3)
    for lab in range(4):
        got = tuple(sum(1 for it in items if it.label == lab) for items in (ds.train_x, ds.val, ds.test))
        assert got == want
    # the saved split is read back identically
    again = _build(root, name)
    assert [it.impath for it in again.train_x] == [it.impath for it in ds.train_x]


def test_generated_split_follows_global_seed(tmp_path):
    root = make_root("DescribableTextures", tmp_path / "a", per_class=10, with_split=False)
    root_b = make_root("DescribableTextures", tmp_path / "b", per_class=10, with_split=False)
    random.seed(3)
    a = [os.path.basename(it.impath) for it in _build(root, "DescribableTextures").test]
    random.seed(3)
    b = [os.path.basename(it.impath) for it in _build(root_b, "DescribableTextures").test]
    assert a == b


def test_missing_root_and_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="DATASET.ROOT is empty"):
        _build("", "DescribableTextures")
    with pytest.raises(DatasetFileNotFoundError, match=r"dataset folder not found: .*dtd.*download from"):
        _build(tmp_path, "DescribableTextures")


def test_missing_split_and_annotations_names_both(tmp_path):
    root = make_root("OxfordPets", tmp_path, with_split=False)
    os.remove(os.path.join(root, "oxford_pets", "annotations", "trainval.txt"))
    with pytest.raises(DatasetFileNotFoundError) as err:
        _build(root, "OxfordPets")
    msg = str(err.value)
    assert "split_zhou_OxfordPets.json" in msg and "trainval.txt" in msg and "zhengli97/prompt_learning_dataset" in msg


def test_missing_image_is_named(tmp_path):
    root = make_root("DescribableTextures", tmp_path)
    victim = os.path.join(root, "dtd", "images", "banded", "banded_0005.jpg")
    os.remove(victim)
    with pytest.raises(DatasetFileNotFoundError, match="banded_0005.jpg"):
        _build(root, "DescribableTextures")


def test_empty_class_folder_when_generating(tmp_path):
    root = make_root("DescribableTextures", tmp_path, with_split=False)
    os.makedirs(os.path.join(root, "dtd", "images", "zigzagged"))
    with pytest.raises(DatasetError, match=r"empty class folder .*zigzagged"):
        _build(root, "DescribableTextures")


def test_inconsistent_split_file(tmp_path):
    root, path, data = _dtd_split(tmp_path)
    data["test"][0][2] = "renamed"
    _write_json(path, data)
    with pytest.raises(DatasetError, match="label 0 is named both"):
        _build(root, "DescribableTextures")
    data["test"][0][2] = data["train"][0][2]
    data["val"].append(data["test"][0])
    _write_json(path, data)
    with pytest.raises(DatasetError, match="also in the test split"):
        _build(root, "DescribableTextures")
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        _build(root, "DescribableTextures")


def test_empty_split_is_an_error(tmp_path):
    root, path, data = _dtd_split(tmp_path)
    data["val"] = []
    _write_json(path, data)
    with pytest.raises(DatasetError, match=r"DescribableTextures: the full 'val' split is empty"):
        _build(root, "DescribableTextures")


def test_imagenet_flat_val_and_missing_classnames(tmp_path):
    root = make_root("ImageNet", tmp_path)
    flatten_imagenet_val(root)
    with pytest.raises(DatasetError, match="has files but no class folders: run valprep.sh"):
        _build(root, "ImageNet")
    os.remove(os.path.join(root, "imagenet", "classnames.txt"))
    with pytest.raises(DatasetFileNotFoundError, match="classnames.txt"):
        _build(root, "ImageNet")


def test_imagenet_unknown_wnid_folder(tmp_path):
    root = make_root("ImageNet", tmp_path)
    for sub in ("train", "val"):
        os.makedirs(os.path.join(root, "imagenet", "images", sub, "n99999999"))
    with pytest.raises(DatasetError, match=r"not listed in .*classnames.txt.*n99999999"):
        _build(root, "ImageNet")


def test_imagenet_preprocessed_json_is_relative_reused_and_rebuilt(tmp_path, caplog):
    root = make_root("ImageNet", tmp_path, n_classes=3, per_class=4)
    first = _build(root, "ImageNet")
    cache = os.path.join(root, "imagenet", "preprocessed.json")
    with open(cache) as f:
        data = json.load(f)
    assert str(tmp_path) not in json.dumps(data)  # relative: no absolute path stored
    assert [e[0] for e in data["train"]] == ["n01440764", "n01443537", "n01484850"]
    second = _build(root, "ImageNet")
    assert second.train_x == first.train_x and second.test == first.test
    assert first.val == [] and len(first.test) == 6
    # a new image -> the folder list is the same but a sampled file vanished: delete one listed image
    os.remove(os.path.join(root, "imagenet", "images", "train", "n01440764", "n01440764_3.JPEG"))
    with caplog.at_level("WARNING"):
        third = _build(root, "ImageNet")
    assert "stale or corrupt" in caplog.text
    assert len(third.train_x) == len(first.train_x) - 1
    with open(cache, "w") as f:
        f.write("garbage")
    caplog.clear()
    with caplog.at_level("WARNING"):
        fourth = _build(root, "ImageNet")
    assert "stale or corrupt" in caplog.text and len(fourth.train_x) == len(third.train_x)


def test_imagenet_train_val_folder_mismatch(tmp_path):
    root = make_root("ImageNet", tmp_path)
    import shutil

    shutil.rmtree(os.path.join(root, "imagenet", "images", "val", "n01440764"))
    with pytest.raises(DatasetError, match="different class folders"):
        _build(root, "ImageNet")


def test_imagenetv2_missing_numeric_folder(tmp_path):
    root = make_root("ImageNetV2", tmp_path)
    import shutil

    shutil.rmtree(os.path.join(root, "imagenetv2", "imagenetv2-matched-frequency-format-val", "2"))
    with pytest.raises(DatasetError, match=r"missing \['2'\]"):
        _build(root, "ImageNetV2")
