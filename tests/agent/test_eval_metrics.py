"""Evaluation metrics: Wilson intervals, hits by words, the permutation control, summaries."""

from __future__ import annotations

import pytest

from agent.eval.metrics import (
    Rate,
    Scored,
    derangement,
    expected_permuted,
    false_claims,
    rate,
    summarize,
    wilson,
    word_hit,
)


@pytest.mark.parametrize(("hits", "n", "lo", "hi"), [
    # Reference values of the Wilson score interval at 95% (z = 1.96).
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (5, 10, 0.2366, 0.7634),
    (81, 100, 0.7222, 0.8749),
    (1, 3, 0.0615, 0.7923),
])
def test_wilson_matches_reference_values(hits: int, n: int, lo: float, hi: float) -> None:
    got = wilson(hits, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_is_inside_unit_interval_and_contains_the_estimate() -> None:
    for n in (1, 2, 7, 50, 333):
        for h in range(n + 1):
            lo, hi = wilson(h, n)
            assert 0.0 <= lo <= h / n <= hi <= 1.0
            assert hi - lo > 0


def test_wilson_edge_cases() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(4, 3)


def test_rate_skips_unknown_outcomes_and_formats() -> None:
    r = rate([True, False, None, True])
    assert (r.hits, r.n) == (2, 3)
    assert r.fmt().startswith("67% [")
    assert r.fmt().endswith("(2/3)")
    assert Rate(0, 0, 0.0, 1.0).fmt() == "n/a"
    d = r.to_dict()
    assert d["rate"] == pytest.approx(2 / 3, abs=1e-6) and d["lo"] < d["rate"] < d["hi"]


def test_word_hit_uses_synonyms_and_refuses_rival_values() -> None:
    rivals = ["red", "orange", "yellow", "green", "blue", "purple", "black"]
    assert word_hit("a small red striped square.", "red", "colour", rivals)
    assert word_hit("the features makes things violet", "purple", "colour", rivals)  # synonym
    assert not word_hit("a reddish glow", "red", "colour", rivals)  # whole words only
    assert not word_hit("red or orange fields", "red", "colour", rivals)  # names a rival too
    assert word_hit("red or orange fields", "red", "colour")  # lenient: rivals not checked
    assert not word_hit(None, "red", "colour", rivals)
    assert not word_hit("", "red", "colour", rivals)
    # A pattern named by its words; a plain colour field counts as solid.
    patterns = ["solid", "striped", "dotted", "checkered"]
    assert word_hit("blue stripes everywhere", "striped", "pattern", patterns)
    assert word_hit("the colour red filling the whole image.", "solid", "pattern", patterns)
    assert not word_hit("a dotted striped thing", "striped", "pattern", patterns)


def test_derangement_has_no_fixed_point_and_is_seeded() -> None:
    items = list(range(3, 40, 2))
    d = derangement(items, seed=1)
    assert sorted(d) == items and sorted(d.values()) == items
    assert all(k != v for k, v in d.items())
    assert derangement(items, seed=1) == d
    assert derangement(items, seed=2) != d
    assert derangement([5], seed=0) == {}
    assert derangement([1, 2], seed=0) == {1: 2, 2: 1}


def test_summarize_per_family() -> None:
    rows = [Scored(1, "colour", "red", "red", True, True, True), Scored(2, "colour", "blue", "x", False, False, None),
            Scored(3, "shape", "circle", "a circle", True, True, False)]
    s = summarize(rows)
    assert s["n"] == 3
    assert (s["word"]["hits"], s["word"]["n"]) == (2, 3)
    assert (s["embedding"]["hits"], s["embedding"]["n"]) == (1, 2)  # None is no outcome
    assert s["by_family"]["colour"]["word"]["hits"] == 1 and s["by_family"]["shape"]["n"] == 1


def test_degenerate_answers() -> None:
    from steering.text import degenerate

    assert degenerate(None) and degenerate("") and degenerate("   ")
    assert degenerate("What" * 40)
    assert degenerate("the the the the the the the the the the")
    assert degenerate("small small small small.") and degenerate("nothing, the whole whole whole whole image")
    assert not degenerate("a large red red square")  # twice is speech, three times is a loop
    assert not degenerate("small black solid triangle.")
    assert not degenerate("the colour red filling the whole image.")
    assert not degenerate("Steering this feature makes the model describe large yellow: these words recur in 5 of 6.")


FAMILIES = {"colour": ["red", "blue", "yellow"], "shape": ["circle", "cross"], "size": ["small", "large"]}


def test_false_claims_checks_other_families_against_the_top_scene_shares() -> None:
    shares = {"colour": {"yellow": 0.75, "red": 0.25}, "shape": {"cross": 0.95}, "size": {"small": 0.45, "large": 0.55}}
    # Yellow is carried by most top scenes: no false claim; small by fewer than half: a false claim.
    assert false_claims("small yellow cross", "shape", shares, FAMILIES) == ["size=small"]
    assert false_claims("large yellow cross", "shape", shares, FAMILIES) == []
    assert false_claims("red cross", "shape", shares, FAMILIES) == ["colour=red"]
    # Values of the truth's own family are the rivals' business (word_hit), not a claim here.
    assert false_claims("circle or cross", "shape", shares, FAMILIES) == []
    assert false_claims(None, "shape", shares, FAMILIES) == []
    assert false_claims("red cross", "shape", None, FAMILIES) is None  # a truth without shares cannot tell


def test_specific_needs_a_hit_and_no_false_claim() -> None:
    rows = [Scored(1, "shape", "cross", "cross", True, True, claims=[]),
            Scored(2, "shape", "cross", "red cross", True, True, claims=["colour=red"]),
            Scored(3, "shape", "cross", "circle", False, False, claims=[])]
    assert [r.specific for r in rows] == [True, False, False]
    s = summarize(rows)
    assert (s["specific"]["hits"], s["specific"]["n"]) == (1, 3)
    assert s["false_claims_mean"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["by_family"]["shape"]["specific"]["hits"] == 1
    assert "specific" not in summarize([Scored(1, "shape", "cross", "cross", True, True)])


def test_expected_permuted_is_the_mean_over_every_other_truth() -> None:
    truth = {1: {"family": "colour", "value": "red"}, 2: {"family": "colour", "value": "blue"},
             3: {"family": "shape", "value": "cross"}}
    # Feature 1's explanation names blue and cross: 2 of the 2 other truths. Feature 2's names
    # nothing of the others. Feature 3's names red: 1 of 2.
    texts = {1: "a blue cross", 2: "a blue circle", 3: "a red circle"}
    assert expected_permuted(texts, [1, 2, 3], truth, FAMILIES) == pytest.approx((1 + 0 + 0.5) / 3, abs=1e-6)
    # A derangement's rate averages to it: over both 3-cycles.
    from agent.eval.metrics import word_hit as hit

    cycles = [{1: 2, 2: 3, 3: 1}, {1: 3, 2: 1, 3: 2}]
    mean = sum(hit(texts[f], truth[g]["value"], truth[g]["family"],
                   [v for v in FAMILIES[truth[g]["family"]] if v != truth[g]["value"]])
               for c in cycles for f, g in c.items()) / 6
    assert expected_permuted(texts, [1, 2, 3], truth, FAMILIES) == pytest.approx(mean, abs=1e-6)
    assert expected_permuted(texts, [1], truth, FAMILIES) is None
