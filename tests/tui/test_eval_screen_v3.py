"""The evaluation screen on the ruler's version 3 (issue 29): the agent's standing against the best no-follow-up
method, scores by mode under readable names, floors with skill, pooled seeds; the same figures as report.md and
no absolute path of the machine that ran the evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from agent.eval.bench import MODES
from agent.eval.report import render_markdown
from agent.eval.report_bench import BENCH_NAMES
from tests.agent.eval.test_report_v3 import pooled, single_metrics, table_with
from tests.tui.test_eval_view import open_evaluation, row, rows, text_of
from tests.tui.test_app import wait_until


def _write(metrics: dict[str, Any]) -> Path:
    report = Path("report")  # the store fixture made tmp_path the working folder
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps(metrics))
    return report


def _diff(d: dict[str, Any]) -> str:
    lo, hi = d["ci"]
    return f"{100 * d['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


async def test_the_screen_shows_the_agents_standing_under_readable_names(store: Any, make_app: Any) -> None:
    from agent.eval.report_bench import SHORT_NAMES

    m = single_metrics()
    b = m["bench"]
    app = make_app(store, report=_write(m), open_setup=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_evaluation(app, pilot)
        head = text_of(app.screen.query_one("#eval-head"))
        assert "/home/" not in head and "model models/toy-gemma, SAE run-7/layer3, layer 3" in head

        d = b["diffs"]["agent_vs_best_nonadaptive"]
        best = SHORT_NAMES[d["baseline"]]
        shown = row(app, "bench-standing", f"best no-follow-up method, picked on dev ({best})")
        assert shown[1:] == [_diff(d["f1"]), f"{100 * d['error_reduction']:+.1f}%",
                             f"{d['f1']['wins']} / {d['f1']['losses']}", d["f1"]["verdict"]]
        old = b["diffs"]["agent_vs_best_baseline"]
        assert row(app, "bench-standing", f"best baseline ({SHORT_NAMES[old['baseline']]})")[-1] == old["f1"]["verdict"]
        notes = " ".join(text_of(s) for s in app.screen.query(".notes"))
        assert (f"The agent against the best no-follow-up method (picked on dev: {BENCH_NAMES[d['baseline']]}): "
                f"{d['f1']['verdict']}. F1 difference {100 * d['f1']['mean']:+.1f} points") in notes
        assert "Test split: these figures are for the closing note" in notes and "Truth-AUROC gate" in notes
        assert "30 left out: 100" in notes

        # The same figures as report.md, mode by mode; no table names a mode by its id.
        report = {r[0]: r for r in table_with(render_markdown(m), "causal F1 [95% CI]")[1:]}
        table = app.screen.query_one("#eval-bench-modes", DataTable)
        assert [str(c.label) for c in table.ordered_columns][-2:] == ["causal F1 [95% CI]", "error reduction"]
        for name, d in b["modes"].items():
            assert row(app, "bench-modes", SHORT_NAMES[name])[1:] == report[BENCH_NAMES[name]][1:]
        assert set(SHORT_NAMES) == set(BENCH_NAMES)
        for key in ("bench-standing", "bench-modes", "bench-floors", "bench-families"):
            assert not {r[0] for r in rows(app, key)} & (set(MODES) | {"truth", "constant"}), key
        skill = b["floors"]["permuted"]["skill"]
        assert row(app, "bench-floors", "agent's explanations, permuted features")[2] == f"{100 * skill:+.1f}%"


async def test_pooled_seeds_show_on_the_screen(store: Any, make_app: Any) -> None:
    m = pooled()
    app = make_app(store, report=_write(m), open_setup=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await wait_until(pilot, lambda: len(app.screen.query(DataTable)) > 0)
        await pilot.pause()
        head = text_of(app.screen.query_one("#eval-head"))
        assert "planted features (seeds 0-2, pooled)" in head and "/home/" not in head
        assert [r[0] for r in rows(app, "bench-seeds")] == ["0", "1", "2"]
        assert [r[1] for r in rows(app, "bench-seeds")] == [str(m["per_seed"][s]["n_test"]) for s in "012"]
        assert not app.screen.query("#eval-modes")  # no word-level figures: no table of n/a
        notes = " ".join(text_of(s) for s in app.screen.query(".notes"))
        assert "Planted seeds 0-2 pooled (3 seeds)" in notes
