"""Pilot tests of the review flow: notes reach the offline judge and the export."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from tests.tui.test_app import open_detail, table_ids, wait_until


def as_text(renderable: Any, width: int = 200) -> str:
    """What a widget's content reads as, as plain text."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


@pytest.mark.asyncio
async def test_a_rerun_note_becomes_questions_of_the_offline_judge(filled: Any, make_app: Any,
                                                                   tmp_path: Path) -> None:
    from agent.store.export import export_records
    from agent.judges.offline import OfflineJudge

    app = make_app(filled, judge=OfflineJudge())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("n")
        app.screen.query_one("#note", Input).value = "look at colour"
        await pilot.press("enter")
        await wait_until(pilot, lambda: filled.get_record(0).note == "look at colour" and not app.running)
        await open_detail(pilot, app)
        shown = as_text(app.screen.query_one("#transcript").content)
        assert "reviewer's note to the judge: look at colour" in shown
        assert "What colour is the highlighted element?" in shown
    rec = filled.get_record(0)
    assert "Asked as the reviewer's note requested" in rec.explanation and "red" in rec.explanation
    out = tmp_path / "notes.jsonl"
    export_records(filled, out)
    row = json.loads(out.read_text().splitlines()[0])
    assert row["note"] == "look at colour"


def test_note_questions() -> None:
    from agent.judges.notes import note_questions

    assert note_questions("look at colour") == ["What colour is the highlighted element?"]
    assert note_questions("ask about pattern and shape") == ["What pattern does the highlighted element have?",
                                                              "What shape is the highlighted element?"]
    assert note_questions("ask: is it round?") == ["Is it round?"]
    assert note_questions("") == [] and note_questions("good job") == []


@pytest.mark.asyncio
async def test_export_asks_before_replacing_and_names_the_full_path(filled: Any, make_app: Any,
                                                                     tmp_path: Path) -> None:
    from tui.screens.modals import ConfirmModal, ExportModal

    out = tmp_path / "existing.jsonl"
    out.write_text("old\n")
    app = make_app(filled)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportModal))
        assert Path(app.screen.query_one("#path", Input).value).is_absolute()
        app.screen.query_one("#path", Input).value = "existing.jsonl"  # relative to the working folder
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert out.read_text() == "old\n"
        await pilot.press("y")
        await wait_until(pilot, lambda: app.screen is app.main_screen and out.read_text() != "old\n")
        await pilot.pause(0.2)
        assert any(str(out) in str(n.message) for n in app._notifications)


@pytest.mark.asyncio
async def test_review_flow_reasons_advance_next_unreviewed_and_bulk_accept(filled: Any, make_app: Any) -> None:
    from tui.screens.help import HelpScreen
    from tui.screens.modals import ConfirmModal

    filled.set_review(2, "accept", reviewer="ann")
    app = make_app(filled)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        shown = {binding.key for _node, binding, _enabled, _tip in app.active_bindings.values() if binding.show}
        assert {"u", "v", "slash", "o", "g"} <= shown
        await pilot.press("a")  # feature 0 accepted; the cursor goes to 1
        await wait_until(pilot, lambda: filled.get_review(0) is not None and app.main_screen.current_feature == 1)
        await pilot.press("r")
        await wait_until(pilot, lambda: app.screen.query("#reason"))
        app.screen.query_one("#reason", Input).value = "names the shape, steering changes the colour"
        await pilot.press("enter")
        await wait_until(pilot, lambda: filled.get_review(1) is not None)
        assert filled.get_review(1).note == "names the shape, steering changes the colour"
        await pilot.press("v")  # next undecided: 3 (2 was accepted before)
        await wait_until(pilot, lambda: app.main_screen.current_feature == 3)
        await pilot.press("slash", *"dotted", "enter")
        await wait_until(pilot, lambda: len(table_ids(app)) < 8)
        shown_ids = table_ids(app)
        assert shown_ids == [5]
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: all(filled.get_review(f) is not None for f in shown_ids))
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        terms = as_text(app.screen.query_one("#terms").content)
        assert "conf" in terms and "KL" in terms and "label's words (right axis)" in terms
    untouched = [f for f in range(8) if f not in (0, 1, 2, 5)]
    assert all(filled.get_review(f) is None for f in untouched)


@pytest.mark.asyncio
async def test_the_detail_view_shows_ground_truth_without_a_report(filled: Any, make_app: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.groundtruth

    monkeypatch.setattr(agent.groundtruth, "ground_truth_for",
                        lambda world: {1: {"family": "shape", "value": "circle", "purity": 0.95}})
    app = make_app(filled)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_detail(pilot, app, "down")
        await wait_until(pilot, lambda: "ground truth: shape=circle" in str(app.screen.query_one("#verdict").render()))
        assert app.screen.query_one("#verdict").display


@pytest.mark.asyncio
async def test_the_images_tab_shows_every_collected_image_and_the_density(filled: Any, make_app: Any,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from tui.widgets.picture import Picture

    app = make_app(filled)
    app.services.topk_dir = tmp_path
    asked: list[Any] = []

    def views(feature: int, n: int | None = None) -> list[tuple[Any, str]]:
        asked.append(n)
        return [(Image.new("RGB", (8, 8), (200, 30, 30)), f"0.9{i} scene_{i}.png") for i in range(9)]

    monkeypatch.setattr(app.services, "topk_views", views)
    monkeypatch.setattr(app.services, "topk_stats", lambda feature: {"image_frequency": 0.0123,
                                                                     "patch_frequency": 0.0004,
                                                                     "max_activation": 7.5}, raising=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await open_detail(pilot, app)
        await pilot.press("4")
        await wait_until(pilot, lambda: len(app.screen.query(Picture)) == 10)  # the base image and all 9
        status = str(app.screen.query_one("#topk-status").render())
        assert "the 9 top-activating images collected" in status and "fires on 1.23% of the collection" in status
    assert asked == [None]  # all the collection kept, not a fixed few
