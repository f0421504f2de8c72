"""Pinned looks at 80x24: the feature table, the detail screen, the setup screen and the evaluation screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.tui.test_app import open_detail, table_ids, wait_until


def test_table_snapshot(filled: Any, make_app: Any, snap_compare: Any) -> None:
    filled.set_review(1, "accept", reviewer="ann")
    filled.set_review(2, "reject", reviewer="ann")
    app = make_app(filled)

    async def ready(pilot: Any) -> None:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("down", "down", "down")

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_detail_snapshot(filled: Any, make_app: Any, snap_compare: Any) -> None:

    app = make_app(filled)

    async def ready(pilot: Any) -> None:
        await open_detail(pilot, app)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_setup_snapshot(store: Any, make_app: Any, snap_compare: Any) -> None:
    from tui.screens.setup import SetupScreen

    app = make_app(store, features="0-7")

    async def ready(pilot: Any) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen))

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def synthetic_metrics() -> dict[str, Any]:
    """A small metrics file of fixed numbers (a real run's would move with the judge's heuristics)."""
    from agent.eval.metrics import rate

    def r(hits: int, n: int) -> dict[str, Any]:
        return rate([True] * hits + [False] * (n - hits)).to_dict()

    def scores(w: int, e: int, s: int, strength: float | None, **extra: Any) -> dict[str, Any]:
        fams = {"colour": {"n": 24, "word": r(w * 24 // 40, 24)}, "shape": {"n": 16, "word": r(w - w * 24 // 40, 16)}}
        return {"n": 40, "word": r(w, 40), "embedding": r(e, 40), "specific": r(s, 40), "false_claims_mean": 0.5,
                "by_family": fams, "strength": strength, **extra}

    return {
        "world": {"model": "toy/model", "sae": "toy/sae", "layer": 3}, "config": {"seed": 0},
        "features": {"requested": 64, "n": 40, "by_family": {"colour": 24, "shape": 16}},
        "modes": {"offline": scores(34, 30, 22, None), "oneshot-best": scores(33, 32, 20, 200.0)},
        "controls": {"random-offline": scores(3, 4, 1, None), "oneshot-random-max": scores(4, 4, 1, 400.0),
                     "permuted": {"offline": scores(8, 8, 1, None, expected_word_rate=0.21)}},
        "by_strength": {"oneshot": [{"strength": s, "word": r(w, 40), "embedding": r(w, 40)}
                                    for s, w in ((100.0, 12), (200.0, 33), (400.0, 31))]},
        "bar": {"thresholds": {"pipeline_min": 0.8, "margin_over_oneshot": 0.15, "controls_max": 0.15},
                "pipeline_rate": 0.85, "pipeline_ok": True, "margin_over_oneshot": 0.025, "margin_ok": False,
                "controls": {"random-offline": 0.075, "permuted-offline": 0.2}, "controls_ok": False, "met": False},
        "cost": {"offline": {"n": 40, "done": 40, "rounds": {"mean": 1.2, "max": 3}, "probes": {"mean": 9.5, "max": 15},
                             "tokens": {"mean": 0, "total": 0}, "seconds": {"mean": 0.11}}},
        "digest": "0123456789abcdef",
    }


def test_evaluation_snapshot(store: Any, make_app: Any, snap_compare: Any) -> None:
    from textual.widgets import DataTable

    from tui.screens.evaluation import EvaluationScreen

    report = Path("report")  # the store fixture made tmp_path the working folder
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps(synthetic_metrics()))
    app = make_app(store, report=report, open_setup=False)

    async def ready(pilot: Any) -> None:
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, EvaluationScreen) and len(app.screen.query(DataTable)) > 0)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)
