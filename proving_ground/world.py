"""Procedural image world of the offline proving ground.

Every image shows one object whose **class** is a (colour, shape) pair named like ``"red triangle"``.
Texture (fill pattern), size, position, rotation, brightness, background and noise are nuisance
factors. Two domains share the classes but differ in their nuisance distributions:

- ``source``: the pre-training domain (plain, gradient or cloudy grey backgrounds, large objects,
  little noise). Tiny CLIP models are pre-trained on it with varied captions (``captions.py``).
- ``target``: the shifted downstream domain (tinted checkerboard and striped backgrounds never seen
  in pre-training, tinted cloudy ones, a fill pattern never seen in pre-training, smaller and more
  rotated objects, stronger noise, brightness jitter). It is written to disk in CoOp's layout and read
  by ``datasets/proving_ground.py``.

Everything is generated from integer seeds with numpy's ``SeedSequence``-keyed generators and
vectorised numpy rendering (signed distance functions with one-pixel anti-aliasing), so the same
configuration gives the same bytes.

The class list is ordered so that CoOp's base-to-novel split (base = first ceil(N/2) labels) puts
every colour and every shape in both halves: a class is *base* when ``(colour + shape)`` is even.
Optionally one combination per colour and per shape, all of them novel classes, is held out of
pre-training, so that part of the novel classes were never seen by the tiny CLIP models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .world_config import BACKGROUNDS, COLOUR_RGB, DOMAINS, TEXTURES, DomainConfig, WorldConfig

# --------------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassInfo:
    """One class: label (0..N-1), its attribute indices and names."""

    label: int
    colour: int
    shape: int
    name: str  # "red triangle"
    folder: str  # "red_triangle"
    base: bool  # in the first ceil(N/2) labels
    held_out: bool  # never shown during pre-training


def class_list(world: WorldConfig) -> List[ClassInfo]:
    """All classes in label order: base classes ((colour + shape) even) first, then novel ones.

    Within each half the order is by colour then shape. With C colours and S shapes the number of
    base classes is ceil(C*S/2), so CoOp's ``subsample_classes`` split reproduces exactly this
    base/novel partition and both halves contain every colour and every shape.
    """
    nc, ns = len(world.colours), len(world.shapes)
    pairs = [(c, s) for c in range(nc) for s in range(ns)]
    base = [p for p in pairs if (p[0] + p[1]) % 2 == 0]
    novel = [p for p in pairs if (p[0] + p[1]) % 2 == 1]
    held = _held_out_pairs(nc, ns) if world.holdout else set()
    out = []
    for label, (c, s) in enumerate(base + novel):
        name = f"{world.colours[c]} {world.shapes[s]}"
        out.append(ClassInfo(label, c, s, name, name.replace(" ", "_"), label < len(base), (c, s) in held))
    return out


def _held_out_pairs(nc: int, ns: int) -> set:
    """One novel combination per colour and per shape (as far as both counts allow)."""
    held = set()
    used_shapes: set = set()
    for c in range(nc):
        for k in range(ns):
            s = (c + 1 + 2 * k) % ns
            if (c + s) % 2 == 1 and s not in used_shapes:
                held.add((c, s))
                used_shapes.add(s)
                break
    return held


def classnames(world: WorldConfig) -> List[str]:
    return [ci.name for ci in class_list(world)]


def pretrain_labels(world: WorldConfig) -> np.ndarray:
    """Labels that may appear in pre-training (all classes minus the held-out ones)."""
    return np.array([ci.label for ci in class_list(world) if not ci.held_out], dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Random generators
# --------------------------------------------------------------------------------------------------

_PURPOSES = {"pretrain": 1, "eval": 2, "train": 3, "val": 4, "test": 5, "custom": 9}


def make_rng(world: WorldConfig, domain: str, purpose: str, *index: int) -> np.random.Generator:
    """Independent, reproducible generator for (world seed, domain, purpose, *index)."""
    if purpose not in _PURPOSES:
        raise ValueError(f"unknown rng purpose {purpose!r}: expected one of {sorted(_PURPOSES)}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}: expected one of {DOMAINS}")
    seq = np.random.SeedSequence([int(world.seed), DOMAINS.index(domain), _PURPOSES[purpose]] + [int(i) for i in index])
    return np.random.default_rng(seq)


# --------------------------------------------------------------------------------------------------
# Scene sampling
# --------------------------------------------------------------------------------------------------


@dataclass
class Scenes:
    """Per-image scene parameters of a batch (numpy arrays of length B)."""

    label: np.ndarray
    colour: np.ndarray
    shape: np.ndarray
    cx: np.ndarray  # centre, normalised image coordinates in [-1, 1] (x right)
    cy: np.ndarray  # (y down)
    scale: np.ndarray  # half-extent in normalised units
    angle: np.ndarray  # radians
    texture: np.ndarray  # index into TEXTURES
    tex_angle: np.ndarray
    tex_freq: np.ndarray  # texture cycles per unit of object-local length
    fill_rgb: np.ndarray  # [B, 3]
    background: np.ndarray  # index into BACKGROUNDS
    bg_rgb1: np.ndarray  # [B, 3]
    bg_rgb2: np.ndarray  # [B, 3]
    bg_param: np.ndarray  # [B, 4] kind-specific (angle, period, phase, ...)
    noise_std: np.ndarray
    global_brightness: np.ndarray
    contrast: np.ndarray
    colour_cast: np.ndarray  # [B, 3] per-channel multipliers

    def __len__(self) -> int:
        return int(self.label.shape[0])


def _choice(rng: np.random.Generator, table: Sequence[Tuple[str, float]], names: Sequence[str], n: int) -> np.ndarray:
    kinds = np.array([names.index(k) for k, _ in table], dtype=np.int64)
    probs = np.array([p for _, p in table], dtype=np.float64)
    return kinds[rng.choice(len(kinds), size=n, p=probs / probs.sum())]


def _hue_rgb(h: np.ndarray) -> np.ndarray:
    """Fully saturated RGB of hue h in [0, 1) -> [B, 3]."""
    k = (h[:, None] * 6.0 + np.array([5.0, 3.0, 1.0])) % 6.0
    return 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _background_colours(rng: np.random.Generator, dom: DomainConfig, n: int) -> Tuple[np.ndarray, np.ndarray]:
    lo, hi = dom.background_level
    hue = _hue_rgb(rng.random(n))
    sat = rng.uniform(0.0, dom.background_tint, size=n)[:, None]
    g1 = rng.uniform(lo, hi, size=n)[:, None]
    # the second colour differs clearly from the first (contrast of the pattern / gradient)
    delta = rng.uniform(*dom.background_contrast, size=n)[:, None] * np.where(g1 > (lo + hi) / 2, -1.0, 1.0)
    g2 = np.clip(g1 + delta, 0.0, 1.0)
    c1 = g1 * (1 - sat) + g1 * sat * hue
    c2 = g2 * (1 - sat) + g2 * sat * hue
    return c1, c2


def sample_scenes(world: WorldConfig, domain: str, labels: np.ndarray, rng: np.random.Generator) -> Scenes:
    """Draw the nuisance factors of ``domain`` for the given class labels."""
    dom = world.domain(domain)
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    if n and (labels.min() < 0 or labels.max() >= world.num_classes):
        raise ValueError(f"labels must lie in [0, {world.num_classes}), got range [{labels.min()}, {labels.max()}]")
    classes = class_list(world)
    colour = np.array([classes[i].colour for i in labels], dtype=np.int64)
    shape = np.array([classes[i].shape for i in labels], dtype=np.int64)
    scale = rng.uniform(*dom.scale, size=n)
    margin = np.clip(1.0 - 0.95 * scale, 0.0, None)
    cx = rng.uniform(-1.0, 1.0, size=n) * margin
    cy = rng.uniform(-1.0, 1.0, size=n) * margin
    angle = np.deg2rad(rng.uniform(-dom.max_rotation_deg, dom.max_rotation_deg, size=n))
    texture = _choice(rng, dom.textures, TEXTURES, n)
    tex_angle = rng.uniform(0.0, np.pi, size=n)
    tex_freq = rng.uniform(2.0, 3.0, size=n)
    base_rgb = np.array([COLOUR_RGB[world.colours[c]] for c in colour], dtype=np.float64).reshape(n, 3)
    fill = base_rgb * rng.uniform(*dom.brightness, size=n)[:, None]
    fill = np.clip(fill + rng.uniform(-dom.colour_jitter, dom.colour_jitter, size=(n, 3)), 0.0, 1.0)
    background = _choice(rng, dom.backgrounds, BACKGROUNDS, n)
    bg1, bg2 = _background_colours(rng, dom, n)
    bg_param = np.stack(
        [
            rng.uniform(0.0, 2 * np.pi, size=n),  # orientation
            rng.uniform(0.25, 0.5, size=n),  # period (normalised units) / cell size
            rng.uniform(0.0, 1.0, size=n),  # phase
            rng.uniform(0.0, 2 * np.pi, size=n),  # second orientation (blotches)
        ],
        axis=1,
    )
    noise = rng.uniform(*dom.noise_std, size=n)
    gb = rng.uniform(*dom.global_brightness, size=n)
    contrast = rng.uniform(*dom.contrast, size=n)
    cast = 1.0 + rng.uniform(-dom.colour_cast, dom.colour_cast, size=(n, 3))
    return Scenes(labels, colour, shape, cx, cy, scale, angle, texture, tex_angle, tex_freq, fill,
                  background, bg1, bg2, bg_param, noise, gb, contrast, cast)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _sd_convex_polygon(u: np.ndarray, v: np.ndarray, n: int, radius: float, phase: float) -> np.ndarray:
    """Signed distance bound of a regular convex n-gon (exact inside, close outside)."""
    apothem = radius * np.cos(np.pi / n)
    d = np.full(u.shape, -np.inf)
    for i in range(n):
        a = phase + (2 * i + 1) * np.pi / n
        d = np.maximum(d, u * np.cos(a) + v * np.sin(a) - apothem)
    return d


def _sd_circle(u, v):
    return np.hypot(u, v) - 0.9


def _sd_square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) - 0.75


def _sd_triangle(u, v):
    # apex up (v is up in object space); shifted so that its bounding box is centred
    return _sd_convex_polygon(u, v + 0.28, 3, 1.12, -np.pi / 6)


def _sd_diamond(u, v):
    a, b = 0.62, 1.0  # tall rhombus: never a rotated square
    return (np.abs(u) * b + np.abs(v) * a - a * b) / np.hypot(a, b)


def _sd_star(u, v):
    outer, inner, n = 1.0, 0.42, 5
    sector = 2 * np.pi / n
    phi = np.arctan2(u, v)  # angle from the upward axis: a tip points up
    phi = np.abs(np.mod(phi + sector / 2, sector) - sector / 2)
    rho = np.hypot(u, v)
    qx, qy = rho * np.cos(phi), rho * np.sin(phi)
    ax, ay = outer, 0.0
    bx, by = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    ex, ey = bx - ax, by - ay
    t = np.clip(((qx - ax) * ex + (qy - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    dist = np.hypot(qx - ax - t * ex, qy - ay - t * ey)
    cross = ex * (qy - ay) - ey * (qx - ax)  # > 0: origin side of the edge (inside)
    return np.where(cross > 0, -dist, dist)


def _sd_cross(u, v):
    au, av = np.abs(u), np.abs(v)
    arm, half = 0.95, 0.3
    return np.minimum(np.maximum(au - arm, av - half), np.maximum(au - half, av - arm))


def _sd_ring(u, v):
    return np.abs(np.hypot(u, v) - 0.68) - 0.24


def _sd_crescent(u, v):
    outer = np.hypot(u, v) - 0.92
    bite = np.hypot(u - 0.45, v - 0.12) - 0.7
    return np.maximum(outer, -bite)


_SDF = {
    "circle": _sd_circle,
    "square": _sd_square,
    "triangle": _sd_triangle,
    "diamond": _sd_diamond,
    "star": _sd_star,
    "cross": _sd_cross,
    "ring": _sd_ring,
    "crescent": _sd_crescent,
}


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(c, c, indexing="ij")
    return x[None], y[None]  # [1, H, W]


def _render_background(sc: Scenes, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = len(sc)
    t = np.zeros((n,) + x.shape[1:])
    th = sc.bg_param[:, 0][:, None, None]
    period = sc.bg_param[:, 1][:, None, None]
    phase = sc.bg_param[:, 2][:, None, None]
    th2 = sc.bg_param[:, 3][:, None, None]
    proj = x * np.cos(th) + y * np.sin(th)
    for k, kind in enumerate(BACKGROUNDS):
        m = sc.background == k
        if not m.any():
            continue
        if kind == "plain":
            t[m] = 0.0
        elif kind == "gradient":
            t[m] = np.broadcast_to((proj[m] / np.sqrt(2) + 1.0) / 2.0, t[m].shape)
        elif kind == "checker":
            xr = x * np.cos(th[m]) - y * np.sin(th[m])
            yr = x * np.sin(th[m]) + y * np.cos(th[m])
            cells = np.floor(xr / period[m] + phase[m]) + np.floor(yr / period[m] + phase[m])
            t[m] = np.mod(cells, 2.0)
        elif kind == "stripes":
            t[m] = (np.mod(proj[m] / period[m] + phase[m], 1.0) < 0.5).astype(np.float64)
        elif kind == "blotches":
            proj2 = x * np.cos(th2[m]) + y * np.sin(th2[m])
            w = np.sin(proj[m] * 2.2 / period[m] + 6.28 * phase[m]) + np.sin(proj2 * 1.7 / period[m] + 3.0 * phase[m])
            t[m] = np.clip(0.5 + 0.3 * w, 0.0, 1.0)
    return sc.bg_rgb1[:, :, None, None] * (1.0 - t[:, None]) + sc.bg_rgb2[:, :, None, None] * t[:, None]


def _texture_factor(sc: Scenes, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(multiplier of the fill colour, amount of white mixed in) per pixel, object-local coords."""
    mult = np.ones_like(u)
    white = np.zeros_like(u)
    f = sc.tex_freq[:, None, None]
    a = sc.tex_angle[:, None, None]
    for k, kind in enumerate(TEXTURES):
        m = sc.texture == k
        if not m.any() or kind == "solid":
            continue
        um, vm, fm, am = u[m], v[m], f[m], a[m]
        if kind == "striped":
            s = np.mod((um * np.cos(am) + vm * np.sin(am)) * fm, 1.0) < 0.5
            mult[m] = np.where(s, 0.62, 1.0)
        elif kind == "spotted":
            du = np.mod(um * fm * 1.2, 1.0) - 0.5
            dv = np.mod(vm * fm * 1.2, 1.0) - 0.5
            white[m] = np.where(du * du + dv * dv < 0.09, 0.45, 0.0)
        elif kind == "checkered":
            cu = np.floor(um * fm) + np.floor(vm * fm)
            mult[m] = np.where(np.mod(cu, 2.0) == 0, 0.6, 1.0)
    return mult, white


def render(world: WorldConfig, scenes: Scenes, noise_rng: np.random.Generator) -> np.ndarray:
    """Render scenes to ``uint8`` images ``[B, H, W, 3]`` (vectorised over the batch)."""
    n = len(scenes)
    size = world.image_size
    x, y = _grid(size)
    bg = _render_background(scenes, x, y)  # [B, 3, H, W]
    # object-local coordinates: translate, rotate by -angle, scale; v points up
    dx = x - scenes.cx[:, None, None]
    dy = y - scenes.cy[:, None, None]
    ca = np.cos(scenes.angle)[:, None, None]
    sa = np.sin(scenes.angle)[:, None, None]
    s = scenes.scale[:, None, None]
    u = (dx * ca + dy * sa) / s
    v = -(-dx * sa + dy * ca) / s
    sd = np.empty((n, size, size))
    for k, name in enumerate(world.shapes):
        m = scenes.shape == k
        if m.any():
            sd[m] = _SDF[name](u[m], v[m])
    sd_px = sd * s * (size / 2.0)
    alpha = np.clip(0.5 - sd_px, 0.0, 1.0)[:, None]  # [B, 1, H, W]
    mult, white = _texture_factor(scenes, u, v)
    fill = scenes.fill_rgb[:, :, None, None] * mult[:, None]
    fill = fill * (1.0 - white[:, None]) + white[:, None]
    img = bg * (1.0 - alpha) + fill * alpha
    img = img * scenes.global_brightness[:, None, None, None] * scenes.colour_cast[:, :, None, None]
    img = 0.5 + (img - 0.5) * scenes.contrast[:, None, None, None]
    img = img + noise_rng.standard_normal(img.shape) * scenes.noise_std[:, None, None, None]
    img = np.clip(img, 0.0, 1.0)
    return np.round(img.transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)


def generate(
    world: WorldConfig, domain: str, labels: np.ndarray, rng: np.random.Generator
) -> Tuple[np.ndarray, Scenes]:
    """Sample scenes for ``labels`` and render them: ``(uint8 [B, H, W, 3], Scenes)``."""
    scenes = sample_scenes(world, domain, labels, rng)
    return render(world, scenes, rng), scenes


def balanced_labels(world: WorldConfig, per_class: int, labels: Optional[Sequence[int]] = None) -> np.ndarray:
    """``per_class`` copies of every label (class-major order)."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    labs = np.arange(world.num_classes) if labels is None else np.asarray(labels, dtype=np.int64)
    return np.repeat(labs, per_class)


def generate_balanced(
    world: WorldConfig, domain: str, purpose: str, per_class: int, chunk: int = 1024
) -> Tuple[np.ndarray, np.ndarray]:
    """A fixed, class-balanced image set: ``(uint8 [N*per_class, H, W, 3], labels)``.

    Rendered in chunks with one generator per chunk, so memory stays bounded and the result does
    not depend on anything but the arguments.
    """
    labels = balanced_labels(world, per_class)
    out = np.empty((labels.shape[0], world.image_size, world.image_size, 3), dtype=np.uint8)
    for i, start in enumerate(range(0, labels.shape[0], chunk)):
        rng = make_rng(world, domain, purpose, i)
        out[start:start + chunk], _ = generate(world, domain, labels[start:start + chunk], rng)
    return out, labels
