"""Architecture summary of a built CLIP (used to size projectors and prompts without hard-coding
512/768, docs/REFERENCE.md D6)."""
from __future__ import annotations

from dataclasses import dataclass

from open_clip import CLIP, CustomTextCLIP
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import TextTransformer, VisionTransformer
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
    """Read the dimensions of an open_clip ``CLIP`` / ``CustomTextCLIP`` from its modules."""
    if not isinstance(model, (CLIP, CustomTextCLIP)):
        raise TypeError(f"model_info: expected an open_clip CLIP model, got {type(model).__name__}")
    visual = model.visual
    if isinstance(visual, VisionTransformer):
        blocks = visual.transformer.resblocks
        vision = dict(
            vision_width=visual.conv1.out_channels,
            vision_layers=len(blocks),
            vision_heads=int(getattr(blocks[0].attn, "num_heads", 0)),
            patch_size=_first(visual.patch_size),
            image_size=_first(visual.image_size),
            is_vit=True,
        )
        embed_dim = int(visual.output_dim)
    elif isinstance(visual, ModifiedResNet):
        vision = dict(
            vision_width=visual.attnpool.k_proj.in_features,
            vision_layers=sum(len(getattr(visual, f"layer{b}")) for b in (1, 2, 3, 4)),
            vision_heads=int(visual.attnpool.num_heads),
            patch_size=32,
            image_size=_first(visual.image_size),
            is_vit=False,
        )
        embed_dim = int(visual.output_dim)
    else:
        raise TypeError(f"model_info: unsupported image tower {type(visual).__name__}")

    if isinstance(model, CLIP):
        transformer, ctx, vocab = model.transformer, model.context_length, model.vocab_size
    else:
        text = model.text
        if not isinstance(text, TextTransformer):
            raise TypeError(f"model_info: unsupported text tower {type(text).__name__}")
        transformer, ctx, vocab = text.transformer, text.context_length, text.vocab_size
    return ModelInfo(
        embed_dim=embed_dim,
        text_width=int(transformer.width),
        text_layers=len(transformer.resblocks),
        context_length=int(ctx),
        vocab_size=int(vocab),
        **vision,
    )
