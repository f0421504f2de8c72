"""Top-k and hybrid describing on the tiny world: strength 0 is plain top-k, steering stays on active patches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import prompts
from steering.hooks import capture, hook_count
from steering.probes import EvidenceRequest
from steering.topk import EncoderSpec, FolderSource, TopKConfig, TopKError, collect_topk
from steering.topk.describe import (
    EvidenceResult, check_compatible, describe, describe_hybrid, describe_topk, fingerprint, prompt_text,
)


@pytest.fixture(scope="module")
def topk(tiny_engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("modes-images")
    rng = np.random.default_rng(1)
    for i in range(14):
        Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    spec = EncoderSpec.from_vlm(tiny_engine.vlm, tiny_engine.sae)
    return collect_topk(spec, tiny_engine.sae, FolderSource(root), tmp_path_factory.mktemp("modes-topk"),
                        TopKConfig(k=4, batch_size=5), progress=False)


def partial_features(topk, n: int = 3) -> list[int]:
    """Features whose top images have both active and silent patches (so masks matter)."""
    out = []
    for f in range(topk.d_sae):
        maps = topk.maps[f, :n]
        if (topk.ids[f, :n] >= 0).all() and (maps > 0).any() and (maps[0] <= 0).any():
            out.append(f)
    assert len(out) >= 3
    return out


def test_prompt_is_pinned() -> None:
    t = prompts.load("vlm_topk")
    assert (t.version, t.render()) == (1, (
        "These images are shown with only some regions visible; everything else is blacked out. In a single "
        "sentence, say what the visible regions of all the images have in common. It can be anything from a "
        "low-level pattern, texture or colour to an object, a scene or an abstract concept. Begin your answer "
        'with "The visible regions show".'
    ))
    assert t.render().endswith(f'"{t.meta["answer_prefix"]}".')


def test_prompt_has_one_slot_per_image(tiny_engine) -> None:
    text, prefix = prompt_text(tiny_engine, 3)
    assert text.count("<start_of_image>") == 3 and text.endswith(prefix) and prefix


def test_hybrid_at_strength_zero_is_topk(tiny_engine, topk, monkeypatch) -> None:
    first_steps: list[torch.Tensor] = []
    real = tiny_engine.generate_inputs

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        first_steps.append(out[2])  # first-step log-probs [rows, vocab]
        return out

    monkeypatch.setattr(tiny_engine, "generate_inputs", spy)
    features = partial_features(topk)[:3]
    plain = describe_topk(tiny_engine, topk, features, n_images=3)
    zero = describe_hybrid(tiny_engine, topk, features, strength=0.0, n_images=3)
    assert [r.texts for r in plain] == [r.texts for r in zero]
    assert [r.image_ids for r in plain] == [r.image_ids for r in zero]
    assert all(r.mode == "topk" for r in plain) and all(r.mode == "hybrid" for r in zero)
    assert all(len(r.image_ids) == 3 and len(r.texts) == 1 for r in plain)
    assert torch.equal(first_steps[0], first_steps[1])
    describe_hybrid(tiny_engine, topk, features, strength=80.0, n_images=3)
    assert not torch.allclose(first_steps[2], first_steps[0], atol=1e-4), "hybrid steering changed nothing"


def layer_state(engine, topk, request: EvidenceRequest) -> torch.Tensor:
    """The layer-L output the model computes (after steering) while describing, [images, P, d]."""
    with capture(engine.vlm.vision.layers[engine.layer], detach=True) as seen:
        describe(engine, topk, [request])
    return seen[0]  # the prefill; the vision tower does not run again while decoding


def test_hook_touches_only_active_positions(tiny_engine, topk) -> None:
    before = hook_count(tiny_engine.vlm.model)
    f = partial_features(topk)[0]
    base = layer_state(tiny_engine, topk, EvidenceRequest(f, "hybrid", 0.0, 3))
    steered = layer_state(tiny_engine, topk, EvidenceRequest(f, "hybrid", 30.0, 3))
    assert hook_count(tiny_engine.vlm.model) == before
    masks = torch.stack([(t.map > 0).flatten() for t in topk.top(f, 3)])  # [images, P]
    delta = steered - base  # [images, P, d]
    assert torch.equal(delta[~masks], torch.zeros_like(delta[~masks]))
    expected = 30.0 * tiny_engine.sae.direction(f)
    torch.testing.assert_close(delta[masks], expected.expand_as(delta[masks]), rtol=1e-4, atol=1e-4)


def test_batch_equals_one_by_one(tiny_engine, topk) -> None:
    features = partial_features(topk)[:3]
    requests = [EvidenceRequest(features[0], "topk"), EvidenceRequest(features[1], "hybrid", 40.0),
                EvidenceRequest(features[2], "hybrid", 40.0, n_images=2)]
    together = describe(tiny_engine, topk, requests)
    alone = [describe(tiny_engine, topk, [r])[0] for r in requests]
    assert [r.texts for r in together] == [r.texts for r in alone]
    assert [r.request for r in together] == requests


def test_silent_feature_gets_an_empty_result(tiny_engine, topk) -> None:
    ids = topk.ids.clone()
    ids[0] = -1
    silent = dataclasses.replace(topk, ids=ids)
    (res,) = describe(tiny_engine, silent, [EvidenceRequest(0, "topk")])
    assert res.texts == () and res.image_ids == () and res.extra["note"] == "no active images"


def test_mismatched_topk_is_refused(tiny_engine, topk) -> None:
    other = dataclasses.replace(topk, meta={**topk.meta, "run": {**topk.meta["run"], "layer": 0}})
    with pytest.raises(TopKError, match="layer"):
        check_compatible(tiny_engine, other)
    fewer = dataclasses.replace(topk, ids=topk.ids[:10])
    with pytest.raises(TopKError, match="latents"):
        describe_topk(tiny_engine, fewer, 0)


def test_records_round_trip_and_keys(tiny_engine, topk) -> None:
    res = describe_hybrid(tiny_engine, topk, partial_features(topk)[0], strength=10.0, n_images=2)
    assert isinstance(res, EvidenceResult)
    assert EvidenceResult.from_dict(res.to_dict()) == res
    fp = fingerprint(tiny_engine, topk)
    assert "vlm_topk@v1" in fp["prompts"] and fp["topk"] == topk.fingerprint()
    a, b = EvidenceRequest(1, "hybrid", 10.0), EvidenceRequest(1, "hybrid", 20.0)
    assert a.key(fp) != b.key(fp) and a.key(fp) == EvidenceRequest(1, "hybrid", 10.0).key(fp)


@pytest.mark.parametrize("kwargs", [dict(mode="nope"), dict(mode="topk", strength=1.0), dict(strength=-1.0),
                                    dict(n_images=0)])
def test_request_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        EvidenceRequest(0, **kwargs)


def test_feature_views(topk) -> None:
    from steering.topk.views import feature_views

    f = partial_features(topk)[0]
    for kind in ("masked", "heatmap", "plain"):
        views = feature_views(topk, f, 3, kind)
        assert len(views) == 3 and all(v.size == (56, 56) for v in views)
    masked = np.asarray(feature_views(topk, f, 1)[0])
    silent = np.kron((topk.top(f, 1)[0].map <= 0).numpy(), np.ones((14, 14), dtype=bool)).astype(bool)
    assert (masked[silent] == 0).all()
    with pytest.raises(ValueError):
        feature_views(topk, f, 1, "nope")
