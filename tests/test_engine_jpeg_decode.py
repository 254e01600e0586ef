"""Reduced-scale JPEG decoding (DATALOADER.REDUCED_JPEG_DECODE): which size each transform needs, that the
decoded image covers it, and that the loader's tensors stay within a stated tolerance of a full decode.

Tolerance (pixel values in [0, 1], before normalisation): mean absolute difference <= 0.01 (2.6/255)
and maximum <= 0.08 (20/255) against decoding every pixel and resampling with the same transform; the
difference is the JPEG DCT-domain downscale (1/2, 1/4, 1/8) versus PIL's antialiased resize of the
full image (measured: mean 0.003-0.006, max 0.024-0.039 on 2000 x 1500 photos-like JPEGs at 224 / 448).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from engine.config import get_cfg_default
from engine.data.data_manager import DatasetWrapper
from engine.data.datasets import Datum
from engine.data.transforms import build_transform, decode_size
from engine.utils import read_image

MEAN_TOL, MAX_TOL = 0.01, 0.08


def _photo(path, width, height, seed=0, fmt="JPEG"):
    """Gradient + smooth texture + noise, like a photo for the JPEG codec."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx / width * 255, yy / height * 255, (xx + yy) / (width + height) * 255], -1)
    img = img + 40 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 23.0)[..., None] + rng.normal(0, 20, (height, width, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return str(path)


def test_decode_size_per_transform():
    assert decode_size(T.Compose([T.Resize(224), T.CenterCrop(224), T.ToTensor()])) == (224, 224)
    assert decode_size(T.Resize((100, 300))) == (300, 100)  # (H, W) -> (width, height)
    # smallest crop of RandomResizedCrop(224): 8 % of the area at aspect 3/4 must keep 224 px per side
    side = decode_size(T.Compose([T.RandomResizedCrop(224), T.ToTensor()]))[0]
    assert side == 915 and 224 / (0.08 * 0.75) ** 0.5 <= side < 224 / (0.08 * 0.75) ** 0.5 + 1
    assert decode_size(T.Compose([T.RandomResizedCrop(224, scale=(0.5, 1.0)), T.ToTensor()]))[0] == 366
    # every pixel may matter: crops without resizing, other callables, a Resize with max_size
    assert decode_size(T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])) is None
    assert decode_size(T.Compose([T.ToTensor()])) is None and decode_size(lambda img: img) is None
    assert decode_size(T.Resize(224, max_size=400)) is None


def test_read_image_reduced_scale_covers_the_requested_size(tmp_path):
    jpg = _photo(tmp_path / "big.jpg", 1200, 900)
    assert read_image(jpg).size == (1200, 900)
    assert read_image(jpg, (224, 224)).size == (300, 225)  # 1/4: the largest scale keeping both sides >= 224
    assert read_image(jpg, (448, 448)).size == (600, 450)  # 1/2
    assert read_image(jpg, (500, 500)).size == (1200, 900)  # 1/2 would give 450 < 500: full decode
    assert read_image(jpg, (100, 100)).size == (150, 113)  # 1/8 at most
    assert read_image(jpg, (224, 224)).mode == "RGB"
    png = _photo(tmp_path / "big.png", 1200, 900, fmt="PNG")
    assert read_image(png, (224, 224)).size == (1200, 900)  # only JPEG has a reduced-scale decoder


@pytest.mark.parametrize("size,interp", [(224, "bicubic"), (448, "bicubic"), (224, "bilinear")])
def test_loader_outputs_close_to_full_decoding(tmp_path, size, interp):
    items = [Datum(_photo(tmp_path / f"{i}.jpg", 2000, 1500, seed=i), label=0) for i in range(2)]
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (size, size)
    cfg.INPUT.INTERPOLATION = interp
    cfg.INPUT.TRANSFORMS = ("normalize",)
    cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]  # compare pixel values
    tfm = build_transform(cfg, is_train=False)
    got = {}
    for reduced in (False, True):
        cfg.DATALOADER.REDUCED_JPEG_DECODE = reduced
        ds = DatasetWrapper(cfg, items, transform=tfm, is_train=False)
        assert ds.min_size == ((size, size) if reduced else None)
        got[reduced] = torch.stack([ds[i]["img"] for i in range(len(items))])
    diff = (got[True] - got[False]).abs()
    assert got[True].shape == (2, 3, size, size)
    assert diff.mean().item() <= MEAN_TOL and diff.max().item() <= MAX_TOL, (diff.mean().item(), diff.max().item())
    assert diff.max().item() > 0  # the reduced path did decode at a smaller scale


def test_wrapper_decode_size_covers_every_consumer(tmp_path):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (64, 64)
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "normalize")
    cfg.DATALOADER.REDUCED_JPEG_DECODE = True
    item = [Datum(_photo(tmp_path / "a.jpg", 64, 48), label=0)]
    train, test = build_transform(cfg, is_train=True), build_transform(cfg, is_train=False)
    assert DatasetWrapper(cfg, item, transform=test).min_size == (64, 64)
    # a list of transforms: the largest requirement (the random resized crop's)
    assert DatasetWrapper(cfg, item, transform=[test, train], is_train=True).min_size == (262, 262)
    # the plain resize (no transform) and img0 (resize to INPUT.SIZE) are consumers too
    assert DatasetWrapper(cfg, item, transform=None).min_size == (64, 64)
    cfg.INPUT.TRANSFORMS = ("random_crop", "normalize")
    assert DatasetWrapper(cfg, item, transform=build_transform(cfg, is_train=True), is_train=True).min_size is None
    cfg.DATALOADER.REDUCED_JPEG_DECODE = False
    assert DatasetWrapper(cfg, item, transform=test).min_size is None
    # an installed Dassl's config gets the key
    from yacs.config import CfgNode as CN

    from engine.config import add_engine_extras
    assert add_engine_extras(CN({"DATALOADER": CN({"NUM_WORKERS": 0})})).DATALOADER.REDUCED_JPEG_DECODE is False  # default: the reference's full decode
