"""Claim parsing and claim-level scores, clustered bootstrap CIs."""

from __future__ import annotations

import pytest

from steering.toy.claims import cluster_key, parse_claims, score_claims, score_text, truth_claims
from agent.eval.stats import cluster_ci, paired_diff


def test_parse_claims_reads_values_and_synonyms() -> None:
    assert parse_claims("The highlighted element is a large yellow striped circle.") == {
        ("size", "large"), ("colour", "yellow"), ("pattern", "striped"), ("shape", "circle"), ("kind", "object")}
    assert parse_claims("mentions of violet polka dots") == {("colour", "purple"), ("pattern", "dotted")}
    assert parse_claims("The highlighted element is the colour red filling the whole image.") == {
        ("colour", "red"), ("pattern", "solid"), ("kind", "field")}
    assert parse_claims("The highlighted element is nothing, the image is empty and white.") == frozenset()
    assert parse_claims(None) == frozenset()


def test_truth_claims_keeps_every_pure_family() -> None:
    t = {"family": "colour", "value": "yellow", "purity": 1.0,
         "shares": {"colour": {"yellow": 1.0}, "pattern": {"striped": 1.0}, "shape": {"circle": 0.5, "cross": 0.5}}}
    assert truth_claims(t) == {("colour", "yellow"), ("pattern", "striped")}
    assert truth_claims({"family": "shape", "value": "cross"}) == {("shape", "cross")}
    assert truth_claims({"claims": [["colour", "red"], ["shape", "circle"]]}) == {("colour", "red"), ("shape", "circle")}
    assert cluster_key(t) == "colour=yellow+pattern=striped"


def test_scores_punish_extra_claims_and_reward_both_meanings() -> None:
    t = {"shares": {"colour": {"yellow": 1.0}, "pattern": {"striped": 1.0}}}
    both = score_text("yellow stripes", t)
    assert (both.precision, both.recall, both.f1, both.exact) == (1.0, 1.0, 1.0, 1.0)
    # "orange striped" is half right, no longer all wrong.
    half = score_text("orange striped", t)
    assert half.precision == 0.5 and half.recall == 0.5 and half.exact == 0.0
    verbose = score_text("a large yellow striped triangle", t)
    assert verbose.recall == 1.0 and verbose.precision == 0.5 and verbose.f1 == pytest.approx(2 / 3)
    assert score_claims(frozenset(), frozenset({("colour", "red")})).f1 == 0.0


def test_cluster_ci_covers_the_mean_and_widens_with_clusters() -> None:
    vals = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    one_cluster_each = cluster_ci(vals, [str(i) for i in range(6)], seed=1)
    assert one_cluster_each["mean"] == 0.5
    lo, hi = one_cluster_each["ci"]
    assert lo < 0.5 < hi
    # Features sharing a value move together: two clusters of identical outcomes give a wider interval.
    clustered = cluster_ci(vals, ["a", "a", "b", "b", "a", "b"], seed=1)
    assert clustered["ci"][1] - clustered["ci"][0] >= hi - lo
    assert cluster_ci([0.3] * 4, list("abcd"))["ci"] == [0.3, 0.3]


def test_paired_diff_says_when_the_first_loses() -> None:
    a, b = [0.0] * 10, [1.0] * 10
    d = paired_diff(a, b, [str(i % 5) for i in range(10)])
    assert d["mean"] == -1.0 and d["losses"] == 10 and d["verdict"] == "loses"
    assert paired_diff(b, a, list("abcdeabcde"))["verdict"] == "wins"
    mixed = paired_diff([1, 0, 1, 0], [0, 1, 0, 1], list("abcd"))
    assert mixed["verdict"] == "no clear difference"
