"""The package rules of docs/ARCHITECTURE.md ("Packages" table and the RunRecord contract), checked on the source.

Every ``.py`` file of a package is parsed with ``ast``; every ``import`` and ``from ... import`` counts,
including imports inside functions and relative imports (resolved to absolute module names). A rule names
the files it governs and the project modules they must not import. An import that breaks a rule today and
that the lead has not yet removed is listed in ``ALLOWED`` with the reason; an entry that no longer matches
an import fails the test too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The repository's own top-level modules and packages (anything else is the standard library or a dependency).
PROJECT = {"engine", "clip", "datasets", "trainers", "stage3", "tools", "proving_ground", "train", "examples"}


def module_name(path: Path) -> str:
    """``trainers/common/base.py`` -> ``trainers.common.base``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) for every import in the file; ``from a import b`` yields ``a.b`` as well as
    ``a`` (``b`` may be a submodule), relative imports are resolved against the file's package."""
    mod = module_name(path)
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package[: len(package) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if node.module:
                yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@dataclass(frozen=True)
class Rule:
    """Files under ``source`` (a folder or one ``.py`` file) must not import a project module under ``forbidden``;
    with ``only`` set, the project modules they may import are those under ``only`` (plus ``source`` itself)."""

    name: str
    source: str
    forbidden: Tuple[str, ...] = ()
    only: Optional[Tuple[str, ...]] = None  # project modules it may import besides its own ``source``
    stdlib_only: bool = False  # besides ``only``: no third-party import at all

    def files(self) -> List[Path]:
        p = ROOT / self.source
        return [p] if p.is_file() else sorted(p.rglob("*.py"))

    def broken_by(self, name: str) -> bool:
        top = name.split(".")[0]
        if top not in PROJECT:
            return self.stdlib_only and top not in sys.stdlib_module_names and top != "__future__"
        own = self.source.replace("/", ".").removesuffix(".py")
        if within(name, own):
            return False
        if any(within(name, f) for f in self.forbidden):
            return True
        # ``from engine import api`` also yields ``engine``: a parent of an allowed module is allowed.
        return self.only is not None and not any(within(name, o) or within(o, name) for o in self.only)


RULES = [
    # engine/ "may import: torch, torchvision, yacs, tensorboard, tqdm": none of the project's other packages.
    Rule("engine", "engine", forbidden=("trainers", "clip", "datasets", "stage3", "tools", "proving_ground", "train")),
    # clip/ "may import: open_clip, torch".
    Rule("clip", "clip", forbidden=("engine", "trainers", "datasets", "stage3", "tools", "proving_ground", "train")),
    # datasets/ "may import: engine.api" (Dassl names only from engine.api).
    Rule("datasets", "datasets", only=("engine.api",)),
    # trainers/ "may import: engine.api, clip, datasets.protocol / datasets.config / datasets.templates" (engine's
    # own non-Dassl modules are not policed here).
    Rule("trainers", "trainers", only=("engine", "clip", "datasets.protocol", "datasets.config", "datasets.templates")),
    # "Common code imports no specific trainer" (issue rule, ARCHITECTURE: shared pieces live in trainers/common/):
    # of trainers/, trainers/common/ imports only trainers.common.*.
    Rule("trainers.common", "trainers/common", only=("engine", "clip", "datasets")),
    # stage3/ "may import: clip, engine.config / engine.utils / engine.data.transforms / engine.safe_load".
    Rule("stage3", "stage3", only=("clip", "engine.config", "engine.utils", "engine.data.transforms",
                                   "engine.safe_load")),
    # tools.results_lib "may import: engine.run_record, engine.fileio, pandas, matplotlib".
    Rule("tools.results_lib", "tools/results_lib", only=("engine.run_record", "engine.fileio")),
    # engine/run_record.py "imports only the standard library and engine.fileio".
    Rule("engine.run_record", "engine/run_record.py", only=("engine.fileio",), stdlib_only=True),
]

# (rule, file, imported module) -> why it is still there (a known exception to remove, not a rule).
ALLOWED: Dict[Tuple[str, str, str], str] = {}


def violations(rule: Rule) -> Set[Tuple[str, int, str]]:
    found = set()
    for path in rule.files():
        for line, name in imports_of(path):
            if rule.broken_by(name):
                found.add((str(path.relative_to(ROOT)), line, name))
    return found


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_package_import_rules(rule):
    assert rule.files(), f"rule {rule.name}: no file under {rule.source}"
    found = violations(rule)
    new = sorted(v for v in found if (rule.name, v[0], v[2]) not in ALLOWED)
    assert not new, f"{rule.name} imports what docs/ARCHITECTURE.md forbids:\n" + "\n".join(
        f"  {f}:{line} imports {name}" for f, line, name in new)
    stale = sorted(k for k in ALLOWED if k[0] == rule.name and not any((f, n) == k[1:] for f, _, n in found))
    assert not stale, f"ALLOWED entries that no longer match an import (remove them): {stale}"


def test_import_scanner_sees_every_kind_of_import(tmp_path, monkeypatch):
    """The scanner reads plain, from-, relative and function-local imports (else the rules above check nothing)."""
    pkg = tmp_path / "trainers" / "common"
    pkg.mkdir(parents=True)
    (tmp_path / "trainers" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import kd\n")
    f = pkg / "bad.py"
    f.write_text("import os\nfrom engine.api import TrainerX\n\ndef g():\n    from ..coop import CoOp\n"
                 "    import trainers.promptkd as p\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert set(imports_of(f)) == {(1, "os"), (2, "engine.api"), (2, "engine.api.TrainerX"), (5, "trainers.coop"),
                                  (5, "trainers.coop.CoOp"), (6, "trainers.promptkd")}
    assert set(imports_of(pkg / "__init__.py")) == {(1, "trainers.common.kd")}
    rule = next(r for r in RULES if r.name == "trainers.common")
    assert {name for _, _, name in violations(rule)} == {"trainers.coop", "trainers.coop.CoOp", "trainers.promptkd"}


def trainer_depth(cls: type) -> int:
    """Classes from the engine's ``TrainerBase`` to ``cls``, both inclusive: the distinct subclasses of TrainerBase
    in its MRO (an alias such as ``SimpleTrainer = TrainerX`` is one class, so it is not a level)."""
    from engine.trainer import TrainerBase

    return sum(1 for c in cls.__mro__ if issubclass(c, TrainerBase))


def test_every_registered_trainer_is_at_most_five_classes_from_the_engine_base():
    """docs/ARCHITECTURE.md "Trainers": a reader opens at most 5 classes from the engine's base to any trainer
    (TrainerBase -> TrainerX -> PromptTrainer -> method -> variant), the KgCoOp plug-in included."""
    import engine.trainer
    import trainers  # noqa: F401  (registers the built-in trainers)
    from engine.api import TRAINER_REGISTRY
    from engine.plugins import load_plugins

    load_plugins([(str(ROOT / "examples" / "plugins" / "kgcoop.py"), "test")])
    depths = {name: trainer_depth(TRAINER_REGISTRY.get(name)) for name in TRAINER_REGISTRY.registered_names()}
    expected = {"CoOp", "CoCoOp", "ZeroshotCLIP", "ZeroshotCLIP2", "IVLP", "MaPLe", "PromptSRC", "PromptSRCTeacher",
                "PromptKDStudent", "PromptKD", "KgCoOp"}
    assert expected <= set(depths), f"trainers missing from the registry: {sorted(expected - set(depths))}"
    assert engine.trainer.SimpleTrainer is engine.trainer.TrainerX  # Dassl's name for the engine's one loop class
    too_deep = {n: d for n, d in depths.items() if d > 5}
    assert not too_deep, f"trainers more than 5 classes from the engine's TrainerBase: {too_deep}"
