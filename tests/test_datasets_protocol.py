"""The protocol layer: base/new subsampling, eval sets, label dropping, val/test separation, config keys."""

import math

import pytest

import datasets
from datasets.protocol import apply_protocol
from datasets.utils import DatasetError
from engine.api import DATASET_REGISTRY, Datum, get_cfg_default
from tests.helpers.fake_roots import fake_classnames, make_dataset_cfg, make_root

NAME = "DescribableTextures"


def _full(root, n):
    """The full splits (all classes) as read without the protocol."""
    return DATASET_REGISTRY.get(NAME).inspect(root)


def _build(root, **keys):
    return DATASET_REGISTRY.get(NAME)(make_dataset_cfg(root, NAME, **keys))


def _pairs(items):
    return [(it.impath, it.label, it.classname) for it in items]


@pytest.mark.parametrize("n", [4, 5])
def test_base_new_subsampling_and_relabelling(tmp_path, n):
    root = make_root(NAME, tmp_path, n_classes=n, per_class=6)
    names = fake_classnames(NAME, n)
    m = math.ceil(n / 2)
    train, val, test, _ = _full(root, n)
    base = _build(root, SUBSAMPLE_CLASSES="base")
    new = _build(root, SUBSAMPLE_CLASSES="new")
    assert base.classnames == names[:m] and new.classnames == names[m:]
    assert base.num_classes == m and new.num_classes == n - m
    # base keeps labels 0..m-1; new shifts labels m.. down to 0..
    assert _pairs(base.train_x) == [(it.impath, it.label, it.classname) for it in train if it.label < m]
    assert _pairs(new.train_x) == [(it.impath, it.label - m, it.classname) for it in train if it.label >= m]
    assert _pairs(new.val) == [(it.impath, it.label - m, it.classname) for it in val if it.label >= m]
    assert _pairs(new.test) == [(it.impath, it.label - m, it.classname) for it in test if it.label >= m]
    for ds in (base, new):
        for it in ds.train_x + ds.val + ds.test:
            assert ds.classnames[it.label] == it.classname


def test_student_base2novel_transductive(tmp_path):
    n, m = 5, 3
    root = make_root(NAME, tmp_path, n_classes=n, per_class=6)
    names = fake_classnames(NAME, n)
    train, val, test, _ = _full(root, n)
    ds = _build(root, SUBSAMPLE_CLASSES="all", EVAL_PROTOCOL="base2novel", TRAIN_LABELS="drop")
    assert ds.protocol == "base2novel"
    # unlabeled images of ALL classes (base and novel)
    assert sorted(it.impath for it in ds.train_x) == sorted(it.impath for it in train)
    assert all(it.label == -1 and it.classname == "" for it in ds.train_x)
    assert ds.classnames == names and ds.num_classes == n and ds.all_classnames == names
    assert list(ds.eval_sets) == ["base", "novel"]
    b, nv = ds.eval_sets["base"], ds.eval_sets["novel"]
    assert b.classnames == names[:m] and nv.classnames == names[m:]
    assert _pairs(b.items) == [(it.impath, it.label, it.classname) for it in test if it.label < m]
    assert _pairs(nv.items) == [(it.impath, it.label - m, it.classname) for it in test if it.label >= m]
    assert len(b) + len(nv) == len(test)


def test_inductive_student_excludes_novel_images(tmp_path):
    root = make_root(NAME, tmp_path, n_classes=4, per_class=6)
    train, _, test, _ = _full(root, 4)
    novel_paths = {it.impath for it in train + test if it.label >= 2}
    ds = _build(root, SUBSAMPLE_CLASSES="base", EVAL_PROTOCOL="base2novel", TRAIN_LABELS="drop")
    assert ds.train_x and not ({it.impath for it in ds.train_x} & novel_paths)
    assert ds.classnames == fake_classnames(NAME, 4)[:2]
    # evaluation still reports base and novel over the same halves
    transductive = _build(root, SUBSAMPLE_CLASSES="all", EVAL_PROTOCOL="base2novel")
    for key in ("base", "novel"):
        assert _pairs(ds.eval_sets[key].items) == _pairs(transductive.eval_sets[key].items)


def test_eval_only_new_matches_base2novel_novel(tmp_path):
    root = make_root(NAME, tmp_path, n_classes=5, per_class=6)
    b2n = _build(root, EVAL_PROTOCOL="base2novel")
    new = _build(root, SUBSAMPLE_CLASSES="new")
    assert list(new.eval_sets) == ["test"]
    assert _pairs(new.eval_sets["test"].items) == _pairs(b2n.eval_sets["novel"].items)
    assert new.eval_sets["test"].classnames == b2n.eval_sets["novel"].classnames


@pytest.mark.parametrize("keys", [
    {}, {"SUBSAMPLE_CLASSES": "base"}, {"SUBSAMPLE_CLASSES": "new"}, {"NUM_SHOTS": 2},
    {"EVAL_PROTOCOL": "base2novel", "TRAIN_LABELS": "drop"},
])
def test_val_never_contains_test_images(tmp_path, keys):
    root = make_root(NAME, tmp_path, n_classes=4, per_class=6)
    _, full_val, test, _ = _full(root, 4)
    ds = _build(root, **keys)
    test_paths = {it.impath for it in test}
    assert ds.val, "the dataset's own val split is used"
    assert not ({it.impath for it in ds.val} & test_paths)
    assert {it.impath for it in ds.val} <= {it.impath for it in full_val}


def test_datasets_without_val_give_empty_val(tmp_path):
    root = make_root("ImageNet", tmp_path, n_classes=4, per_class=4)
    ds = DATASET_REGISTRY.get("ImageNet")(make_dataset_cfg(root, "ImageNet", EVAL_PROTOCOL="base2novel"))
    assert ds.val == [] and len(ds.eval_sets["base"]) == 4 and len(ds.eval_sets["novel"]) == 4


def test_eval_protocol_auto_follows_trainer_modal(tmp_path):
    root = make_root(NAME, tmp_path, n_classes=4, per_class=6)
    assert _build(root).protocol == "subsample"
    assert _build(root, MODAL="base2novel").protocol == "base2novel"
    assert _build(root, MODAL="cross").protocol == "subsample"
    assert _build(root, MODAL="base2novel", EVAL_PROTOCOL="subsample").protocol == "subsample"


def test_extend_cfg_defaults_and_idempotence():
    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    d = cfg.DATASET
    assert (d.SUBSAMPLE_CLASSES, d.EVAL_PROTOCOL, d.TRAIN_LABELS, d.MAX_IMAGES_PER_CLASS) == ("all", "auto", "use", -1)
    assert d.CUSTOM.SPLIT_RATIOS == (0.5, 0.2, 0.3) and d.NUM_SHOTS == -1
    d.SUBSAMPLE_CLASSES = "base"
    datasets.extend_cfg(cfg)  # never overwrites
    assert d.SUBSAMPLE_CLASSES == "base"
    datasets.validate_dataset_cfg(cfg)


@pytest.mark.parametrize("key,value,match", [
    ("SUBSAMPLE_CLASSES", "novel", r"DATASET.SUBSAMPLE_CLASSES = 'novel' is not valid; expected one of \['all', 'base', 'new'\]"),
    ("EVAL_PROTOCOL", "b2n", "DATASET.EVAL_PROTOCOL"),
    ("TRAIN_LABELS", "none", r"\['use', 'drop'\]"),
    ("MAX_IMAGES_PER_CLASS", 0, "MAX_IMAGES_PER_CLASS = 0 is not valid"),
    ("NUM_SHOTS", 1.5, "DATASET.NUM_SHOTS = 1.5 must be an integer"),
])
def test_bad_config_values(key, value, match):
    cfg = make_dataset_cfg("unused", NAME)
    cfg.DATASET[key] = value
    with pytest.raises(ValueError, match=match):
        datasets.validate_dataset_cfg(cfg)


def test_missing_keys_ask_for_extend_cfg():
    cfg = get_cfg_default()
    with pytest.raises(ValueError, match=r"datasets.extend_cfg"):
        datasets.validate_dataset_cfg(cfg)


def _items(spec):
    return [Datum(impath=f"/d/{split}_{lab}_{i}.jpg", label=lab, classname=f"c{lab}")
            for split, lab, count in spec for i in range(count)]


def test_apply_protocol_errors(tmp_path):
    cfg = make_dataset_cfg(str(tmp_path), "Toy")
    names = ["c0", "c1", "c2"]
    train = _items([("train", 0, 2), ("train", 1, 2)])  # class c2 has no training image
    test = _items([("test", lab, 1) for lab in range(3)])
    with pytest.raises(DatasetError, match=r"Toy: 1 of 3 classes have no training image \(e.g. \['c2'\]\)"):
        apply_protocol(cfg, str(tmp_path), train, [], test, names, has_val=False)
    with pytest.raises(DatasetError, match=r"Toy: the full 'test' split is empty \(dataset folder"):
        apply_protocol(cfg, str(tmp_path), train, [], [], names[:2], has_val=False)
    cfg.DATASET.SUBSAMPLE_CLASSES = "base"
    with pytest.raises(DatasetError, match="at least 2 classes"):
        apply_protocol(cfg, str(tmp_path), train[:2], [], test[:1], names[:1], has_val=False)


def test_protocol_splits_feed_the_engine_data_manager(tmp_path):
    """The engine's DataManager builds loaders from a student dataset whose labels were dropped."""
    from engine.api import DataManager

    root = make_root(NAME, tmp_path, n_classes=4, per_class=6)
    cfg = make_dataset_cfg(root, NAME, EVAL_PROTOCOL="base2novel", TRAIN_LABELS="drop")
    cfg.INPUT.SIZE = (16, 16)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 8
    dm = DataManager(cfg)
    assert dm.num_classes == 4 and dm.lab2cname == dict(enumerate(fake_classnames(NAME, 4)))
    batch = next(iter(dm.train_loader_x))
    assert batch["img"].shape == (4, 3, 16, 16)
    assert batch["label"].tolist() == [-1, -1, -1, -1]
    assert len(dm.dataset.eval_sets["base"]) == 4
