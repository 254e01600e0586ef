"""The 10 non-ImageNet benchmark readers, in CoOp's on-disk layouts (folders and files: ``catalog.json``).

Each reader only says how its raw annotations are parsed; the split file, the image folder, the class
renames and the protocol are handled by :class:`datasets.base.BenchmarkDataset`. Without the split file a
split is generated as in the reference and saved:

- ``DescribableTextures`` (``dtd/images/<class>/``), ``Food101`` (``food-101/images/<class>/``), ``Caltech101``
  (``caltech-101/101_ObjectCategories/<class>/``; ``BACKGROUND_Google`` and ``Faces_easy`` ignored, four folders
  renamed: airplanes -> airplane, Faces -> face, Leopards -> leopard, Motorbikes -> motorbike) and ``EuroSAT``
  (``eurosat/2750/<class>/``, descriptive names: AnnualCrop -> "Annual Crop Land", ...): one folder per
  class, 50/20/30 per class (``read_and_split_data``).
- ``OxfordPets`` (``annotations/{trainval,test}.txt``; class = lower-cased file-name prefix, the breed),
  ``StanfordCars`` (devkit ``.mat`` files, needs scipy; split paths relative to ``stanford_cars/`` itself;
  the year moves to the front: "2012 Tesla Model S Sedan"), ``SUN397`` (``ClassName.txt``,
  ``Training_01.txt`` / ``Testing_01.txt``; ``/a/apartment_building/outdoor`` -> "outdoor apartment_building")
  and ``UCF101`` (``ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt``; ``ApplyEyeMakeup`` ->
  ``Apply_Eye_Makeup``, also the frame folder name): the official train(+val) list split 80/20 into
  train/val per class (``split_trainval``) + the official test list.
- ``OxfordFlowers`` (``jpg/image_00001.jpg, ...``, ``imagelabels.mat`` with 1-based labels, names from
  ``cat_to_name.json``; needs scipy): 50/20/30 per class of the listed images.

``FGVCAircraft`` has no split file: the official ``images_variant_{train,val,test}.txt`` lists are the
split, with the 100 classes in ``variants.txt`` order (as in the reference).
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List

from engine.api import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, FullSplits, read_lines, require_dir, require_file
from .utils import DatasetError, Splits, load_json, split_per_class, split_trainval

__all__ = ["Caltech101", "DescribableTextures", "EuroSAT", "FGVCAircraft", "Food101", "OxfordFlowers",
           "OxfordPets", "StanfordCars", "SUN397", "UCF101"]


def _loadmat(path: str) -> Any:
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise DatasetError(f"reading {path} needs scipy (pip install scipy), or download the split file") from exc
    return loadmat(path)


def _trainval_and_test(trainval: List[Datum], test: List[Datum]) -> Splits:
    train, val = split_trainval(trainval)
    return train, val, test


@DATASET_REGISTRY.register()
class DescribableTextures(BenchmarkDataset):
    """DTD: texture classes named by their folder."""


@DATASET_REGISTRY.register()
class Food101(BenchmarkDataset):
    """Food-101: dish classes named by their folder (e.g. ``apple_pie``)."""


@DATASET_REGISTRY.register()
class Caltech101(BenchmarkDataset):
    """Caltech-101 object categories (100 classes: two folders ignored, four renamed)."""


@DATASET_REGISTRY.register()
class EuroSAT(BenchmarkDataset):
    """EuroSAT land-use classes with the reference's descriptive names."""


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    """Oxford-IIIT Pets breeds."""

    def read_annotations(self, name: str) -> List[Datum]:
        """Parse ``annotations/<name>`` lines ``"<image> <class id> <species> <breed id>"`` (1-based class id)."""
        path = require_file(os.path.join(self.dataset_dir, "annotations", name), self.name, "annotation file",
                            "Extract annotations.tar.gz into oxford_pets/.")
        items = []
        for lineno, line in read_lines(path):
            if line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 2:
                raise DatasetError(f"{path}:{lineno}: expected '<image> <class id> <species> <breed id>', got {line!r}")
            breed = "_".join(parts[0].split("_")[:-1]).lower()
            items.append(Datum(impath=os.path.join(self.image_dir, parts[0] + ".jpg"), label=int(parts[1]) - 1, classname=breed))
        return items

    def generate_split(self) -> Splits:
        return _trainval_and_test(self.read_annotations("trainval.txt"), self.read_annotations("test.txt"))


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    """Stanford Cars make/model/year classes."""

    def read_annotations(self, image_dir: str, anno_file: str) -> List[Datum]:
        """Items of one official split from the devkit ``.mat`` annotation and meta files."""
        hint = "Download car_devkit.tgz and cars_test_annos_withlabels.mat (see DATASETS.md)."
        anno_path = require_file(os.path.join(self.dataset_dir, anno_file), self.name, "annotation file", hint)
        meta_path = require_file(os.path.join(self.dataset_dir, "devkit/cars_meta.mat"), self.name, "class-name file", hint)
        meta = _loadmat(meta_path)["class_names"][0]
        items = []
        for anno in _loadmat(anno_path)["annotations"][0]:
            label = int(anno["class"][0, 0]) - 1
            words = str(meta[label][0]).split(" ")  # the trailing year moves to the front (reference renaming)
            items.append(Datum(impath=os.path.join(self.dataset_dir, image_dir, str(anno["fname"][0])), label=label,
                               classname=" ".join([words[-1]] + words[:-1])))
        return items

    def generate_split(self) -> Splits:
        return _trainval_and_test(self.read_annotations("cars_train", "devkit/cars_train_annos.mat"),
                                  self.read_annotations("cars_test", "cars_test_annos_withlabels.mat"))


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    """Oxford 102 flower categories."""

    def generate_split(self) -> Splits:
        hint = "Download imagelabels.mat and cat_to_name.json (see DATASETS.md)."
        label_file = require_file(os.path.join(self.dataset_dir, "imagelabels.mat"), self.name, "label file", hint)
        names_file = require_file(os.path.join(self.dataset_dir, "cat_to_name.json"), self.name, "class-name file", hint)
        labels = _loadmat(label_file)["labels"][0]
        lab2cname = load_json(names_file, "class-name file")
        groups: Dict[int, List[Datum]] = {}  # classes in order of first appearance, as in the reference
        for i, label in enumerate(int(lab) for lab in labels):
            if str(label) not in lab2cname:
                raise DatasetError(f"{names_file} has no name for class {label}")
            impath = os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg")
            groups.setdefault(label, []).append(Datum(impath=impath, label=label - 1, classname=lab2cname[str(label)]))
        return split_per_class(((f"{label_file}: class {lab}", g) for lab, g in groups.items()), (0.5, 0.2, 0.3))


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    """FGVC-Aircraft variants (2013b ``data/`` folder renamed ``fgvc_aircraft/``)."""

    def read_list(self, name: str, cname2lab: Dict[str, int]) -> List[Datum]:
        """Parse ``"<image id> <variant name>"`` lines."""
        path = require_file(os.path.join(self.dataset_dir, name), self.name, "split list", self.info.hint)
        items = []
        for lineno, line in read_lines(path):
            imname, _, classname = line.partition(" ")
            if classname not in cname2lab:
                raise DatasetError(f"{path}:{lineno}: variant {classname!r} is not listed in variants.txt")
            items.append(Datum(impath=os.path.join(self.image_dir, imname + ".jpg"), label=cname2lab[classname],
                               classname=classname))
        return items

    def read_full_splits(self, cfg: Any) -> FullSplits:
        require_dir(self.image_dir, self.name, "image folder", self.info.hint)
        variants = require_file(os.path.join(self.dataset_dir, "variants.txt"), self.name, "class list", self.info.hint)
        classnames = [line for _, line in read_lines(variants)]
        if len(set(classnames)) != len(classnames):
            raise DatasetError(f"{variants} lists a class twice")
        cname2lab = {c: i for i, c in enumerate(classnames)}
        self.split_source = os.path.join(self.dataset_dir, "images_variant_*.txt")
        train, val, test = (self.read_list(f"images_variant_{s}.txt", cname2lab) for s in ("train", "val", "test"))
        return train, val, test, classnames


_SUN_HINT = "Extract Partitions.zip into sun397/ (ClassName.txt, Training_01.txt, Testing_01.txt)."
_UCF_HINT = "Extract UCFTrainTestlist (ucfTrainTestlist/classInd.txt, trainlist01.txt, testlist01.txt) into ucf101/."


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    """SUN397 scene categories."""

    def read_list(self, name: str, cname2lab: Dict[str, int]) -> List[Datum]:
        """Parse a partition file of ``/<letter>/<class...>/<image>`` lines; class ``a/b/c`` is named "c b"."""
        path = require_file(os.path.join(self.dataset_dir, name), self.name, "partition file", _SUN_HINT)
        items = []
        for lineno, line in read_lines(path):
            class_dir = os.path.dirname(line[1:])
            if class_dir not in cname2lab:
                raise DatasetError(f"{path}:{lineno}: class folder {class_dir!r} is not listed in ClassName.txt")
            items.append(Datum(impath=os.path.join(self.image_dir, line[1:]), label=cname2lab[class_dir],
                               classname=" ".join(class_dir.split("/")[1:][::-1])))
        return items

    def generate_split(self) -> Splits:
        path = require_file(os.path.join(self.dataset_dir, "ClassName.txt"), self.name, "class list", _SUN_HINT)
        cname2lab = {line[1:]: i for i, (_, line) in enumerate(read_lines(path))}
        return _trainval_and_test(self.read_list("Training_01.txt", cname2lab), self.read_list("Testing_01.txt", cname2lab))


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    """UCF101 actions (one middle frame per video)."""

    def read_list(self, name: str, cname2lab: Dict[str, int]) -> List[Datum]:
        """Parse ``<Action>/v_<Action>_gXX_cYY.avi[ <label>]`` lines into middle-frame items."""
        path = require_file(os.path.join(self.dataset_dir, "ucfTrainTestlist", name), self.name, "split list", _UCF_HINT)
        items = []
        for lineno, line in read_lines(path):
            action, filename = line.split(" ")[0].split("/")
            if action not in cname2lab:
                raise DatasetError(f"{path}:{lineno}: action {action!r} is not listed in classInd.txt")
            renamed = "_".join(re.findall("[A-Z][^A-Z]*", action))  # ApplyEyeMakeup -> Apply_Eye_Makeup
            items.append(Datum(impath=os.path.join(self.image_dir, renamed, filename.replace(".avi", ".jpg")),
                               label=cname2lab[action], classname=renamed))
        return items

    def generate_split(self) -> Splits:
        path = require_file(os.path.join(self.dataset_dir, "ucfTrainTestlist", "classInd.txt"), self.name, "class list",
                            _UCF_HINT)
        cname2lab = {name: int(label) - 1 for label, name in (line.split(" ") for _, line in read_lines(path))}
        return _trainval_and_test(self.read_list("trainlist01.txt", cname2lab), self.read_list("testlist01.txt", cname2lab))
