"""Ctrl-C stops a run at once: during the model load, mid-batch (after the generate call in progress), with 100k
planned features (no 100k-record read back). Behaviour, not the clock: how fast is bench/ matter."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.judges import OfflineJudge
from agent.probes import Probe, ProbeResult
from agent.run import RunControl, run_features
from agent.store.store import Store
from tests.agent.fakes import FakeEngine

CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0)))


class SlowEngine(FakeEngine):
    """Answers one probe per ``per_probe`` seconds, reporting each as it finishes (as generate calls do)."""

    def __init__(self, d_sae: int, per_probe: float) -> None:
        super().__init__(d_sae=d_sae)
        self.per_probe = per_probe
        self.started = threading.Event()
        self.first_batch = 0
        """Probes in the first engine call."""
        self.ran = 0
        """Probes answered in all."""

    def run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        self.first_batch = self.first_batch or len(probes)
        self.started.set()
        out = []
        for p in probes:
            time.sleep(self.per_probe)
            out += super().run([p], on_result)
            self.ran += 1
        return out


def _cancel_when(event: threading.Event, control: RunControl) -> None:
    def go() -> None:
        event.wait(30)
        time.sleep(0.2)
        control.cancel("interrupted")

    threading.Thread(target=go, daemon=True).start()


def test_a_cancelled_run_waits_only_for_the_generate_call_in_progress(store: Store) -> None:
    engine = SlowEngine(d_sae=100_000, per_probe=0.05)  # the first batch holds ~200 probes: ~10 s
    control = RunControl()
    _cancel_when(engine.started, control)
    summary = run_features(engine, OfflineJudge(), store, list(range(100_000)), CFG, control=control)
    assert summary.stop_reason == "interrupted"
    # the run returned while its first engine call was cut short: it did not wait for the whole batch
    assert engine.ran < engine.first_batch, (engine.ran, engine.first_batch)
    assert summary.statuses[99_999] == "not-started"


def test_ctrl_c_during_the_model_load_quits_at_once(store: Store) -> None:
    from agent.cli.run import LoadInterrupted, interruptible

    control = RunControl()
    release = threading.Event()

    def slow_load() -> FakeEngine:
        release.wait(30)  # a model load that cannot be stopped midway
        return FakeEngine()

    load = interruptible(slow_load, control)
    threading.Timer(0.2, control.cancel, args=("interrupted",)).start()
    with pytest.raises(LoadInterrupted):  # raised while the load still blocks (release is set only after)
        run_features(load, OfflineJudge(), store, list(range(8)), CFG, control=control)
    assert not release.is_set()
    release.set()
    assert interruptible(FakeEngine(), control).__class__ is FakeEngine  # a loaded engine passes through


def test_the_cli_reads_back_only_the_features_it_reached(tmp_path, monkeypatch, capsys) -> None:
    """SIGINT to `steer-agent run` with 100k planned features: exit 130 mid-batch, no 100k-record read."""
    from agent.cli import run as run_cli
    from agent.cli.main import build_parser
    from agent.judges import JudgeConfig
    from agent.session import PreparedRun
    from agent.world import WorldSpec

    engine = SlowEngine(d_sae=100_000, per_probe=0.02)
    store = Store(tmp_path / "store")
    read: list[int] = []
    original = Store.list_records
    monkeypatch.setattr(Store, "list_records",
                        lambda self, fs=None, **kw: read.append(len(fs or [])) or original(self, fs, **kw))
    args = build_parser().parse_args(["run", "--features", "0-99999", "--no-progress", "--table-limit", "0",
                                      "--export", str(tmp_path / "x.jsonl")])
    prepared = PreparedRun(features=list(range(100_000)), engine=engine, judge=OfflineJudge(), config=CFG,
                           world=WorldSpec(), judge_config=JudgeConfig(), store=store)
    def interrupt() -> None:
        engine.started.wait(30)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    assert run_cli.execute(prepared, args, run_cli_console()) == 130
    assert engine.ran < engine.first_batch, "the run waited for its whole first batch"
    assert read and max(read) < 1_000 and not (tmp_path / "x.jsonl").exists()
    assert "nothing exported" in capsys.readouterr().err


def run_cli_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)
