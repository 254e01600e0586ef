"""Few-shot / images-per-class sampling: determinism, cache format, validation and rebuilds, and the
restricted reader of the reference's ``shot_K-seed_S.pkl`` files. (Identity with Dassl's own draw:
tests/test_fewshot_dassl.py.)"""

import json
import os
import pickle
import random
import sys
import types
from collections import Counter

import pytest

from datasets.fewshot import CACHE_FORMAT, sample_per_label
from datasets.reference_fewshot import UnsafeReferencePickleError
from datasets.utils import DatasetError
from engine.api import DATASET_REGISTRY, Datum
from tests.helpers.fake_roots import make_dataset_cfg, make_root

NAME = "DescribableTextures"


@pytest.fixture
def root(tmp_path):
    return make_root(NAME, tmp_path, n_classes=4, per_class=20)  # 10 train / 4 val / 6 test per class


def _build(root, seed=1, **keys):
    return DATASET_REGISTRY.get(NAME)(make_dataset_cfg(root, NAME, seed=seed, **keys))


def _paths(items):
    return [it.impath for it in items]


def _cache(root, k=2, seed=1):
    return os.path.join(root, "dtd", "split_fewshot", f"shot_{k}-seed_{seed}.json")


def test_sample_per_label_rule():
    items = [Datum(impath=f"/x/{c}_{i}.jpg", label=c, classname=str(c)) for c in (2, 0, 1) for i in range(5 if c else 2)]
    out = sample_per_label(items, 3, random.Random(0))
    assert Counter(it.label for it in out) == {0: 2, 1: 3, 2: 3}  # fewer than K -> all of them
    assert [it.label for it in out] == [2, 2, 2, 0, 0, 1, 1, 1]  # labels in order of first appearance
    assert [it.impath for it in out[3:5]] == ["/x/0_0.jpg", "/x/0_1.jpg"]  # a short class keeps its order
    assert sample_per_label(items, -1, random.Random(0)) == items
    repeated = sample_per_label(items, 3, random.Random(0), repeat=True)
    assert Counter(it.label for it in repeated) == {0: 3, 1: 3, 2: 3}


def test_fewshot_sizes_and_val_shots(root):
    ds = _build(root, NUM_SHOTS=2)
    assert Counter(it.label for it in ds.train_x) == {0: 2, 1: 2, 2: 2, 3: 2}
    assert Counter(it.label for it in ds.val) == {0: 2, 1: 2, 2: 2, 3: 2}  # min(K, 4)
    assert len(ds.test) == 24  # the test split is never sampled
    ds8 = _build(root, NUM_SHOTS=8)
    assert Counter(it.label for it in ds8.val) == {0: 4, 1: 4, 2: 4, 3: 4}


def test_deterministic_per_seed_and_independent_of_global_random(root):
    random.seed(123)
    a = _build(root, seed=1, NUM_SHOTS=2)
    os.remove(_cache(root))
    random.seed(999)  # the global state must not matter
    random.random()
    b = _build(root, seed=1, NUM_SHOTS=2)
    assert _paths(a.train_x) == _paths(b.train_x) and _paths(a.val) == _paths(b.val)
    c = _build(root, seed=2, NUM_SHOTS=2)
    assert _paths(c.train_x) != _paths(a.train_x)
    assert os.path.isfile(_cache(root, seed=2))


def test_cache_format_relative_paths(root):
    ds = _build(root, NUM_SHOTS=2)
    with open(_cache(root)) as f:
        data = json.load(f)
    header = data["header"]
    assert header["format"] == CACHE_FORMAT and header["dataset"] == NAME
    assert header["k"] == 2 and header["seed"] == 1 and len(header["fingerprint"]) == 40
    assert str(root) not in json.dumps(data)
    assert data["train"][0][0].startswith("images/")  # relative to the dataset folder
    assert [os.path.join(root, "dtd", e[0]) for e in data["train"]] == _paths(ds.train_x)


def test_cache_is_reused(root, caplog):
    a = _build(root, NUM_SHOTS=2)
    path = _cache(root)
    with open(path) as f:
        data = json.load(f)
    # a valid but different sample: swap one train entry for another image of the same class
    full = {os.path.relpath(it.impath, os.path.join(root, "dtd")).replace(os.sep, "/")
            for it in _build(root).train_x if it.label == data["train"][0][1]}
    other = sorted(full - {e[0] for e in data["train"]})[0]
    data["train"][0][0] = other
    with open(path, "w") as f:
        json.dump(data, f)
    with caplog.at_level("WARNING"):
        b = _build(root, NUM_SHOTS=2)
    assert "stale" not in caplog.text
    assert os.path.join(root, "dtd", other) in _paths(b.train_x)
    assert _paths(b.train_x)[1:] == _paths(a.train_x)[1:]


@pytest.mark.parametrize("tamper", ["fingerprint", "seed", "dataset", "foreign_entry", "split_changed", "corrupt", "version"])
def test_stale_foreign_or_corrupt_cache_is_rebuilt(root, caplog, tamper):
    a = _build(root, NUM_SHOTS=2)
    path = _cache(root)
    with open(path) as f:
        data = json.load(f)
    if tamper == "split_changed":
        # the cached image is gone from disk (and from the split file, as after re-downloading)
        split_path = os.path.join(root, "dtd", "split_zhou_DescribableTextures.json")
        with open(split_path) as f:
            split = json.load(f)
        victim = data["train"][0][0]
        split["train"] = [e for e in split["train"] if "images/" + e[0] != victim]
        with open(split_path, "w") as f:
            json.dump(split, f)
        os.remove(os.path.join(root, "dtd", victim))
    elif tamper == "corrupt":
        data = None
    elif tamper == "foreign_entry":
        data["train"][0][0] = "images/banded/not_in_split.jpg"
    elif tamper == "version":
        data["header"]["version"] = 0
    else:
        data["header"][tamper] = "x"
    with open(path, "w") as f:
        f.write("{truncated" if data is None else json.dumps(data))
    with caplog.at_level("WARNING"):
        b = _build(root, NUM_SHOTS=2)
    assert "stale, foreign or corrupt" in caplog.text
    assert Counter(it.label for it in b.train_x) == {0: 2, 1: 2, 2: 2, 3: 2}
    for it in b.train_x:
        assert os.path.isfile(it.impath)
    with open(path) as f:
        rebuilt = json.load(f)  # rewritten and valid again
    assert rebuilt["header"]["seed"] == 1 and rebuilt["header"]["dataset"] == NAME
    if tamper != "split_changed":
        assert _paths(b.train_x) == _paths(a.train_x)  # same deterministic sample


def test_max_images_per_class(root):
    ds = _build(root, MAX_IMAGES_PER_CLASS=3)
    assert Counter(it.label for it in ds.train_x) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert len(ds.val) == 16 and len(ds.test) == 24  # only training images are limited
    assert os.path.isfile(os.path.join(root, "dtd", "split_fewshot", "max_3-seed_1.json"))
    again = _build(root, MAX_IMAGES_PER_CLASS=3)
    assert _paths(again.train_x) == _paths(ds.train_x)
    other = _build(root, seed=2, MAX_IMAGES_PER_CLASS=3)
    assert _paths(other.train_x) != _paths(ds.train_x)
    both = _build(root, NUM_SHOTS=4, MAX_IMAGES_PER_CLASS=2)
    fewshot = _build(root, NUM_SHOTS=4)
    assert set(_paths(both.train_x)) <= set(_paths(fewshot.train_x)) and len(both.train_x) == 8
    assert _build(root, MAX_IMAGES_PER_CLASS=50).train_x.__len__() == 40  # more than available -> all


def test_read_only_dataset_folder_still_works(root, monkeypatch):
    import datasets.fewshot as fewshot

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(fewshot, "atomic_write_json", refuse)
    ds = _build(root, NUM_SHOTS=2)
    assert len(ds.train_x) == 8 and not os.path.exists(_cache(root))


def test_test_only_variant_ignores_num_shots(tmp_path):
    root = make_root("ImageNetA", tmp_path, n_classes=3, per_class=3)
    ds = DATASET_REGISTRY.get("ImageNetA")(make_dataset_cfg(root, "ImageNetA", NUM_SHOTS=1))
    assert len(ds.train_x) == 9 and not os.path.exists(os.path.join(root, "imagenet-adversarial", "split_fewshot"))


def test_cache_with_vanished_image_is_rebuilt(tmp_path, caplog):
    from datasets.fewshot import cached_per_class_sample

    items = []
    for c in range(2):
        for i in range(4):
            p = tmp_path / f"c{c}_{i}.png"
            p.write_bytes(b"x")
            items.append(Datum(impath=str(p), label=c, classname=f"c{c}"))
    path = str(tmp_path / "split_fewshot" / "shot_2-seed_1.json")
    args = (path, "Toy", "fewshot", 2, 1, {"train": items}, {"train": 2}, str(tmp_path))
    first = cached_per_class_sample(*args)["train"]
    os.remove(first[0].impath)
    with caplog.at_level("WARNING"):
        second = cached_per_class_sample(*args)["train"]
    assert "does not exist" in caplog.text and "rebuilding" in caplog.text
    assert [it.impath for it in second] == [it.impath for it in first]  # same seed -> same sample


# ------------------------------------------------------------------ reference shot_K-seed_S.pkl files


def _pkl(root, k=2, seed=1):
    return os.path.join(root, "dtd", "split_fewshot", f"shot_{k}-seed_{seed}.pkl")


def _fake_datum_init(self, impath, label, classname):
    self._impath, self._label, self._domain, self._classname = impath, label, 0, classname


@pytest.fixture
def fake_dassl_module(monkeypatch):
    """A stand-in module dassl.data.datasets.base_dataset whose Datum pickles like Dassl's (global
    dassl.data.datasets.base_dataset.Datum, state = the instance __dict__); used for writing only."""
    name = "dassl.data.datasets.base_dataset"
    cls = type("Datum", (), {"__init__": _fake_datum_init, "__module__": name})
    for i, part in enumerate(["dassl", "dassl.data", "dassl.data.datasets", name]):
        mod = types.ModuleType(part)
        if part == name:
            mod.Datum = cls
        monkeypatch.setitem(sys.modules, part, mod)
    return cls


def _dump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


@pytest.mark.parametrize("record", ["dassl", "engine"])
def test_reference_pkl_is_read(root, fake_dassl_module, tmp_path, record):
    full = _build(root)
    dtd = os.path.join(root, "dtd")
    old_root = "/home/someone/DATA/dtd"  # written on another machine: absolute paths of another root
    make = (lambda p, lab, c: fake_dassl_module(p, lab, c)) if record == "dassl" else (
        lambda p, lab, c: Datum(impath=p, label=lab, classname=c))
    # a hand-picked draw (not what our sampler would draw): the last images of each class, labels 3..0
    picks = {"train": [it for c in (3, 2, 1, 0) for it in [x for x in full.train_x if x.label == c][-2:]],
             "val": [it for c in (0, 1, 2, 3) for it in [x for x in full.val if x.label == c][:1]]}
    payload = {s: [make(it.impath.replace(dtd, old_root), it.label, it.classname) for it in items]
               for s, items in picks.items()}
    _dump(_pkl(root), payload)
    for part in ("dassl.data.datasets.base_dataset", "dassl.data.datasets", "dassl.data", "dassl"):
        sys.modules.pop(part)  # the reader must not need the module
    ds = _build(root, NUM_SHOTS=2)
    assert _paths(ds.train_x) == _paths(picks["train"])  # the file's images, in the file's order, on this root
    assert _paths(ds.val) == _paths(picks["val"])
    assert not os.path.exists(_cache(root))  # no json cache written beside it
    base = _build(root, NUM_SHOTS=2, SUBSAMPLE_CLASSES="base")  # subsampled after the draw, as in the reference
    assert sorted(_paths(base.train_x)) == sorted(it.impath for it in picks["train"] if it.label < 2)


def _system_payload(marker):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    return Payload()


def _eval_payload(marker):
    class Payload:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w').close()",))
    return Payload()


@pytest.mark.parametrize("make_payload", [_system_payload, _eval_payload], ids=["os.system", "builtins.eval"])
def test_reference_pkl_with_other_global_is_refused(root, tmp_path, fake_dassl_module, make_payload):
    full = _build(root)
    marker = tmp_path / "payload_ran"
    good = [fake_dassl_module(it.impath, it.label, it.classname) for it in full.train_x[:1]]
    _dump(_pkl(root), {"train": good + [make_payload(marker)], "val": []})
    with pytest.raises(UnsafeReferencePickleError) as err:
        _build(root, NUM_SHOTS=2)
    assert _pkl(root) in str(err.value) and ("posix.system" in str(err.value) or "builtins.eval" in str(err.value))
    assert not marker.exists()  # the payload never ran
    assert not os.path.exists(_cache(root))


def test_reference_pkl_that_does_not_match_the_split_is_an_error(root, fake_dassl_module):
    full = _build(root)
    entries = [fake_dassl_module(it.impath, it.label, it.classname) for it in full.train_x if it.label != 1][:6]
    entries.append(fake_dassl_module("/elsewhere/dtd/images/banded/not_in_split.jpg", 0, "banded"))
    _dump(_pkl(root), {"train": entries, "val": []})
    with pytest.raises(DatasetError, match="not_in_split.jpg is not in the current train split; delete it"):
        _build(root, NUM_SHOTS=2)
    with open(_pkl(root), "wb") as f:
        f.write(b"\x80\x05truncated")
    with pytest.raises(DatasetError, match="not a readable reference few-shot file"):
        _build(root, NUM_SHOTS=2)
