"""Run preparation (agent.session) and world identity (agent.world), as the CLI and the TUI share them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.run.config import RunConfig
from agent.judges import JudgeConfig
from agent.session import RunRequest, prepare_run
from agent.store.store import Store
from agent.world import ChoiceError, Engines, WorldSpec, same_world, world_of
from tests.agent.fakes import FakeEngine

SPEC = WorldSpec(model="org/model", sae="org/sae")


class CountingFactory:
    """An engine factory that counts the loads."""

    def __init__(self) -> None:
        self.loads = 0

    def __call__(self, spec: WorldSpec) -> FakeEngine:
        self.loads += 1
        return FakeEngine(d_sae=16)


def _request(store: Path, features: str = "0-3", **kw: Any) -> RunRequest:
    return RunRequest(features=features, world=SPEC, store=store, **kw)


def test_the_engine_is_loaded_only_to_learn_the_size(tmp_path: Path) -> None:
    factory = CountingFactory()
    prepared = prepare_run(_request(tmp_path / "s", "all"), Engines(factory))
    assert prepared.features == list(range(16)) and factory.loads == 1
    assert prepared.engine.sae.d_sae == 16  # the loaded engine itself, not a factory
    prepared.store.bind_world(SPEC.identity() | {"layer": 1})
    prepared.store.set_meta("n_features", 16)
    prepared.store.close()

    again = CountingFactory()
    prepared = prepare_run(_request(tmp_path / "s", "3"), Engines(again))
    assert prepared.features == [3] and again.loads == 0 and callable(prepared.engine)
    prepared.store.close()


def test_errors_name_their_field(tmp_path: Path) -> None:
    engines = Engines(CountingFactory())
    cases = [(_request(tmp_path / "s", "0-x"), "features", "bad feature list item"),
             (_request(tmp_path / "s", "0-99"), "features", "out of range"),
             (_request(tmp_path / "s", judge=JudgeConfig(kind="nope")), "judge", "unknown judge"),
             (RunRequest(features="0", world=WorldSpec(model="org/model"), store=tmp_path / "s"), "model", "--sae"),
             (_request(tmp_path / "s", config=RunConfig(evidence="topk")), "store", "steer-agent topk")]
    for request, field, message in cases:
        with pytest.raises(ChoiceError, match=message) as exc:
            prepare_run(request, engines)
        assert exc.value.field == field, (request, exc.value)


def test_a_loaded_engine_is_compared_exactly_a_spec_with_its_open_keys_open() -> None:
    world = world_of(FakeEngine())
    assert same_world(world, dict(world)) and not same_world(world, world | {"layer": 2})
    held = {"model": "org/model", "revision": "abc", "sae": "org/sae", "sae_revision": None, "layer": 1}
    assert same_world(SPEC, held) and not same_world(WorldSpec(model="org/model", sae="org/sae", layer=2), held)


def test_a_store_of_another_world_is_refused_with_the_stores_message(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as store:
        store.bind_world({"model": "org/model", "revision": None, "sae": "org/other-sae", "sae_revision": None,
                          "layer": 1})
    factory = CountingFactory()
    with pytest.raises(ChoiceError, match="holds records of .*SAE 'org/other-sae', layer 1, not of SAE 'org/sae'") as exc:
        prepare_run(_request(tmp_path / "s"), Engines(factory))
    assert exc.value.field == "store" and factory.loads == 0
