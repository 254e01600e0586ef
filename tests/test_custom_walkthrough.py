"""Your own data, end to end: the walkthrough of DATASETS.md ("Your data, end to end") run verbatim on a
small real-image custom dataset (Fashion-MNIST-like grayscale PNGs written from an image array), in CSV
mode and in folder mode, with the tiny models: check -> zero-shot -> teacher -> student -> export ->
predict -> results. Then: the teacher image tower of the student run is the teacher run's (tensors
compared), the custom template and name reach the runs, and the checker reports broken data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.garments import GARMENTS, make_garment_csv_root, make_garment_folder_root

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "a photo of a {}, a type of garment."


def walkthrough_block() -> str:
    text = (REPO / "DATASETS.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- custom-walkthrough:begin -->\n```bash\n(.*?)```\n<!-- custom-walkthrough:end -->", text, re.S)
    assert m, "DATASETS.md lost its marked custom walkthrough block"
    return m.group(1)


def run_walkthrough(tmp_path: Path, root: str, name: str, extra_env: dict) -> tuple[Path, str]:
    out = tmp_path / f"out_{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOM_")}
    env.update(CUSTOM_ROOT=root, CUSTOM_NAME=name, OUTPUT_ROOT=str(out), CUSTOM_TEMPLATE=TEMPLATE,
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO), **extra_env)
    proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + walkthrough_block()], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def _cfg_of(run_dir: Path):
    import train
    from engine import api
    from engine.config import add_engine_extras

    cfg = api.get_cfg_default()
    add_engine_extras(cfg)
    train.extend_cfg(cfg)
    cfg.merge_from_file(str(run_dir / "config.yaml"))
    return cfg


def teacher_towers(teacher_dir: Path, student_dir: Path):
    """(teacher run's image tower + prompts, the student run's teacher image encoder), each rebuilt from its
    run's config under a different global seed, as two separate processes would."""
    from engine import api
    from trainers.common.teacher import TeacherImageEncoder, build_teacher

    torch.manual_seed(11)
    tcfg = _cfg_of(teacher_dir)
    trainer = api.build_trainer(tcfg)
    trainer.load_model(str(teacher_dir))
    mine = TeacherImageEncoder(trainer.model.backbone.visual, trainer.model.image_prompts).state_dict()
    torch.manual_seed(22)
    student_side = build_teacher(_cfg_of(student_dir), "cpu").image_encoder().state_dict()
    return mine, student_side


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["csv", "folder"])
def test_custom_walkthrough_end_to_end(tmp_path, mode, run_hygiene, one_thread):
    root = str(tmp_path / f"garments_{mode}")
    if mode == "csv":
        make_garment_csv_root(root)
        extra = {"CUSTOM_CSV": "data.csv", "CUSTOM_CLASSNAMES": "classnames.txt"}
    else:
        make_garment_folder_root(root)
        extra = {}
    name = f"garments-{mode}"
    out, stdout = run_walkthrough(tmp_path, root, name, extra)

    # 1. the checker saw the six classes, split 3 base / 3 novel
    assert "All checked datasets are OK." in stdout and "base classes (3)" in stdout
    # 2-4. three runs, all named by DATASET.CUSTOM.NAME
    zs = out / "base2new" / "zeroshot" / name / "ZeroshotCLIP" / "tiny_smoke" / "seed1"
    teacher = out / "teachers" / "base2new" / name / "shots_16" / "PromptSRCTeacher" / "tiny_smoke_teacher" / "seed1"
    student = out / "base2new" / "train_base" / name / "shots_0" / "PromptKD" / "tiny_smoke" / "seed_1"
    results = {k: json.loads((d / "results.json").read_text()) for k, d in
               (("zs", zs), ("teacher", teacher), ("student", student))}
    for res in results.values():
        assert res["dataset"] == name and {"base_acc", "novel_acc", "hm"} <= set(res)
    assert f"Zero-shot templates: [{TEMPLATE!r}]" in (zs / "log.txt").read_text()
    log = (student / "log.txt").read_text()
    folders = sorted(g.replace(" ", "_") for g in GARMENTS[:6])
    names = GARMENTS[:6] if mode == "csv" else [f.replace("_", " ") for f in folders]
    assert f"classes (base) 3: {', '.join(names[:3])}" in log and f"classes (novel) 3: {', '.join(names[3:])}" in log
    assert "Building tiny CLIP 'tiny-vit-teacher' with random weights from the fixed seed of its name" in log
    # the teacher image tower of the student run is the teacher run's: same tensors, key by key
    mine, student_side = teacher_towers(teacher, student)
    assert set(mine) == set(student_side) and any(k.startswith("image_prompts") for k in mine)
    for key in mine:
        assert torch.equal(mine[key], student_side[key]), key
    # 5-6. export + predict: top-3 over the 6 garment classes for three images
    assert (out / "student.pt").is_file()
    predicted = re.findall(r"^  (\d)\. (.+?)  (0\.\d{4})$", stdout, re.M)
    assert len(predicted) == 9 and {c for _, c, _ in predicted} <= set(names)
    # 7. results: one table row per method, under this dataset's name
    table = json.loads((out / "tables" / "results_base2novel.json").read_text())
    text = json.dumps(table)
    assert text.count(f'"{name}"') >= 3 and (out / "tables" / "hm_base2novel.png").is_file()
