"""The backends behind the app: checks before a run, remembered settings, paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tui.backends import JudgeSpec, SetupError, WorldSpec, check_judge_reachable
from tui.services import display_path, last_config


def test_a_missing_local_model_or_sae_names_the_field() -> None:
    with pytest.raises(SetupError, match="model folder /nope does not exist") as exc:
        WorldSpec(model="/nope", sae="org/sae").check_paths()
    assert exc.value.field == "model"
    with pytest.raises(SetupError) as exc:
        WorldSpec(model="org/model", sae="./no-sae-here").check_paths()
    assert exc.value.field == "sae"
    WorldSpec(model="org/model", sae="org/sae").check_paths()  # hub ids are checked when loaded


def test_an_unreachable_judge_is_reported_before_the_run() -> None:
    check_judge_reachable(JudgeSpec(kind="offline"))
    with pytest.raises(SetupError, match="cannot reach the judge at 127.0.0.1:9") as exc:
        check_judge_reachable(JudgeSpec(kind="openai", base_url="http://127.0.0.1:9/v1"), timeout=2)
    assert exc.value.field == "judge_url"


def test_the_last_run_settings_come_back_without_one_off_switches(store: Any) -> None:
    from agent.config import RunConfig, SweepConfig

    assert last_config(store) is None
    cfg = RunConfig(sweep=SweepConfig(samples=3), max_rounds=2, rejudge=True, note="once")
    store.set_meta("last_run", {"config": cfg.to_dict()})
    back = last_config(store)
    assert back is not None and (back.sweep.samples, back.max_rounds, back.rejudge, back.note) == (3, 2, False, None)


def test_paths_show_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "a" / "store") == "a/store"
    assert display_path(Path.home() / "x") in ("~/x", "x")
