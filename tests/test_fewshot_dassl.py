"""Our few-shot subsets are Dassl's: the real ``generate_fewshot_dataset`` against ``datasets.fewshot``.

The reference datasets (CoOp's DescribableTextures and its relatives) run, after Dassl's
``set_random_seed(SEED)``, ``generate_fewshot_dataset(train, num_shots=K)`` and then
``generate_fewshot_dataset(val, num_shots=min(K, 4))`` on the lists read from the split file, and
pickle ``{"train", "val"}`` to ``split_fewshot/shot_K-seed_S.pkl``. Here the real Dassl does exactly that
on a generated DTD root whose split file lists classes out of label order (first appearances 3, 1, 4,
0, 2) with one class shorter than K; our dataset class must return the same image lists, in the same
order, for seeds 1-3 and K in {1, 2, 4, 8, 16}. A pkl written by the real Dassl on another root is
read back as it is.
"""

import json
import os
import pickle
import random
import shutil

import pytest

import datasets  # noqa: F401  (registers the dataset classes)
from engine.api import DATASET_REGISTRY
from tests.conftest import require_dassl
from tests.helpers.fake_roots import make_dataset_cfg, make_root

pytestmark = pytest.mark.dassl

NAME = "DescribableTextures"
SPLIT = "split_zhou_DescribableTextures.json"


@pytest.fixture(scope="module")
def shuffled_root(tmp_path_factory):
    """5 classes x 20 train / 8 val images; the split file's train/val lists are interleaved out of label order
    and class 2 keeps only 5 training images (fewer than K for K = 8, 16)."""
    require_dassl()  # skip (or fail under PROMPTKD_REQUIRE_DASSL=1) before building anything
    root = make_root(NAME, tmp_path_factory.mktemp("dtd_root"), n_classes=5, per_class=40)
    path = os.path.join(root, "dtd", SPLIT)
    with open(path) as f:
        split = json.load(f)
    order = random.Random(2024)
    for name in ("train", "val"):
        rows = split[name]
        if name == "train":
            rows = [r for r in rows if r[1] != 2] + [r for r in rows if r[1] == 2][:5]
        order.shuffle(rows)
        first = [r for r in rows if r[1] == 3][:1]  # class 3 appears first, then the shuffle decides
        split[name] = first + [r for r in rows if r is not first[0]]
    with open(path, "w") as f:
        json.dump(split, f)
    return root


def _dassl_items(root, split_name):
    """The split file's list as real Dassl Datum objects, read the way CoOp's ``read_split`` reads it."""
    from dassl.data.datasets import Datum as DasslDatum

    with open(os.path.join(root, "dtd", SPLIT)) as f:
        rows = json.load(f)[split_name]
    image_dir = os.path.join(root, "dtd", "images")
    return [DasslDatum(impath=os.path.join(image_dir, rel), label=int(lab), classname=c) for rel, lab, c in rows]


def _dassl_draw(root, k, seed):
    """What the reference dataset class does when no pkl exists: seed, then train K-shot, then val min(K, 4)."""
    from dassl.data.datasets import DatasetBase
    from dassl.utils import set_random_seed

    train, val = _dassl_items(root, "train"), _dassl_items(root, "val")
    set_random_seed(seed)
    base = DatasetBase(train_x=train, val=val)
    fs_train = base.generate_fewshot_dataset(train, num_shots=k)
    fs_val = base.generate_fewshot_dataset(val, num_shots=min(k, 4))
    return fs_train, fs_val


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 4, 8, 16])
def test_fewshot_draw_matches_dassl(real_dassl, shuffled_root, seed, k):
    ref_train, ref_val = _dassl_draw(shuffled_root, k, seed)
    random.seed(12345)  # the global state must not matter to ours
    ours = DATASET_REGISTRY.get(NAME)(make_dataset_cfg(shuffled_root, NAME, seed=seed, NUM_SHOTS=k))
    assert [it.impath for it in ours.train_x] == [it.impath for it in ref_train]
    assert [it.label for it in ours.train_x] == [it.label for it in ref_train]
    assert [it.impath for it in ours.val] == [it.impath for it in ref_val]
    again = DATASET_REGISTRY.get(NAME)(make_dataset_cfg(shuffled_root, NAME, seed=seed, NUM_SHOTS=k))  # from the cache
    assert [it.impath for it in again.train_x] == [it.impath for it in ref_train]
    assert [it.impath for it in again.val] == [it.impath for it in ref_val]
    # base classes are taken after the draw (reference order: few-shot, then subsample_classes)
    base = DATASET_REGISTRY.get(NAME)(make_dataset_cfg(shuffled_root, NAME, seed=seed, NUM_SHOTS=k, SUBSAMPLE_CLASSES="base"))
    assert [it.impath for it in base.train_x] == [it.impath for it in ref_train if it.label < 3]


def test_real_dassl_pickle_from_another_root_is_reused(real_dassl, shuffled_root, tmp_path):
    """A shot_4-seed_7.pkl pickled by the real Dassl on another machine's DATA root is read with its images."""
    other = tmp_path / "elsewhere"
    shutil.copytree(os.path.join(shuffled_root, "dtd"), other / "dtd")
    for f in (other / "dtd" / "split_fewshot").glob("*") if (other / "dtd" / "split_fewshot").exists() else []:
        f.unlink()
    ref_train, ref_val = _dassl_draw(str(other), 4, 7)
    ref_train = ref_train[::-1]  # not the order our draw would give: the file's order must win
    pkl = os.path.join(shuffled_root, "dtd", "split_fewshot", "shot_4-seed_7.pkl")
    os.makedirs(os.path.dirname(pkl), exist_ok=True)
    with open(pkl, "wb") as f:
        pickle.dump({"train": ref_train, "val": ref_val}, f, protocol=pickle.HIGHEST_PROTOCOL)
    shutil.rmtree(other)  # the stored absolute paths no longer exist anywhere
    ours = DATASET_REGISTRY.get(NAME)(make_dataset_cfg(shuffled_root, NAME, seed=7, NUM_SHOTS=4))
    here = os.path.join(shuffled_root, "dtd")
    assert [it.impath for it in ours.train_x] == [it.impath.replace(str(other / "dtd"), here) for it in ref_train]
    assert [it.impath for it in ours.val] == [it.impath.replace(str(other / "dtd"), here) for it in ref_val]
    os.remove(pkl)
