"""The simulation in each feature's own scene-kind mix (issue 29): claimed scenes drawn in the mix unless the
claims fix the kind, standard random negatives, codes shared by rounded mix, and the truth's AUROC."""

from __future__ import annotations

import pytest

from agent.eval.simulation import (N_SCENES, TRUTH_AUROC_GATE, Simulator, forced_kind, random_scenes, rounded_mix,
                                   scenes_with, truth_auroc)

RED = frozenset({("colour", "red")})


def kinds(scene_list: list) -> set[str]:
    return {s.kind for s in scene_list}


def test_positives_follow_the_mix_and_ignore_empty_scenes() -> None:
    assert kinds(scenes_with(RED, 40, 0, mix={"field": 1.0, "object": 0.0, "empty": 0.0})) == {"field"}
    assert kinds(scenes_with(RED, 40, 0, mix={"field": 0.0, "object": 0.6, "empty": 0.4})) == {"object"}
    quarter = scenes_with(RED, 400, 0, mix={"field": 0.6, "object": 0.2, "empty": 0.2})  # 1/4 objects
    share = sum(s.kind == "object" for s in quarter) / len(quarter)
    assert 0.15 < share < 0.35 and all(s.colour == "red" for s in quarter)


def test_claims_that_fix_the_kind_override_the_mix() -> None:
    fields = {"field": 1.0, "object": 0.0}
    assert kinds(scenes_with(RED | {("kind", "object")}, 30, 0, mix=fields)) == {"object"}
    assert kinds(scenes_with(frozenset({("shape", "cross")}), 30, 0, mix=fields)) == {"object"}
    got = scenes_with(RED | {("kind", "field")}, 30, 0, mix={"object": 1.0})
    assert kinds(got) == {"field"} and {s.colour for s in got} == {"red"}
    assert forced_kind({("kind", "field"), ("kind", "object")}) is None  # both kinds: a union, drawn in the mix
    assert forced_kind({("kind", "field"), ("size", "small")}) == "object"


def test_negatives_are_the_worlds_standard_draw() -> None:
    neg = random_scenes(200, 0)
    assert kinds(neg) == {"object", "field", "empty"} and neg == random_scenes(200, 0)


def test_mixes_round_to_eighths() -> None:
    assert rounded_mix({"field": 0.97, "object": 0.03}) == {"object": 0.0, "field": 1.0}
    assert rounded_mix({"field": 0.3, "object": 0.3, "empty": 0.4}) == {"object": 0.5, "field": 0.5}
    assert rounded_mix(None) is None


class _Fake(Simulator):
    """Feature 0 fires on red fields only; every encode is counted."""

    calls = 0

    def _encoder(self):
        torch = pytest.importorskip("torch")

        def encode(ss):
            self.calls += 1
            return torch.tensor([[float(s.kind == "field" and s.colour == "red"), 0.0] for s in ss])

        return encode


def test_simulator_scores_a_field_feature_in_its_own_mix() -> None:
    mixes = {0: {"field": 1.0, "object": 0.0, "empty": 0.0}, 1: {"field": 0.97, "object": 0.03, "empty": 0.0}}
    own = _Fake(engine=None, mix_of=mixes.get)
    default = _Fake(engine=None)
    assert own.n == N_SCENES >= 64
    assert own(0, RED) > 0.9 > default(0, RED)  # default mix: 60% of the red scenes are objects
    assert own(1, RED) == 0.5 and own(0, frozenset()) == 0.5
    assert own.calls == 2  # one encode for red in eighths 8/8 (features 0 and 1), one for the negatives
    own(0, RED | {("shape", "cross")})
    own(1, RED | {("shape", "cross")})
    assert own.calls == 3  # a claim set that fixes the kind is encoded once whatever the mix


def test_truth_auroc_averages_the_true_claims_and_gates_them() -> None:
    truth = {0: {"claims": [["colour", "red"]]}, 1: {"claims": [["shape", "cross"]]},
             2: {"family": None, "value": None, "shares": {}}}
    seen = []

    def sim(f: int, claims: frozenset) -> float:
        seen.append((f, claims))
        return {0: 0.9, 1: 0.7}[f]

    r = truth_auroc(sim, truth, [0, 1, 2])
    assert r["n"] == 2 and r["mean"] == pytest.approx(0.8) and r["met"] is False and r["gate"] == TRUTH_AUROC_GATE
    assert r["per_feature"] == [{"feature": 0, "auroc": 0.9}, {"feature": 1, "auroc": 0.7}]
    assert seen == [(0, frozenset({("colour", "red")})), (1, frozenset({("shape", "cross")}))]
    assert truth_auroc(sim, truth, [0])["met"] is True and truth_auroc(sim, truth, [2])["mean"] is None
