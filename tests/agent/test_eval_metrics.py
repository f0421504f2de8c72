"""Evaluation metrics: Wilson intervals, hits by words, the permutation control, summaries."""

from __future__ import annotations

import pytest

from agent.eval.metrics import (
    Rate,
    Scored,
    derangement,
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
    from agent.eval.metrics import degenerate

    assert degenerate(None) and degenerate("") and degenerate("   ")
    assert degenerate("What" * 40)
    assert degenerate("the the the the the the the the the the")
    assert not degenerate("small black solid triangle.")
    assert not degenerate("the colour red filling the whole image.")
    assert not degenerate("Steering this feature makes the model describe large yellow: these words recur in 5 of 6.")
