"""The causal truth: claims a feature's steering adds on neutral images beyond same-norm random directions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.eval.causal import (CAUSAL_BASES, CAUSAL_MULTIPLES, CausalTruth, causal_f1, causal_probes,
                               causal_truth)
from agent.probes import Probe, ProbeResult
from steering import toy

NORM = 10.0
OWN = "a small black dotted triangle."
"""What the fake model says of every outline unsteered."""
EMPTY = "nothing, the image is empty and white."

Say = Callable[[Probe, float], str]


class Scripted:
    """A run_probes that answers each probe from a script: ``feature(probe, multiple)`` for steered probes,
    ``random(probe, multiple)`` for random directions; base images answer their own caption."""

    def __init__(self, feature: Say, random: Say | None = None) -> None:
        self.feature, self.random = feature, random or (lambda p, m: EMPTY)
        self.calls: list[list[Probe]] = []

    def __call__(self, probes: list[Probe]) -> list[ProbeResult]:
        self.calls.append(list(probes))
        out = []
        for p in probes:
            if p.is_baseline:
                text = EMPTY if p.base_image == "white" else OWN
            else:
                say = self.random if p.direction == "random" else self.feature
                text = say(p, round(p.strength / NORM, 4))
            out.append(ProbeResult(probe=p, texts=(text,)))
        return out


def test_a_claim_the_feature_adds_beyond_random_directions_is_causal() -> None:
    run = Scripted(lambda p, m: "a large red solid circle.", lambda p, m: "a small blue dotted circle.")
    truth = causal_truth(run, [5], NORM)
    # circle: the random directions name it on every image as often as the feature does
    assert truth.claims[5] == {("colour", "red"), ("size", "large"), ("pattern", "solid")}
    assert truth.shares[5][("shape", "circle")].feature == 1.0 and truth.shares[5][("shape", "circle")].random == 1.0
    assert len(run.calls) == 1  # one batch, so the eval cache sees every probe at once


def test_a_claim_the_base_image_names_itself_does_not_count_there() -> None:
    # The feature says the outline's own caption on the outlines and "triangle" nowhere else: it adds nothing.
    run = Scripted(lambda p, m: EMPTY if p.base_image == "white" else OWN)
    truth = causal_truth(run, [5], NORM)
    assert truth.claims[5] == frozenset() and truth.scored([5]) == []
    # Where "triangle" is new (a base whose caption lacks it), it counts.
    run = Scripted(lambda p, m: "a small black dotted triangle.")
    truth = causal_truth(run, [5], NORM)
    assert ("shape", "triangle") in truth.claims[5]
    assert truth.shares[5][("shape", "triangle")].cells == len(CAUSAL_MULTIPLES)  # white only


def test_a_claim_named_at_one_strength_in_three_is_not_causal_but_two_in_three_is() -> None:
    def feature(p: Probe, m: float) -> str:
        words = ["a"] + (["green"] if m >= 2 else []) + (["striped"] if m >= 3 else []) + ["square."]
        return " ".join(words)
    truth = causal_truth(Scripted(feature), [5], NORM)
    green, striped = truth.shares[5][("colour", "green")], truth.shares[5][("pattern", "striped")]
    assert round(striped.feature, 3) == 0.333 and round(green.feature, 3) == 0.667
    assert ("colour", "green") in truth.claims[5] and ("pattern", "striped") not in truth.claims[5]


def test_the_margin_over_random_directions_decides() -> None:
    def random_naming(k: int) -> Say:  # random direction i names green when i < k
        return lambda p, m: "a green square." if p.seed < k else "a blue square."
    feature = Scripted(lambda p, m: "a green circle.").feature
    often = causal_truth(Scripted(feature, random_naming(5)), [5], NORM)  # 1 - 5/8 = 0.375 >= 0.25
    always = causal_truth(Scripted(feature, random_naming(7)), [5], NORM)  # 1 - 7/8 = 0.125 < 0.25
    assert ("colour", "green") in often.claims[5]
    assert ("colour", "green") not in always.claims[5]
    assert always.shares[5][("colour", "green")].random == pytest.approx(7 / 8)


def test_probes_per_feature_and_shared_random_directions() -> None:
    one, two = causal_probes([3], NORM), causal_probes([3, 9], NORM)
    cells = len(CAUSAL_BASES) * len(CAUSAL_MULTIPLES)
    assert len(one.steered) == cells and len(two.steered) == 2 * cells
    assert len(one.random) == 8 * cells and one.random == two.random  # the controls do not depend on the feature
    assert {p.base_image for p in one.baselines} == set(CAUSAL_BASES) and all(p.is_baseline for p in one.baselines)
    assert all(p.direction == "random" and p.feature == 0 for p in one.random)
    assert len({(p.seed, p.base_image, p.strength) for p in one.random}) == len(one.random)  # 8 distinct directions
    # the eval's schedule rounding, so the white cells are its one-shot probes
    odd = causal_probes([3], 7.123456, bases=("white",))
    assert sorted({p.strength for p in odd.steered}) == [7.12, 14.25, 21.37]


def test_causal_f1_scores_a_mode_against_the_causal_claims() -> None:
    red, solid, circle = ("colour", "red"), ("pattern", "solid"), ("shape", "circle")
    causal = CausalTruth(claims={1: frozenset({red, solid}), 2: frozenset({circle}), 3: frozenset()},
                         shares={}, base_claims={}, texts={})
    said = {1: frozenset({red}), 2: frozenset({circle, red})}
    assert causal_f1(said, causal, [1, 2]) == pytest.approx([2 / 3, 2 / 3])
    assert causal_f1({}, causal, [1]) == [0.0]  # a mode that explained nothing
    assert causal.scored([1, 2, 3]) == [1, 2]
    with pytest.raises(ValueError, match="no causal claim"):
        causal_f1(said, causal, [1, 3])


@pytest.mark.slow  # loading the toy model takes most of its 15-30 s on 2 shared cores
@pytest.mark.skipif(not toy.is_available(), reason="toy world not built (python -m steering.toy.build)")
def test_on_the_toy_world_a_colour_feature_causes_its_colour() -> None:
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    engine = SteeringEngine(load_vlm(toy.model_dir()), load_sae(toy.sae_dir()),
                            settings=GenerationSettings(max_new_tokens=24))
    norm = float(engine.hidden_norm("white"))
    # Feature 18 steers "red checkered pattern filling the whole image" on white and on the outlines.
    truth = causal_truth(engine.run, [18], norm, bases=("white", "outline-cross-large"))
    assert ("colour", "red") in truth.claims[18]
    red = truth.shares[18][("colour", "red")]
    assert red.feature - red.random >= 0.5 and red.cells == 6
