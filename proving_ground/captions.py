"""Varied captions of pre-training images, and their tokenisation.

A caption names the object's colour and shape (sometimes only one of them) and, depending on the
template, its size, fill texture, position and background, e.g. ``"a small striped red star on the
left."``. The downstream zero-shot prompt ``"a photo of a {classname}."`` is one of the templates, as
in web captions. Tokens come from open_clip's standard 49408-token BPE vocabulary (the tokenizer the
rest of the project uses); the longest caption must fit the context length (16 tokens by default).
"""
from __future__ import annotations

import logging
import re
from typing import Dict, List, Sequence

import numpy as np
import torch
from open_clip.tokenizer import SimpleTokenizer

from .world import BACKGROUNDS, TEXTURES, Scenes, WorldConfig

logger = logging.getLogger(__name__)

#: Caption templates. Slots: {c} colour, {s} shape, {size}, {tex} texture, {pos} position, {bg} background.
TEMPLATES: tuple = (
    "a photo of a {c} {s}.",
    "a {c} {s}.",
    "{c} {s}",
    "a {size} {c} {s}.",
    "a {tex} {c} {s}.",
    "a {c} {s} {pos}.",
    "a {c} {s} on a {bg} background.",
    "a picture of a {size} {tex} {c} {s}.",
    "a drawing of a {c} {s} {pos}.",
    "a {s} that is {c}.",
    "a {tex} {s} in {c}.",
    "there is a {c} {s} on a {bg} background.",
    "a {size} {c} {s} {pos}.",
    "a {c} shape.",
    "a {size} {s}.",
)

#: How captions describe each background kind ("on a dark blotchy background").
BACKGROUND_WORDS = {"plain": "", "gradient": "gradient", "blotches": "cloudy", "checker": "checkered", "stripes": "striped"}

#: Zero-shot class prompt (CoOp's default for generic objects).
CLASS_TEMPLATE = "a photo of a {}."


def _size_word(scale: np.ndarray, lo: float, hi: float) -> List[str]:
    t = (scale - lo) / max(hi - lo, 1e-9)
    return ["small" if x < 1 / 3 else ("large" if x > 2 / 3 else "medium") for x in t]


def _pos_word(cx: np.ndarray, cy: np.ndarray) -> List[str]:
    out = []
    for x, y in zip(cx, cy):
        if max(abs(x), abs(y)) < 0.15:
            out.append("in the centre")
        elif abs(x) >= abs(y):
            out.append("on the left" if x < 0 else "on the right")
        else:
            out.append("at the top" if y < 0 else "at the bottom")
    return out


def _bg_word(sc: Scenes) -> List[str]:
    level = (sc.bg_rgb1.mean(axis=1) + sc.bg_rgb2.mean(axis=1)) / 2
    out = []
    for lv, kind in zip(level, sc.background):
        tone = "dark" if lv < 0.4 else ("light" if lv > 0.6 else "grey")
        out.append(f"{tone} {BACKGROUND_WORDS[BACKGROUNDS[kind]]}".strip())
    return out


def make_captions(world: WorldConfig, scenes: Scenes, rng: np.random.Generator) -> List[str]:
    """One caption per source-domain (pre-training) scene, template drawn uniformly from ``TEMPLATES``."""
    dom = world.source
    size = _size_word(scenes.scale, *dom.scale)
    pos = _pos_word(scenes.cx, scenes.cy)
    bg = _bg_word(scenes)
    which = rng.integers(0, len(TEMPLATES), size=len(scenes))
    caps = []
    for i in range(len(scenes)):
        caps.append(
            TEMPLATES[which[i]].format(
                c=world.colours[scenes.colour[i]],
                s=world.shapes[scenes.shape[i]],
                size=size[i],
                tex=TEXTURES[scenes.texture[i]],
                pos=pos[i],
                bg=bg[i],
            )
        )
    return caps


class CaptionTokenizer:
    """open_clip's SimpleTokenizer with a per-caption cache and a strict length check.

    Captions come from a finite template grammar, so caching whole captions makes tokenising a
    batch of 256 cost microseconds. A caption longer than the context length is an error (it would
    otherwise be silently truncated).
    """

    def __init__(self, context_length: int) -> None:
        self.context_length = context_length
        self._tok = SimpleTokenizer(context_length=context_length)
        self.sot = self._tok.sot_token_id
        self.eot = self._tok.eot_token_id
        self._cache: Dict[str, List[int]] = {}

    def ids(self, text: str) -> List[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = [self.sot] + self._tok.encode(text) + [self.eot]
            if len(ids) > self.context_length:
                raise ValueError(
                    f"caption {text!r} has {len(ids)} tokens, more than the context length "
                    f"{self.context_length}: shorten the template or raise context_length"
                )
            self._cache[text] = ids
        return ids

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = self.ids(t)
            out[i, : len(ids)] = torch.tensor(ids)
        return out


def slot_words(world: WorldConfig) -> Dict[str, List[str]]:
    """Every filler each template slot can take in source-domain (pre-training) captions."""
    backgrounds = [k for k, _ in world.source.backgrounds]
    return {
        "c": list(world.colours),
        "s": list(world.shapes),
        "size": ["small", "medium", "large"],
        "tex": [k for k, _ in world.source.textures],
        "pos": ["in the centre", "on the left", "on the right", "at the top", "at the bottom"],
        "bg": [f"{t} {BACKGROUND_WORDS[k]}".strip() for t in ("dark", "light", "grey") for k in backgrounds],
    }


def grammar_token_ids(world: WorldConfig, tokenizer: "CaptionTokenizer") -> List[int]:
    """Sorted ids of every token a caption or class prompt can contain (BPE works word by word)."""
    ids = {tokenizer.sot, tokenizer.eot}
    texts = [re.sub(r"\{\w*\}", " ", t) for t in TEMPLATES + (CLASS_TEMPLATE,)]
    for words in slot_words(world).values():
        texts += words
    for t in texts:
        ids.update(tokenizer._tok.encode(t))
    return sorted(ids)


def longest_caption_tokens(world: WorldConfig) -> int:
    """Token count (with SOT/EOT) of the longest caption or class prompt the grammar can produce."""
    tok = CaptionTokenizer(context_length=10_000)
    words = slot_words(world)
    # BPE tokenises word by word, so the longest filler of each slot gives the longest caption
    fill = {k: max(v, key=lambda w: len(tok._tok.encode(w))) for k, v in words.items()}
    return max(len(tok.ids(t.format(**fill))) for t in TEMPLATES + (CLASS_TEMPLATE.replace("{}", "{c} {s}"),))
