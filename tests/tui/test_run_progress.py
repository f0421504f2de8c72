"""The TUI's run lines at 80x24: the phase in progress with a bar, features finished, an ETA, nothing cut,
and every word of them in the help screen."""

from __future__ import annotations

import threading
from typing import Any

from tests.tui.test_app import start_held_run, wait_until


def panel_lines(app: Any) -> tuple[list[str], int, int]:
    """The run panel's lines as drawn, the width they may take, and the panel's height."""
    panel = app.main_screen.query_one("#run-panel")
    return panel.render().plain.splitlines(), panel.content_size.width, panel.size.height


async def test_the_run_lines_fit_80_columns_and_tell_the_phase(filled: Any, make_app: Any, engine: Any) -> None:
    engine.gate = threading.Event()
    app = make_app(filled)
    seen: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await start_held_run(app, pilot, range(8, 12))
        await wait_until(pilot, lambda: "sweep 0/4" in panel_lines(app)[0][0])
        engine.gate.set()
        while app.running:
            await pilot.pause(0.02)  # a layout pass after the latest statistics
            lines, width, height = panel_lines(app)
            assert all(len(line) <= width for line in lines), (width, lines)
            assert len(lines) <= height, (height, lines)  # no line is cut off below the panel
            seen += lines
    text = "\n".join(seen)
    assert "sweep 0/4" in text and "/4 features" in text
    assert "ETA" in text and "elapsed" in text
    assert "r0:" not in text and "r1:" not in text  # no unexplained codes


async def test_the_help_screen_explains_the_run_lines(filled: Any, make_app: Any) -> None:
    from rich.console import Console

    from tui.screens.help import HelpScreen, terms_table

    app = make_app(filled)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == 8)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
    console = Console(width=200, record=True)
    console.print(terms_table())
    text = console.export_text()
    for words in ("run line", "run phases", "ETA", "sweep:", "rN: judge round N", "fuN:", "bg:", "base:", "kept"):
        assert words in text, words
