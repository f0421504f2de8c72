"""The shipped toy world steers: known features make the model name their concept, strength 0 is empty."""

from __future__ import annotations

import pytest

from steering import toy

pytestmark = pytest.mark.skipif(not toy.is_available(), reason="toy world not built (python -m steering.toy.build)")

# Features whose ground truth the shipped build pins (re-pin after a rebuild with another seed).
KNOWN_FEATURES: dict[int, tuple[str, str]] = {
    6: ("colour", "blue"),
    20: ("colour", "purple"),
    18: ("colour", "red"),
    14: ("pattern", "striped"),
    25: ("pattern", "checkered"),
    60: ("shape", "triangle"),
}


@pytest.fixture(scope="module")
def engine():
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    vlm = load_vlm(toy.model_dir())
    sae = load_sae(toy.sae_dir())
    return SteeringEngine(vlm, sae, settings=GenerationSettings(max_new_tokens=24))


def test_ground_truth_of_known_features():
    gt = toy.ground_truth()
    for f, (family, value) in KNOWN_FEATURES.items():
        assert (gt[f]["family"], gt[f]["value"]) == (family, value)
        assert gt[f]["purity"] >= 0.9


def test_strength_zero_describes_an_empty_image(engine):
    from steering.probes import Probe

    some = next(iter(KNOWN_FEATURES))
    base, zero = engine.run([Probe(feature=None), Probe(feature=some, strength=0.0)])
    assert base.texts == zero.texts
    assert "nothing" in base.texts[0] and "empty" in base.texts[0]


def test_known_features_name_their_concept(engine):
    from steering.probes import Probe

    strengths = toy.ground_truth_meta()["strengths"]
    probes = [Probe(feature=f, strength=s) for f in KNOWN_FEATURES for s in strengths]
    results = engine.run(probes)
    for f, (family, value) in KNOWN_FEATURES.items():
        texts = [r.texts[0] for r in results if r.probe.feature == f]
        assert any(toy.names_value(t, value, family) for t in texts), (f, value, texts)


def test_shipped_files_load_through_auto_classes_and_fit_the_budget():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(toy.model_dir())
    processor = AutoProcessor.from_pretrained(toy.model_dir())
    assert type(model).__name__ == "Gemma3ForConditionalGeneration"
    assert type(processor).__name__ == "Gemma3Processor"
    total = sum(p.stat().st_size for p in toy.DATA_DIR.rglob("*") if p.is_file())
    assert total <= 30 * 2**20


def test_ground_truth_api():
    gt = toy.ground_truth()
    meta = toy.ground_truth_meta()
    assert len(gt) == 256
    assert sum(v["purity"] >= 0.9 for v in gt.values()) >= 50
    assert meta["layer"] == 3 and len(meta["strengths"]) == 3


def test_norm_matched_random_directions_do_not_name_them(engine):
    from steering.probes import Probe

    strengths = toy.ground_truth_meta()["strengths"]
    probes = [Probe(feature=f, strength=s, direction="random") for f in KNOWN_FEATURES for s in strengths]
    results = engine.run(probes)
    for f, (family, value) in KNOWN_FEATURES.items():
        texts = [r.texts[0] for r in results if r.probe.feature == f]
        assert not any(toy.names_value(t, value, family) for t in texts), (f, value, texts)
