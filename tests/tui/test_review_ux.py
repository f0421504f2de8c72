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
    from agent.export import export_records
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
