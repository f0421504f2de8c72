"""A late answer never overwrites a newer request: rows, the detail screen and the probe dialog."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.widgets import Input

from tests.tui.test_app import open_detail, table_ids, wait_until

pytestmark = pytest.mark.asyncio


class Gate:
    """Wraps a services method: the first call waits until ``release()`` and answers ``stale(...)``;
    later calls answer at once with the real method."""

    def __init__(self, real: Any, stale: Any) -> None:
        self.real, self.stale = real, stale
        self.calls = 0
        self.opened = threading.Event()
        self.answered = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > 1:
            return self.real(*args, **kwargs)
        assert self.opened.wait(30), "the test never released the first call"
        try:
            return self.stale(*args, **kwargs)
        finally:
            self.answered.set()

    def release(self) -> None:
        self.opened.set()


async def let_it_land(pilot: Any, gate: Gate) -> None:
    """Release the held first call and give its answer time to reach the app and be handled."""
    gate.release()
    assert gate.answered.wait(30)
    for _ in range(10):
        await pilot.pause(0.05)


async def test_late_rows_do_not_replace_a_newer_load(filled: Any, make_app: Any) -> None:
    app = make_app(filled)
    # The first load (at mount) answers late with one row; the reload after it answers at once with all 8.
    gate = Gate(app.services.load_rows, lambda: (lambda rows, errors: (rows[:1], errors))(*app.services.load_rows()))
    app.services.load_rows = gate
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: gate.calls == 1)
        app.main_screen.reload_rows()
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await let_it_land(pilot, gate)
        assert table_ids(app) == list(range(8))


async def test_late_record_does_not_replace_the_shown_feature(filled: Any, make_app: Any) -> None:
    app = make_app(filled)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_detail(pilot, app)
        screen = app.screen
        # Reload feature 0 slowly (answering with feature 5's record), then step to feature 1 at once.
        gate = Gate(app.services.record, lambda feature: app.services.store.get_record(5))
        app.services.record = gate
        screen.load()
        await wait_until(pilot, lambda: gate.calls == 1)
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: screen.record is not None and screen.record.feature == 1)
        await let_it_land(pilot, gate)
        assert screen.feature == 1 and screen.record.feature == 1
        assert "#1" in str(screen.query_one("#summary").render())


async def test_late_probe_answer_is_not_listed(filled: Any, make_app: Any) -> None:
    app = make_app(filled)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("p")
        await wait_until(pilot, lambda: len(app.screen.query("#strength")) == 1)

        def stale(probe: Any, on_result: Any = None) -> Any:  # the first request answers with another question
            from dataclasses import replace

            return gate.real(replace(probe, prompt="ask", question="what shape is it?"), on_result=on_result)

        gate = Gate(app.services.probe, stale)
        app.services.probe = gate
        answers = app.screen.query_one("#answers-text")
        app.screen.query_one("#strength", Input).value = "30"
        await pilot.click("#go")  # request 1: held
        await wait_until(pilot, lambda: gate.calls == 1)
        question = app.screen.query_one("#question", Input)
        question.value = "what colour is it?"
        question.focus()
        await pilot.press("enter")  # request 2: answered at once
        await wait_until(pilot, lambda: "It is red." in str(answers.render()))
        await let_it_land(pilot, gate)
        shown = str(answers.render())
        assert "what colour is it?" in shown and "what shape is it?" not in shown
