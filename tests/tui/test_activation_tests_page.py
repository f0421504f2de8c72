"""Activation tests on the detail screen at 80x24: the overview lists each under its #N, the judge cites one
and g jumps to it in the Evidence tab, where its values stand in a compact table that fits the terminal."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.agent.test_site_activation_tests import add_tests
from tests.tui.fakes import fill_store
from tests.tui.test_app import open_detail, wait_until
from tests.tui.test_feature_page import screen_text, visible

pytestmark = pytest.mark.asyncio

SIZE = (80, 24)


@pytest.fixture
def with_tests(store: Any, engine: Any) -> tuple[Any, list[int]]:
    """Features 0-7 explained; feature 0 with three activation tests, the first two cited."""
    fill_store(store, engine, range(8))
    return store, add_tests(store, 0)


def fits(text: str) -> bool:
    return all(len(line.rstrip()) <= SIZE[0] for line in text.splitlines())


async def test_the_overview_lists_the_tests_under_their_numbers(with_tests: tuple[Any, list[int]],
                                                                make_app: Any) -> None:
    store, ids = with_tests
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app)
        body = app.screen.query_one("#overview-body")
        body.parent.scroll_end(animate=False)
        await wait_until(pilot, lambda: f"#{ids[2]} edit blur" in screen_text(app))
        text = screen_text(app)
        assert f"#{ids[0]} render colour holding shape circle: most on red" in text
        assert f"#{ids[1]} edit desaturate: mean activation 12 -> 1.5 (-88%)" in text
        assert "not run: the feature has no top images" in text
        assert fits(text)


async def test_g_jumps_to_a_cited_test_and_shows_its_values(with_tests: tuple[Any, list[int]],
                                                            make_app: Any) -> None:
    store, ids = with_tests
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app)
        page = app.screen.page
        assert page.cited == ids[:2] and [t.id for t in page.tests] == ids
        await pilot.press("g", *str(ids[0]), "enter")
        await wait_until(pilot, lambda: app.screen.query_one("TabbedContent").active == "evidence")
        widget = app.screen.query_one(f"#evidence-list > .probe-{ids[0]}")
        await wait_until(pilot, lambda: visible(app, widget))
        assert widget.has_class("-cited")
        text = screen_text(app)
        assert f"#{ids[0]} render colour holding shape circle (activation test)" in text
        assert "why: which colour, circles held" in text and "over 448 scenes, peak 94.7" in text
        assert re.search(r"value +mean act\. +top +wins", text), text
        assert re.search(r"red +16\.9 +█{10} +90% +95%", text) and re.search(r"orange +3\.2 +██ +10% +5%", text)
        assert fits(text)
        await pilot.press("g", *str(ids[1]), "enter")
        widget = app.screen.query_one(f"#evidence-list > .probe-{ids[1]}")
        await wait_until(pilot, lambda: visible(app, widget) and widget.has_class("-cited"))
        text = screen_text(app)
        assert "mean activation 12 -> 1.5 (-88%) over 5 top images" in text and "edit: colour removed" in text
        assert fits(text)


async def test_the_judge_tab_names_the_tests_that_ran(with_tests: tuple[Any, list[int]], make_app: Any) -> None:
    store, ids = with_tests
    app = make_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app)
        await pilot.press("3")
        await wait_until(pilot, lambda: app.screen.query_one("TabbedContent").active == "judge")
        text = screen_text(app)
        assert f"tests: #{ids[0]} render colour holding shape circle, #{ids[1]} edit" in text
        assert fits(text)
