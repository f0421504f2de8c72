"""The README's quality table is printed from two evaluations' metrics (agent.eval.readme_table)."""

from __future__ import annotations

import json

from agent.eval.bench import pool, run_bench
from agent.eval.readme_table import main, table

from tests.agent.test_eval_bench_v3 import _bench


def _metrics(bench: dict, seeds: list[int] | None = None) -> dict:
    return {"bench": bench, **({"planted_seeds": seeds} if seeds else {})}


def test_the_table_reads_every_figure_from_the_metrics(tmp_path, capsys) -> None:
    sae = run_bench(_bench(agent="a {v} thing"), "test")
    pooled, _ = pool({0: _bench(agent="a black thing"), 1: _bench(agent="a black thing")})
    planted = run_bench(pooled, "test")
    lines = table(_metrics(sae), _metrics(planted, [0, 1]))
    text = "\n".join(lines)
    agent = next(line for line in lines if line.startswith("| agent loop, offline judge |"))
    cells = [c.strip() for c in agent.strip("|").split("|")]
    assert cells[1].startswith(f"{100 * sae['modes']['agent']['f1']['mean']:.1f} [")
    assert cells[8].startswith(f"{100 * planted['modes']['agent']['f1']['mean']:.1f} [")
    assert "seeds 0,1" in lines[0] and f"({sae['n']} test)" in lines[0]
    verdict = sae["diffs"]["agent_vs_best_nonadaptive"]["f1"]["verdict"]
    assert f"**{verdict}**" in text and "constant explanation chosen on dev" in text
    (tmp_path / "a.json").write_text(json.dumps(_metrics(sae)))
    (tmp_path / "b.json").write_text(json.dumps(_metrics(planted, [0, 1])))
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert capsys.readouterr()[0].strip() == text.strip()
    assert main([str(tmp_path / "a.json"), str(tmp_path / "missing.json")]) == 2
    assert "error:" in capsys.readouterr()[1]
