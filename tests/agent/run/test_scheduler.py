"""The scheduler: packing across features, resume, force/rejudge, reviews, cancel, events, calibration."""

from __future__ import annotations

import threading

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.run.events import (
    FeatureFinished,
    FeatureSkipped,
    ProbesFinished,
    RunError,
    RunFinished,
    RunPlanned,
    RunStarted,
)
from agent.judges import OfflineJudge
from agent.run import RunControl, run_features
from agent.store.store import Store
from tests.agent.fakes import FakeEngine

CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=2, panel=0))


def test_probes_of_many_features_share_engine_calls(fake_engine: FakeEngine, store: Store) -> None:
    events: list = []
    summary = run_features(fake_engine, OfflineJudge(), store, list(range(12)), CFG, on_event=events.append)
    assert summary.exit_code == 0
    first = fake_engine.calls[0]
    assert {p.feature for p in first if p.direction == "feature" and not p.is_baseline} == set(range(12))
    baselines = [p for call in fake_engine.calls for p in call if p.is_baseline]
    assert sum(p.base_image == "white" for p in baselines) == 1  # one baseline for all
    # the transfer test's unsteered object images: one each, shared by all twelve features
    assert sorted(p.base_image for p in baselines if p.base_image != "white") == ["object-a", "object-b", "object-c"]
    assert isinstance(events[0], RunPlanned) and isinstance(events[1], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, FeatureFinished) for e in events) == 12
    assert sum(e.n_probes for e in events if isinstance(e, ProbesFinished)) == events[-1].stats.probes_run
    assert events[-1].stats.done == 12 and events[-1].stats.in_flight == {}


def test_shared_background_and_panel_run_once(fake_engine: FakeEngine, store: Store) -> None:
    cfg = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0), background=3, panel=4))
    run_features(fake_engine, OfflineJudge(), store, list(range(10)), cfg)
    probes = [p for call in fake_engine.calls for p in call]
    randoms = [p for p in probes if p.direction == "random" and p.seed >= 10_000]
    panel = [p for p in probes if p.direction == "feature" and p.feature in (16, 48) and p.strength in (5.0, 20.0)]
    white = [p for p in randoms if p.base_image == "white"]
    assert len(white) == 3 * 2 and len(set(white)) == 6
    # and two per object image of the transfer test, each once: 3 images x 2 directions x 2 strengths
    on_objects = [p for p in randoms if p.base_image != "white"]
    assert len(on_objects) == 3 * 2 * 2 and len(set(on_objects)) == 12
    assert len(panel) == 4 and len(set(panel)) == 4  # features 16 and 48 of 0, 16, 32, 48 are not requested


def test_resume_skips_finished_features_without_loading_the_engine(fake_engine: FakeEngine, store: Store) -> None:
    run_features(fake_engine, OfflineJudge(), store, list(range(4)), CFG)
    events: list = []
    summary = run_features(lambda: pytest.fail("engine loaded"), OfflineJudge(), store, list(range(4)), CFG,
                           on_event=events.append)
    assert summary.exit_code == 0 and set(summary.statuses.values()) == {"skipped-done"}
    assert sum(isinstance(e, FeatureSkipped) for e in events) == 4
    # A lazily given engine is loaded when something is left to do.
    summary = run_features(lambda: fake_engine, OfflineJudge(), store, list(range(6)), CFG)
    assert summary.statuses[5] == "done" and summary.statuses[0] == "skipped-done"


def test_force_recomputes_and_rejudge_reuses_probes(fake_engine: FakeEngine, store: Store) -> None:
    run_features(fake_engine, OfflineJudge(), store, [0, 1], CFG)
    n_calls = len(fake_engine.calls)
    run_features(fake_engine, OfflineJudge(), store, [0, 1], RunConfig(**{**CFG.__dict__, "rejudge": True}))
    assert len(fake_engine.calls) == n_calls  # every probe came from the store
    run_features(fake_engine, OfflineJudge(), store, [0, 1], RunConfig(**{**CFG.__dict__, "force": True}))
    assert len(fake_engine.calls) > n_calls


def test_reviewed_records_are_skipped_and_never_overwritten(fake_engine: FakeEngine, store: Store) -> None:
    run_features(fake_engine, OfflineJudge(), store, [0, 1], CFG)
    store.set_review(0, "edit", explanation="Human words.", label="human label", reviewer="ann")
    before = store.get_record(0)
    summary = run_features(fake_engine, OfflineJudge(), store, [0, 1], RunConfig(**{**CFG.__dict__, "force": True}))
    assert summary.statuses[0] == "skipped-reviewed"
    after = store.get_record(0)
    assert after.created_at == before.created_at and after.review.explanation == "Human words."
    summary = run_features(fake_engine, OfflineJudge(), store, [0], RunConfig(
        **{**CFG.__dict__, "force": True, "overwrite_reviewed": True}))
    assert summary.statuses[0] == "done" and store.get_record(0).review is None
    assert store.review_history(0)[0]["explanation"] == "Human words."


def test_unreadable_record_is_reported_and_the_others_run(fake_engine: FakeEngine, store: Store) -> None:
    store._main.set("record/1", "garbage{")
    events: list = []
    summary = run_features(fake_engine, OfflineJudge(), store, [0, 1, 2], CFG, on_event=events.append)
    errors = [e for e in events if isinstance(e, RunError)]
    assert len(errors) == 1 and "'record/1'" in errors[0].message and str(store.path) in errors[0].message
    assert summary.statuses == {0: "done", 1: "unreadable", 2: "done"} and summary.exit_code == 1


def test_cancel_stops_cleanly_and_a_rerun_finishes(store: Store) -> None:
    engine = FakeEngine(delay=0.05)
    control = RunControl()

    def on_event(e) -> None:
        if isinstance(e, FeatureFinished) and e.stats.done >= 2:
            control.cancel("test")

    summary = run_features(engine, OfflineJudge(), store, list(range(8)), RunConfig(
        **{**CFG.__dict__, "in_flight": 2}), on_event=on_event, control=control)
    assert summary.stop_reason == "test" and summary.exit_code == 1
    done = [f for f, s in summary.statuses.items() if s == "done"]
    assert 2 <= len(done) < 8 and store.features() == sorted(done)
    summary = run_features(engine, OfflineJudge(), store, list(range(8)), CFG)
    assert summary.exit_code == 0 and store.features() == list(range(8))


def test_cancel_from_another_thread(store: Store) -> None:
    engine = FakeEngine(delay=0.2)
    control = RunControl()
    threading.Timer(0.3, control.cancel).start()
    summary = run_features(engine, OfflineJudge(), store, list(range(64)), RunConfig(
        **{**CFG.__dict__, "in_flight": 4}), control=control)
    assert summary.stop_reason == "cancelled" and summary.exit_code == 1
    done = [f for f, s in summary.statuses.items() if s == "done"]
    assert len(done) < 64 and store.features() == sorted(done)  # stopped early; what finished is stored


def test_default_strengths_follow_the_hidden_norm(fake_engine: FakeEngine, store: Store) -> None:
    summary = run_features(fake_engine, OfflineJudge(), store, [0], RunConfig())
    assert summary.strengths == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0] and summary.strength_source["norm"] == 10.0
    keys = [k for k in store._main.iterkeys() if k.startswith("meta/hidden_norm/")]
    assert len(keys) == 1 and store._main.get(keys[0]) == "10.0"  # measured once, remembered


def test_calibration_reaches_kl_targets(fake_engine: FakeEngine, store: Store) -> None:
    sweep = SweepConfig(strengths=(10.0, 40.0), calibrate=True, kl_targets=(0.5, 3.0), calibrate_steps=6)
    run_features(fake_engine, OfflineJudge(), store, [3], RunConfig(sweep=sweep))
    r = store.get_record(3)
    chosen = r.transcript[0]["strengths"]
    assert r.transcript[0]["calibrated"] and len(chosen) == 2
    assert chosen[0] == pytest.approx(5.0, rel=0.3) and chosen[1] == pytest.approx(30.0, rel=0.3)  # KL = s / 10


def test_run_config_round_trips_and_is_remembered(fake_engine: FakeEngine, store: Store) -> None:
    cfg = RunConfig(sweep=SweepConfig(strengths=(1.0, 2.0), calibrate=True, kl_targets=(0.2,), samples=3),
                    max_rounds=2, budget_tokens=100, note="look at colour")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    run_features(fake_engine, OfflineJudge(), store, [0], CFG)
    assert RunConfig.from_dict(store.get_meta("last_run")["config"]) == CFG
