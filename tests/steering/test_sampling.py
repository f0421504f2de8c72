"""Per-row seeded sampling: right distribution, independent of batch packing."""

from __future__ import annotations

import torch

from steering.probes import Probe
from steering.sampling import SeededSampler, uniform_stream


def _draw(logits: torch.Tensor, n: int, **knobs) -> torch.Tensor:
    uniforms = torch.stack([uniform_stream(0, i, 1) for i in range(n)])  # [n, 1]
    sampler = SeededSampler(uniforms, prompt_len=0, **knobs)
    out = sampler(torch.zeros(n, 0, dtype=torch.long), logits.expand(n, -1).clone())
    assert torch.isfinite(out).sum(-1).eq(1).all(), "exactly one token must stay finite per row"
    return out.argmax(-1)


def test_frequencies_follow_the_tempered_distribution() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    picks = _draw(logits, 4000, temperature=0.7, top_k=64, top_p=1.0)
    freq = torch.bincount(picks, minlength=4).float() / 4000
    expected = torch.softmax(logits[0] / 0.7, -1)
    assert torch.allclose(freq, expected, atol=0.03), (freq, expected)


def test_top_k_and_top_p_cut_the_tail() -> None:
    logits = torch.tensor([[3.0, 2.9, 0.0, -5.0]])
    assert set(_draw(logits, 500, temperature=1.0, top_k=2, top_p=1.0).tolist()) <= {0, 1}
    assert set(_draw(logits, 500, temperature=1.0, top_k=64, top_p=0.5).tolist()) == {0}


def test_greedy_rows_untouched() -> None:
    scores = torch.randn(2, 10)
    uniforms = torch.stack([torch.full((3,), float("nan"), dtype=torch.float64), uniform_stream(1, 0, 3)])
    out = SeededSampler(uniforms, 0, 0.7, 64, 0.95)(torch.zeros(2, 0, dtype=torch.long), scores.clone())
    assert torch.equal(out[0], scores[0])


def test_sampled_texts_do_not_depend_on_packing(tiny_engine) -> None:
    target = Probe(1, 32.0, samples=3, seed=5, greedy=False)
    alone = tiny_engine.run([target])[0]
    packed = tiny_engine.run([Probe(0, 16.0), Probe(2, 32.0, samples=2, seed=9), target, Probe(None)])[2]
    assert alone.texts == packed.texts and len(alone.texts) == 3
    assert len(set(alone.texts)) > 1 or alone.texts[0] != tiny_engine.run([Probe(1, 32.0)])[0].texts[0]
