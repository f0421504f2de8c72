"""Pinned looks at 80x24: the feature table, the detail screen and the setup screen."""

from __future__ import annotations

from typing import Any

from tests.tui.test_app import table_ids, wait_until


def test_table_snapshot(filled: Any, make_app: Any, snap_compare: Any) -> None:
    filled.set_review(1, "accept", reviewer="ann")
    filled.set_review(2, "reject", reviewer="ann")
    app = make_app(filled)

    async def ready(pilot: Any) -> None:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("down", "down", "down")

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_detail_snapshot(filled: Any, make_app: Any, snap_compare: Any) -> None:
    from tui.screens.detail import DetailScreen

    app = make_app(filled)

    async def ready(pilot: Any) -> None:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record is not None)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_setup_snapshot(store: Any, make_app: Any, snap_compare: Any) -> None:
    from tui.screens.setup import SetupScreen

    app = make_app(store, features="0-7")

    async def ready(pilot: Any) -> None:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen))

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)
