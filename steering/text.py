"""Post-processing of the model's answers: strip the answer prefix, keep everything else intact."""

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
