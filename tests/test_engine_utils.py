"""engine.utils / engine.fileio: logging, seeding, env info, files, meters."""

import json
import logging
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

from engine import utils
from engine.fileio import atomic_write_json
from engine.utils import AverageMeter, MetricMeter


@pytest.fixture
def clean_logger():
    yield
    utils.close_logger()


def test_setup_logger_writes_plain_lines_and_never_overwrites(tmp_path, clean_logger):
    path = utils.setup_logger(str(tmp_path))
    assert path == str(tmp_path / "log.txt")
    log = logging.getLogger("engine.test")
    log.info("* accuracy: 12.5%")
    log.warning("careful")
    text = (tmp_path / "log.txt").read_text().splitlines()
    assert text == ["* accuracy: 12.5%", "WARNING: careful"]  # INFO lines carry no prefix (parse_test_res)
    second = utils.setup_logger(str(tmp_path))
    assert os.path.basename(second).startswith("log.txt-") and second != path
    log.info("second run")
    assert "second run" not in (tmp_path / "log.txt").read_text()
    root_tagged = [h for h in logging.getLogger().handlers if getattr(h, "_promptkd_engine_handler", False)]
    assert len(root_tagged) == 2  # console + one file handler; the first call's handlers were replaced
    assert utils.setup_logger(str(tmp_path / "custom.log")) == str(tmp_path / "custom.log")


def test_setup_logger_non_main_rank_writes_no_file(tmp_path, clean_logger):
    assert utils.setup_logger(str(tmp_path), rank=1) is None
    assert not (tmp_path / "log.txt").exists()


def test_set_random_seed_reproduces_all_rngs():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    utils.set_random_seed(3)
    a = draw()
    utils.set_random_seed(3)
    assert draw() == a
    with pytest.raises(ValueError, match="non-negative"):
        utils.set_random_seed(-1)


def test_set_random_seed_deterministic_flags(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    try:
        utils.set_random_seed(1, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(prev[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[1], prev[2]


def test_collect_env_info_survives_a_failing_probe(monkeypatch):
    import torch.utils.collect_env as ce

    def boom():
        raise OSError("offline")

    monkeypatch.setattr(ce, "get_pretty_env_info", boom)
    utils.collect_env_info.cache_clear()
    try:
        info = utils.collect_env_info()
    finally:
        utils.collect_env_info.cache_clear()
    assert "collect_env failed" in info and "offline" in info
    assert "Pillow version:" in info and "open_clip version:" in info and torch.__version__ in info


def test_file_helpers(tmp_path):
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("x")
    assert utils.listdir_nohidden(str(tmp_path), sort=True) == ["a.txt", "b"]
    with pytest.raises(FileNotFoundError, match="nope"):
        utils.listdir_nohidden(str(tmp_path / "nope"))

    utils.write_json({"k": [1, 2]}, str(tmp_path / "sub" / "x.json"))
    assert utils.read_json(str(tmp_path / "sub" / "x.json")) == {"k": [1, 2]}
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="bad.json"):
        utils.read_json(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        utils.read_json(str(tmp_path / "missing.json"))

    # a failing serialisation leaves the previous file untouched
    atomic_write_json(str(tmp_path / "r.json"), {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(str(tmp_path / "r.json"), {"bad": object()})
    assert json.loads((tmp_path / "r.json").read_text()) == {"ok": 1}
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]

    Image.new("L", (4, 4), 128).save(tmp_path / "g.png")
    assert utils.read_image(str(tmp_path / "g.png")).mode == "RGB"
    with pytest.raises(FileNotFoundError, match="none.png"):
        utils.read_image(str(tmp_path / "none.png"))
    assert utils.check_isfile(str(tmp_path / "g.png")) and not utils.check_isfile(str(tmp_path / "none.png"))
    assert utils.tolist_if_not("a") == ["a"] and utils.tolist_if_not(["a"]) == ["a"]
    assert utils.count_num_param(torch.nn.Linear(3, 2)) == 8


def test_meters():
    m = AverageMeter()
    m.update(2.0, n=2)
    m.update(torch.tensor(5.0))
    assert (m.val, m.sum, m.count) == (5.0, 9.0, 3) and m.avg == pytest.approx(3.0)
    mm = MetricMeter()
    mm.update({"loss": 1.0, "acc": 50.0})
    mm.update({"loss": torch.tensor(3.0), "acc": 100.0})
    assert str(mm) == "loss 3.0000 (2.0000) acc 100.0000 (75.0000)"
    with pytest.raises(TypeError, match="dict"):
        mm.update(1.0)
