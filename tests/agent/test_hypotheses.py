"""The offline judge's hypothesis tests (agent.judges.hypotheses): which values the render tests support, the
words they are said in, and the three rounds the judge plays with them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent.judges import hypotheses as H
from agent.judges.base import JudgeContext
from agent.judges.evidence import Evidence
from agent.judges.offline import OfflineJudge
from steering.activation_tests import RENDER_FAMILIES, ActivationTest, ActivationTestResult, family_values
from steering.toy.claims import parse_claims


def result(family: str, best: dict[str, tuple[float, float]], hold: tuple[tuple[str, str], ...] = (),
           peak: float = 5.0, feature: int = 3) -> ActivationTestResult:
    """A render result where ``best`` gives (top share, wins) of some values; the rest get nothing."""
    values = family_values(family)
    return ActivationTestResult(
        test=ActivationTest(feature, "render", family, hold=hold),
        values={v: (4.0 if v in best else 0.1) for v in values},
        top_share={v: best.get(v, (0.0, 0.0))[0] for v in values},
        wins={v: best.get(v, (0.0, 0.0))[1] for v in values},
        n_images=100, n_top=20, peak=peak)


def open_tests(**best: dict[str, tuple[float, float]]) -> dict[str, ActivationTestResult]:
    return {f: result(f, best.get(f, {})) for f in RENDER_FAMILIES}


RULE = H.TestRule()


def test_a_value_is_claimed_when_it_fills_the_top_scenes_and_wins_the_paired_scenes() -> None:
    reading = H.TestReading(open=open_tests(colour={"red": (0.95, 1.0)}, pattern={"striped": (0.9, 0.95)},
                                            kind={"field": (1.0, 1.0)}), held={}, anchor=None, items=[])
    assert H.claims(reading, RULE) == [("colour", "red"), ("pattern", "striped"), ("kind", "field")]
    # fills the top scenes but loses the paired comparison (another value wins the bases): not claimed
    weak = H.TestReading(open=open_tests(colour={"red": (0.95, 0.5)}), held={}, anchor=None, items=[])
    assert H.claims(weak, RULE) == []


def test_a_held_value_counts_only_in_the_families_the_rule_holds_and_a_silent_test_says_nothing() -> None:
    held = {"size": result("size", {"small": (0.8, 0.9)}, hold=(("colour", "red"),)),
            "pattern": result("pattern", {"dotted": (0.9, 0.9)}, hold=(("colour", "red"),))}
    reading = H.TestReading(open=open_tests(colour={"red": (0.9, 1.0)}), held=held, anchor=("colour", "red"),
                            items=[])
    assert H.claims(reading, RULE) == [("colour", "red"), ("size", "small")]  # pattern is not a held family
    silent = H.TestReading(open={f: result(f, {"red": (1.0, 1.0)} if f == "colour" else {}, peak=0.0)
                                 for f in RENDER_FAMILIES}, held={}, anchor=None, items=[])
    assert silent.silent and H.claims(silent, RULE) == []


def test_the_anchor_is_the_strongest_value_outside_the_kind_family() -> None:
    tests = open_tests(colour={"red": (0.6, 0.7)}, pattern={"striped": (0.9, 1.0)}, kind={"field": (1.0, 1.0)})
    assert H.strongest(tests) == ("pattern", "striped")
    assert H.steering_anchor("Steering makes the model describe big stripes filling the whole image") == \
        ("size", "large")
    assert H.steering_claims("purple checks, purple") == [("colour", "purple"), ("pattern", "checkered")]


@pytest.mark.parametrize("claims", [
    [("colour", "red")],
    [("colour", "red"), ("pattern", "striped"), ("kind", "field")],
    [("size", "large"), ("colour", "blue"), ("shape", "circle"), ("kind", "object")],
    [("colour", "green"), ("shape", "cross"), ("shape", "triangle"), ("kind", "object")],
    [("colour", "orange"), ("colour", "purple")],
    [("pattern", "solid"), ("kind", "field")],
    [("pattern", "dotted"), ("kind", "object")],
])
def test_the_words_say_exactly_the_claims(claims: list[tuple[str, str]]) -> None:
    """The benchmark's parser reads back what the judge meant (naming a shape or a size names an object)."""
    said = parse_claims(f"This feature fires on {H.phrase(claims)}.")
    assert said == frozenset(claims)


def ctx(evidence: Evidence, rnd: int, tests: list[str] | None = None, max_rounds: int = 4) -> JudgeContext:
    return JudgeContext(feature=3, round=rnd, max_rounds=max_rounds, evidence=evidence,
                        world={"tests": ["render"] if tests is None else tests, "tests_left": 16})


def decide(evidence: Evidence, rnd: int, **kw: Any) -> Any:
    return asyncio.run(OfflineJudge().decide(ctx(evidence, rnd, **kw))).verdict


def test_the_offline_judge_opens_every_family_then_holds_the_anchor_for_size_then_concludes() -> None:
    ev = Evidence()
    first = decide(ev, 1)
    assert first.action == "probe" and not first.probes
    assert [(t.kind, t.family, t.hold) for t in first.tests] == [("render", f, []) for f in RENDER_FAMILIES]
    opened = open_tests(colour={"blue": (1.0, 1.0)}, pattern={"solid": (0.8, 1.0)}, kind={"object": (1.0, 1.0)})
    ids = ev.add_tests(list(opened.values()), round=2)
    second = decide(ev, 2)
    assert second.action == "probe"
    assert [(t.family, t.hold) for t in second.tests] == [("size", [("colour", "blue")])]
    ev.add_tests([result("shape", {}, hold=(("colour", "blue"),)),
                  result("size", {"large": (0.9, 0.8)}, hold=(("colour", "blue"),))], round=3)
    final = decide(ev, 3)
    assert final.action == "final"
    assert parse_claims(final.explanation) == {("colour", "blue"), ("pattern", "solid"), ("kind", "object"),
                                               ("size", "large")}
    assert set(final.label.split()) >= {"large", "blue", "solid"}
    assert set(final.evidence) <= ev.ids and ids[0] in final.evidence


def test_without_render_tests_or_rounds_the_judge_answers_from_steering_alone() -> None:
    assert decide(Evidence(), 1, tests=[]).tests == []
    one_round = decide(Evidence(), 1, max_rounds=1)
    assert one_round.action == "final" and one_round.tests == []
