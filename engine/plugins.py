"""User plug-ins: modules imported before the trainer is built, so that their registered trainers and
datasets run like the built-in ones, under either engine backend.

A plug-in is a Python file (``path/to/my_method.py``), a package directory (``path/to/pkg/`` holding
``__init__.py``) or an importable module name (``my_lab.prompts``). It is requested with
``train.py --plugin SPEC`` (repeatable) or with the environment variable ``PROMPTKD_PLUGINS``
(specs separated by ``:``; the environment's plug-ins load first). A plug-in registers its classes
the Dassl way, through the registries of the selected engine::

    from engine.api import TRAINER_REGISTRY, DATASET_REGISTRY

    @TRAINER_REGISTRY.register()
    class MyMethod(CoOp): ...

A plug-in module may define ``extend_cfg(cfg)`` to add its config node (``train.py`` calls it after
the built-in nodes are added, before the yaml files are merged).

Each plug-in is imported once per process (a second request is a no-op). While it is imported, a
registration under a name that is already taken (by the project or an earlier plug-in) raises
:class:`RegistryNameCollision`, naming the file that registered the name first; this replaces
Dassl's own duplicate-name ``KeyError``, which names neither file. A registration with
``force=True`` replaces the earlier object deliberately (logged as a warning).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

__all__ = ["ENV_VAR", "PluginError", "RegistryNameCollision", "LoadedPlugin", "plugin_specs", "load_plugins",
           "loaded_plugins", "describe_plugins"]

ENV_VAR = "PROMPTKD_PLUGINS"
_MODULE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# registries of engine.api that plug-ins register into
_REGISTRY_NAMES = ("TRAINER_REGISTRY", "DATASET_REGISTRY", "EVALUATOR_REGISTRY")


class PluginError(ImportError):
    """A requested plug-in cannot be found or fails while it is imported."""


class RegistryNameCollision(PluginError):
    """A plug-in registers a name that the project or an earlier plug-in registered first."""


@dataclass
class LoadedPlugin:
    """One imported plug-in: what was asked for, where it came from and what it registered."""

    spec: str
    source: str  # "--plugin" or the environment variable
    module: ModuleType
    location: str  # file or package directory, or the module name
    registered: Dict[str, List[str]] = field(default_factory=dict)  # registry name -> new names


# key (absolute path or module name) -> the plug-in imported for it, in load order
_LOADED: Dict[str, LoadedPlugin] = {}


def plugin_specs(cli_specs: Optional[Sequence[str]] = None,
                 environ: Optional[Dict[str, str]] = None) -> List[Tuple[str, str]]:
    """The requested plug-ins as ``(spec, source)``: ``PROMPTKD_PLUGINS`` entries first, then ``--plugin``."""
    env = os.environ if environ is None else environ
    from_env = [(part.strip(), ENV_VAR) for part in (env.get(ENV_VAR) or "").split(":") if part.strip()]
    return from_env + [(str(spec).strip(), "--plugin") for spec in cli_specs or () if str(spec).strip()]


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec or os.path.exists(spec)


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it (readable messages)."""
    path = os.path.abspath(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def _origin_of(obj: Any) -> str:
    """The file that defines ``obj`` (where its registration ran), or its module name."""
    try:
        return _display_path(inspect.getsourcefile(obj) or inspect.getfile(obj))
    except (TypeError, OSError):  # a built-in, or defined without a file
        return f"module {getattr(obj, '__module__', '?')}"


def _describe_obj(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}"


def _registries() -> Dict[str, Any]:
    from engine import api  # the selected backend's registries

    return {name: getattr(api, name) for name in _REGISTRY_NAMES}


@contextlib.contextmanager
def _collision_guard(registries: Dict[str, Any], plugin: str) -> Iterator[None]:
    """While a plug-in is imported, check every registration against the names already taken.

    Both the built-in ``Registry`` and Dassl's route every registration through the instance method
    ``_do_register(name, obj, force=False)`` and keep ``_obj_map``; the check shadows that method on the
    instance for the duration of the import (the registry classes are not modified).
    """
    for reg_name, registry in registries.items():
        original, obj_map = registry._do_register, registry._obj_map

        def checked(name: str, obj: Any, force: bool = False, *, _original=original, _map=obj_map,
                    _reg_name=reg_name) -> Any:
            existing = _map.get(name)
            if existing is not None and existing is not obj:
                if not force:
                    raise RegistryNameCollision(
                        f"plug-in {plugin}: {_reg_name} already has a '{name}', registered first by "
                        f"{_origin_of(existing)} ({_describe_obj(existing)}); the plug-in's {_describe_obj(obj)} "
                        f"cannot take the same name. Rename the plug-in's class (names must be unique across "
                        f"the project and all plug-ins)"
                    )
                logger.warning("plug-in %s replaces %s '%s' of %s (force=True)", plugin, _reg_name, name,
                               _origin_of(existing))
            return _original(name, obj, force=force)

        registry._do_register = checked  # instance attribute, removed below
    try:
        yield
    finally:
        for registry in registries.values():
            with contextlib.suppress(AttributeError):
                del registry._do_register


def _module_name_for(path: str) -> str:
    stem = os.path.basename(os.path.normpath(path))
    stem = stem[:-3] if stem.endswith(".py") else stem
    safe = re.sub(r"\W", "_", stem) or "plugin"
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]
    return f"promptkd_plugin_{safe}_{digest}"


def _import_path(spec: str, source: str) -> Tuple[str, ModuleType, str]:
    path = os.path.abspath(os.path.expanduser(spec))
    if os.path.isdir(path):
        init = os.path.join(path, "__init__.py")
        if not os.path.isfile(init):
            raise PluginError(f"plug-in {spec!r} (from {source}) is a directory without __init__.py; give a .py "
                              "file, a package directory or an importable module name")
        file, search = init, [path]
    elif os.path.isfile(path):
        file, search = path, None
    else:
        raise PluginError(f"plug-in {spec!r} (from {source}) does not exist (looked for {path}); give the path of "
                          "a .py file or package directory, or an importable module name")
    if path in _LOADED:
        return path, _LOADED[path].module, _LOADED[path].location
    name = _module_name_for(path)
    module_spec = importlib.util.spec_from_file_location(name, file, submodule_search_locations=search)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"plug-in {spec!r} (from {source}): {file} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before executing: dataclasses, pickling and relative imports look it up
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return path, module, _display_path(path)


def _import_module(spec: str, source: str) -> Tuple[str, ModuleType, str]:
    if not _MODULE_NAME_RE.match(spec):
        raise PluginError(f"plug-in {spec!r} (from {source}) is neither an existing file or directory nor a "
                          "module name")
    if spec in _LOADED:
        return spec, _LOADED[spec].module, _LOADED[spec].location
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise PluginError(f"plug-in module {spec!r} (from {source}) is not importable ({exc}); install it, "
                              "add its folder to PYTHONPATH, or give the path of its .py file") from exc
        raise
    return spec, module, getattr(module, "__file__", None) and _display_path(module.__file__) or spec


def load_plugins(specs: Sequence[Tuple[str, str]]) -> List[ModuleType]:
    """Import the plug-ins ``specs`` (``(spec, source)`` pairs from :func:`plugin_specs`), in order.

    Call it after the project's own ``datasets`` and ``trainers`` packages are imported, so a plug-in
    that reuses one of their names is the one reported. Returns the plug-in modules (already imported
    ones included, each once). Errors: :class:`PluginError` (not found, fails to import) and
    :class:`RegistryNameCollision`.
    """
    modules: List[ModuleType] = []
    for spec, source in specs:
        registries = _registries()
        before = {name: set(reg._obj_map) for name, reg in registries.items()}
        label = _display_path(spec) if _is_path(spec) else spec
        with _collision_guard(registries, label):
            try:
                key, module, location = (_import_path if _is_path(spec) else _import_module)(spec, source)
            except Exception as exc:
                _rollback(registries, before)
                if isinstance(exc, PluginError):  # not found, a name collision: already a named error
                    raise
                raise PluginError(f"plug-in {label} (from {source}) failed while it was imported: "
                                  f"{exc.__class__.__name__}: {exc}") from exc
        if key not in _LOADED:
            added = {name: sorted(set(reg._obj_map) - before[name]) for name, reg in registries.items()}
            _LOADED[key] = LoadedPlugin(spec=spec, source=source, module=module, location=location,
                                        registered={k: v for k, v in added.items() if v})
            logger.info("Plug-in %s", _describe(_LOADED[key]))
        if module not in modules:
            modules.append(module)
    return modules


def _rollback(registries: Dict[str, Any], before: Dict[str, set]) -> None:
    """Undo the registrations of a plug-in that failed half-way (the process may go on, e.g. in tests)."""
    for name, registry in registries.items():
        for added in set(registry._obj_map) - before[name]:
            registry._obj_map.pop(added, None)


def _describe(plugin: LoadedPlugin) -> str:
    what = "; ".join(f"{reg.split('_')[0].lower()}: {', '.join(names)}" for reg, names in plugin.registered.items())
    return f"{plugin.location} (from {plugin.source}{'; ' + what if what else '; registered nothing'})"


def loaded_plugins() -> List[LoadedPlugin]:
    """Every plug-in imported in this process, in load order."""
    return list(_LOADED.values())


def describe_plugins(modules: Optional[Sequence[ModuleType]] = None) -> str:
    """One log line naming the plug-ins (``modules``: those of this run; default: all loaded)."""
    plugins = [p for p in _LOADED.values() if modules is None or p.module in modules]
    return "Plug-ins: " + (" | ".join(_describe(p) for p in plugins) or "none")
