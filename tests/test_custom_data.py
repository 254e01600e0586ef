"""Custom data pieces that do not need a training run: the checker on a custom dataset, the missing-image
count, the template and name as properties of the dataset, the scripts' custom entry points (DRY_RUN),
and the two-custom-datasets aggregation of tools/results.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.templates import TEMPLATES, dataset_display_name, dataset_template
from datasets.utils import DatasetFileNotFoundError
from engine.api import DATASET_REGISTRY, Datum
from tests.helpers.fake_roots import make_dataset_cfg
from tests.helpers.garments import GARMENTS, make_garment_csv_root, make_garment_folder_root
from tools.check_datasets import check_custom, main as check_main

REPO = Path(__file__).resolve().parents[1]


def test_checker_reports_a_clean_custom_dataset(tmp_path, capsys):
    root = make_garment_csv_root(str(tmp_path / "shop"))
    rep = check_custom(root, overrides={"CSV": "data.csv", "CLASSNAMES_FILE": "classnames.txt"})
    assert rep.ok and rep.name == "shop" and rep.classes == 6
    assert rep.sizes == {"train": 36, "val": 12, "test": 24}  # 6 / 2 / 4 per class in the CSV's split column
    assert f"base classes (3): {', '.join(GARMENTS[:3])}" in rep.notes
    assert not os.path.exists(os.path.join(root, "split_custom.json"))
    # the CLI: folder mode, the CUSTOM_* variables of the scripts as defaults, exit code 0
    folder = make_garment_folder_root(str(tmp_path / "wardrobe"))
    assert check_main(["--dataset", "custom", "--root", folder]) == 0
    out = capsys.readouterr().out
    assert "wardrobe" in out and "All checked datasets are OK." in out and "images per class: train 6-6" in out


def test_checker_finds_broken_images_duplicates_and_missing_files(tmp_path):
    root = make_garment_csv_root(str(tmp_path / "shop"))
    keys = {"CSV": "data.csv", "CLASSNAMES_FILE": "classnames.txt"}
    img = Path(root, "images")
    (img / "00000.png").write_bytes(b"not a png")                    # corrupt
    shutil.copy(img / "00013.png", img / "00014.png")                 # byte-identical copy (class 1)
    rep = check_custom(root, overrides=keys)
    problems = "\n".join(rep.problems)
    assert rep.status == "PROBLEM"
    assert f"unreadable image {img / '00000.png'}" in problems
    assert "1 image file(s) are byte-identical copies" in problems and "00013.png" in problems
    # a row listing a missing image: counted once, although the test split feeds base/novel sets too
    with open(os.path.join(root, "data.csv"), "a") as f:
        f.write("gone.png,0,test\n")
    rep = check_custom(root, overrides=keys)
    assert any(p.startswith("1 image file(s) listed by") and "gone.png" in p and "also:" not in p for p in rep.problems)
    cfg = make_dataset_cfg(root, "ImageFolderCustom", EVAL_PROTOCOL="base2novel")
    for k, v in keys.items():
        cfg.DATASET.CUSTOM[k] = v
    with pytest.raises(DatasetFileNotFoundError, match=r"^1 image file\(s\) listed by .*gone\.png\. Check"):
        DATASET_REGISTRY.get("ImageFolderCustom")(cfg)


def test_verify_counts_each_missing_path_once(tmp_path):
    from datasets.utils import verify_images_exist

    missing = Datum(impath=str(tmp_path / "x.png"), label=0, classname="a")
    with pytest.raises(DatasetFileNotFoundError) as e:
        verify_images_exist([missing, missing, missing], "a list")
    assert str(e.value).startswith("1 image file(s) listed by a list do not exist, e.g. ") and "also" not in str(e.value)


def test_template_and_name_are_properties_of_the_dataset(tmp_path):
    root = make_garment_folder_root(str(tmp_path / "wardrobe"))
    cfg = make_dataset_cfg(root, "ImageFolderCustom")
    cfg.DATASET.CUSTOM.TEMPLATE = "a photo of a {}, a type of garment."
    ds = DATASET_REGISTRY.get("ImageFolderCustom")(cfg)
    assert ds.template == dataset_template(cfg) == "a photo of a {}, a type of garment."
    assert ds.display_name == dataset_display_name(cfg) == "wardrobe"
    cfg.DATASET.CUSTOM.NAME = "fashion-v2"
    assert dataset_display_name(cfg) == "fashion-v2"
    # the benchmarks: their own template, their registry name
    dtd = make_dataset_cfg(str(tmp_path), "DescribableTextures")
    assert dataset_template(dtd) == "{} texture." == TEMPLATES["DescribableTextures"]
    assert dataset_display_name(dtd) == "DescribableTextures"
    # the trainers' import path gives the same function
    from trainers.common.templates import dataset_template as trainer_template

    assert trainer_template(cfg) == "a photo of a {}, a type of garment." and trainer_template("EuroSAT") == (
        "a centered satellite photo of {}.")


def _dry(args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOM_")}
    full.update(DRY_RUN="1", **env)
    return subprocess.run(["bash", *args], cwd=REPO, env=full, capture_output=True, text=True)


def test_scripts_take_custom_and_a_dataset_yaml(tmp_path):
    root = tmp_path / "shop"
    root.mkdir()
    p = _dry(["scripts/promptkd/base2new_train.sh", "custom", "2"], CUSTOM_ROOT=str(root), CUSTOM_CSV="data.csv",
             CUSTOM_CLASSNAMES="classnames.txt", CUSTOM_TEMPLATE="a {} garment.", CUSTOM_NAME="shop-v1",
             CFG="tiny_smoke")
    assert p.returncode == 0, p.stderr
    cmd = p.stdout.strip()
    assert f"--root {root} " in cmd and "--dataset-config-file configs/datasets/custom.yaml" in cmd
    assert "output/base2new/train_base/shop-v1/shots_0/PromptKD/tiny_smoke/seed_2" in cmd
    assert cmd.endswith("DATASET.CUSTOM.CSV data.csv DATASET.CUSTOM.CLASSNAMES_FILE classnames.txt "
                        "DATASET.CUSTOM.TEMPLATE a\\ \\{\\}\\ garment. DATASET.CUSTOM.NAME shop-v1")
    # the run folder defaults to the dataset folder's name, like DATASET.CUSTOM.NAME
    p = _dry(["scripts/promptsrc/train_teacher.sh", "custom", "1"], CUSTOM_ROOT=str(root))
    assert "output/teachers/base2new/shop/shots_16/PromptSRCTeacher/" in p.stdout
    # a dataset yaml of yours; DATA is its folder when CUSTOM_ROOT is unset
    yaml = tmp_path / "my_shop.yaml"
    yaml.write_text((REPO / "configs/datasets/custom.yaml").read_text())
    p = _dry(["scripts/coop/base2new_train.sh", str(yaml), "1"], DATA=str(root))
    assert p.returncode == 0, p.stderr
    assert f"--root {root} " in p.stdout and f"--dataset-config-file {yaml}" in p.stdout
    assert "/train_base/my_shop/shots_16/CoOp/" in p.stdout
    p = _dry(["scripts/coop/base2new_train.sh", "my_shop", "1"])
    assert p.returncode == 2 and "custom (your data; or the path of a dataset yaml)" in p.stderr


def test_two_custom_datasets_aggregate_separately(tmp_path):
    for name, acc in (("shop-a", 50.0), ("shop-b", 70.0)):
        d = tmp_path / name / "seed1"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({
            "trainer": "PromptKD", "dataset": name, "seed": 1, "protocol": "base2novel", "num_shots": 0,
            "base_acc": acc, "novel_acc": acc - 10, "hm": 0.0, "config": "configs/trainers/PromptKD/tiny_smoke.yaml",
            "metrics": {}}))
    p = subprocess.run([sys.executable, "tools/results.py", str(tmp_path), "--no-plot"], cwd=REPO, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert "| shop-a | PromptKD |" in p.stdout and "| shop-b | PromptKD |" in p.stdout
    assert "paper" not in p.stdout.split("\n", 1)[0].lower() and "Paper B / N / HM" not in p.stdout
    assert "Base-to-novel generalisation: shop-a, shop-b" in p.stdout
