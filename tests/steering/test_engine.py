"""The probe engine on a tiny Gemma-3 folder, through the real processor and generate path."""

from __future__ import annotations

import pytest

from steering.engine import GenerationSettings, SteeringEngine
from steering.errors import FeatureOutOfRangeError, LayerOutOfRangeError
from steering.probes import Probe
from steering.text import strip_answer

STRONG = 32.0


def _texts(engine, probes):
    return [r.texts for r in engine.run(probes)]


def test_steering_is_live_on_the_tiny_model(tiny_engine) -> None:
    base, steered = tiny_engine.run([Probe(None), Probe(0, STRONG)])
    assert base.texts != steered.texts, "steering changed nothing: the test model's image path is dead"
    assert steered.kl_first > 0


def test_strength_zero_equals_unsteered(tiny_engine) -> None:
    base, zero = tiny_engine.run([Probe(None), Probe(5, 0.0)])
    assert base.texts == zero.texts
    assert zero.kl_first == pytest.approx(0.0, abs=1e-6)


def test_batch_equals_each_row_alone(tiny_engine) -> None:
    probes = [Probe(f, s) for f in (0, 1, 2) for s in (0.0, 8.0, STRONG)] + [Probe(3, STRONG, direction="random")]
    batched = tiny_engine.run(probes)
    old = tiny_engine.settings.batch_size
    try:
        tiny_engine.settings.batch_size = 1
        alone = tiny_engine.run(probes)
    finally:
        tiny_engine.settings.batch_size = old
    assert [r.texts for r in batched] == [r.texts for r in alone]
    assert [r.probe for r in batched] == probes


def test_random_control_differs_from_feature_and_is_reproducible(tiny_engine) -> None:
    a, b, c = tiny_engine.run([Probe(0, STRONG), Probe(0, STRONG, direction="random"),
                                Probe(0, STRONG, direction="random")])
    assert a.texts != b.texts
    assert b.texts == c.texts
    assert tiny_engine.vector(b.probe).norm().item() == pytest.approx(STRONG, rel=1e-4)


def test_sampling_is_seeded(tiny_engine) -> None:
    p = Probe(1, STRONG, samples=3, seed=7, greedy=False)
    first, again = tiny_engine.run([p]), tiny_engine.run([p])
    assert len(first[0].texts) == 3 and first[0].texts == again[0].texts
    other = tiny_engine.run([Probe(1, STRONG, samples=3, seed=8, greedy=False)])
    assert other[0].texts != first[0].texts


def test_ask_prompt_renders_the_question(tiny_engine) -> None:
    text, prefix = tiny_engine.prompt_text(Probe(0, 1.0, prompt="ask", question="What colour is it?"))
    assert "What colour is it?" in text and prefix == ""
    describe, prefix = tiny_engine.prompt_text(Probe(0, 1.0))
    assert describe.endswith("The highlighted element is") and prefix == "The highlighted element is"


@pytest.mark.parametrize("spec", ["white", "black", "noise"])
def test_base_images(tiny_engine, spec) -> None:
    (r,) = tiny_engine.run([Probe(0, STRONG, base_image=spec)])
    assert r.probe.base_image == spec and len(r.texts) == 1


def test_black_is_black_pixels_not_grey() -> None:
    import numpy as np

    from steering.images import base_image

    assert np.asarray(base_image("black")).max() == 0
    assert np.asarray(base_image("white")).min() == 255


def test_feature_out_of_range_is_reported(tiny_engine) -> None:
    with pytest.raises(FeatureOutOfRangeError):
        tiny_engine.run([Probe(10_000, 1.0)])


def test_layer_out_of_range(tiny_engine) -> None:
    with pytest.raises(LayerOutOfRangeError, match="layers 0-2"):
        SteeringEngine(tiny_engine.vlm, tiny_engine.sae, layer=9)


def test_fingerprint_covers_prompt_version_and_generation(tiny_engine) -> None:
    fp = tiny_engine.fingerprint()
    assert fp["prompts"] == ["vlm_describe@v1", "vlm_ask@v1"]
    assert fp["layer"] == 1 and fp["generation"]["max_new_tokens"] == 12
    other = SteeringEngine(tiny_engine.vlm, tiny_engine.sae, settings=GenerationSettings(max_new_tokens=13))
    assert Probe(0, 1.0).key(fp) != Probe(0, 1.0).key(other.fingerprint())


@pytest.mark.parametrize(("raw", "expected"), [
    ("The highlighted element is a red circle.", "red circle."),
    ("The highlighted element is an Orange square", "Orange square"),
    ("the highlighted element is: a Dotted pattern", "Dotted pattern"),
    (" a Blue stripe", "Blue stripe"),
    ("an", "an"),
    ("Anchor on a ship", "Anchor on a ship"),
    ("**The highlighted element is** the Eiffel Tower.", "the Eiffel Tower."),
])
def test_strip_answer_keeps_case_and_handles_articles(raw, expected) -> None:
    assert strip_answer(raw, "The highlighted element is") == expected


def test_hidden_norm_is_the_median_patch_norm_at_the_hooked_layer(tiny_engine) -> None:
    import torch

    from steering.hooks import capture

    text, _ = tiny_engine.prompt_text(Probe(None))
    with capture(tiny_engine.vlm.vision.layers[tiny_engine.layer], detach=True) as seen, torch.no_grad():
        tiny_engine.vlm.model(**tiny_engine.inputs(text, "black", 1))
    expected = float(seen[0].norm(dim=-1).flatten().median())
    assert tiny_engine.hidden_norm("black") == pytest.approx(expected, rel=1e-6)
    assert tiny_engine.hidden_norm("black") != pytest.approx(tiny_engine.hidden_norm("white"), rel=1e-3)
