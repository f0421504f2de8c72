"""The Session every front door stands on: one norm memo, what it closes, where a run's engines come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.judges import OfflineJudge
from agent.session import RunRequest
from agent.session import ScaleOut, Session
from agent.store.store import Store
from agent.world import ChoiceError, Engines, WorldSpec
from tests.agent.fakes import FakeEngine

SPEC = WorldSpec(model="org/model", sae="org/sae")


class NormCounting(FakeEngine):
    """A fake engine that counts how often its hidden-state norm is measured."""

    def __init__(self) -> None:
        super().__init__(d_sae=16)
        self.norms = 0

    def hidden_norm(self, base_image: str = "white") -> float:
        self.norms += 1
        return 10.123456


class PoolEngines(Engines):
    """Engines that stand for a Ray pool: a line per actor, and a close."""

    closed = 0

    def worker_lines(self) -> list[str]:
        return ["ray worker 0: 12 rows"]

    def close(self) -> None:
        self.closed += 1


def _norm_keys(store: Store) -> dict[str, Any]:
    return {k: store._main.get(k) for k in store._main.iterkeys() if k.startswith("meta/hidden_norm/")}


def test_the_norm_is_measured_once_and_remembered_in_one_place(tmp_path: Path) -> None:
    """A probe's default strengths, the TUI's run strengths and a run all read the one memo the first wrote."""
    engine = NormCounting()
    with Session(SPEC, tmp_path / "store", engines=Engines(engine=engine, spec=SPEC)) as session:
        store = session.open_store()
        assert session.probe_strengths() == [0.0, 5.1, 10.1, 20.2, 30.4]  # measured now: the raw norm
        assert session.run_strengths(SweepConfig()) == [5.06, 10.12, 15.19, 20.25, 25.31, 30.37, 40.49]
        request = RunRequest(features="0-1", world=SPEC, config=RunConfig(sweep=SweepConfig(panel=0, background=0),
                                                                           max_rounds=1))
        prepared = session.prepare(request)
        summary = session.run(prepared)
        assert summary.strength_source["norm"] == 10.1235 and engine.norms == 1
        assert list(_norm_keys(store).values()) == ["10.1235"]
    with Session(SPEC, tmp_path / "store", engines=Engines(engine=engine, spec=SPEC)) as again:
        again.open_store()
        assert again.hidden_norm() == 10.1235 and engine.norms == 1  # another process reads the store's memo


def test_without_a_store_the_session_remembers_the_norm_itself() -> None:
    engine = NormCounting()
    with Session(SPEC, engines=Engines(engine=engine, spec=SPEC)) as session:
        assert session.hidden_norm() == session.hidden_norm() == 10.123456 and engine.norms == 1
        assert session.store is None  # a probe opens no store


def test_closing_stops_the_engines_it_opened_and_closes_its_store(tmp_path: Path, monkeypatch) -> None:
    pool = PoolEngines(factory=lambda spec: FakeEngine())
    monkeypatch.setattr("agent.session.engines_on", lambda address, workers=None: pool)
    closed: list[Store] = []
    close = Store.close
    monkeypatch.setattr(Store, "close", lambda self: closed.append(self) or close(self))
    lines: list[str] = []
    with Session(SPEC, tmp_path / "store", scale=ScaleOut(ray="local"), report=lines.append) as session:
        assert session.engines is pool
        store = session.open_store()
    assert pool.closed == 1 and lines == ["ray worker 0: 12 rows"] and closed == [store]
    given = PoolEngines(factory=lambda spec: FakeEngine())
    with Session(SPEC, engines=given, report=lines.append):
        pass
    assert given.closed == 0  # engines handed in belong to the caller


def test_a_run_on_other_engines_than_the_sessions_gets_its_own_and_stops_them(tmp_path: Path, monkeypatch) -> None:
    pool = PoolEngines(factory=lambda spec: FakeEngine(d_sae=16))
    made: list[tuple[Any, Any]] = []
    monkeypatch.setattr("agent.session.ray_problem", lambda address, workers: None)
    monkeypatch.setattr("agent.session.engines_on", lambda address, workers=None: made.append((address, workers))
                        or pool)
    own = Engines(engine=FakeEngine(d_sae=16), spec=SPEC)
    with Session(SPEC, engines=own) as session:
        request = RunRequest(features="0-1", world=SPEC, store=tmp_path / "store", ray="auto", ray_workers=2,
                             config=RunConfig(sweep=SweepConfig(strengths=(20.0,), panel=0, background=0),
                                              max_rounds=1))
        prepared = session.prepare(request)
        assert prepared.engines is pool and made == [("auto", 2)]
        assert session.run(prepared).exit_code == 0 and pool.closed == 1
        assert session.store is prepared.store and session.engines is own


def test_prepare_refuses_ray_workers_without_an_address_on_the_ray_field() -> None:
    with Session(SPEC, engines=Engines(engine=FakeEngine(), spec=SPEC)) as session:
        with pytest.raises(ChoiceError, match="--ray-workers goes with --ray") as exc:
            session.prepare(RunRequest(features="0-1", world=SPEC, ray_workers=2))
    assert exc.value.field == "ray"


def test_reading_commands_refuse_a_store_that_does_not_exist(tmp_path: Path) -> None:
    with Session(SPEC, tmp_path / "nope") as session:
        with pytest.raises(ChoiceError, match="no store at .*nope: check the path"):
            session.open_store(existing=True)
    assert not (tmp_path / "nope").exists()


def test_the_judge_comes_from_the_sessions_config() -> None:
    with Session(SPEC) as session:
        assert isinstance(session.judge(), OfflineJudge)
