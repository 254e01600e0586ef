"""Data layer: Datum, DatasetBase, transforms, samplers, loaders, DatasetWrapper."""

import os
import random

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from engine.config import get_cfg_default
from engine.data.data_manager import DatasetWrapper, build_data_loader
from engine.data.datasets import Datum, DatasetBase
from engine.data.samplers import DistributedEvalSampler
from engine.data.transforms import AVAI_CHOICES, InstanceNormalization, build_transform

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _cfg(**input_kw):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (8, 8)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = CLIP_MEAN
    cfg.INPUT.PIXEL_STD = CLIP_STD
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.USE_CUDA = False
    for k, v in input_kw.items():
        setattr(cfg.INPUT, k, v)
    return cfg


def _png(path, color, size=(12, 10)):
    Image.new("RGB", size, color).save(path)
    return str(path)


def test_datum_does_not_touch_the_file_system(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("file system accessed")

    monkeypatch.setattr(os.path, "isfile", boom)
    monkeypatch.setattr(os.path, "exists", boom)
    d = Datum(impath="/does/not/exist.jpg", label=3, classname="cat")
    assert (d.impath, d.label, d.domain, d.classname) == ("/does/not/exist.jpg", 3, 0, "cat")
    with pytest.raises(AttributeError):
        d.label = 4
    with pytest.raises(TypeError, match="impath must be a str"):
        Datum(impath=None)
    with pytest.raises(TypeError, match="label and domain must be integers"):
        Datum(impath="a.jpg", label="3")


class _TaggedDatum(Datum):
    def __init__(self, *args, tag="", **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = tag


def test_datum_pickles_with_subclass_attributes():
    import pickle

    d = _TaggedDatum("a.jpg", 2, 1, "dog", tag="x")
    back = pickle.loads(pickle.dumps(d))
    assert back == d and back.tag == "x" and isinstance(back, _TaggedDatum)
    plain = Datum("b.jpg", 1, classname="cat")
    assert pickle.loads(pickle.dumps(plain)) == plain


def test_datasetbase_metadata_from_train_x_and_fewshot():
    train = [Datum(f"{c}{i}.jpg", label=l, classname=c) for l, c in [(0, "a"), (2, "c")] for i in range(5)]
    test = [Datum("x.jpg", label=5, classname="zzz")]
    ds = DatasetBase(train_x=train, val=test, test=test)
    assert ds.num_classes == 3  # max train label + 1; test labels ignored (Dassl)
    assert ds.lab2cname == {0: "a", 2: "c"} and ds.classnames == ["a", "c"]
    assert ds.generate_fewshot_dataset(train, num_shots=-1) is train
    random.seed(0)
    few = ds.generate_fewshot_dataset(train, num_shots=2)
    assert len(few) == 4 and sorted(d.label for d in few) == [0, 0, 2, 2]
    random.seed(0)
    assert ds.generate_fewshot_dataset(train, num_shots=2) == few  # seeded by the global random state
    few_a, few_b = ds.generate_fewshot_dataset(train, train[:3], num_shots=8, repeat=True)
    assert len(few_a) == 16 and len(few_b) == 8
    by_label = ds.split_dataset_by_label(train)
    assert list(by_label) == [0, 2] and len(by_label[2]) == 5


def test_train_and_test_transform_sizes_and_order():
    cfg = _cfg(TRANSFORMS=["normalize", "random_flip", "random_resized_crop"])
    img = Image.new("RGB", (30, 20), (255, 0, 0))
    tfm_train = build_transform(cfg, is_train=True)
    names = [type(t).__name__ for t in tfm_train.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]  # fixed order
    assert tfm_train.transforms[0].interpolation == T.InterpolationMode.BICUBIC
    assert tfm_train(img).shape == (3, 8, 8)

    tfm_test = build_transform(cfg, is_train=False)
    assert [type(t).__name__ for t in tfm_test.transforms] == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    out = tfm_test(img)
    assert out.shape == (3, 8, 8)
    expected = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(out[:, 4, 4], expected, atol=1e-5)

    # no random crop requested -> a plain resize to SIZE first; instance_norm last
    tfm = build_transform(_cfg(TRANSFORMS=["instance_norm", "random_flip"]), is_train=True)
    assert [type(t).__name__ for t in tfm.transforms] == [
        "Resize", "RandomHorizontalFlip", "ToTensor", "InstanceNormalization"]
    x = tfm(Image.fromarray(np.random.RandomState(0).randint(0, 255, (9, 9, 3), dtype=np.uint8)))
    assert x.shape == (3, 8, 8) and torch.allclose(x.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert isinstance(tfm.transforms[-1], InstanceNormalization)


def test_unknown_transform_name_lists_valid_ones():
    with pytest.raises(ValueError) as exc:
        build_transform(_cfg(TRANSFORMS=["random_flip", "random_rotate"]), is_train=True)
    assert "random_rotate" in str(exc.value) and "random_resized_crop" in str(exc.value)
    for dassl_only in ("randaugment2", "cutout", "gaussian_noise", "colorjitter", "random_translation"):
        with pytest.raises(ValueError, match=f"'{dassl_only}' is only available with the Dassl backend"):
            build_transform(_cfg(TRANSFORMS=[dassl_only]), is_train=True)
    assert build_transform(_cfg(NO_TRANSFORM=True)) is None
    assert {"random_crop", "center_crop", "instance_norm"} <= set(AVAI_CHOICES)


def test_dataset_wrapper_items_and_unreadable_image(tmp_path):
    cfg = _cfg(TRANSFORMS=["normalize"])
    cfg.DATALOADER.RETURN_IMG0 = True
    good = Datum(_png(tmp_path / "a.png", (0, 255, 0)), label=1, domain=2, classname="g")
    bad_path = tmp_path / "broken.png"
    bad_path.write_bytes(b"not a png")
    ds = DatasetWrapper(cfg, [good, Datum(str(bad_path), label=0)], transform=build_transform(cfg, is_train=False))
    item = ds[0]
    assert item["img"].shape == (3, 8, 8) and item["img0"].shape == (3, 8, 8)
    assert (item["label"], item["domain"], item["impath"], item["index"]) == (1, 2, good.impath, 0)
    with pytest.raises(OSError, match="broken.png"):
        ds[1]
    cfg.DATALOADER.K_TRANSFORMS = 3
    multi = DatasetWrapper(
        cfg, [good], transform=[build_transform(cfg, True), build_transform(cfg, True)], is_train=True
    )[0]
    assert len(multi["img"]) == 3 and len(multi["img2"]) == 3


def test_cache_images_decodes_each_file_once_and_returns_the_same_tensors(tmp_path, monkeypatch):
    import engine.data.data_manager as dm

    items = [Datum(_png(tmp_path / f"{i}.png", (30 * i, 200, 10)), label=i) for i in range(3)]
    reads = []
    real_read = dm.read_image
    monkeypatch.setattr(dm, "read_image", lambda p, *a: reads.append(p) or real_read(p, *a))
    cfg = _cfg(TRANSFORMS=["random_flip", "normalize"])
    tfm = build_transform(cfg, is_train=True)

    def views(cache):
        cfg.DATALOADER.CACHE_IMAGES = cache
        ds = DatasetWrapper(cfg, items, transform=tfm, is_train=True)
        torch.manual_seed(0)
        random.seed(0)
        return [ds[i % 3]["img"] for i in range(9)]

    plain = views(False)
    assert len(reads) == 9
    reads.clear()
    cached = views(True)
    assert sorted(reads) == sorted(d.impath for d in items)  # 9 accesses, 3 decodes
    assert all(torch.equal(a, b) for a, b in zip(plain, cached))  # augmentation untouched by the cache
    # the key exists in the defaults and is added to configs of an installed Dassl
    from engine.config import add_engine_extras
    from yacs.config import CfgNode as CN

    bare = CN({"DATALOADER": CN({"NUM_WORKERS": 0})})
    assert add_engine_extras(bare).DATALOADER.CACHE_IMAGES is False


def _items(tmp_path, n_per_class=5, n_classes=3):
    items = []
    for c in range(n_classes):
        for i in range(n_per_class):
            items.append(
                Datum(_png(tmp_path / f"c{c}_{i}.png", (40 * c, 10 * i, 0)), label=c, domain=i % 2, classname=f"c{c}")
            )
    return items


def test_data_loader_order_is_reproducible_from_seed_and_drop_last(tmp_path):
    items = _items(tmp_path)
    cfg = _cfg(TRANSFORMS=["normalize"])
    cfg.SEED = 7
    tfm = build_transform(cfg, is_train=False)

    def order():
        loader = build_data_loader(cfg, "RandomSampler", items, batch_size=4, tfm=tfm, is_train=True)
        return [i for b in loader for i in b["index"].tolist()]

    first, second = order(), order()
    assert first == second and len(first) == 12 and len(set(first)) == 12  # 15 items, batch 4, drop_last
    assert first != sorted(first)  # shuffled
    cfg.SEED = 8
    assert order() != first
    cfg.SEED = 7
    test_loader = build_data_loader(cfg, "SequentialSampler", items, batch_size=4, tfm=tfm, is_train=False)
    assert [i for b in test_loader for i in b["index"].tolist()] == list(range(15))
    with pytest.raises(ValueError, match="Unknown sampler 'Shuffle'"):
        build_data_loader(cfg, "Shuffle", items, batch_size=4, tfm=tfm)
    with pytest.raises(ValueError, match="empty"):
        build_data_loader(cfg, "SequentialSampler", [], batch_size=4, tfm=tfm)


def test_worker_augmentations_are_seeded_from_cfg_seed(tmp_path):
    # random_resized_crop / random_flip draw from the workers' RNGs; their seeds must come from
    # cfg.SEED (the loader's generator), not from the parent's global random / torch RNG state.
    items = _items(tmp_path, n_per_class=2, n_classes=2)
    cfg = _cfg(TRANSFORMS=["random_resized_crop", "random_flip"])
    cfg.SEED = 3
    cfg.DATALOADER.NUM_WORKERS = 2
    tfm = build_transform(cfg, is_train=True)

    def images():
        loader = build_data_loader(cfg, "RandomSampler", items, batch_size=2, tfm=tfm, is_train=True)
        assert loader.persistent_workers and loader.num_workers == 2
        return torch.cat([b["img"] for b in loader])

    random.seed(100)
    torch.manual_seed(100)
    first = images()
    random.seed(200)
    torch.manual_seed(200)
    assert torch.equal(images(), first)


def test_distributed_eval_sampler_covers_every_index_once():
    data = list(range(10))
    parts = [list(DistributedEvalSampler(data, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(DistributedEvalSampler(data, num_replicas=3, rank=r)) for r in range(3)] == [len(p) for p in parts]
    assert sorted(i for p in parts for i in p) == data
    assert all(not set(a) & set(b) for a in parts for b in parts if a is not b)


def test_dassl_balanced_samplers_are_refused_by_name(tmp_path):
    items = [Datum(f"x{i}.png", label=i % 4, domain=i % 2) for i in range(16)]
    cfg = _cfg()
    for name in ("RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler"):
        with pytest.raises(ValueError, match=f"Sampler '{name}'.*not provided.*RandomSampler"):
            build_data_loader(cfg, name, items, batch_size=4, is_train=True)
