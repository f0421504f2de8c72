"""Post-processing of the model's answers: strip the answer prefix, keep everything else intact; tell an
answer that is no description (``degenerate``)."""

from __future__ import annotations

import re

_ARTICLE = re.compile(r"^(?:an|a)\s+(?=\S)", re.IGNORECASE)


def strip_answer(text: str, prefix: str = "", *, drop_article: bool = True) -> str:
    """Remove a leading answer prefix (case-insensitive, optional quotes/colon) and a leading a/an.

    Case and the rest of the sentence are kept exactly as the model wrote them.
    """
    out = text.strip()
    if prefix:
        pattern = re.compile(r"^[\"'*\s]*" + re.escape(prefix.strip()) + r"[\"'*:,\s]*", re.IGNORECASE)
        out = pattern.sub("", out, count=1)
    if drop_article:
        out = _ARTICLE.sub("", out, count=1)
    return out.strip()


def degenerate(text: str | None) -> bool:
    """An answer that is no description: empty, one run-on token ("WhatWhatWhat..."), a loop of a few
    words, or one word three times in a row ("small small small small."). Such text names nothing: a
    judge must not read its words as the concept, and an embedding puts it nearest to some value anyway."""
    if not text or not text.strip():
        return True
    tokens = text.split()
    if max(len(t) for t in tokens) > 30:
        return True
    bare = [t.strip(".,;:!?\"'").lower() for t in tokens]
    if any(a == b == c and a for a, b, c in zip(bare, bare[1:], bare[2:])):
        return True
    return len(tokens) >= 8 and len(set(tokens)) / len(tokens) < 0.3
