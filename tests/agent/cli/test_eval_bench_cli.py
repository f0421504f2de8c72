"""`steer-agent eval --split ... --json`: the benchmark's interface keys, end to end on the tiny world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli.main import main
from tests.agent.cli.test_eval import eval_argv, truth_file  # noqa: F401 (fixture)

KEYS = ("f1", "precision", "recall", "exact", "auroc")


@pytest.mark.slow
def test_eval_json_has_the_benchmark_keys(tiny_world, truth_file: Path, tmp_path: Path,  # noqa: F811
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = eval_argv(tiny_world, truth_file, tmp_path, "rep", "--json", "--no-plots", "--split", "dev",
                     "--modes", "oneshot,offline,topk,hybrid,random,permuted")
    assert main(argv) == 0
    m = json.loads(capsys.readouterr()[0])
    assert m["bench"]["split"] == "dev" and m["config"]["split"] == "dev"
    for mode in ("agent", "agent_r1", "oneshot", "rule_majority", "rule_lowest", "oracle", "topk", "hybrid"):
        for k in KEYS:
            assert {"mean", "ci"} <= set(m["modes"][mode][k]), (mode, k)
    assert set(m["floors"]) == {"constant", "permuted", "random", "caption"}
    assert {"mean", "ci"} <= set(m["diffs"]["agent_vs_best_baseline"]["f1"])
    assert set(m["gates"]["met"]) == {"best_global_strength_hit", "oracle_hit", "onset_spread",
                                      "degenerate_at_4x_onset", "polysemantic_oneshot_both"}
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "## Benchmark: claim-level scores on the dev split" in report


def test_planted_seed_refuses_another_world(tiny_world, truth_file: Path, tmp_path: Path) -> None:  # noqa: F811
    assert main(eval_argv(tiny_world, truth_file, tmp_path, "r", "--planted-seed", "0")) == 2
