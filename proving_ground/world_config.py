"""Configuration of the proving ground's image world (see :mod:`proving_ground.world`): the colours, shapes,
backgrounds and textures the renderer knows, the nuisance distribution of each domain, their validation and
the content hash that keys every cache."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

#: Bump when the rendering or sampling code changes what a configuration produces (it is part of
#: every cache key, so stale caches are never reused).
WORLD_VERSION = 2

#: Object colours (name -> RGB in [0, 1]).
COLOUR_RGB: Dict[str, Tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "green": (0.12, 0.68, 0.16),
    "blue": (0.12, 0.25, 0.92),
    "yellow": (0.96, 0.88, 0.10),
    "purple": (0.55, 0.16, 0.76),
    "orange": (1.00, 0.55, 0.05),
    "pink": (1.00, 0.50, 0.76),
    "cyan": (0.10, 0.86, 0.90),
}

#: Shapes with a signed distance function in ``proving_ground.world._SDF``.
SHAPES: Tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "crescent")

#: Background kinds and fill textures the renderer knows.
BACKGROUNDS: Tuple[str, ...] = ("plain", "gradient", "checker", "stripes", "blotches")
TEXTURES: Tuple[str, ...] = ("solid", "striped", "spotted", "checkered")

DOMAINS: Tuple[str, ...] = ("source", "target")


@dataclass(frozen=True)
class DomainConfig:
    """Nuisance distribution of one domain (all ranges are uniform [low, high])."""

    scale: Tuple[float, float]  # object half-extent as a fraction of half the image side
    max_rotation_deg: float  # rotation drawn from [-max, max]
    noise_std: Tuple[float, float]  # per-image std of additive Gaussian pixel noise (0-1 scale)
    brightness: Tuple[float, float]  # multiplier of the object colour
    colour_jitter: float  # per-channel additive jitter of the object colour, [-j, j]
    global_brightness: Tuple[float, float]  # multiplier of the whole image (after compositing)
    contrast: Tuple[float, float]  # image contrast around mid-grey (1 = unchanged, < 1 = faded style)
    colour_cast: float  # per-channel multiplier of the whole image drawn from [1 - cast, 1 + cast]
    backgrounds: Tuple[Tuple[str, float], ...]  # (kind, probability)
    background_level: Tuple[float, float]  # grey level range of background colours
    background_tint: float  # max saturation of the background tint (0 = pure grey)
    background_contrast: Tuple[float, float]  # grey-level difference of the two background colours
    textures: Tuple[Tuple[str, float], ...]  # (fill texture, probability)


def default_source_domain() -> DomainConfig:
    """Pre-training domain: large objects on grey plain / gradient / cloudy backgrounds, little noise."""
    return DomainConfig(
        scale=(0.45, 0.85),
        max_rotation_deg=15.0,
        noise_std=(0.0, 0.05),
        brightness=(0.85, 1.08),
        colour_jitter=0.06,
        global_brightness=(1.0, 1.0),
        contrast=(1.0, 1.0),
        colour_cast=0.0,
        backgrounds=(("plain", 0.35), ("gradient", 0.3), ("blotches", 0.35)),
        background_level=(0.08, 0.92),
        background_tint=0.05,
        background_contrast=(0.15, 0.35),
        textures=(("solid", 0.5), ("striped", 0.25), ("spotted", 0.25)),
    )


def default_target_domain() -> DomainConfig:
    """Shifted downstream domain: new tinted patterned backgrounds, new fill, faded colours, noise."""
    return DomainConfig(
        scale=(0.45, 0.8),
        max_rotation_deg=25.0,
        noise_std=(0.02, 0.05),
        brightness=(0.75, 1.1),
        colour_jitter=0.08,
        global_brightness=(0.85, 1.1),
        contrast=(0.8, 1.0),
        colour_cast=0.06,
        backgrounds=(("checker", 0.35), ("stripes", 0.35), ("blotches", 0.3)),
        background_level=(0.15, 0.85),
        background_tint=0.25,
        background_contrast=(0.04, 0.12),
        textures=(("solid", 0.4), ("striped", 0.2), ("spotted", 0.2), ("checkered", 0.2)),
    )


@dataclass(frozen=True)
class WorldConfig:
    """Everything that determines the world's pixels (hashed into the cache key)."""

    seed: int = 0
    image_size: int = 32
    colours: Tuple[str, ...] = tuple(COLOUR_RGB)
    shapes: Tuple[str, ...] = SHAPES
    holdout: bool = True  # hold one novel combination per colour and per shape out of pre-training
    source: DomainConfig = field(default_factory=default_source_domain)
    target: DomainConfig = field(default_factory=default_target_domain)

    def __post_init__(self) -> None:
        _validate_world(self)

    @property
    def num_classes(self) -> int:
        return len(self.colours) * len(self.shapes)

    def domain(self, name: str) -> DomainConfig:
        if name not in DOMAINS:
            raise ValueError(f"unknown domain {name!r}: expected one of {DOMAINS}")
        return self.source if name == "source" else self.target

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (tuples become lists), including ``WORLD_VERSION``."""
        d = dataclasses.asdict(self)
        d["version"] = WORLD_VERSION
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "WorldConfig":
        """Inverse of ``to_dict`` (unknown keys are an error, ``version`` must match)."""
        d = dict(d)
        version = d.pop("version", WORLD_VERSION)
        if version != WORLD_VERSION:
            raise ValueError(
                f"world config has version {version}, this code renders version {WORLD_VERSION}: "
                "regenerate the world (its cache key changes with the version)"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown world config keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        for key in ("source", "target"):
            if key in d and isinstance(d[key], dict):
                d[key] = _domain_from_dict(d[key], key)
        for key in ("colours", "shapes"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def digest(self) -> str:
        """Short content hash of the configuration (used in cache keys)."""
        return config_digest(self.to_dict())


def _domain_from_dict(d: Dict[str, Any], where: str) -> DomainConfig:
    known = {f.name for f in dataclasses.fields(DomainConfig)}
    unknown = set(d) - known
    missing = known - set(d)
    if unknown or missing:
        raise ValueError(
            f"world config '{where}': unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
            f"expected exactly {sorted(known)}"
        )
    kw = {}
    for k, v in d.items():
        if k in ("backgrounds", "textures"):
            kw[k] = tuple((str(a), float(b)) for a, b in v)
        elif isinstance(v, list):
            kw[k] = tuple(v)
        else:
            kw[k] = v
    return DomainConfig(**kw)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def config_digest(d: Dict[str, Any], length: int = 12) -> str:
    """sha256 of the canonical JSON of ``d`` (sorted keys), first ``length`` hex digits."""
    import json

    blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _validate_world(w: WorldConfig) -> None:
    bad_c = [c for c in w.colours if c not in COLOUR_RGB]
    bad_s = [s for s in w.shapes if s not in SHAPES]
    if bad_c or bad_s:
        raise ValueError(
            f"world config: unknown colours {bad_c} / shapes {bad_s}; known colours {list(COLOUR_RGB)}, "
            f"known shapes {list(SHAPES)}"
        )
    if len(set(w.colours)) != len(w.colours) or len(set(w.shapes)) != len(w.shapes):
        raise ValueError("world config: colours and shapes must not repeat")
    if len(w.colours) < 2 or len(w.shapes) < 2:
        raise ValueError(
            f"world config: need at least 2 colours and 2 shapes (got {len(w.colours)} x {len(w.shapes)}) "
            "so that base and novel classes both contain every colour and shape"
        )
    if w.image_size < 8:
        raise ValueError(f"world config: image_size must be >= 8 pixels, got {w.image_size}")
    for name, dom in (("source", w.source), ("target", w.target)):
        for key, choices, allowed in (("backgrounds", dom.backgrounds, BACKGROUNDS), ("textures", dom.textures, TEXTURES)):
            unknown = [k for k, _ in choices if k not in allowed]
            probs = [p for _, p in choices]
            if unknown or not choices or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
                raise ValueError(
                    f"world config '{name}.{key}': expected (kind, probability) pairs with kinds from "
                    f"{list(allowed)} and probabilities summing to 1, got {list(choices)}"
                )
        for key in ("scale", "noise_std", "brightness", "global_brightness", "contrast", "background_level",
                    "background_contrast"):
            lo, hi = getattr(dom, key)
            if not (0 <= lo <= hi):
                raise ValueError(f"world config '{name}.{key}': expected 0 <= low <= high, got {(lo, hi)}")
        if dom.scale[1] > 1.0:
            raise ValueError(f"world config '{name}.scale': objects must fit the image (high <= 1), got {dom.scale}")
