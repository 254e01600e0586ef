"""Miniature dataset roots in the exact on-disk layout of the 15 CoOp benchmarks (for tests).

Every generator writes real tiny image files (one solid colour per class plus a per-image shade, so a
toy model can learn the classes) and the annotation / split files of the real dataset, under
``root`` (the ``DATASET.ROOT`` folder; several datasets can share one root), and returns ``root`` as a
string::

    root = make_dtd_root(tmp_path, n_classes=4, per_class=6)
    root = make_root("OxfordPets", tmp_path, n_classes=5, with_split=False)

``with_split=False`` leaves out the ``split_zhou_*.json`` file (the raw annotation files are still
written) so the reference split-generation path runs. Per class, the written split file puts
``per_class // 2`` images in train, ``max(1, per_class // 5)`` in val and the rest in test
(``per_class >= 3``). ``fake_classnames(name, n)`` gives the class names the dataset must report (renames
applied) and ``fake_split_sizes(name, n, per_class)`` the (train, val, test) sizes of the written split.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple, Union

from PIL import Image

__all__ = [
    "make_root",
    "make_imagenet_root",
    "flatten_imagenet_val",
    "make_caltech101_root",
    "make_oxford_pets_root",
    "make_stanford_cars_root",
    "make_oxford_flowers_root",
    "make_food101_root",
    "make_fgvc_aircraft_root",
    "make_sun397_root",
    "make_dtd_root",
    "make_eurosat_root",
    "make_ucf101_root",
    "make_imagenetv2_root",
    "make_imagenet_sketch_root",
    "make_imagenet_a_root",
    "make_imagenet_r_root",
    "make_custom_folder_root",
    "make_custom_csv_root",
    "fake_classnames",
    "fake_split_sizes",
    "write_image",
    "make_dataset_cfg",
    "FAKE_NAMES",
]

PathLike = Union[str, "os.PathLike[str]"]

# A few real class folder names per dataset (beyond the list, "class_XX" names are generated).
_DTD = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched", "crystalline"]
_FOOD = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad", "beignets", "bibimbap"]
# Sorted folder order puts upper-case names first: Faces, Leopards, Motorbikes, accordion, airplanes, anchor, ...
_CALTECH = ["Faces", "Leopards", "Motorbikes", "accordion", "airplanes", "anchor", "ant", "barrel", "bass", "beaver"]
_CALTECH_RENAMED = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}
_EUROSAT = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
            "Residential", "River", "SeaLake"]
_EUROSAT_RENAMED = {"AnnualCrop": "Annual Crop Land", "HerbaceousVegetation": "Herbaceous Vegetation Land",
                    "Highway": "Highway or Road", "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
                    "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings", "SeaLake": "Sea or Lake"}
_PETS = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal", "Birman",
         "Bombay", "boxer", "British_Shorthair"]
_CARS = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
         "Acura TSX Sedan 2012", "Acura Integra Type R 2001", "Aston Martin V8 Vantage Convertible 2012"]
_FLOWERS = ["pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
            "tiger lily", "moon orchid", "bird of paradise"]
_FGVC = ["707-320", "727-200", "737-200", "Cessna 172", "DHC-1", "Falcon 2000", "Saab 340", "Boeing 717"]
_SUN = ["a/abbey", "a/airplane_cabin", "a/apartment_building/outdoor", "b/bedroom", "b/boathouse",
        "c/church/indoor", "c/coast", "d/dam"]
_UCF = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching", "BaseballPitch",
        "Basketball"]
_WNIDS = [("n01440764", "tench"), ("n01443537", "goldfish"), ("n01484850", "great white shark"),
          ("n01491361", "tiger shark"), ("n01494475", "hammerhead shark"), ("n01496331", "electric ray"),
          ("n01498041", "stingray"), ("n01514668", "rooster"), ("n01514859", "hen"), ("n01518878", "ostrich")]

FAKE_NAMES: Dict[str, List[str]] = {
    "DescribableTextures": _DTD, "Food101": _FOOD, "Caltech101": _CALTECH, "EuroSAT": _EUROSAT, "OxfordPets": _PETS,
    "StanfordCars": _CARS, "OxfordFlowers": _FLOWERS, "FGVCAircraft": _FGVC, "SUN397": _SUN, "UCF101": _UCF,
}


def _names(base: Sequence[str], n: int, fmt: str = "class_{:02d}") -> List[str]:
    return list(base[:n]) + [fmt.format(i) for i in range(len(base), n)]


def _wnids(n: int) -> List[Tuple[str, str]]:
    return list(_WNIDS[:n]) + [(f"n{99000000 + i:08d}", f"extra class {i}") for i in range(len(_WNIDS), n)]


def write_image(path: PathLike, label: int, index: int = 0, size: int = 16) -> str:
    """Write a tiny RGB image (class colour + per-image shade); the format follows the extension."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    hue = (label * 67) % 256
    color = (hue, (255 - hue + 31 * (label % 3)) % 256, (index * 23 + 40 * (label % 4)) % 256)
    ext = os.path.splitext(path)[1].lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}.get(ext, "PNG")
    Image.new("RGB", (size, size), color).save(path, format=fmt)
    return path


def _counts(per_class: int) -> Tuple[int, int, int]:
    if per_class < 3:
        raise ValueError(f"per_class must be >= 3 (train/val/test each need an image), got {per_class}")
    n_tr, n_val = per_class // 2, max(1, per_class // 5)
    return n_tr, n_val, per_class - n_tr - n_val


def _assign(n_items: int) -> List[str]:
    n_tr, n_val, n_te = _counts(n_items)
    return ["train"] * n_tr + ["val"] * n_val + ["test"] * n_te


def _images(names: Sequence, per_class: int) -> Iterator[Tuple[int, Any, int, str]]:
    """``(label, name, i, split)`` of every image: ``per_class`` per class, split as :func:`_assign`."""
    for label, name in enumerate(names):
        for i, split in enumerate(_assign(per_class)):
            yield label, name, i, split


def _write_lines(path: str, lines: Sequence[str]) -> None:
    """A text file of ``lines`` (newline-terminated), its folder created."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _write_split(path: str, rows: Dict[str, List[list]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({k: rows.get(k, []) for k in ("train", "val", "test")}, f, indent=1)


def _folder_dataset(root: PathLike, folder: str, image_sub: str, folders: Sequence[str], cnames: Sequence[str],
                    per_class: int, split_name: str, with_split: bool, extra_dirs: Sequence[str] = ()) -> str:
    root = os.fspath(root)
    ddir = os.path.join(root, folder)
    image_dir = os.path.join(ddir, image_sub)
    rows: Dict[str, List[list]] = {"train": [], "val": [], "test": []}
    for label, (fold, cname), i, split in _images(list(zip(folders, cnames)), per_class):
        rel = f"{fold}/{fold.lower()}_{i:04d}.jpg"
        write_image(os.path.join(image_dir, rel), label, i)
        rows[split].append([rel, label, cname])
    for extra in extra_dirs:  # folders the reader must ignore
        write_image(os.path.join(image_dir, extra, "ignored_0000.jpg"), 99)
    if with_split:
        _write_split(os.path.join(ddir, split_name), rows)
    return root


def make_dtd_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``dtd/images/<class>/*.jpg`` + ``split_zhou_DescribableTextures.json``."""
    names = _names(_DTD, n_classes)
    return _folder_dataset(root, "dtd", "images", names, names, per_class, "split_zhou_DescribableTextures.json", with_split)


def make_food101_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``food-101/images/<class>/*.jpg`` + ``split_zhou_Food101.json``."""
    names = _names(_FOOD, n_classes)
    return _folder_dataset(root, "food-101", "images", names, names, per_class, "split_zhou_Food101.json", with_split)


def make_caltech101_root(root: PathLike, n_classes: int = 5, per_class: int = 6, with_split: bool = True) -> str:
    """``caltech-101/101_ObjectCategories/<class>/`` incl. the ignored BACKGROUND_Google / Faces_easy folders."""
    folders = _names(_CALTECH, n_classes)
    cnames = [_CALTECH_RENAMED.get(f, f) for f in folders]
    return _folder_dataset(root, "caltech-101", "101_ObjectCategories", folders, cnames, per_class,
                           "split_zhou_Caltech101.json", with_split, extra_dirs=("BACKGROUND_Google", "Faces_easy"))


def make_eurosat_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``eurosat/2750/<class>/*.jpg`` + ``split_zhou_EuroSAT.json`` (descriptive class names)."""
    if n_classes > 10:
        raise ValueError("EuroSAT has 10 classes")
    folders = sorted(_EUROSAT)[:n_classes]
    cnames = [_EUROSAT_RENAMED.get(f, f) for f in folders]
    return _folder_dataset(root, "eurosat", "2750", folders, cnames, per_class, "split_zhou_EuroSAT.json", with_split)


def make_oxford_pets_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``oxford_pets/images/<Breed>_<i>.jpg``, ``annotations/{trainval,test}.txt``, ``split_zhou_OxfordPets.json``."""
    root = os.fspath(root)
    ddir = os.path.join(root, "oxford_pets")
    breeds = _names(_PETS, n_classes, "breed_{:02d}")
    rows: Dict[str, List[list]] = {"train": [], "val": [], "test": []}
    trainval, test = [], []
    for label, breed, i, split in _images(breeds, per_class):
        imname = f"{breed}_{i + 1}"
        write_image(os.path.join(ddir, "images", imname + ".jpg"), label, i)
        rows[split].append([imname + ".jpg", label, breed.lower()])
        (test if split == "test" else trainval).append(f"{imname} {label + 1} {1 + label % 2} {label + 1}")
    for name, lines in (("trainval.txt", trainval), ("test.txt", test)):
        _write_lines(os.path.join(ddir, "annotations", name), lines)
    if with_split:
        _write_split(os.path.join(ddir, "split_zhou_OxfordPets.json"), rows)
    return root


def _savemat_annotations(path: str, fnames: List[str], classes: List[int]) -> None:
    import numpy as np
    from scipy.io import savemat

    rec = np.zeros((1, len(fnames)), dtype=[("fname", "O"), ("class", "O")])
    for i, (fn, c) in enumerate(zip(fnames, classes)):
        rec[0, i]["fname"] = np.array([fn])
        rec[0, i]["class"] = np.array([[c]], dtype=np.uint16)
    savemat(path, {"annotations": rec})


def make_stanford_cars_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``stanford_cars/{cars_train,cars_test}/*.jpg``, devkit ``.mat`` files, ``split_zhou_StanfordCars.json``
    (split paths relative to ``stanford_cars/``)."""
    import numpy as np
    from scipy.io import savemat

    root = os.fspath(root)
    ddir = os.path.join(root, "stanford_cars")
    raw = _names(_CARS, n_classes, "Make Model{:02d} Sedan 2010")
    rows: Dict[str, List[list]] = {"train": [], "val": [], "test": []}
    files = {"cars_train": ([], []), "cars_test": ([], [])}
    for label, name, i, split in _images(raw, per_class):
        words = name.split(" ")
        sub = "cars_test" if split == "test" else "cars_train"
        fn = f"{len(files[sub][0]) + 1:05d}.jpg"
        write_image(os.path.join(ddir, sub, fn), label, i)
        files[sub][0].append(fn)
        files[sub][1].append(label + 1)
        rows[split].append([f"{sub}/{fn}", label, " ".join([words[-1]] + words[:-1])])
    os.makedirs(os.path.join(ddir, "devkit"), exist_ok=True)
    _savemat_annotations(os.path.join(ddir, "devkit", "cars_train_annos.mat"), *files["cars_train"])
    _savemat_annotations(os.path.join(ddir, "cars_test_annos_withlabels.mat"), *files["cars_test"])
    meta = np.empty((1, len(raw)), dtype=object)
    for i, name in enumerate(raw):
        meta[0, i] = np.array([name])
    savemat(os.path.join(ddir, "devkit", "cars_meta.mat"), {"class_names": meta})
    if with_split:
        _write_split(os.path.join(ddir, "split_zhou_StanfordCars.json"), rows)
    return root


def make_oxford_flowers_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``oxford_flowers/jpg/image_00001.jpg, ...``, ``imagelabels.mat``, ``cat_to_name.json``, split file."""
    import numpy as np
    from scipy.io import savemat

    root = os.fspath(root)
    ddir = os.path.join(root, "oxford_flowers")
    names = _names(_FLOWERS, n_classes, "flower {:02d}")
    rows: Dict[str, List[list]] = {"train": [], "val": [], "test": []}
    labels = []
    for label, name, i, split in _images(names, per_class):
        fn = f"image_{len(labels) + 1:05d}.jpg"
        write_image(os.path.join(ddir, "jpg", fn), label, i)
        labels.append(label + 1)
        rows[split].append([fn, label, name])
    savemat(os.path.join(ddir, "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    with open(os.path.join(ddir, "cat_to_name.json"), "w") as f:
        json.dump({str(i + 1): n for i, n in enumerate(names)}, f)
    if with_split:
        _write_split(os.path.join(ddir, "split_zhou_OxfordFlowers.json"), rows)
    return root


def make_fgvc_aircraft_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``fgvc_aircraft/images/<id>.jpg``, ``variants.txt``, ``images_variant_{train,val,test}.txt`` (no json)."""
    root = os.fspath(root)
    ddir = os.path.join(root, "fgvc_aircraft")
    names = _names(_FGVC, n_classes, "Variant {:02d}")
    lists: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
    for n, (label, name, i, split) in enumerate(_images(names, per_class), start=1):
        image_id = f"{1000000 + n:07d}"
        write_image(os.path.join(ddir, "images", image_id + ".jpg"), label, i)
        lists[split].append(f"{image_id} {name}")
    _write_lines(os.path.join(ddir, "variants.txt"), names)
    for split, lines in lists.items():
        _write_lines(os.path.join(ddir, f"images_variant_{split}.txt"), lines)
    return root


def make_sun397_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``sun397/SUN397/<letter>/<class...>/*.jpg``, ``ClassName.txt``, ``Training_01.txt``, ``Testing_01.txt``, split file."""
    root = os.fspath(root)
    ddir = os.path.join(root, "sun397")
    dirs = _names(_SUN, n_classes, "z/zclass_{:02d}")
    rows: Dict[str, List[list]] = {"train": [], "val": [], "test": []}
    training, testing = [], []
    for label, d, i, split in _images(dirs, per_class):
        rel = f"{d}/sun_{label:02d}{i:04d}.jpg"
        write_image(os.path.join(ddir, "SUN397", rel), label, i)
        rows[split].append([rel, label, " ".join(d.split("/")[1:][::-1])])
        (testing if split == "test" else training).append("/" + rel)
    for name, lines in (("ClassName.txt", ["/" + d for d in dirs]), ("Training_01.txt", training), ("Testing_01.txt", testing)):
        _write_lines(os.path.join(ddir, name), lines)
    if with_split:
        _write_split(os.path.join(ddir, "split_zhou_SUN397.json"), rows)
    return root


def make_ucf101_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``ucf101/UCF-101-midframes/<Split_Camel_Case>/*.jpg``, ``ucfTrainTestlist/*.txt``, split file."""
    root = os.fspath(root)
    ddir = os.path.join(root, "ucf101")
    actions = _names(_UCF, n_classes, "ActionNumber{:02d}")
    rows: Dict[str, List[list]] = {"train": [], "val": [], "test": []}
    trainlist, testlist = [], []
    import re

    for label, action, i, split in _images(actions, per_class):
        renamed = "_".join(re.findall("[A-Z][^A-Z]*", action))
        video = f"v_{action}_g{i + 1:02d}_c01"
        write_image(os.path.join(ddir, "UCF-101-midframes", renamed, video + ".jpg"), label, i)
        rows[split].append([f"{renamed}/{video}.jpg", label, renamed])
        if split == "test":
            testlist.append(f"{action}/{video}.avi")
        else:
            trainlist.append(f"{action}/{video}.avi {label + 1}")
    for name, lines in (("classInd.txt", [f"{i + 1} {a}" for i, a in enumerate(actions)]),
                        ("trainlist01.txt", trainlist), ("testlist01.txt", testlist)):
        _write_lines(os.path.join(ddir, "ucfTrainTestlist", name), lines)
    if with_split:
        _write_split(os.path.join(ddir, "split_zhou_UCF101.json"), rows)
    return root


def _write_classnames(path: str, pairs: Sequence[Tuple[str, str]]) -> None:
    _write_lines(path, [f"{w} {n}" for w, n in pairs])


def make_imagenet_root(root: PathLike, n_classes: int = 4, per_class: int = 6, with_split: bool = True) -> str:
    """``imagenet/images/{train,val}/<wnid>/*.JPEG`` + ``classnames.txt``; ``per_class`` train images and
    ``max(1, per_class // 2)`` val (test) images per class. ``with_split`` is unused (no split file)."""
    root = os.fspath(root)
    ddir = os.path.join(root, "imagenet")
    pairs = _wnids(n_classes)
    _write_classnames(os.path.join(ddir, "classnames.txt"), pairs)
    n_val = 0
    for label, (wnid, _) in enumerate(pairs):
        for i in range(per_class):
            write_image(os.path.join(ddir, "images", "train", wnid, f"{wnid}_{i}.JPEG"), label, i)
        for i in range(max(1, per_class // 2)):
            n_val += 1
            write_image(os.path.join(ddir, "images", "val", wnid, f"ILSVRC2012_val_{n_val:08d}.JPEG"), label, i)
    return root


def flatten_imagenet_val(root: PathLike) -> None:
    """Move the val images of an ImageNet root out of their class folders: the raw ILSVRC val layout,
    before ``valprep.sh`` sorts it (the readers must refuse it with a hint)."""
    val = os.path.join(str(root), "imagenet", "images", "val")
    for wnid in os.listdir(val):
        for f in os.listdir(os.path.join(val, wnid)):
            os.replace(os.path.join(val, wnid, f), os.path.join(val, f))
        os.rmdir(os.path.join(val, wnid))


def _variant(root: PathLike, folder: str, sub: str, n_classes: int, per_class: int, numeric: bool, skip_every: int,
             ext: str) -> str:
    root = os.fspath(root)
    ddir = os.path.join(root, folder)
    # classnames.txt is ImageNet's: it lists more wnids than a 200-class variant uses (skip_every).
    n_listed = n_classes + (n_classes // max(1, skip_every - 1) + 1 if skip_every else 0)
    pairs = _wnids(n_listed)
    _write_classnames(os.path.join(ddir, "classnames.txt"), pairs)
    used = [p for i, p in enumerate(pairs) if not (skip_every and i % skip_every == 1)][:n_classes]
    for label, (wnid, _) in enumerate(used):
        name = str(label) if numeric else wnid
        for i in range(per_class):
            write_image(os.path.join(ddir, sub, name, f"img_{i}{ext}"), label, i)
    if not numeric:
        _write_lines(os.path.join(ddir, sub, "README.txt"), ["not a class folder"])
    return root


def make_imagenetv2_root(root: PathLike, n_classes: int = 4, per_class: int = 3, with_split: bool = True) -> str:
    """``imagenetv2/imagenetv2-matched-frequency-format-val/<0..n-1>/*.jpeg`` + ``classnames.txt``."""
    return _variant(root, "imagenetv2", "imagenetv2-matched-frequency-format-val", n_classes, per_class, True, 0, ".jpeg")


def make_imagenet_sketch_root(root: PathLike, n_classes: int = 4, per_class: int = 3, with_split: bool = True) -> str:
    """``imagenet-sketch/images/<wnid>/*.JPEG`` + ``classnames.txt``."""
    return _variant(root, "imagenet-sketch", "images", n_classes, per_class, False, 0, ".JPEG")


def make_imagenet_a_root(root: PathLike, n_classes: int = 4, per_class: int = 3, with_split: bool = True) -> str:
    """``imagenet-adversarial/imagenet-a/<wnid>/*.jpg`` (a subset of the classnames.txt wnids) + README.txt."""
    return _variant(root, "imagenet-adversarial", "imagenet-a", n_classes, per_class, False, 3, ".jpg")


def make_imagenet_r_root(root: PathLike, n_classes: int = 4, per_class: int = 3, with_split: bool = True) -> str:
    """``imagenet-rendition/imagenet-r/<wnid>/*.jpg`` (a subset of the classnames.txt wnids) + README.txt."""
    return _variant(root, "imagenet-rendition", "imagenet-r", n_classes, per_class, False, 3, ".jpg")


def make_custom_folder_root(root: PathLike, n_classes: int = 4, per_class: int = 10, image_dir: str = "images") -> str:
    """``<root>/<image_dir>/<class_name>/*.png`` for ``ImageFolderCustom`` (folder mode)."""
    root = os.fspath(root)
    for label in range(n_classes):
        for i in range(per_class):
            write_image(os.path.join(root, image_dir, f"class_{chr(97 + label)}", f"img_{i:03d}.png"), label, i)
    return root


def make_custom_csv_root(root: PathLike, n_classes: int = 4, per_class: int = 10, with_split_column: bool = False) -> str:
    """``<root>/images/*.jpg`` + ``data.csv`` (``path,label[,split]``, labels by name) + ``classnames.txt``."""
    root = os.fspath(root)
    names = [f"kind {chr(97 + i)}" for i in range(n_classes)]
    lines = ["path,label" + (",split" if with_split_column else "")]
    for label, name, i, split in _images(names, per_class):
        rel = f"img_{label}_{i:03d}.jpg"
        write_image(os.path.join(root, "images", rel), label, i)
        lab = name if i % 2 else str(label)  # both label forms: class name and index
        lines.append(f"{rel},{lab}" + (f",{split}" if with_split_column else ""))
    _write_lines(os.path.join(root, "data.csv"), lines)
    _write_lines(os.path.join(root, "classnames.txt"), names)
    return root


_MAKERS: Dict[str, Callable[..., str]] = {
    "ImageNet": make_imagenet_root, "Caltech101": make_caltech101_root, "OxfordPets": make_oxford_pets_root,
    "StanfordCars": make_stanford_cars_root, "OxfordFlowers": make_oxford_flowers_root, "Food101": make_food101_root,
    "FGVCAircraft": make_fgvc_aircraft_root, "SUN397": make_sun397_root, "DescribableTextures": make_dtd_root,
    "EuroSAT": make_eurosat_root, "UCF101": make_ucf101_root, "ImageNetV2": make_imagenetv2_root,
    "ImageNetSketch": make_imagenet_sketch_root, "ImageNetA": make_imagenet_a_root, "ImageNetR": make_imagenet_r_root,
}
_ALIASES = {"dtd": "DescribableTextures", "oxford_pets": "OxfordPets", "stanford_cars": "StanfordCars",
            "oxford_flowers": "OxfordFlowers", "fgvc_aircraft": "FGVCAircraft", "food101": "Food101",
            "caltech101": "Caltech101", "sun397": "SUN397", "eurosat": "EuroSAT", "ucf101": "UCF101",
            "imagenet": "ImageNet", "imagenetv2": "ImageNetV2", "imagenet_sketch": "ImageNetSketch",
            "imagenet_a": "ImageNetA", "imagenet_r": "ImageNetR"}


def _canonical(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in _MAKERS:
        raise KeyError(f"no fake-root generator for {name!r}; known: {sorted(_MAKERS)}")
    return name


def make_root(name: str, root: PathLike, **kwargs) -> str:
    """Write a miniature root of dataset ``name`` (registered name or config stem) under ``root``."""
    return _MAKERS[_canonical(name)](root, **kwargs)


def fake_classnames(name: str, n_classes: int) -> List[str]:
    """Class names (label order, renames applied) that the dataset reader must report for a fake root."""
    name = _canonical(name)
    if name in ("ImageNet", "ImageNetV2", "ImageNetSketch"):
        return [n for _, n in _wnids(n_classes)]
    if name in ("ImageNetA", "ImageNetR"):
        pairs = _wnids(n_classes + n_classes // 2 + 1)
        return [n for i, (_, n) in enumerate(pairs) if i % 3 != 1][:n_classes]
    if name == "Caltech101":
        return [_CALTECH_RENAMED.get(f, f) for f in _names(_CALTECH, n_classes)]
    if name == "EuroSAT":
        return [_EUROSAT_RENAMED.get(f, f) for f in sorted(_EUROSAT)[:n_classes]]
    if name == "OxfordPets":
        return [b.lower() for b in _names(_PETS, n_classes, "breed_{:02d}")]
    if name == "StanfordCars":
        return [" ".join([w[-1]] + w[:-1]) for w in (n.split(" ") for n in _names(_CARS, n_classes, "Make Model{:02d} Sedan 2010"))]
    if name == "OxfordFlowers":
        return _names(_FLOWERS, n_classes, "flower {:02d}")
    if name == "FGVCAircraft":
        return _names(_FGVC, n_classes, "Variant {:02d}")
    if name == "SUN397":
        return [" ".join(d.split("/")[1:][::-1]) for d in _names(_SUN, n_classes, "z/zclass_{:02d}")]
    if name == "UCF101":
        import re

        return ["_".join(re.findall("[A-Z][^A-Z]*", a)) for a in _names(_UCF, n_classes, "ActionNumber{:02d}")]
    if name == "Food101":
        return _names(_FOOD, n_classes)
    return _names(_DTD, n_classes)


def fake_split_sizes(name: str, n_classes: int, per_class: int) -> Tuple[int, int, int]:
    """(train, val, test) sizes of the fake root's split (variants: train = test = all images, no val)."""
    name = _canonical(name)
    if name in ("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR"):
        return n_classes * per_class, 0, n_classes * per_class
    if name == "ImageNet":
        return n_classes * per_class, 0, n_classes * max(1, per_class // 2)
    n_tr, n_val, n_te = _counts(per_class)
    return n_classes * n_tr, n_classes * n_val, n_classes * n_te


def make_dataset_cfg(root: PathLike, name: str, seed: int = 1, **dataset_keys):
    """A default config (engine defaults + ``datasets.extend_cfg``) pointing at ``root`` / dataset ``name``.

    ``dataset_keys`` set ``cfg.DATASET.<KEY>``, e.g. ``NUM_SHOTS=2, SUBSAMPLE_CLASSES="base"``; the key
    ``MODAL`` sets ``cfg.TRAINER.MODAL`` (added if the trainer config does not define it).
    """
    import datasets
    from engine.api import get_cfg_default

    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    cfg.DATASET.ROOT = os.fspath(root)
    cfg.DATASET.NAME = name
    cfg.SEED = seed
    modal = dataset_keys.pop("MODAL", None)
    if modal is not None:
        cfg.TRAINER.MODAL = modal
    for key, value in dataset_keys.items():
        cfg.DATASET[key] = value
    return cfg
