"""CLIP's BPE tokenizer (open_clip's ``SimpleTokenizer``), docs/REFERENCE.md M1 ``clip.tokenize``."""
from __future__ import annotations


import open_clip
import torch


SOT_TOKEN_ID = 49406  # <start_of_text>
EOT_TOKEN_ID = 49407  # <end_of_text>, the highest id: its position is argmax(ids)


def tokenize(texts: str | list[str], context_length: int = 77) -> torch.LongTensor:
    """Token ids [N, context_length]: SOT, BPE tokens, EOT, zero padding.

    Texts longer than the context are truncated with EOT kept as the last token (OpenAI's
    ``truncate=True``), so ``argmax`` still finds the EOT position.
    """
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError("tokenize: expected a string or a list of strings")
    if int(context_length) < 2:
        raise ValueError(f"tokenize: context_length must be >= 2 (room for SOT and EOT), got {context_length}")
    return open_clip.tokenize(list(texts), context_length=int(context_length))
