"""`steer-tui` opens the right store or refuses in one line: only runs create stores, and a store of another
world than the one named is refused as steer-agent refuses it (issue 31, item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.store.store import Store
from tui.cli import main


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The apps steer-tui would have run (each records the store it was given), run headless: not at all."""
    from tui.app import SteerApp

    apps: list[Any] = []
    monkeypatch.setattr(SteerApp, "run", lambda self, *a, **k: apps.append(self.services.store))
    return apps


@pytest.mark.parametrize("folder", ["typo", "parent"])
def test_a_folder_that_is_not_a_store_is_refused_and_nothing_is_created(
        tmp_path: Path, folder: str, opened: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "parent").mkdir()
    assert main(["--store", str(tmp_path / folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert ("no store at" if folder == "typo" else "is not a store") in err
    assert not (tmp_path / "typo").exists() and list((tmp_path / "parent").iterdir()) == [] and not opened


def test_a_store_of_another_world_is_refused_in_words(tmp_path: Path, opened: list[Any],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with Store(tmp_path / "s") as store:
        store.bind_world({"model": "org/other", "revision": None, "sae": "org/sae", "sae_revision": None, "layer": 1})
    assert main(["--store", str(tmp_path / "s"), "--model", "org/model", "--sae", "org/sae"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds records of model 'org/other', SAE 'org/sae', layer 1, not of model " \
                                   "'org/model': pass another --store" in err, err
    assert not opened
    assert main(["--store", str(tmp_path / "s")]) == 0  # no model named: the store's world is used
    assert opened and opened[-1].path == tmp_path / "s"


def test_without_a_store_the_app_opens_on_none_and_creates_nothing(tmp_path: Path, opened: list[Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEER_INTERP_CACHE", str(tmp_path / "cache"))
    assert main([]) == 0
    assert opened == [None] and not (tmp_path / "cache").exists()  # the setup screen's run makes the store
