"""Small traps of issue 31 (item 7), through Textual's pilot: the reject reason shows in the feature's header
(the quit's resume command is checked in tests/tui/test_run_ux.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui.test_app import open_detail, table_ids, wait_until

pytestmark = pytest.mark.asyncio


async def test_the_reject_reason_shows_in_the_feature_s_header(filled: Any, make_app: Any) -> None:
    app = make_app(filled)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("down", "r")
        await wait_until(pilot, lambda: app.screen.query("#reason"))
        await pilot.press(*"names the shape only", "enter")
        await wait_until(pilot, lambda: filled.get_review(1) is not None)
        await pilot.press("up")
        await open_detail(pilot, app, "down")
        await wait_until(pilot, lambda: app.screen.record.review is not None)
        header = str(app.screen.query_one("#summary").render()).splitlines()[0]
    assert filled.get_review(1).note == "names the shape only"
    assert header.startswith("#1 ") and "rejected by tester" in header and "names the shape only" in header


async def test_a_strength_typed_before_the_ladder_arrives_is_kept(filled: Any, make_app: Any) -> None:
    """The probe dialog fills in a run's strongest strength when it learns the ladder (which may load the
    model): what the reviewer typed before that is never replaced."""
    import threading

    from textual.widgets import Input

    from tui.screens.probe import ProbeModal

    app = make_app(filled)
    held = threading.Event()
    asked = threading.Event()

    def slow_ladder(*_args: Any, **_kwargs: Any) -> list[float]:
        asked.set()
        held.wait(30)
        return [5.0, 10.0, 40.0]

    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: len(table_ids(app)) == 8)
            app.services.run_strengths = slow_ladder
            await pilot.press("p", *"12.5")  # typed at once, as the dialog opens
            await wait_until(pilot, lambda: isinstance(app.screen, ProbeModal))
            await wait_until(pilot, asked.is_set)
            held.set()
            ladder = app.screen.query_one("#ladder")
            await wait_until(pilot, lambda: "a run sweeps" in str(ladder.render()))
            await pilot.pause()
            assert app.screen.query_one("#strength", Input).value == "12.5"
    finally:
        held.set()
