"""Architecture summary of a built CLIP (used to size projectors and prompts without hard-coding
512/768, docs/REFERENCE.md D6)."""
from __future__ import annotations

from dataclasses import dataclass

from open_clip import CLIP
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn



@dataclass(frozen=True)
class ModelInfo:
    """Dimensions of a CLIP model. For ResNet image towers (``is_vit`` False): ``vision_width`` is the
    width of the attention-pool input, ``vision_layers`` the number of bottleneck blocks,
    ``vision_heads`` the attention-pool heads and ``patch_size`` the total stride (32)."""

    embed_dim: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    patch_size: int
    image_size: int
    text_width: int
    text_layers: int
    context_length: int
    vocab_size: int
    is_vit: bool = True


def _first(value: int | tuple[int, ...] | list[int]) -> int:
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


def model_info(model: nn.Module) -> ModelInfo:
    """Read the dimensions of an open_clip ``CLIP`` from its modules."""
    if not isinstance(model, CLIP):
        raise TypeError(f"model_info: expected an open_clip CLIP model, got {type(model).__name__}")
    visual = model.visual
    if isinstance(visual, VisionTransformer):
        blocks = visual.transformer.resblocks
        vision = dict(
            vision_width=visual.conv1.out_channels,
            vision_layers=len(blocks),
            vision_heads=int(getattr(blocks[0].attn, "num_heads", 0)),
            patch_size=_first(visual.patch_size),
            is_vit=True,
        )
    elif isinstance(visual, ModifiedResNet):
        vision = dict(
            vision_width=visual.attnpool.k_proj.in_features,
            vision_layers=sum(len(getattr(visual, f"layer{b}")) for b in (1, 2, 3, 4)),
            vision_heads=int(visual.attnpool.num_heads),
            patch_size=32,
            is_vit=False,
        )
    else:
        raise TypeError(f"model_info: unsupported image tower {type(visual).__name__}")

    return ModelInfo(embed_dim=int(visual.output_dim), image_size=_first(visual.image_size),
                     text_width=int(model.transformer.width), text_layers=len(model.transformer.resblocks),
                     context_length=int(model.context_length), vocab_size=int(model.vocab_size), **vision)
