"""The simulation score: scenes satisfying claims, AUROC, and the simulator on a fake encoder."""

from __future__ import annotations

import pytest

from agent.eval.simulation import Simulator, auroc, scenes_with


def test_auroc_orders_and_ties() -> None:
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    assert auroc([], [1]) == 0.5


def test_scenes_carry_every_claim_and_unions_draw_one_value_each() -> None:
    got = scenes_with(frozenset({("colour", "red"), ("size", "small")}), 30, seed=0)
    assert all(s.kind == "object" and s.colour == "red" and s.size == "small" for s in got)
    assert all(s.extent <= 0.46 for s in got)
    union = scenes_with(frozenset({("colour", "red"), ("colour", "blue")}), 40, seed=0)
    assert {s.colour for s in union} == {"red", "blue"}
    rand = scenes_with(frozenset(), 60, seed=0)
    assert len({s.colour for s in rand if s.colour}) > 3
    assert scenes_with(frozenset({("pattern", "dotted")}), 5, 1) == scenes_with(frozenset({("pattern", "dotted")}), 5, 1)


def test_simulator_separates_a_feature_that_reads_red() -> None:
    torch = pytest.importorskip("torch")

    class Fake(Simulator):
        def _encoder(self):  # feature 0 fires on red scenes, feature 1 on nothing in particular
            return lambda ss: torch.tensor([[float(s.colour == "red"), 0.0] for s in ss])

    sim = Fake(engine=None, n=20)
    assert sim(0, frozenset({("colour", "red")})) > 0.9
    assert sim(0, frozenset({("colour", "blue")})) < 0.5
    assert sim(1, frozenset({("colour", "red")})) == 0.5
    assert sim(0, frozenset()) == 0.5
