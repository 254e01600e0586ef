"""Convert a checkpoint that ``weights_only`` loading refuses into one it accepts, without running its code.

    python tools/convert_checkpoint.py released/model-best.pth.tar converted/model-best.pth.tar

Released PromptSRC / PromptKD / MaPLe checkpoints written by Dassl can hold pickled Python objects
next to their tensors (e.g. the warm-up scheduler's ``successor``: a ``CosineAnnealingLR`` holding an
``SGD`` optimiser). This project reads every torch file with ``weights_only=True`` only, so such a
file is refused (``UnsafeCheckpointError``) and this tool converts it once.

What it trusts: exactly torch's ``weights_only`` allow-list (tensor/storage rebuild functions,
``OrderedDict``, dtypes, ...). Every other object the file names is NOT imported and NOT called: it is
replaced by an inert placeholder, and the tool prints its name. The output keeps ``state_dict``
(which must then be tensors only), ``epoch``, ``val_result`` and ``meta`` when they are plain values,
and drops ``optimizer`` / ``scheduler`` entries that held such objects (a teacher or an evaluation
never needs them; resuming the released run's optimiser is not supported). The result is written
atomically and loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import argparse
import os.path as osp
import pickle
import sys
import types
from typing import Any, Dict, List, Optional, Set

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402

__all__ = ["convert_checkpoint", "build_parser", "main"]


class _Dropped:
    """Stands for an object the file names but that is not trusted: records nothing, runs nothing."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<dropped {self.qualname}>"


def _restricted_pickle_module(allowed: Dict[str, Any], dropped: Set[str]) -> types.ModuleType:
    """A ``pickle`` look-alike whose Unpickler resolves only torch's weights_only allow-list."""

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            key = f"{module}.{name}"
            if key in allowed:
                return allowed[key]
            dropped.add(key)
            return type("Dropped", (_Dropped,), {"qualname": key})

    def load(file: Any, **kwargs: Any) -> Any:  # torch's legacy (pre-zip) reader calls pickle_module.load directly
        return RestrictedUnpickler(file, **kwargs).load()

    mod = types.ModuleType("restricted_pickle")
    mod.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    mod.load = load  # type: ignore[attr-defined]
    mod.__name__ = "pickle"
    return mod


def _allowed_globals() -> Dict[str, Any]:
    from torch import _weights_only_unpickler as wou

    allowed = dict(wou._get_allowed_globals())
    allowed.update(wou._get_user_allowed_globals())
    return allowed


def _has_dropped(obj: Any) -> bool:
    if isinstance(obj, _Dropped):
        return True
    if isinstance(obj, dict):
        return any(_has_dropped(k) or _has_dropped(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return any(_has_dropped(v) for v in obj)
    return False


def convert_checkpoint(src: str, dst: str) -> Dict[str, Any]:
    """Read ``src`` trusting only torch's weights_only allow-list, write the safe part to ``dst``.

    Returns ``{"dropped_objects": [...], "dropped_keys": [...], "kept_keys": [...]}``.
    """
    from engine.fileio import atomic_torch_save

    if not osp.isfile(src):
        raise FileNotFoundError(f"checkpoint not found: {src}")
    dropped: Set[str] = set()
    module = _restricted_pickle_module(_allowed_globals(), dropped)
    # weights_only is off here only so that torch uses `module`: its Unpickler and load (every pickle torch reads, in
    # the zip and the legacy format) resolve torch's weights_only allow-list and replace every other global by an
    # inert placeholder (nothing from the file is imported or called)
    try:
        obj = torch.load(src, map_location="cpu", weights_only=False, pickle_module=module)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"{src} is not a torch checkpoint this tool can read ({exc}); nothing was converted") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{src}: expected a checkpoint dict, got {type(obj).__name__}")
    state = obj.get("state_dict", obj if all(isinstance(v, torch.Tensor) for v in obj.values()) else None)
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{src}: no state_dict of tensors found (keys {sorted(map(str, obj))})")
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"{src}: state_dict entries that are not tensors: {bad[:10]}; not converted")
    out: Dict[str, Any] = {"state_dict": dict(state)}
    dropped_keys: List[str] = []
    for key, value in obj.items():
        if key == "state_dict" or value is state:
            continue
        if _has_dropped(value):
            dropped_keys.append(str(key))
            if key in ("optimizer", "scheduler"):
                out[key] = None
        else:
            out[key] = value
    out.setdefault("epoch", obj.get("epoch"))
    atomic_torch_save(out, dst)
    torch.load(dst, map_location="cpu", weights_only=True)  # the point of the conversion
    return {"dropped_objects": sorted(dropped), "dropped_keys": dropped_keys, "kept_keys": sorted(map(str, out))}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="checkpoint to convert (never executed)")
    p.add_argument("dst", help="output file (loads with weights_only=True)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if osp.abspath(args.src) == osp.abspath(args.dst):
        raise SystemExit("error: write the converted file to another path (the original stays as it is)")
    report = convert_checkpoint(args.src, args.dst)
    print("Trusted: torch's weights_only allow-list only (tensors, storages, OrderedDict, dtypes); nothing else was "
          "imported or called.")
    print(f"Objects not loaded (replaced by placeholders): {report['dropped_objects'] or 'none'}")
    print(f"Entries dropped: {report['dropped_keys'] or 'none'}; kept: {report['kept_keys']}")
    print(f"Wrote {args.dst}")
    return 0


if __name__ == "__main__":
    from engine.cli_errors import run_cli

    sys.exit(run_cli(main, "convert_checkpoint"))
