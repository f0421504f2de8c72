"""The benchmark: split, baselines tuned on dev, floors, diffs and gates on synthetic texts."""

from __future__ import annotations

from agent.eval.bench import (
    Bench,
    constant_claims,
    rule_calibrate,
    rule_lowest,
    rule_majority,
    run_bench,
)
from steering.toy.gates import Sweep, gates, split

COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "black"]
CAPTION = "The highlighted element is nothing, the image is empty and white."


def _truth() -> dict[int, dict]:
    t = {f: {"family": "colour", "value": COLOURS[f % 7], "purity": 1.0} for f in range(28)}
    for f in range(28, 40):
        t[f] = {"claims": [["colour", COLOURS[f % 7]], ["pattern", "dotted"]], "kind": "union"}
    for f in range(40, 44):  # conjunctions: one meaning with two claims, not polysemantic
        t[f] = {"claims": [["colour", COLOURS[f % 7]], ["pattern", "dotted"]], "kind": "conjunction"}
    return t


def _sweep(truth: dict[int, dict]) -> Sweep:
    # Weak at 1, right at 2, saturated (always "black") at 4.
    low = {f: CAPTION for f in truth}
    mid = {f: f"a {truth[f].get('value') or truth[f]['claims'][0][1]} thing" for f in truth}
    high = {f: "a large black striped square" for f in truth}
    return Sweep([1.0, 2.0, 4.0], [low, mid, high], CAPTION)


def test_split_is_stratified_seeded_and_disjoint() -> None:
    truth = _truth()
    s = split(list(truth), truth, seed=3)
    assert set(s["dev"]).isdisjoint(s["test"]) and set(s["dev"]) | set(s["test"]) == set(truth)
    assert sum(28 <= f < 40 for f in s["test"]) == 6  # half of the 12 union features
    assert s == split(list(truth), truth, seed=3)
    assert s != split(list(truth), truth, seed=4)


def test_rules_read_the_sweep() -> None:
    truth = _truth()
    sw = _sweep(truth)
    assert rule_lowest(sw, 2) == {("colour", "yellow")}
    assert rule_majority(sw, 2) == frozenset()  # no claim at more than half of 3 strengths


def test_bench_tunes_on_dev_and_reports_losing_agent() -> None:
    truth = _truth()
    sw = _sweep(truth)
    agent = {f: "a large black striped square" for f in truth}  # saturated text: mostly wrong
    b = Bench(truth, split(list(truth), truth), sw, {"agent": agent, "agent_r1": agent,
                                                    "topk": {f: "" for f in truth}})
    out = run_bench(b, "test")
    assert out["chosen_on_dev"]["oneshot_strength"] == 2.0
    assert out["modes"]["oneshot"]["f1"]["mean"] > out["modes"]["agent"]["f1"]["mean"]
    assert out["modes"]["topk"]["applicable"] is False
    assert out["modes"]["oracle"]["f1"]["mean"] >= out["modes"]["oneshot"]["f1"]["mean"]
    d = out["diffs"]["agent_vs_best_baseline"]
    assert d["f1"]["verdict"] == "loses" and d["baseline"] in ("oneshot", "rule_lowest")
    assert set(out["floors"]) == {"constant", "permuted", "caption"}
    assert out["floors"]["caption"]["f1"]["mean"] == 0.0


def test_constant_floor_is_chosen_on_dev_only() -> None:
    truth = {f: {"family": "colour", "value": "red" if f < 10 else "blue"} for f in range(20)}
    b = Bench(truth, {"dev": list(range(10)), "test": list(range(10, 20))}, Sweep([], []), {})
    assert constant_claims(b) == {("colour", "red")}


def test_gates_measure_saturation_onsets_and_polysemantic_recovery() -> None:
    truth = _truth()
    sw = _sweep(truth)
    b = Bench(truth, split(list(truth), truth), sw, {})
    fs = sorted(truth)
    oneshot = {f: frozenset({("colour", COLOURS[f % 7])}) for f in fs}
    oneshot |= {f: b.true(f) for f in range(40, 44)}  # conjunctions named in full
    g = gates(truth, sw, fs, oneshot, {f: "small small small small small small small small" for f in fs})
    assert g["oracle_hit"] == 1.0 and g["best_global_strength_hit"] == 1.0
    assert g["onset_spread"] == 1.0
    assert g["degenerate_at_4x_onset"] == 1.0
    assert g["polysemantic_oneshot_both"] == 0.0 and g["n_polysemantic"] == 12
    assert g["met"]["oracle_hit"] is True and g["met"]["onset_spread"] is False


def test_calibrate_rule_reads_the_strength_nearest_a_kl_target_chosen_on_dev() -> None:
    truth = _truth()
    sw = _sweep(truth)
    # KL grows with strength; the right description (strength 2) sits at KL 1 for every feature.
    sw.kl = [{f: 0.05 for f in truth}, {f: 1.0 for f in truth}, {f: 6.0 for f in truth}]
    assert rule_calibrate(sw, 3, 1.0) == {("colour", "green")}
    assert rule_calibrate(sw, 3, 8.0) == {("colour", "black"), ("size", "large"), ("pattern", "striped"),
                                          ("shape", "square"), ("kind", "object")}
    assert rule_calibrate(sw, 3, 0.03) == frozenset()  # the unsteered caption's claims are dropped
    b = Bench(truth, split(list(truth), truth), sw, {"agent": {f: "" for f in truth}})
    out = run_bench(b, "test")
    assert out["chosen_on_dev"]["calibrate_kl_target"] in (0.3, 1.0, 2.0)
    assert out["modes"]["rule_calibrate"]["f1"]["mean"] == out["modes"]["oneshot"]["f1"]["mean"]
    assert "agent_vs_rule_calibrate" in out["diffs"]


def _padded() -> tuple[dict[int, dict], Sweep, dict[int, str], dict[int, str]]:
    """Truth, a sweep whose one-shot text names the value among three made-up claims, those texts, and
    texts that name exactly the value."""
    truth = _truth()
    named = {f: truth[f].get("value") or truth[f]["claims"][0][1] for f in truth}
    padded = {f: f"a large {named[f]} striped square" for f in truth}
    sweep = Sweep([1.0, 2.0], [{f: CAPTION for f in truth}, padded], CAPTION)
    return truth, sweep, padded, {f: f"a {named[f]} thing" for f in truth}


def test_agent_bar_needs_the_margin_from_follow_ups_and_reports_the_truths_auroc() -> None:
    # One-shot pads the value; the agent's follow-ups keep only the value.
    truth, sweep, padded, exact = _padded()
    truth_auroc = lambda f, claims: 1.0 if claims == b.true(f) else 0.6  # noqa: E731
    b = Bench(truth, split(list(truth), truth), sweep, {"agent": exact, "agent_r1": padded}, truth_auroc)
    out = run_bench(b, "test")
    bar = out["agent_bar"]
    assert bar["margin"]["met"] and bar["margin"]["value"] >= 0.10 and bar["margin"]["baseline"] == "oneshot"
    assert bar["round1_margin"]["met"] and abs(bar["round1_margin"]["value"]) < 1e-9
    assert out["modes"]["truth"]["f1"]["mean"] == 1.0 and bar["auroc"]["truth"] == 1.0
    assert bar["auroc"]["value"] < 1.0 and not bar["auroc"]["met"]  # union features: the agent names one claim
    worst = max(v["f1"]["mean"] for v in out["floors"].values())
    assert bar["floors"]["value"] == worst and bar["floors"]["met"] == (worst <= 0.15)
    assert bar["met"] is False
    # The same texts from the first round alone: the gain is not the follow-ups', so that line fails.
    b1 = Bench(truth, split(list(truth), truth), sweep, {"agent": exact, "agent_r1": exact}, truth_auroc)
    assert run_bench(b1, "test")["agent_bar"]["round1_margin"]["met"] is False


def test_the_agent_reading_images_is_compared_with_the_image_modes_too() -> None:
    truth, sweep, padded, exact = _padded()
    # Top-k names each value exactly, so it, not one-shot, is the baseline the image-reading agent must beat.
    b = Bench(truth, split(list(truth), truth), sweep, {"agent": padded, "agent_images": exact, "topk": exact})
    out = run_bench(b, "test")
    d = out["diffs"]["agent_images_vs_best_baseline"]
    assert d["baseline"] == "topk" and abs(d["f1"]["mean"]) < 1e-9
    assert out["diffs"]["agent_images_vs_agent"]["f1"]["verdict"] == "wins"
    assert out["diffs"]["agent_vs_best_baseline"]["baseline"] == "oneshot"  # the plain agent's baselines exclude images
