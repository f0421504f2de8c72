"""The evaluation screen, the report dialog and the detail screen's verdict line, on metrics written by
a real `steer-agent eval` over a slice of the toy world (and on the committed docs/eval report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static

from agent.eval.metrics import rate_from
from tests.tui.test_app import open_detail, palette_then_help, table_ids, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCS_REPORT = ROOT / "docs" / "eval"


def _toy_available() -> bool:
    try:
        from steering import toy

        return toy.is_available()
    except Exception:  # noqa: BLE001 - no torch or no toy data: the tests that need it skip
        return False


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report folder from the real evaluation of toy features 0-15 (about 15 s on two cores)."""
    if not _toy_available():
        pytest.skip("the toy world is not built")
    from agent.cli.main import main

    tmp = tmp_path_factory.mktemp("toy-eval")
    argv = ["eval", "--features", "0-15", "--modes", "oneshot,offline,random,permuted,forced-choice",
            "--strengths", "100,200,400", "--max-rounds", "2", "--no-plots",
            "--eval-store", str(tmp / "cache"), "--report", str(tmp / "report")]
    assert main(argv) == 0
    return tmp / "report"


def metrics_of(report: Path) -> dict[str, Any]:
    return json.loads((report / "metrics.json").read_text())


def fmt(d: dict[str, Any]) -> str:
    return rate_from(d).fmt()


def rows(app: Any, key: str) -> list[list[str]]:
    table = app.screen.query_one(f"#eval-{key}", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def row(app: Any, key: str, first: str) -> list[str]:
    found = [r for r in rows(app, key) if r[0] == first]
    assert found, f"no row {first!r} in {key}: {rows(app, key)}"
    return found[0]


async def open_evaluation(app: Any, pilot: Any) -> None:
    from tui.screens.evaluation import EvaluationScreen

    await pilot.press("m")
    await wait_until(pilot, lambda: isinstance(app.screen, EvaluationScreen) and len(app.screen.query(DataTable)) > 0)
    await pilot.pause()


def text_of(widget: Any) -> str:
    return str(widget.render())


# ----------------------------------------------------------------------------- the numbers


async def test_evaluation_screen_shows_the_files_numbers(store: Any, make_app: Any, toy_report: Path) -> None:
    from tui.eval_tables import mode_name

    m = metrics_of(toy_report)
    app = make_app(store, report=toy_report)  # an empty store, but with a report: no setup screen first
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app._loaded_once)
        await pilot.pause()
        assert app.screen is app.main_screen
        await open_evaluation(app, pilot)
        head = text_of(app.screen.query_one("#eval-head"))
        assert m["digest"] in head and f"seed {m['config']['seed']}" in head and f"layer {m['world']['layer']}" in head
        assert f"{m['features']['n']} of {m['features']['requested']} features" in head

        bar = m["bar"]
        pipeline = row(app, "bar", "loop + offline judge, by words")
        assert pipeline[2] == fmt(m["modes"]["offline"]["word"])
        assert pipeline[3] == ("yes" if bar["pipeline_ok"] else "NO")
        margin = next(r for r in rows(app, "bar") if r[0].startswith("margin over one-shot"))
        assert margin[2] == f"{100 * bar['margin_over_oneshot']:+.0f} pts"
        assert row(app, "bar", "control: random directions")[2] == fmt(m["controls"]["random-offline"]["word"])
        assert row(app, "bar", "control: permuted (offline)")[2] == fmt(m["controls"]["permuted"]["offline"]["word"])
        notes = " ".join(text_of(s) for s in app.screen.query(".notes"))
        assert f"Bar met: {'yes' if bar['met'] else 'no'}." in notes

        for name, d in m["modes"].items():
            shown = row(app, "modes", mode_name(name))
            assert shown[1:3] == [fmt(d["word"]), fmt(d["embedding"])]
            if "specific" in d:
                assert shown[3:5] == [fmt(d["specific"]), f"{d['false_claims_mean']:.2f}"]

        perm = m["controls"]["permuted"]["offline"]
        shown = row(app, "controls", "permuted: loop + offline judge")
        assert shown[1] == fmt(perm["word"]) and shown[3] == f"{100 * perm['expected_word_rate']:.0f}%"
        assert row(app, "controls", "random dir. + loop")[1] == fmt(m["controls"]["random-offline"]["word"])

        fams = list(m["features"]["by_family"])
        columns = app.screen.query_one("#eval-families", DataTable).ordered_columns
        assert [str(c.label) for c in columns[1:]] == [f"{f} (n={m['features']['by_family'][f]})" for f in fams]
        assert row(app, "families", "loop + offline judge")[1:] == [
            fmt(m["modes"]["offline"]["by_family"][f]["word"]) for f in fams]

        assert [r[1] for r in rows(app, "strength-oneshot")] == [fmt(r["word"]) for r in m["by_strength"]["oneshot"]]

        if "forced_choice" in m:
            for name, d in m["forced_choice"]["embedding"].items():
                assert row(app, "forced-choice", mode_name(name))[1] == fmt(d["accuracy"])

        cost = m["cost"]["offline"]
        shown = row(app, "cost", "loop + offline judge")
        assert shown[1] == f"{cost['done']}/{cost['n']}"
        assert shown[2] == f"{cost['rounds']['mean']:g} / {cost['rounds']['max']:g}"
        assert shown[3] == f"{cost['probes']['mean']:g} / {cost['probes']['max']:g}"

        # escape and q both go back to where the user was
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main_screen)
        await open_evaluation(app, pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.screen is app.main_screen)
        assert app.is_running


async def test_the_committed_docs_report_opens_from_the_dialog(store: Any, make_app: Any) -> None:
    """docs/eval/metrics.json (generated by an earlier version) opens through the path dialog."""
    from tui.screens.evaluation import EvaluationScreen
    from tui.screens.modals import ReportModal

    m = metrics_of(DOCS_REPORT)
    app = make_app(store, open_setup=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportModal))
        app.screen.query_one("#report-path", Input).value = str(DOCS_REPORT / "metrics.json")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EvaluationScreen) and len(app.screen.query(DataTable)))
        await pilot.pause()
        assert app.report is not None and app.report.metrics["digest"] == m["digest"]
        assert row(app, "modes", "loop + offline judge")[1] == fmt(m["modes"]["offline"]["word"])
        assert row(app, "bar", "loop + offline judge, by words")[2] == fmt(m["modes"]["offline"]["word"])
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main_screen)


def test_an_older_metrics_file_without_the_newer_keys_still_renders(tmp_path: Path) -> None:
    from tui.eval_tables import sections
    from tui.evaluation import load_report

    m = metrics_of(DOCS_REPORT)

    def strip(x: Any) -> Any:
        newer = {"specific", "false_claims_mean", "expected_word_rate", "margin_needs_rate", "steering_ceiling",
                 "diagnostics", "warnings", "forced_choice", "cost"}
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in newer}
        return [strip(v) for v in x] if isinstance(x, list) else x

    (tmp_path / "metrics.json").write_text(json.dumps(strip(m)))
    report = load_report(tmp_path)
    shown = {s.key: s for s in sections(report.metrics)}
    assert set(shown) >= {"bar", "modes", "controls", "families"} and "cost" not in shown
    assert shown["modes"].columns == ["mode", "by words", "by embedding", "strength"]
    assert "all derangements" not in shown["controls"].columns
    assert shown["modes"].rows[0][1] == fmt(m["modes"]["offline"]["word"])
    # A file without ground truth (forced choice only) has its one table and no verdicts.
    (tmp_path / "metrics.json").write_text(json.dumps({"forced_choice": m["forced_choice"], "world": m["world"]}))
    report = load_report(tmp_path / "metrics.json")
    assert [s.key for s in sections(report.metrics)] == ["forced-choice"]
    assert report.verdict_line(0) is None


# ----------------------------------------------------------------------------- bad paths


async def test_a_bad_path_is_an_inline_error_and_nothing_crashes(store: Any, make_app: Any, tmp_path: Path) -> None:
    from tui.screens.modals import ReportModal

    empty = tmp_path / "empty-folder"
    empty.mkdir()
    broken = tmp_path / "broken.json"
    broken.write_text('{"modes": ')
    other = tmp_path / "other.json"
    other.write_text('["not", "metrics"]')
    app = make_app(store, open_setup=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportModal))
        modal = app.screen
        for path, says in ((tmp_path / "nowhere", "no such file or folder"), (empty, "has no metrics.json"),
                           (broken, "is not valid JSON"), (other, "holds no evaluation metrics"), ("", "give a")):
            modal.query_one("#report-path", Input).value = str(path)
            await pilot.press("enter")
            error = modal.query_one(".error", Static)
            await wait_until(pilot, lambda s=says, e=error: s in text_of(e) and e.display)
            assert "\n" not in text_of(error).strip()
            assert app.screen is modal
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main_screen)
        assert app.report is None and app.is_running


def test_the_cli_takes_a_report_and_refuses_a_bad_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import build_parser, main

    assert build_parser().parse_args(["--report", "docs/eval"]).report == Path("docs/eval")
    assert build_parser().parse_args([]).report is None
    assert main(["--store", str(tmp_path / "store"), "--report", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # refused before the store was opened


# ----------------------------------------------------------------------------- the detail line


async def test_the_detail_screen_shows_the_features_verdict(filled: Any, make_app: Any, toy_report: Path) -> None:

    m = metrics_of(toy_report)
    per = {e["feature"]: e for e in m["per_feature"]}
    scored = [f for f in range(8) if f in per]
    unscored = [f for f in range(8) if f not in per]
    assert scored, "features 0-7 of the toy world include pure ones"
    f = scored[0]
    e = per[f]
    filled.set_meta("world", m["world"])  # the store explains the same SAE as the report
    app = make_app(filled, report=toy_report)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        app.main_screen.table.select_feature(f)
        await open_detail(pilot, app)
        box = app.screen.query_one("#verdict", Static)
        line = text_of(box)
        assert box.display and f"truth {e['family']}={e['value']} (purity {e['purity']:g})" in line
        parts = dict(p.split(": ", 1) for p in line.split(" · ")[1:])

        def named(kind: str) -> set[str]:
            return {n for n, hit in e[kind].items() if hit and not n.startswith("random")}

        assert set(parts["by words"].split(", ")) - {"none"} == named("word")
        if any(v is not None for v in e["embedding"].values()):
            shown = parts["by embedding"]
            assert (named("embedding") == named("word")) if shown == "same" else \
                set(shown.split(", ")) - {"none"} == named("embedding")
        assert "another SAE" not in line
        if unscored:  # an impure feature has no verdict: stepping to one hides the line
            app.screen.action_step(unscored[0] - f)
            await wait_until(pilot, lambda: app.screen.feature == unscored[0] and not box.display)


async def test_a_report_loaded_from_the_detail_screen_shows_its_line(filled: Any, make_app: Any,
                                                                     toy_report: Path) -> None:
    from tui.screens.modals import ReportModal

    m = metrics_of(toy_report)
    f = m["per_feature"][0]["feature"]
    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        app.main_screen.table.select_feature(f)
        await open_detail(pilot, app)
        detail = app.screen
        assert not detail.query_one("#verdict").display
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportModal))
        app.screen.query_one("#report-path", Input).value = str(toy_report)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.report is not None and app.screen is not detail)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is detail)
        line = text_of(detail.query_one("#verdict"))
        # The fake store explains another SAE: the line says so instead of passing as this store's verdict.
        assert line.startswith("(report for another SAE)") and f"{m['per_feature'][0]['family']}=" in line


async def test_the_palette_and_the_help_screen_offer_the_evaluation(store: Any, make_app: Any) -> None:
    from tui.screens.modals import ReportModal

    app = make_app(store, open_setup=False)
    async with app.run_test(size=(80, 24)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Evaluation report" in titles and "Open an evaluation report" in titles
        text = await palette_then_help(pilot, app, "evaluation report", ReportModal)
        assert "evaluation report" in text and "open another report" in text
