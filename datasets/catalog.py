"""Facts about the 15 benchmark datasets: folder, split file, sources and expected sizes.

Expected sizes: train / test-base / test-novel from PromptKD's paper (Table 8, supplementary; reference
docs/REFERENCE.md C2), val and test totals from CoOp's dataset statistics (test = test-base + test-novel). The
ImageNet variants are test-only: their "train" is the test set (reference behaviour). Used by
``tools/check_datasets.py`` and to warn when a dataset is not the full benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .utils import HF_MIRROR

__all__ = ["DatasetInfo", "CATALOG", "CONFIG_NAMES", "lookup"]


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of one benchmark dataset (``None`` = not applicable / not checked)."""

    name: str
    folder: str
    config: str  # configs/datasets/<config>.yaml
    classes: int
    train: int
    val: Optional[int]
    test: int
    test_base: Optional[int] = None
    test_novel: Optional[int] = None
    split_file: Optional[str] = None
    source: str = ""
    mirror: str = HF_MIRROR
    #: files or folders (relative to the dataset folder) that must exist when the split file is present
    required: Tuple[str, ...] = ()
    #: folders whose sub-folders are class folders (checked for emptiness)
    class_dirs: Tuple[str, ...] = ()

    @property
    def download_hint(self) -> str:
        mirror = f"; mirror: {self.mirror}" if self.mirror else ""
        return f"download from {self.source}{mirror} (see DATASETS.md, section {self.name})"


CATALOG: Dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "ImageNet", "imagenet", "imagenet", 1000, 1281167, None, 50000, 25000, 25000,
            source="https://image-net.org (ILSVRC2012 train + val; val sorted into class folders with valprep.sh) "
            "and classnames.txt from the CoOp DATASETS.md link",
            mirror="", required=("classnames.txt", "images/train", "images/val"), class_dirs=("images/train", "images/val"),
        ),
        DatasetInfo(
            "Caltech101", "caltech-101", "caltech101", 100, 4128, 1649, 2465, 1549, 916, "split_zhou_Caltech101.json",
            source="http://www.vision.caltech.edu/Image_Datasets/Caltech101/101_ObjectCategories.tar.gz",
            required=("101_ObjectCategories",), class_dirs=("101_ObjectCategories",),
        ),
        DatasetInfo(
            "OxfordPets", "oxford_pets", "oxford_pets", 37, 2944, 736, 3669, 1881, 1788, "split_zhou_OxfordPets.json",
            source="https://www.robots.ox.ac.uk/~vgg/data/pets/ (images.tar.gz, annotations.tar.gz)",
            required=("images",),
        ),
        DatasetInfo(
            "StanfordCars", "stanford_cars", "stanford_cars", 196, 6509, 1635, 8041, 4002, 4039, "split_zhou_StanfordCars.json",
            source="http://ai.stanford.edu/~jkrause/cars/car_dataset.html (cars_train.tgz, cars_test.tgz, car_devkit.tgz, "
            "cars_test_annos_withlabels.mat; the original site is often offline)",
            required=("cars_train", "cars_test"),
        ),
        DatasetInfo(
            "OxfordFlowers", "oxford_flowers", "oxford_flowers", 102, 4093, 1633, 2463, 1053, 1410, "split_zhou_OxfordFlowers.json",
            source="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, imagelabels.mat) + cat_to_name.json",
            required=("jpg",),
        ),
        DatasetInfo(
            "Food101", "food-101", "food101", 101, 50500, 20200, 30300, 15300, 15000, "split_zhou_Food101.json",
            source="https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz)",
            required=("images",), class_dirs=("images",),
        ),
        DatasetInfo(
            "FGVCAircraft", "fgvc_aircraft", "fgvc_aircraft", 100, 3334, 3333, 3333, 1666, 1667, None,
            source="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz; keep data/ "
            "renamed to fgvc_aircraft/)",
            required=("images", "variants.txt", "images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt"),
        ),
        DatasetInfo(
            "SUN397", "sun397", "sun397", 397, 15880, 3970, 19850, 9950, 9900, "split_zhou_SUN397.json",
            source="http://vision.princeton.edu/projects/2010/SUN/ (SUN397.tar.gz, Partitions.zip)",
            required=("SUN397",),
        ),
        DatasetInfo(
            "DescribableTextures", "dtd", "dtd", 47, 2820, 1128, 1692, 864, 828, "split_zhou_DescribableTextures.json",
            source="https://www.robots.ox.ac.uk/~vgg/data/dtd/ (dtd-r1.0.1.tar.gz)",
            required=("images",), class_dirs=("images",),
        ),
        DatasetInfo(
            "EuroSAT", "eurosat", "eurosat", 10, 13500, 5400, 8100, 4200, 3900, "split_zhou_EuroSAT.json",
            source="https://github.com/phelber/EuroSAT (EuroSAT.zip, RGB version; extract as eurosat/2750)",
            required=("2750",), class_dirs=("2750",),
        ),
        DatasetInfo(
            "UCF101", "ucf101", "ucf101", 101, 7639, 1898, 3783, 1934, 1849, "split_zhou_UCF101.json",
            source="UCF-101-midframes.zip (middle video frames) from the CoOp DATASETS.md link",
            required=("UCF-101-midframes",), class_dirs=("UCF-101-midframes",),
        ),
        DatasetInfo(
            "ImageNetV2", "imagenetv2", "imagenetv2", 1000, 10000, None, 10000,
            source="https://github.com/modestyachts/ImageNetV2 (imagenetv2-matched-frequency.tar.gz) + "
            "classnames.txt copied from imagenet/",
            mirror="", required=("classnames.txt", "imagenetv2-matched-frequency-format-val"),
            class_dirs=("imagenetv2-matched-frequency-format-val",),
        ),
        DatasetInfo(
            "ImageNetSketch", "imagenet-sketch", "imagenet_sketch", 1000, 50889, None, 50889,
            source="https://github.com/HaohanWang/ImageNet-Sketch + classnames.txt copied from imagenet/",
            mirror="", required=("classnames.txt", "images"), class_dirs=("images",),
        ),
        DatasetInfo(
            "ImageNetA", "imagenet-adversarial", "imagenet_a", 200, 7500, None, 7500,
            source="https://github.com/hendrycks/natural-adv-examples (imagenet-a.tar) + classnames.txt copied from imagenet/",
            mirror="", required=("classnames.txt", "imagenet-a"), class_dirs=("imagenet-a",),
        ),
        DatasetInfo(
            "ImageNetR", "imagenet-rendition", "imagenet_r", 200, 30000, None, 30000,
            source="https://github.com/hendrycks/imagenet-r (imagenet-r.tar) + classnames.txt copied from imagenet/",
            mirror="", required=("classnames.txt", "imagenet-r"), class_dirs=("imagenet-r",),
        ),
    ]
}

#: configs/datasets/<stem>.yaml -> registered dataset name (docs/REFERENCE.md C2)
CONFIG_NAMES: Dict[str, str] = {info.config: info.name for info in CATALOG.values()}


def lookup(name: str) -> DatasetInfo:
    """Find a dataset by registered name, config stem (``dtd``) or folder, case-insensitively."""
    key = name.strip().lower()
    for info in CATALOG.values():
        if key in (info.name.lower(), info.config.lower(), info.folder.lower()):
            return info
    known = ", ".join(sorted(CATALOG))
    raise KeyError(f"unknown dataset {name!r}; known: {known} (or their config names, e.g. dtd, oxford_pets)")
