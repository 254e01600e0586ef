"""Name -> object registries (Dassl ``dassl.utils.registry.Registry`` semantics).

Objects register under their ``__name__`` (or an explicit ``name=``). A duplicate name is an error
unless ``force=True``. Looking up an unknown name raises ``KeyError`` listing every registered name
and the closest match, so a typo in ``TRAINER.NAME`` / ``DATASET.NAME`` is obvious.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

__all__ = ["Registry"]


class Registry:
    """A registry mapping names to classes or functions.

    Usage::

        TRAINER_REGISTRY = Registry("TRAINER")

        @TRAINER_REGISTRY.register()
        class CoOp(TrainerX): ...

        TRAINER_REGISTRY.register(MyTrainer)               # plain call
        TRAINER_REGISTRY.register(name="Alias")(MyTrainer)   # alias
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    def _do_register(self, name: str, obj: Any, force: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self._name} registry: a registered name must be a non-empty string, got {name!r}")
        if name in self._obj_map and not force and self._obj_map[name] is not obj:
            raise KeyError(
                f"An object named '{name}' was already registered in the '{self._name}' registry "
                f"(existing: {self._obj_map[name]!r}). Use a different name or register(..., force=True)."
            )
        self._obj_map[name] = obj

    def register(self, obj: Any = None, force: bool = False, name: Optional[str] = None) -> Any:
        """Register ``obj`` (call form) or return a decorator (``@REG.register()``).

        Re-registering the very same object under the same name is a no-op (module reloads).
        """
        def wrapper(fn_or_class: Any) -> Any:
            self._do_register(name or fn_or_class.__name__, fn_or_class, force=force)
            return fn_or_class

        return wrapper if obj is None else wrapper(obj)

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; unknown names raise a helpful ``KeyError``."""
        if name not in self._obj_map:
            registered = self.registered_names()
            lowered = {c.lower(): c for c in registered}  # the closest name, case-insensitively
            close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.4)
            hint = f" Did you mean '{lowered[close[0]]}'?" if close else ""
            raise KeyError(
                f"'{name}' is not registered in the '{self._name}' registry.{hint} "
                f"Registered names: {sorted(registered) if registered else '(none: is the package that registers them imported?)'}"
            )
        return self._obj_map[name]

    def registered_names(self) -> List[str]:
        """All registered names, in registration order."""
        return list(self._obj_map.keys())

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests that register temporary classes)."""
        self._obj_map.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._obj_map

    def __repr__(self) -> str:
        return f"Registry(name={self._name!r}, names={self.registered_names()})"
