"""Keep a model's special tokens out of judge-written text before it reaches the processor."""

from __future__ import annotations

from typing import Any


def special_tokens(processor: Any) -> tuple[str, ...]:
    """Every special token string of ``processor`` (its tokenizer's and its own ``*_token`` names), longest first.

    A question holding the image token (`<image_soft_token>`, `<|image_pad|>`, `<image>`) makes the
    processor count one image placeholder too many and refuse the whole batch.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    found = {str(t) for t in getattr(tokenizer, "all_special_tokens", None) or ()}
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            found.add(str(getattr(added, "content", added)))
    for holder in (processor, tokenizer):
        for name, value in vars(holder).items():
            if name.endswith("_token") and isinstance(value, str):
                found.add(value)
    return tuple(sorted((t for t in found if t.strip()), key=len, reverse=True))


def strip_special_tokens(text: str, tokens: tuple[str, ...]) -> str:
    """``text`` without any of ``tokens``, also those that removing others would join up again."""
    previous = None
    while previous != text:
        previous = text
        for token in tokens:
            text = text.replace(token, " ")
    return " ".join(text.split())
