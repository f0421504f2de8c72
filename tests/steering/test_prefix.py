"""The vision prefix cache changes no number and no token."""

from __future__ import annotations

import torch

from steering import tiny
from steering.engine import GenerationSettings, SteeringEngine
from steering.hooks import capture, steer
from steering.prefix import replay_prefix
from steering.probes import Probe

LAYER = 1


@torch.no_grad()
def test_replay_equals_full_tower_under_steering(family_model) -> None:
    family, model, vision = family_model
    with capture(vision.layers[LAYER], detach=True) as seen:
        tiny.image_features(model, tiny.tiny_image_inputs(family, model, rows=1))
    vectors = torch.randn(3, vision.width, generator=torch.Generator().manual_seed(0)) * 4
    inputs = tiny.tiny_image_inputs(family, model, rows=3)
    with steer(vision, LAYER, vectors):
        plain = tiny.image_features(model, inputs)
    layers_before = list(vision.layers)
    with replay_prefix(vision, LAYER, seen[0]), steer(vision, LAYER, vectors):
        replayed = tiny.image_features(model, inputs)
    assert list(vision.layers) == layers_before, "the real layers must be restored"
    torch.testing.assert_close(replayed, plain, atol=1e-5, rtol=1e-5)


def test_engine_texts_identical_with_and_without_cache(tiny_engine) -> None:
    probes = [Probe(None)] + [Probe(f, s) for f in (0, 3) for s in (8.0, 32.0)] + [Probe(2, 16.0, samples=2, seed=3)]
    cached = tiny_engine.run(probes)
    assert tiny_engine._prefix_ok is True, "the cache should be usable on Gemma-3"
    plain_engine = SteeringEngine(tiny_engine.vlm, tiny_engine.sae,
                                  settings=GenerationSettings(max_new_tokens=12, prefix_cache=False))
    plain = plain_engine.run(probes)
    assert [r.texts for r in cached] == [r.texts for r in plain]
    for a, b in zip(cached, plain):
        assert abs(a.kl_first - b.kl_first) < 1e-4
