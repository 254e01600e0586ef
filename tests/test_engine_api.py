"""engine.api facade: builtin by default; the errors of PROMPTKD_ENGINE when Dassl is missing or broken.

The Dassl backend itself is tested on the real Dassl.pytorch in tests/test_dassl_backend.py (marker ``dassl``)."""

import importlib
import sys

import pytest

import engine.api


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


class _NoDassl:
    """Import hook: ``dassl`` cannot be found."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "dassl" or name.startswith("dassl."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_invalid_value_and_missing_dassl(tmp_path, engine_env, monkeypatch):
    with pytest.raises(ValueError, match=r"PROMPTKD_ENGINE='detectron'.*\['builtin', 'dassl'\]"):
        engine_env("detectron")
    monkeypatch.setattr(sys, "meta_path", [_NoDassl()] + sys.meta_path)  # even where a real Dassl is installed
    with pytest.raises(ImportError, match=r"`dassl` package is not importable.*pip install --no-build-isolation -e \..*wilds"):
        engine_env("dassl")


def test_dassl_whose_import_fails_inside_explains(tmp_path, engine_env, monkeypatch):
    # a package named dassl whose dassl.config import fails on a missing dependency (as upstream Dassl does
    # without `wilds`): the error names the module, the missing package and the install route
    _write_fake(tmp_path, {"dassl/__init__.py": "", "dassl/config/__init__.py": "import wilds_missing_for_test\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"importing dassl\.config failed.*wilds_missing_for_test.*`wilds`"):
        engine_env("dassl")
