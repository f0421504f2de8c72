"""Activation tests (steering.activation_tests): scene variants and render pools, the render summary on a
hand-made activation array, each image edit, the tester on a tiny deterministic encoder, and the real toy
world finding a known feature."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from steering import activation_tests as at
from steering import toy
from steering.activation_tests import (
    EDITS,
    ActivationTest,
    edit_image,
    family_values,
    render_pool,
    summarise_render,
    variant,
)
from steering.toy import scenes

RED = scenes.COLOURS["red"]
GRID = 4
"""Side of the fake encoder's patch grid (the image is cut into GRID x GRID patches)."""


def obj(**kw: object) -> scenes.Scene:
    base: dict[str, object] = {"kind": "object", "colour": "blue", "shape": "circle", "pattern": "striped",
                               "size": "small", "cx": 0.3, "cy": 0.7, "extent": 0.4, "phase": 3}
    return scenes.Scene(**{**base, **kw})  # type: ignore[arg-type]


FIELD = scenes.Scene(kind="field", colour="green", pattern="dotted", phase=5)


# ----------------------------------------------------------------------------- variants and pools


@pytest.mark.parametrize("family", ["colour", "shape", "pattern", "size", "kind"])
def test_variant_changes_only_the_family_asked(family: str) -> None:
    scene = obj()
    for value in family_values(family):
        v = variant(scene, family, value)
        got = v.kind if family == "kind" else v.attributes()[family] if v.kind == "object" or family in (
            "colour", "pattern") else None
        assert got == value
        if family == "kind":
            if value == "field":  # a field keeps colour and texture, and has no shape or size
                assert (v.colour, v.pattern, v.phase, v.shape, v.size) == ("blue", "striped", 3, None, None)
            else:
                assert v == scene
            continue
        others = {f: x for f, x in scene.attributes().items() if f != family}
        assert {f: x for f, x in v.attributes().items() if f != family} == others
        assert (v.kind, v.phase) == (scene.kind, scene.phase)
        if family not in ("size", "shape"):  # only a size or shape change moves the extent
            assert (v.cx, v.cy, v.extent) == (scene.cx, scene.cy, scene.extent)


def test_a_shape_variant_keeps_the_area_of_the_base_shape() -> None:
    """A feature's mean activation grows with the area it fires on: a shape test changes the outline only."""
    base = obj(shape="square", extent=0.5, cx=0.5, cy=0.5)
    for shape in scenes.SHAPES:
        v = variant(base, "shape", shape)
        area = scenes.shape_mask(shape, 256, v.cx, v.cy, v.extent).mean()
        assert area == pytest.approx(scenes.shape_mask("square", 256, 0.5, 0.5, 0.5).mean(), rel=0.05), shape


def test_a_size_variant_scales_the_extent_within_its_range_and_stays_inside() -> None:
    small = obj(size="small", extent=0.41, cx=0.25, cy=0.75)
    large = variant(small, "size", "large")
    lo, hi = scenes.SIZE_EXTENT["large"]
    assert lo <= large.extent <= hi and large.extent == pytest.approx(lo + 0.5 * (hi - lo))
    margin = large.extent / 2
    assert margin <= large.cx <= 1 - margin and margin <= large.cy <= 1 - margin
    assert variant(large, "size", "large") is large


def test_a_field_has_no_shape_or_size_to_change() -> None:
    for family in ("shape", "size"):
        for value in family_values(family):
            assert variant(FIELD, family, value) == FIELD
    assert variant(FIELD, "colour", "red") == scenes.Scene(kind="field", colour="red", pattern="dotted", phase=5)
    as_object = variant(FIELD, "kind", "object")
    assert (as_object.kind, as_object.colour, as_object.pattern) == ("object", "green", "dotted")
    assert as_object.shape is not None and as_object.size is not None


@pytest.mark.parametrize("family", ["colour", "shape", "size", "kind"])
def test_render_pool_is_base_major_with_every_value(family: str) -> None:
    values = family_values(family)
    pool, carried = render_pool(family, n=6)
    assert len(pool) == len(carried) == 6 * len(values)
    for b in range(6):
        block = pool[b * len(values):(b + 1) * len(values)]
        labels = carried[b * len(values):(b + 1) * len(values)]
        first = block[0]
        if family in ("kind", "colour") or first.kind == "object":
            assert labels == list(values)  # every value, in the family's order
        else:  # a field base: its shape/size variants are the field itself, carrying no value
            assert labels == [""] * len(values) and all(s == first for s in block)
        # one base scene per block: everything but the family is the same
        if family == "colour":
            assert len({(s.kind, s.pattern, s.phase, s.cx, s.cy) for s in block}) == 1
        if family == "shape":
            assert len({(s.kind, s.pattern, s.phase, s.colour) for s in block}) == 1
    assert render_pool(family, n=6) == (pool, carried)  # deterministic in its seed


def test_a_held_value_is_on_every_scene_of_the_pool() -> None:
    pool, _ = render_pool("colour", n=5, hold=[("shape", "cross")])
    assert all(s.kind == "object" and s.shape == "cross" for s in pool)
    pool, _ = render_pool("shape", n=5, hold=[("colour", "purple"), ("kind", "object")])
    assert all(s.colour == "purple" for s in pool)


# ----------------------------------------------------------------------------- the render summary


def test_summarise_render_reads_means_top_shares_and_wins_from_a_hand_made_array() -> None:
    test = ActivationTest(7, "render", "size")
    values = ("small", "large")
    # 5 bases x 2 values, base-major. Base 4 is a field (no size): both its variants are one image.
    acts = np.array([1.0, 9.0,   # large wins
                     2.0, 8.0,   # large wins
                     6.0, 0.0,   # small wins
                     0.0, 0.0,   # never fires: not decisive
                     5.0, 5.0])  # field: no spread, not decisive
    carried = ["small", "large"] * 4 + ["", ""]
    r = summarise_render(test, acts, carried, values)
    assert r.values == pytest.approx({"small": 9.0 / 4, "large": 17.0 / 4})  # the field's images carry no size
    assert r.n_images == 10 and r.peak == 9.0
    assert r.n_top == 7  # fewer than TOP_SHARE_N scenes are active: all 7 active ones count
    assert r.top_share == pytest.approx({"small": 3 / 7, "large": 2 / 7})  # the field's two carry neither
    assert r.wins == pytest.approx({"small": 1 / 3, "large": 2 / 3})  # three decisive bases
    assert "render size over 10 scenes, peak 9" in r.line() and "large 4.25 (top 29%, wins 67%)" in r.line()


def test_a_pool_where_nothing_fires_has_no_top_and_no_wins() -> None:
    r = summarise_render(ActivationTest(0, "render", "kind"), np.zeros(6), ["object", "field"] * 3,
                         ("object", "field"))
    assert r.n_top == 0 and r.top_share == {} and r.wins == {"object": 0.0, "field": 0.0} and r.peak == 0.0


def test_tiny_spreads_are_no_decision() -> None:
    """A base whose variants differ by under 5% of the peak decides nothing (numerical noise)."""
    acts = np.array([10.2, 10.0, 3.0, 8.0])
    r = summarise_render(ActivationTest(0, "render", "kind"), acts, ["object", "field"] * 2, ("object", "field"))
    assert r.wins == {"object": 0.0, "field": 1.0}


# ----------------------------------------------------------------------------- edits


def scene_image(scene: scenes.Scene, side: int = 64) -> Image.Image:
    return Image.fromarray(scenes.render(scene, side))


def test_desaturate_gives_grey_pixels() -> None:
    out = np.asarray(edit_image(scene_image(obj(colour="red", pattern="solid")), "desaturate"))
    assert out.shape == (64, 64, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out.min() < 200  # the shape is still there, in grey


def test_hue_rotates_red_away_from_red() -> None:
    src = scene_image(scenes.Scene(kind="field", colour="red", pattern="solid"))
    out = np.asarray(edit_image(src, "hue")).reshape(-1, 3).mean(0)
    assert out[0] < out[1] and out[0] < out[2]  # red turned cyan-ish


def test_blur_softens_a_pattern() -> None:
    src = scene_image(scenes.Scene(kind="field", colour="black", pattern="striped"))
    before, after = np.asarray(src).astype(float), np.asarray(edit_image(src, "blur")).astype(float)
    assert after.std() < 0.5 * before.std()


def test_rescale_shrinks_onto_white() -> None:
    src = scene_image(scenes.Scene(kind="field", colour="blue", pattern="solid"))
    out = np.asarray(edit_image(src, "rescale"))
    assert (out[:16] == 255).all() and (out[48:] == 255).all() and (out[:, :16] == 255).all()
    assert (out[:, 48:] == 255).all()
    assert (out[20:44, 20:44] == scenes.COLOURS["blue"]).all()  # the whole image, at half size, in the middle


def test_mask_whitens_outside_the_heatmap() -> None:
    src = scene_image(scenes.Scene(kind="field", colour="purple", pattern="solid"))
    heatmap = np.zeros((4, 4), dtype=np.float32)
    heatmap[0, 0] = 5.0  # fires in the top-left patch only
    heatmap[3, 3] = 0.5  # below a fifth of the peak: masked
    out = np.asarray(edit_image(src, "mask", heatmap))
    assert (out[:16, :16] == scenes.COLOURS["purple"]).all()
    assert (out[16:] == 255).all() and (out[:16, 16:] == 255).all()
    assert edit_image(src, "mask", None).tobytes() == src.tobytes()  # no heatmap: nothing to mask


def test_an_unknown_edit_raises() -> None:
    with pytest.raises(ValueError, match="unknown edit 'sharpen'"):
        edit_image(scene_image(obj()), "sharpen")


# ----------------------------------------------------------------------------- the tester


def redness(images: list[Image.Image], features: Sequence[int] | None, d_sae: int = 4) -> np.ndarray:
    """A fake encoder: feature 0 is the share of red pixels in each patch of a GRID x GRID grid, feature 1 the
    share of non-white pixels, the others never fire. [images, patches, features]"""
    out = np.zeros((len(images), GRID * GRID, d_sae), dtype=np.float32)
    for i, im in enumerate(images):
        a = np.asarray(im.convert("RGB")).astype(int)
        red = (np.abs(a - np.array(RED)).sum(-1) < 30).astype(np.float32)
        ink = (a.sum(-1) < 3 * 250).astype(np.float32)
        side = a.shape[0] // GRID
        for k, m in enumerate((red, ink)):
            out[i, :, k] = m.reshape(GRID, side, GRID, side).mean(axis=(1, 3)).reshape(-1)
    return out if features is None else out[..., list(features)]


class Counting:
    def __init__(self) -> None:
        self.images = 0
        self.calls = 0

    def __call__(self, images: list[Image.Image], features: Sequence[int] | None) -> np.ndarray:
        self.calls += 1
        self.images += len(images)
        return redness(images, features)


def test_the_tester_finds_red_winning_the_colour_pool_with_one_encoder_pass() -> None:
    encode = Counting()
    tester = at.Tester(encode, can_render=True, base_scenes_n=12)
    assert tester.kinds() == ["render"]
    (r,) = tester.run([ActivationTest(0, "render", "colour")])
    assert r.error is None and r.n_images == 12 * len(scenes.COLOURS)
    assert max(r.values, key=r.values.get) == "red"
    assert r.wins["red"] == 1.0 and r.top_share["red"] == 1.0
    assert all(r.values[c] == 0.0 for c in scenes.COLOURS if c != "red")
    # another feature reads the same pool: no second encoder pass
    (ink,) = tester.run([ActivationTest(1, "render", "colour")])
    assert encode.calls == 1 and ink.peak > 0
    (kind,) = tester.run([ActivationTest(1, "render", "kind")])
    assert encode.calls == 2 and max(kind.values, key=kind.values.get) == "field"  # a field is all ink


def test_render_pools_are_kept_on_disk_for_the_next_run_and_a_damaged_file_is_encoded_again(tmp_path) -> None:
    first, second, third = Counting(), Counting(), Counting()
    a = at.Tester(first, can_render=True, base_scenes_n=6)
    a.pool_dir, a.world_key = tmp_path, "toy"
    (r1,) = a.run([ActivationTest(0, "render", "colour")])
    b = at.Tester(second, can_render=True, base_scenes_n=6)  # a later run of the same world
    b.pool_dir, b.world_key = tmp_path, "toy"
    (r2,) = b.run([ActivationTest(0, "render", "colour")])
    assert first.calls == 1 and second.calls == 0 and r2.to_dict() == r1.to_dict()
    other = at.Tester(Counting(), can_render=True, base_scenes_n=6)  # another world: its own file
    other.pool_dir, other.world_key = tmp_path, "another"
    other.run([ActivationTest(0, "render", "colour")])
    assert other.encode.calls == 1 and len(list(tmp_path.glob("pool-*.npy"))) == 2
    for f in tmp_path.glob("pool-*.npy"):
        f.write_bytes(b"not a numpy file")
    c = at.Tester(third, can_render=True, base_scenes_n=6)
    c.pool_dir, c.world_key = tmp_path, "toy"
    (r3,) = c.run([ActivationTest(0, "render", "colour")])
    assert third.calls == 1 and r3.to_dict() == r1.to_dict()


def test_the_tester_says_what_it_cannot_run_in_one_line() -> None:
    tester = at.Tester(Counting(), can_render=False)
    assert tester.kinds() == []
    cases = [ActivationTest(0, "render", "colour"), ActivationTest(0, "edit", edit="blur"),
             ActivationTest(0, "render", "colour", hold=(("colour", "red"),)),
             ActivationTest(0, "sniff")]
    results = tester.run(cases)
    assert [r.error for r in results][:2] == ["this world cannot render scenes; use an edit test",
                                              "no top-k collection for this world; run steer-agent topk"]
    assert "unknown test kind 'sniff'" in str(results[3].error)
    renderer = at.Tester(Counting(), can_render=True, base_scenes_n=2)
    bad = renderer.run([ActivationTest(0, "render", "colour", hold=(("colour", "red"),)),
                        ActivationTest(0, "render", "texture"), ActivationTest(9, "render", "kind")])
    assert [r.error for r in bad] == ["cannot hold colour red while colour varies", "unknown family 'texture'",
                                      "feature 9 is not in the SAE"]
    assert all("\n" not in r.line() for r in [*results, *bad])


def test_an_edit_test_reads_the_top_images_before_and_after() -> None:
    images = [scene_image(scenes.Scene(kind="field", colour="red", pattern="solid"))] * 2
    heat = [np.ones((GRID, GRID), dtype=np.float32)] * 2
    encode = Counting()
    tester = at.Tester(encode, can_render=False, top_images=lambda f: (images, heat) if f == 0 else ([], []))
    assert tester.kinds() == ["edit"]
    desat, hue, none = tester.run([ActivationTest(0, "edit", edit="desaturate"), ActivationTest(0, "edit", edit="hue"),
                                   ActivationTest(1, "edit", edit="blur")])
    assert desat.values == {"before": 1.0, "after": 0.0} and desat.n_images == 2
    assert hue.values["after"] == 0.0
    assert "desaturate" in desat.line() and "1 -> 0 (-100%)" in desat.line()
    assert none.error == "the feature has no top images"
    assert encode.images == 8  # each edit test encodes its images before and after, once
    assert set(EDITS) >= {"desaturate", "hue", "blur", "rescale", "mask"}


def test_a_result_round_trips_through_its_dict() -> None:
    from steering.activation_tests import ActivationTestResult

    test = ActivationTest(3, "render", "shape", hold=(("colour", "red"), ("pattern", "solid")))
    (r,) = at.Tester(Counting(), can_render=True, base_scenes_n=3).run([test])
    back = ActivationTestResult.from_dict(r.to_dict())
    assert back == r and back.test == test
    fp = {"model": "m", "revision": "r", "sae": "s", "layer": 3}
    assert test.key(fp) == ActivationTest.from_dict(test.spec()).key(fp)
    assert test.key(fp) != test.key({**fp, "layer": 4}) != ActivationTest(3, "render", "shape").key(fp)


# ----------------------------------------------------------------------------- the real toy world


@pytest.fixture(scope="module")
def toy_tester() -> at.Tester:
    if not toy.is_available():
        pytest.skip("toy world not built (python -m steering.toy.build)")
    from steering.activation_tests import engine_tester
    from steering.engine import SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    engine = SteeringEngine(load_vlm(toy.model_dir()), load_sae(toy.sae_dir()))
    tester = engine_tester(engine)
    tester.base_scenes_n = 16
    return tester


def test_the_toy_world_renders_and_finds_its_purple_field_feature(toy_tester: at.Tester) -> None:
    """Feature 1 of the toy SAE fires on solid purple fields (its ground truth: colour purple, all 20 of its top
    scenes fields): purple wins the colour pool, and a field wins the kind pool with purple held."""
    truth = toy.ground_truth()[1]
    assert (truth["family"], truth["value"], truth["top_kinds"]) == ("colour", "purple", {"field": 20})
    assert toy_tester.kinds() == ["render"]
    colour, kind = toy_tester.run([ActivationTest(1, "render", "colour"),
                                   ActivationTest(1, "render", "kind", hold=(("colour", "purple"),))])
    assert colour.error is None and kind.error is None
    assert max(colour.values, key=colour.values.get) == "purple"
    assert colour.wins["purple"] == 1.0 and colour.top_share["purple"] == 1.0
    assert max(kind.values, key=kind.values.get) == "field" and kind.wins["field"] > 0.5
