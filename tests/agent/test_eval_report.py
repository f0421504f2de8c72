"""The report writer: markdown tables, PNG plots, metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.eval.report import PLOT_MODES, PLOT_STRENGTH, render_markdown, write_report
from tests.agent.test_eval_runner import run_eval


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_eval(tmp_path_factory.mktemp("eval"))


def test_report_has_every_section_and_plot(metrics: dict, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = write_report(metrics, tmp_path / "rep", command="steer-agent eval --report rep")
    text = path.read_text()
    for heading in ("## The bar", "## Accuracy by mode", "## By attribute family", "## Against strength",
                    "## Forced choice", "## What the agent loop cost per feature", "## How this was measured"):
        assert heading in text
    assert f"![accuracy against strength]({PLOT_STRENGTH})" in text
    assert f"![accuracy by mode and family]({PLOT_MODES})" in text
    for name in (PLOT_STRENGTH, PLOT_MODES):
        data = (tmp_path / "rep" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["digest"] == metrics["digest"]
    # The figures in the tables are the metrics' own.
    off = metrics["modes"]["offline"]["word"]
    assert f"({off['hits']}/{off['n']})" in text
    assert "| multi-strength sweep + offline judge (agent loop) | 100% [" in text
    assert "Bar met: **no**." in text  # the fake world's one-shot steering is already perfect
    assert "steer-agent eval --report rep" in text
    # Every table row has as many cells as its header.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            n = lines[i - 1].count("|")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].count("|") - lines[j].count("\\|") == n, lines[j]
                j += 1


def test_report_without_plots_or_ground_truth(metrics: dict, tmp_path: Path) -> None:
    path = write_report(metrics, tmp_path, plots=False)
    assert "![" not in path.read_text()
    bare = {k: v for k, v in metrics.items() if k not in ("bar", "cost")}
    bare["modes"], bare["controls"], bare["by_strength"] = {}, {}, {}
    text = render_markdown(bare)
    assert "no ground truth" in text and "## The bar" not in text and "## Forced choice" in text
