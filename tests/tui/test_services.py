"""The backends behind the app: checks before a run, remembered settings, paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tui.backends import JudgeSpec, SetupError, WorldSpec, check_judge, make_judge_for
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
    """The TUI uses the agent's judge check (agent.judges.check_judge), as an error on the URL field."""
    check_judge(make_judge_for(JudgeSpec(kind="offline")))
    judge = make_judge_for(JudgeSpec(kind="openai", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(SetupError, match="cannot reach the judge at 127.0.0.1:9") as exc:
        check_judge(judge, timeout=2)
    assert exc.value.field == "judge_url"


def test_same_world_is_the_agents(store: Any) -> None:
    """A store's world is matched by agent.world.same_world, from a WorldSpec or from plain values."""
    from agent.world import same_world

    held = {"model": "org/model", "sae": "org/sae", "layer": 3, "revision": "abc"}
    assert same_world(WorldSpec(model="org/model", sae="org/sae"), held)
    assert same_world(WorldSpec(model="org/model", sae="org/sae", layer=3, revision="abc"), held)
    assert not same_world(WorldSpec(model="org/model", sae="org/sae", layer=4), held)
    assert not same_world(WorldSpec(model="org/other", sae="org/sae"), held)
    assert not same_world(WorldSpec(model="org/model"), held)  # no SAE: names no world
    assert same_world(None, held, model="org/model", sae="org/sae", layer=3)
    assert not same_world(None, held, model="org/model", sae="org/sae", revision="def")
    assert not same_world(None, None, model="org/model", sae="org/sae")
    with pytest.raises(TypeError, match="unexpected keywords"):
        same_world(None, held, modle="x")
    assert not hasattr(WorldSpec, "same_world")


def test_top_k_location_comes_from_the_store(store: Any, tmp_path: Path) -> None:
    from agent.topk import record_topk
    from tui.backends import Engines
    from tui.services import Services

    services = Services(store, engines=Engines(lambda spec: None))
    assert services.topk_source() is None and services.topk_views(0) == []
    assert record_topk(store, store.path / "topk" / "images-x") == "topk/images-x"  # relative: the store can move
    assert services.topk_source() == store.path / "topk" / "images-x"
    services.topk_dir = tmp_path / "elsewhere"
    assert services.topk_source() == tmp_path / "elsewhere"


def test_the_last_run_settings_come_back_without_one_off_switches(store: Any) -> None:
    from agent.run.config import RunConfig, SweepConfig

    assert last_config(store) is None
    cfg = RunConfig(sweep=SweepConfig(samples=3), max_rounds=2, rejudge=True, note="once")
    store.set_meta("last_run", {"config": cfg.to_dict()})
    back = last_config(store)
    assert back is not None and (back.sweep.samples, back.max_rounds, back.rejudge, back.note) == (3, 2, False, None)


def test_paths_show_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "a" / "store") == "a/store"
    assert display_path(Path.home() / "x") in ("~/x", "x")


def test_top_k_evidence_without_a_collection_is_a_setup_error(store: Any) -> None:
    from dataclasses import replace

    from agent.run.config import RunConfig
    from tests.tui.fakes import FakeEngine
    from tui.backends import Engines
    from tui.services import RunRequest, Services

    services = Services(store, engines=Engines(engine=FakeEngine(), spec=WorldSpec()))
    request = RunRequest(features="0-3", config=RunConfig(evidence="topk"))
    with pytest.raises(SetupError, match="steer-agent topk") as exc:
        services.prepare(request)
    assert exc.value.field == "store"
    assert services.prepare(replace(request, config=RunConfig())).features == [0, 1, 2, 3]
