"""Fixtures for TUI tests: a fake engine, stores empty and filled, and an app factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tui.fakes import FakeEngine, fill_store

REVIEWER = "tester"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty store at ./store (the working folder is tmp_path, so paths show short and stable)."""
    from agent.store.store import Store

    monkeypatch.chdir(tmp_path)
    with Store(tmp_path / "store") as s:
        yield s


@pytest.fixture
def filled(store: Any, engine: FakeEngine) -> Any:
    """The store with features 0-7 explained by the offline judge."""
    summary = fill_store(store, engine, range(8))
    assert all(v == "done" for v in summary.statuses.values())
    return store


@pytest.fixture
def make_app(engine: FakeEngine) -> Callable[..., Any]:
    from agent.run.config import RunConfig, SweepConfig
    from tests.tui.fakes import STRENGTHS
    from tui.app import create_app

    def make(store: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("engine", engine)
        kwargs.setdefault("reviewer", REVIEWER)
        kwargs.setdefault("run_config", RunConfig(sweep=SweepConfig(strengths=STRENGTHS, background=2)))
        return create_app(store, **kwargs)

    return make


async def settle(pilot: Any, rounds: int = 3) -> None:
    """Let workers finish and their messages be handled."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
