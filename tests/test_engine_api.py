"""engine.api facade: builtin by default, an installed (here: fake) Dassl with PROMPTKD_ENGINE=dassl."""

import importlib
import sys
import textwrap

import pytest

import engine.api

# The fake Dassl re-exports engine objects, except a few distinct ones so we can tell whose
# objects the facade picked up.
FAKE_DASSL = {
    "dassl/__init__.py": '__version__ = "0.6.3-fake"\n',
    "dassl/config/__init__.py": "from engine.config import get_cfg_default\n",
    "dassl/engine/__init__.py": textwrap.dedent("""
        from engine.registry import Registry
        from engine.trainer import build_trainer, TrainerBase, SimpleTrainer, TrainerX, TrainerXU, SimpleNet
        TRAINER_REGISTRY = Registry("FAKE_DASSL_TRAINER")
        class TrainerX(TrainerX):
            pass
        """),
    "dassl/data/__init__.py": "from .data_manager import DataManager, DatasetWrapper\n",
    "dassl/data/data_manager.py": "from engine.data.data_manager import DataManager, DatasetWrapper, build_data_loader\n",
    "dassl/data/datasets/__init__.py": textwrap.dedent("""
        from engine.registry import Registry
        from engine.data.datasets import build_dataset, Datum, DatasetBase
        DATASET_REGISTRY = Registry("FAKE_DASSL_DATASET")
        """),
    "dassl/data/transforms/__init__.py": "from engine.data.transforms import build_transform, INTERPOLATION_MODES\n",
    "dassl/optim/__init__.py": "from engine.optim import build_optimizer, build_lr_scheduler\n",
    "dassl/evaluation/__init__.py": "from engine.evaluation import EVALUATOR_REGISTRY, build_evaluator, EvaluatorBase, Classification\n",
    "dassl/metrics/__init__.py": "from engine.evaluation import compute_accuracy\n",
    "dassl/utils/__init__.py": textwrap.dedent("""
        from engine.utils import *
        from engine.utils import tolist_if_not
        from engine.checkpoint import load_pretrained_weights, load_checkpoint, save_checkpoint, resume_from_checkpoint
        from engine.registry import Registry
        def setup_logger(output=None):
            return "fake dassl logger"
        """),
}


def _write_fake(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def engine_env(monkeypatch):
    """Yield a function that reloads engine.api under a PROMPTKD_ENGINE value; restore afterwards."""

    def drop_dassl_modules():
        for name in [m for m in sys.modules if m == "dassl" or m.startswith("dassl.")]:
            del sys.modules[name]

    def reload_with(value):
        drop_dassl_modules()
        if value is None:
            monkeypatch.delenv("PROMPTKD_ENGINE", raising=False)
        else:
            monkeypatch.setenv("PROMPTKD_ENGINE", value)
        return importlib.reload(engine.api)

    yield reload_with
    monkeypatch.undo()
    drop_dassl_modules()
    importlib.reload(engine.api)
    assert engine.api.ENGINE_NAME == "builtin"


def test_builtin_is_default(engine_env):
    api = engine_env(None)
    from engine.trainer import TRAINER_REGISTRY, TrainerX

    assert api.ENGINE_NAME == "builtin"
    assert api.TrainerX is TrainerX and api.TRAINER_REGISTRY is TRAINER_REGISTRY
    assert "builtin" in api.describe_engine()
    for name in api.__all__:
        assert hasattr(api, name), name


def test_dassl_backend_exports_dassl_objects(tmp_path, engine_env, monkeypatch):
    _write_fake(tmp_path, FAKE_DASSL)
    monkeypatch.syspath_prepend(str(tmp_path))
    api = engine_env("dassl")
    assert api.ENGINE_NAME == "dassl"
    assert "dassl" in api.describe_engine() and "0.6.3-fake" in api.describe_engine()
    for name, (_builtin_mod, dassl_mod) in api._SOURCES.items():
        assert getattr(api, name) is getattr(importlib.import_module(dassl_mod), name), name
    assert api.TRAINER_REGISTRY.name == "FAKE_DASSL_TRAINER"
    assert api.DATASET_REGISTRY.name == "FAKE_DASSL_DATASET"
    assert api.setup_logger() == "fake dassl logger"
    # our own helpers stay engine's with either backend
    from engine.fileio import atomic_torch_save

    assert api.atomic_torch_save is atomic_torch_save


def test_invalid_value_and_missing_dassl(tmp_path, engine_env, monkeypatch):
    with pytest.raises(ValueError, match=r"PROMPTKD_ENGINE='detectron'.*\['builtin', 'dassl'\]"):
        engine_env("detectron")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "dassl" not in p.lower()])
    with pytest.raises(ImportError, match=r"`dassl` package is not importable.*python setup\.py develop.*wilds"):
        engine_env("dassl")


def test_dassl_without_wilds_explains(tmp_path, engine_env, monkeypatch):
    files = dict(FAKE_DASSL)
    files["dassl/data/__init__.py"] = "import wilds_missing_for_test\n" + files["dassl/data/__init__.py"]
    _write_fake(tmp_path, files)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"importing dassl\.data[.a-z]* failed.*wilds_missing_for_test.*`wilds`"):
        engine_env("dassl")
