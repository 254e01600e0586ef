"""ImageFolderCustom: folder mode, CSV mode (with and without a split column), errors, protocol."""

import json
import os
from collections import Counter

import pytest

from datasets.utils import DatasetError, DatasetFileNotFoundError
from engine.api import DATASET_REGISTRY
from tests.helpers.fake_roots import make_custom_csv_root, make_custom_folder_root, make_dataset_cfg, write_image

NAME = "ImageFolderCustom"


def _build(root, custom=None, **keys):
    cfg = make_dataset_cfg(root, NAME, **keys)
    for k, v in (custom or {}).items():
        cfg.DATASET.CUSTOM[k] = v
    return DATASET_REGISTRY.get(NAME)(cfg)


def test_folder_mode_split_saved_and_reused(tmp_path):
    root = make_custom_folder_root(tmp_path, n_classes=4, per_class=10)
    ds = _build(root)
    assert ds.classnames == ["class a", "class b", "class c", "class d"]
    for items, per in ((ds.train_x, 5), (ds.val, 2), (ds.test, 3)):  # 50/20/30 per class
        assert Counter(it.label for it in items) == {0: per, 1: per, 2: per, 3: per}
    split_path = os.path.join(root, "split_custom.json")
    with open(split_path) as f:
        saved = json.load(f)
    assert saved["train"][0][0].startswith("class_") and "source_fingerprint" in saved
    assert ds.template == "a photo of a {}."
    again = _build(root)
    assert [it.impath for it in again.test] == [it.impath for it in ds.test]
    # a different SPLIT_SEED gives another split (and rewrites the file)
    other = _build(root, custom={"SPLIT_SEED": 2})
    assert sorted(it.impath for it in other.test) != sorted(it.impath for it in ds.test)


def test_folder_mode_new_images_regenerate_split(tmp_path, caplog):
    root = make_custom_folder_root(tmp_path, n_classes=3, per_class=10)
    first = _build(root)
    write_image(os.path.join(root, "images", "class_a", "img_999.png"), 0)
    with caplog.at_level("WARNING"):
        second = _build(root)
    assert "regenerating" in caplog.text
    assert len(second.train_x) + len(second.val) + len(second.test) == len(first.train_x) + len(first.val) + len(first.test) + 1


def test_folder_mode_classnames_file_and_protocol(tmp_path):
    root = make_custom_folder_root(tmp_path, n_classes=4, per_class=10)
    with open(os.path.join(root, "names.txt"), "w") as f:
        f.write("class_a red fox\nclass_b grey wolf\nclass_c barn owl\nclass_d sea otter\n")
    ds = _build(root, custom={"CLASSNAMES_FILE": "names.txt"}, EVAL_PROTOCOL="base2novel", TRAIN_LABELS="drop",
                NUM_SHOTS=2)
    assert ds.all_classnames == ["red fox", "grey wolf", "barn owl", "sea otter"]
    assert ds.eval_sets["novel"].classnames == ["barn owl", "sea otter"]
    assert len(ds.train_x) == 8 and all(it.label == -1 for it in ds.train_x)
    assert os.path.isfile(os.path.join(root, "split_fewshot", "shot_2-seed_1.json"))


def test_csv_mode_without_split_column(tmp_path):
    root = make_custom_csv_root(tmp_path, n_classes=3, per_class=10)
    ds = _build(root, custom={"CSV": "data.csv", "CLASSNAMES_FILE": "classnames.txt"}, SUBSAMPLE_CLASSES="base")
    assert ds.all_classnames == ["kind a", "kind b", "kind c"] and ds.classnames == ["kind a", "kind b"]
    assert Counter(it.label for it in ds.train_x) == {0: 5, 1: 5}
    assert all(os.path.basename(it.impath).startswith(f"img_{it.label}_") for it in ds.train_x + ds.test)


def test_csv_mode_with_split_column(tmp_path):
    root = make_custom_csv_root(tmp_path, n_classes=3, per_class=6, with_split_column=True)
    ds = _build(root, custom={"CSV": "data.csv", "CLASSNAMES_FILE": "classnames.txt"})
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (9, 3, 6)  # as written: 3/1/2 per class
    assert not os.path.exists(os.path.join(root, "split_custom.json"))
    for it in ds.test:
        assert it.classname == ["kind a", "kind b", "kind c"][it.label]


@pytest.mark.parametrize("row,match", [
    ("img_0_000.jpg,kind z", r"data.csv:\d+: label 'kind z' is neither an index nor a class name"),
    ("img_0_000.jpg,7", r"label 7 is out of range 0..2"),
    ("missing.jpg,0", r"missing.jpg"),
])
def test_csv_errors(tmp_path, row, match):
    root = make_custom_csv_root(tmp_path, n_classes=3, per_class=10)
    with open(os.path.join(root, "data.csv"), "a") as f:
        f.write(row + "\n")
    with pytest.raises(DatasetError, match=match):
        _build(root, custom={"CSV": "data.csv", "CLASSNAMES_FILE": "classnames.txt"})


def test_custom_errors(tmp_path):
    root = make_custom_folder_root(tmp_path, n_classes=2, per_class=3)
    with pytest.raises(DatasetError, match=r"class 'class a' has 3 image\(s\), too few"):
        _build(root)
    with pytest.raises(DatasetFileNotFoundError, match=r"CSV file not found: .*nope.csv"):
        _build(root, custom={"CSV": "nope.csv"})
    with pytest.raises(DatasetError, match="needs DATASET.CUSTOM.CLASSNAMES_FILE"):
        open(os.path.join(root, "x.csv"), "w").write("path,label\n")
        _build(root, custom={"CSV": "x.csv"})
    with pytest.raises(DatasetError, match="must contain"):
        _build(root, custom={"TEMPLATE": "a photo"})
    with pytest.raises(ValueError, match="SPLIT_RATIOS"):
        _build(root, custom={"SPLIT_RATIOS": (0.5, 0.5, 0.5)})
    os.makedirs(os.path.join(root, "images", "class_c"))
    with pytest.raises(DatasetError, match=r"empty class folder .*class_c"):
        _build(root)


def test_custom_yaml_merges(tmp_path):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = make_custom_folder_root(tmp_path, n_classes=2, per_class=5)
    cfg = make_dataset_cfg(root, "")
    cfg.merge_from_file(os.path.join(here, "configs", "datasets", "custom.yaml"))
    assert cfg.DATASET.NAME == NAME and cfg.DATASET.CUSTOM.SPLIT_RATIOS == (0.5, 0.2, 0.3)
    ds = DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)
    assert ds.classnames == ["class a", "class b"]
