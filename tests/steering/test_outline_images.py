"""The built-in outline base images: colourless drawn shapes every engine takes wherever it takes white."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import steering.images as images
from steering.image_names import BASE_IMAGES, OUTLINE_BASES
from steering.probes import Probe
from steering.toy.scenes import SHAPES, SIZE_EXTENT, SIZES, Scene, render, shape_mask

FP = {"model": "m", "revision": "r", "sae": "s", "layer": 1}
WHITE = (255, 255, 255)


def _pixels(name: str) -> np.ndarray:
    return np.asarray(images.base_image(name, 64))  # [64, 64, 3]


def test_every_shape_and_size_of_the_toy_vocabulary_is_a_base_image() -> None:
    assert {(s, z) for s in SHAPES for z in SIZES} == {tuple(n.split("-")[1:]) for n in OUTLINE_BASES}
    assert set(OUTLINE_BASES) <= set(BASE_IMAGES)
    for name in OUTLINE_BASES:
        images.check_base_image(name)  # a name, not a file


@pytest.mark.parametrize("name", OUTLINE_BASES)
def test_an_outline_is_a_thin_grey_ring_on_white_with_nothing_inside(name: str) -> None:
    _, shape, size = name.split("-")
    px = _pixels(name)
    ink = np.any(px != WHITE, axis=-1)  # [64, 64]
    assert (px[ink] == images.OUTLINE_GREY).all() and len(set(images.OUTLINE_GREY)) == 1  # one grey, no hue
    # The ring is the border of the scenes' own shape at this size: every pixel of the filled shape with a
    # neighbour outside it is inked, and nothing farther than two pixels from outside is.
    lo, hi = SIZE_EXTENT[size]
    filled = shape_mask(shape, 64, 0.5, 0.5, (lo + hi) / 2)
    pad = np.pad(filled, 2, constant_values=False)
    near = [np.roll(np.roll(pad, dy, 0), dx, 1)[2:-2, 2:-2] for dy in range(-2, 3) for dx in range(-2, 3)
            if abs(dx) + abs(dy) <= 2]
    border = filled & ~np.logical_and.reduce([np.roll(np.roll(pad, dy, 0), dx, 1)[2:-2, 2:-2]
                                              for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))])
    assert (ink <= filled).all() and (ink >= border).all()
    assert not (ink & np.logical_and.reduce(near)).any()
    assert ink.sum() < 0.6 * filled.sum()  # an outline, not a fill


def test_outlines_match_the_scene_objects_outline_and_sizes() -> None:
    # A rendered solid scene object of the same shape and extent covers exactly the filled shape; the
    # outline is inside it and the large one is larger.
    for shape in SHAPES:
        ext = {z: sum(SIZE_EXTENT[z]) / 2 for z in SIZES}
        for z in SIZES:
            obj = render(Scene("object", "black", shape, "solid", z, 0.5, 0.5, ext[z]), 64)
            ink = np.any(_pixels(f"outline-{shape}-{z}") != WHITE, axis=-1)
            assert (ink <= np.any(obj != WHITE, axis=-1)).all()
        small, large = (np.any(_pixels(f"outline-{shape}-{z}") != WHITE, axis=-1).sum() for z in ("small", "large"))
        assert large > 1.4 * small


def test_drawn_deterministically_at_any_size() -> None:
    for name in OUTLINE_BASES:
        big = images.base_image(name)
        assert big.mode == "RGB" and big.size == (images.DEFAULT_SIZE, images.DEFAULT_SIZE)
        again = images.base_image(name)
        assert np.array_equal(np.asarray(big), np.asarray(again))
        assert set(map(tuple, np.asarray(big).reshape(-1, 3))) == {WHITE, images.OUTLINE_GREY}
    assert len({images.object_digest(n) for n in OUTLINE_BASES}) == len(OUTLINE_BASES)


def test_existing_base_images_keep_their_probe_keys() -> None:
    # Pinned from the code before the outlines existed: stores filled then stay valid.
    before = {"white": "704fc0e17013f4cc95ee00a6a39abb80ad6aa509662ccb8f674a7e84a4dbc680",
              "object-a": "d2780cb51e1f5bd8ad9c8f14c2d3cb065661f3423bd987dafef81932e19b55a1",
              "object-b": "aaa2497c2449d5ef3c6646d3edfd7c546883fd051555edd726536c88134690fc",
              "object-c": "dcb8cdfcffd546427976f092422b6ec1dcd0032efbbf869ef55391d86d5be84e"}
    for base, key in before.items():
        assert Probe(feature=3, strength=2.0, base_image=base).key(FP) == key
    white = Probe(feature=3, strength=2.0)
    assert white.key(FP) == hashlib.sha256(json.dumps({"probe": white.to_dict(), "engine": FP},
                                                      sort_keys=True).encode()).hexdigest()


def test_a_changed_outline_drawing_is_a_new_image(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = Probe(feature=3, strength=2.0, base_image="outline-cross-small")
    before = probe.key(FP)
    images.object_digest.cache_clear()
    monkeypatch.setattr(images, "OUTLINE_GREY", (0, 0, 0))
    try:
        assert probe.key(FP) != before
    finally:
        images.object_digest.cache_clear()


def test_the_engine_steers_on_an_outline(tiny_engine) -> None:
    base, steered = tiny_engine.run([Probe(feature=None, base_image="outline-square-large"),
                                     Probe(feature=1, strength=50.0, base_image="outline-square-large")])
    assert base.texts and steered.kl_first > 0
    assert tiny_engine.hidden_norm("outline-square-large") != pytest.approx(tiny_engine.hidden_norm("white"))


def test_a_judge_may_ask_for_an_outline() -> None:
    from agent.judges.verdicts import ProbeRequest

    req = ProbeRequest(strength=2.0, base_image="outline-triangle-small", reason="colour on a colourless shape")
    assert req.base_image == "outline-triangle-small"
