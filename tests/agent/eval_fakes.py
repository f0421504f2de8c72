"""Test doubles for evaluation tests: a bag-of-words embedder (deterministic, no model)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_STOP = {"a", "an", "the", "is", "of", "and", "in", "this", "that"}


def _word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return v / np.linalg.norm(v)


class BagOfWordsEmbedder:
    """Each content word is a fixed random direction; a text is the normalised sum of its words."""

    name = "bag-of-words"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                if w not in _STOP:
                    out[i] += _word_vector(w, self.dim)
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else _word_vector("<empty>", self.dim)
        return out
