"""Paired invariants of the steering hook on tiny random models of every supported family."""

from __future__ import annotations

import pytest
import torch

from steering import tiny
from steering.hooks import capture, hook_count, steer

LAYER = 1


def _direction(d: int, seed: int = 0) -> torch.Tensor:
    v = torch.randn(d, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def _capture(vision, layer):
    """Record layer outputs; a capture entered inside ``steer`` sees the steered state."""
    return capture(vision.layers[layer], detach=True)


@torch.no_grad()
def test_image_path_is_live_and_steering_changes_it(family_model) -> None:
    family, model, vision = family_model
    inputs = tiny.tiny_image_inputs(family, model, rows=1)
    base = tiny.image_features(model, inputs)
    assert base.abs().sum() > 0, "image features are all zero: steering could not show"
    with steer(vision, LAYER, 8.0 * _direction(vision.width)[None]):
        steered = tiny.image_features(model, inputs)
    assert not torch.allclose(base, steered), f"{family}: steering did not change the image features"


@torch.no_grad()
def test_strength_zero_is_exactly_unsteered(family_model) -> None:
    family, model, vision = family_model
    inputs = tiny.tiny_image_inputs(family, model, rows=2)
    base = tiny.image_features(model, inputs)
    with steer(vision, LAYER, torch.zeros(2, vision.width)):
        zero = tiny.image_features(model, inputs)
    assert torch.equal(base, zero)


@torch.no_grad()
def test_hooked_layer_output_is_base_plus_vector_and_nothing_else(family_model) -> None:
    family, model, vision = family_model
    rows, strength = 2, 5.0
    vectors = torch.stack([strength * _direction(vision.width, 1), torch.zeros(vision.width)])
    inputs = tiny.tiny_image_inputs(family, model, rows=rows)

    with _capture(vision, LAYER - 1) as seen_before:
        tiny.image_features(model, inputs)
    with _capture(vision, LAYER) as seen_plain:
        tiny.image_features(model, inputs)
    with steer(vision, LAYER, vectors), _capture(vision, LAYER) as seen_after, _capture(vision, LAYER - 1) as seen_prev:
        tiny.image_features(model, inputs)
    plain, steered = seen_plain[0], seen_after[0]
    assert torch.equal(seen_before[0], seen_prev[0]), "layers before the hook must not change"
    diff = steered - plain
    if vision.flat:  # [tokens, d]: first half of the tokens belongs to row 0
        half = diff.shape[0] // 2
        row0, row1 = diff[:half], diff[half:]
    else:  # [tiles, seq, d]
        half = diff.shape[0] // 2
        row0, row1 = diff[:half].reshape(-1, vision.width), diff[half:].reshape(-1, vision.width)
    torch.testing.assert_close(row0, vectors[0].expand_as(row0), atol=1e-5, rtol=0)
    assert torch.equal(row1, torch.zeros_like(row1)), "an unsteered row changed"


@torch.no_grad()
def test_batch_equals_rows_alone(family_model) -> None:
    family, model, vision = family_model
    vectors = torch.stack([3.0 * _direction(vision.width, s) for s in range(3)])
    batched_inputs = tiny.tiny_image_inputs(family, model, rows=3)
    with steer(vision, LAYER, vectors):
        batched = tiny.image_features(model, batched_inputs).reshape(3, -1)
    for b in range(3):
        with steer(vision, LAYER, vectors[b:b + 1]):
            alone = tiny.image_features(model, tiny.tiny_image_inputs(family, model, rows=1)).reshape(-1)
        torch.testing.assert_close(batched[b], alone, atol=1e-5, rtol=1e-4)


def test_no_hook_left_after_exception(family_model) -> None:
    _, model, vision = family_model
    before = hook_count(model)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(vision, LAYER, torch.zeros(1, vision.width)):
            assert hook_count(model) == before + 1
            raise RuntimeError("boom")
    assert hook_count(model) == before


@torch.no_grad()
def test_masks_touch_only_active_positions() -> None:
    model = tiny.tiny_model("gemma3")
    from steering.models import inspect_vision

    vision = inspect_vision(model)
    inputs = tiny.tiny_image_inputs("gemma3", model, rows=1)
    patches = vision.grid[0] * vision.grid[1]
    mask = torch.zeros(1, patches)
    mask[0, :3] = 1.0
    vec = 4.0 * _direction(vision.width)[None]
    with _capture(vision, LAYER) as seen_plain:
        tiny.image_features(model, inputs)
    with steer(vision, LAYER, vec, masks=mask), _capture(vision, LAYER) as seen:
        tiny.image_features(model, inputs)
    diff = (seen[0] - seen_plain[0])[0]  # [patches, d]
    torch.testing.assert_close(diff[:3], vec.expand(3, -1), atol=1e-5, rtol=0)
    assert torch.equal(diff[3:], torch.zeros_like(diff[3:]))


def test_wrong_vector_width_is_refused(family_model) -> None:
    _, model, vision = family_model
    before = hook_count(model)
    with pytest.raises(ValueError, match="steering vectors must be"):
        with steer(vision, LAYER, torch.zeros(1, vision.width + 1)):
            pass
    assert hook_count(model) == before


@torch.no_grad()
@pytest.mark.parametrize("stop", [False, True])
def test_capture_records_and_leaves_no_hook(family_model, stop: bool) -> None:
    """capture records the layer's output (with stop, nothing after it runs); no hook stays, even on error."""
    family, model, vision = family_model
    before = hook_count(model)
    inputs = tiny.tiny_image_inputs(family, model, rows=1)
    with capture(vision.layers[LAYER + 1]) as later, capture(vision.layers[LAYER], stop=stop) as seen:
        assert hook_count(model) == before + 2
        tiny.image_features(model, inputs)
    assert len(seen) == 1 and len(later) == (0 if stop else 1)
    assert hook_count(model) == before
    with pytest.raises(RuntimeError, match="boom"), capture(vision.layers[LAYER], stop=stop):
        raise RuntimeError("boom")
    assert hook_count(model) == before
