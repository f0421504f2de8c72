"""The benchmark, version 3 (issue 29): every no-follow-up method as a baseline, pooled planted seeds, recall by
family, error reduction, floors as skill, causal F1, the truth-AUROC gate."""

from __future__ import annotations

import argparse

import pytest

from agent.cli.eval import parse_seeds
from agent.eval.bench import POOL_STRIDE, Bench, error_reduction, pool, run_bench, skill
from steering.toy.claims import truth_claims
from steering.toy.gates import Sweep, split

from tests.agent.test_eval_bench import CAPTION, _sweep, _truth


def _bench(agent: str = "a {v} thing", hybrid: str | None = None, claims: dict | None = None) -> Bench:
    truth = _truth()
    texts = {"agent": {f: agent.format(v=_value(truth, f)) for f in truth}}
    if hybrid is not None:
        texts["hybrid"] = {f: hybrid.format(v=_value(truth, f)) for f in truth}
    return Bench(truth, split(list(truth), truth), _sweep(truth), texts, claims=claims or {})


def _value(truth: dict, f: int) -> str:
    return truth[f].get("value") or truth[f]["claims"][0][1]


def test_the_best_no_follow_up_method_includes_the_hybrid_and_the_claim_filter() -> None:
    # The hybrid names each feature's colour and its pattern: better than one-shot on the two-claim features.
    truth = _truth()
    both = {f: " ".join(v for _, v in sorted(truth[f].get("claims") or [["colour", truth[f]["value"]]]))
            for f in truth}
    b = _bench(agent="a {v} thing")
    b.texts["hybrid"] = {f: f"a {both[f]} thing" for f in truth}
    out = run_bench(b, "test")
    d = out["diffs"]["agent_vs_best_nonadaptive"]
    assert d["baseline"] == "hybrid" and d["f1"]["best"] == "hybrid"
    assert out["diffs"]["agent_vs_best_baseline"]["baseline"] == "oneshot"  # kept for continuity
    assert d["f1"]["mean"] < 0 and d["f1"]["verdict"] == "loses"
    # a claim filter given as claims (no texts) is a baseline too, and wins when it is exact
    exact = {f: frozenset(tuple(c) for c in (truth[f].get("claims") or [["colour", truth[f]["value"]]]))
             for f in truth}
    b2 = _bench(agent="a {v} thing", claims={"filter": exact})
    assert run_bench(b2, "test")["diffs"]["agent_vs_best_nonadaptive"]["baseline"] == "filter"


def test_error_reduction_and_skill() -> None:
    assert error_reduction(0.8, 0.6) == pytest.approx(0.5)
    assert error_reduction(0.5, 0.6) == pytest.approx(-0.25)
    assert error_reduction(0.9, 1.0) is None
    assert skill(0.5, 0.5) == 0.0 and skill(None, 0.3) is None
    out = run_bench(_bench(), "test")
    floors = out["floors"]
    assert floors["constant"]["skill"] == 0.0
    c = floors["constant"]["f1"]["mean"]
    assert floors["caption"]["skill"] == pytest.approx((floors["caption"]["f1"]["mean"] - c) / (1 - c), abs=1e-6)
    best = out["chosen_on_dev"]["best_nonadaptive"]
    base = out["modes"][best]["f1"]["mean"]
    agent = out["modes"]["agent"]["f1"]["mean"]
    assert out["modes"]["agent"]["error_reduction"] == pytest.approx((agent - base) / (1 - base), abs=1e-6)


def test_recall_by_family_counts_each_true_claim_of_the_family() -> None:
    out = run_bench(_bench(agent="a {v} thing"), "test")
    rec = out["modes"]["agent"]["recall_by_family"]
    assert rec["colour"]["recall"] == 1.0  # every colour is named
    assert rec["pattern"]["recall"] == 0.0 and rec["pattern"]["n"] > 0  # "dotted" never is


def test_causal_f1_is_reported_only_with_a_causal_truth() -> None:
    b = _bench()
    assert "causal_f1" not in run_bench(b, "test")["modes"]["agent"]
    b.causal = {f: frozenset({("colour", "red")}) for f in b.truth}
    out = run_bench(b, "test")["modes"]
    red = [f for f in b.splits["test"] if _value(b.truth, f) == "red"]
    assert out["agent"]["causal_f1"]["mean"] == pytest.approx(len(red) / len(b.splits["test"]), abs=1e-6)


def test_the_truth_auroc_gate() -> None:
    b = _bench()
    b.auroc = lambda f, claims: 0.9 if claims == b.true(f) else 0.6
    g = run_bench(b, "test")["gates"]["truth_auroc"]
    assert g == {"value": pytest.approx(0.9), "bar": 0.85, "met": True}
    b.auroc = lambda f, claims: 0.8
    assert run_bench(b, "test")["gates"]["truth_auroc"]["met"] is False


def test_pooled_seeds_renumber_keep_splits_and_cluster_within_a_seed() -> None:
    one, two = _bench(), _bench(agent="a black thing")
    pooled, _ = pool({0: one, 3: two})
    assert len(pooled.truth) == 2 * len(one.truth)
    assert pooled.splits["test"] == sorted(one.splits["test"] + [3 * POOL_STRIDE + f for f in two.splits["test"]])
    assert pooled.key(5) != pooled.key(3 * POOL_STRIDE + 5) and pooled.key(5).startswith("seed0|")
    out = run_bench(pooled, "test")
    assert out["n"] == len(one.splits["test"]) * 2
    # the pooled agent is the mean of the two seeds' agents
    a0 = run_bench(one, "test")["modes"]["agent"]["f1"]["mean"]
    a1 = run_bench(two, "test")["modes"]["agent"]["f1"]["mean"]
    assert out["modes"]["agent"]["f1"]["mean"] == pytest.approx((a0 + a1) / 2, abs=1e-6)
    other = Bench(one.truth, one.splits, Sweep([9.0, 2.0, 4.0], one.sweep.texts, CAPTION), one.texts)
    with pytest.raises(ValueError, match="other strengths"):
        pool({0: one, 1: other})


def test_planted_seed_lists_and_ranges() -> None:
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("1,5,9") == (1, 5, 9)
    assert parse_seeds("3") == (3,)
    for bad in ("a", "4-2", "-1", "0-99"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_seeds(bad)


def test_pooled_planted_seeds_from_the_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    """`eval --planted-seed 0-2`: each seed evaluated and reported in DIR/seed-N, one pooled benchmark in DIR
    (the evaluation itself faked: its loop over seeds and the pooling are what is tested)."""
    import json
    from types import SimpleNamespace

    import agent.cli.eval as cli
    from agent.cli.main import main

    ran: list[str] = []

    def fake_use_planted(args, seed):
        args.sae = f"/cache/planted/seed-{seed}"
        ran.append(args.sae)

    def fake_evaluate_once(args, cfg):
        b = _bench(agent="a {v} thing" if args.sae.endswith("0") else "a black thing")
        bench = run_bench(b, cfg.split)
        metrics = {"world": {"model": "toy", "sae": args.sae, "layer": 3, "scored": len(b.truth), "excluded": []},
                   "features": {"requested": len(b.truth), "n": len(b.truth)}, "strengths": [1.0, 2.0, 4.0],
                   "hidden_norm": 1.0, "bench": bench, "diffs": bench["diffs"], "modes": {}, "config": {},
                   "digest": "x", "timings": {}}
        return metrics, SimpleNamespace(bench=b, at_4x_onset=None)

    monkeypatch.setattr(cli, "use_planted", fake_use_planted)
    monkeypatch.setattr(cli, "evaluate_once", fake_evaluate_once)
    assert main(["eval", "--planted-seed", "0-2", "--split", "test", "--report", str(tmp_path / "rep"), "--json",
                 "--no-plots"]) == 0
    out, err = capsys.readouterr()
    m = json.loads(out)
    assert ran == [f"/cache/planted/seed-{s}" for s in range(3)]
    assert m["planted_seeds"] == [0, 1, 2] and set(m["per_seed"]) == {"0", "1", "2"}
    single = run_bench(_bench(), "test")["n"]
    assert m["bench"]["n"] == 3 * single and m["bench"]["split"] == "test"
    assert "agent_vs_best_nonadaptive" in m["diffs"] and m["world"]["sae"] == "planted"
    assert all((tmp_path / "rep" / f"seed-{s}" / "report.md").is_file() for s in range(3))
    assert (tmp_path / "rep" / "report.md").is_file()
    assert "test-split figures, for the closing note" in err  # --split test says what test is for
    assert "/cache/planted" not in (tmp_path / "rep" / "report.md").read_text()


def test_naming_only_the_kind_does_not_name_a_feature() -> None:
    """The world's gates and onsets: "filling the whole image" is true of every field feature, so it alone is
    no hit; the colour is."""
    from steering.toy.gates import gates, onsets

    t = {"n_top": 20, "n_active_scenes": 80, "counts": {"colour": {"red": 20}, "kind": {"field": 20}}}
    truth = {0: t}
    assert ("kind", "field") in truth_claims(t)
    field_only = "a blue striped pattern filling the whole image"
    red = "the colour red filling the whole image"
    sweep = Sweep([1.0, 2.0], [{0: field_only}, {0: red}], CAPTION)
    assert onsets(truth, sweep, [0]) == {0: 2.0}
    assert gates(truth, sweep, [0], None)["best_global_strength_hit"] == 1.0
    assert gates(truth, Sweep([1.0], [{0: field_only}], CAPTION), [0], None)["oracle_hit"] == 0.0


def test_tuning_reads_dev_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    """`steer-agent eval` reports dev unless test is asked for, and then says what test figures are for."""
    import agent.cli.eval as cli
    from agent.cli.main import main
    from agent.eval.config import EvalConfig

    assert EvalConfig().split == "dev"
    seen = []
    monkeypatch.setattr(cli, "evaluate_once", lambda args, cfg: seen.append(cfg.split) or (_ for _ in ()).throw(
        cli.ChoiceError("stop here", field="features")))
    assert main(["eval", "--report", str(tmp_path / "r")]) == 2
    assert seen == ["dev"] and "closing note" not in capsys.readouterr()[1]
    assert main(["eval", "--report", str(tmp_path / "r"), "--split", "test"]) == 2
    assert seen[-1] == "test" and "closing note" in capsys.readouterr()[1]
