"""The benchmark inside `evaluate`: the interface's keys on a fake world."""

from __future__ import annotations

from pathlib import Path

from agent.eval.cache import EvalCache
from agent.eval.config import EvalConfig
from agent.eval.runner import Inputs, evaluate, reproducible
from tests.agent.test_eval_runner import fake_truth
from tests.agent.fakes import FakeEngine


def test_evaluate_reports_the_benchmark_keys(tmp_path: Path) -> None:
    calls: list[tuple[int, frozenset]] = []

    def sim(f: int, claims: frozenset) -> float:
        calls.append((f, claims))
        return 1.0 if claims else 0.5

    with EvalCache(tmp_path / "cache") as cache:
        inp = Inputs(engine=FakeEngine(), cache=cache, features=list(range(24)), truth=fake_truth(), simulator=sim)
        m = evaluate(inp, EvalConfig(modes=("oneshot", "offline", "random", "permuted"), seed=3, split="dev"))
    assert m["bench"]["split"] == "dev" and m["bench"]["n"] == sum(m["bench"]["kinds"].values()) == 8
    for mode in ("agent", "agent_r1", "oneshot", "rule_majority", "rule_lowest", "oracle"):
        for k in ("f1", "precision", "recall", "exact", "auroc"):
            assert set(m["modes"][mode][k]) >= {"mean", "ci"}, (mode, k)
    # The fake world's steering names every concept from 10 on: the agent and one-shot are right.
    assert m["modes"]["agent"]["f1"]["mean"] == 1.0
    assert m["modes"]["oneshot"]["f1"]["mean"] == 1.0
    assert set(m["floors"]) == {"constant", "permuted", "random", "caption"}
    assert m["floors"]["random"]["f1"]["mean"] < 0.5
    d = m["diffs"]["agent_vs_best_baseline"]["f1"]
    assert d["mean"] == 0.0 and d["verdict"] == "no clear difference"
    g = m["gates"]
    assert set(g["met"]) == {"best_global_strength_hit", "oracle_hit", "onset_spread", "degenerate_at_4x_onset",
                             "polysemantic_oneshot_both"}
    assert g["oracle_hit"] == 1.0 and g["onset_spread"] == 1.0
    assert calls and m["modes"]["agent"]["auroc"]["mean"] == 1.0
    # The word-level tables read every mode: a benchmark mode carries its split's hit rate by words.
    assert m["modes"]["rule_majority"]["word"]["n"] == 8 and m["modes"]["agent_r1"]["embedding"]["n"] == 0


def test_digest_ignores_absolute_paths() -> None:
    a = {"world": {"model": "/home/a/toy/model", "sae": "/home/a/planted", "layer": 3}, "x": 1}
    b = {"world": {"model": "/srv/b/toy/model", "sae": "/srv/b/planted", "layer": 3}, "x": 1}
    assert reproducible(a) == reproducible(b)
    assert reproducible(a) != reproducible({**b, "x": 2})
