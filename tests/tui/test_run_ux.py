"""Pilot tests of a run in the TUI: quitting asks first, cancel is quick, the run line ticks."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from agent.probes import Probe, ProbeResult
from tests.agent.fakes import FakeEngine as AgentFakeEngine
from tests.tui.test_app import start_held_run, wait_until

pytestmark = pytest.mark.asyncio


def panel_on_screen(app: Any) -> str:
    """The run line as the screen shows it (what was last drawn, not a fresh render)."""
    return app.export_screenshot()


class SlowEngine(AgentFakeEngine):
    """The TUI's fake engine, taking ``per_probe`` seconds for each probe of a batch; with ``hold_at``,
    it waits before that many-th probe until ``release`` is set (``held`` says it got there)."""

    def __init__(self, per_probe: float, hold_at: int | None = None) -> None:
        super().__init__(revision=None)
        self.per_probe = per_probe
        self.done = 0
        self.hold_at = hold_at
        self.held, self.release, self.returned = threading.Event(), threading.Event(), threading.Event()

    def run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        out = []
        try:
            for p in probes:
                if self.done == self.hold_at:
                    self.held.set()
                    assert self.release.wait(60), "the test never released the engine"
                time.sleep(self.per_probe)
                out += super().run([p], on_result)
                self.done += 1
        finally:
            if self.held.is_set():
                self.returned.set()  # the held batch's engine call is over
        return out


async def test_cancel_stops_the_engine_batch_after_the_probe_in_progress(filled: Any, make_app: Any) -> None:
    slow = SlowEngine(per_probe=0.01, hold_at=8)  # held inside the first sweep's batch (dozens of probes)
    app = make_app(filled, engine=slow)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await start_held_run(app, pilot, range(8, 16))
            await wait_until(pilot, lambda: slow.held.is_set(), timeout=30)
            await pilot.press("c")
            panel = app.main_screen.run_panel
            await wait_until(pilot, lambda: panel._control is not None and panel._control.cancelled)
            slow.release.set()  # the probe in progress finishes; the batch must end there
            await wait_until(pilot, lambda: not app.running, timeout=60)
            assert slow.returned.wait(60)
            assert slow.done == 8, f"{slow.done} probes ran: the batch went on after the cancel"
            assert all(app.rows[f].status == "pending" for f in range(8, 16))
    finally:
        slow.release.set()
    assert filled.features() == list(range(8))  # nothing stored as failed by the cancel


async def test_quit_during_a_run_asks_then_says_how_to_resume(filled: Any, make_app: Any, engine: Any) -> None:
    from tui.screens.modals import ConfirmModal

    engine.gate = threading.Event()
    app = make_app(filled)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await start_held_run(app, pilot, range(8, 12))
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("n")
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmModal))
            assert app.is_running and app.running
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await wait_until(pilot, lambda: app.exit_message is not None)
    finally:
        engine.gate.set()
    message = app.exit_message
    assert "resume" in message and "stored" in message and "..." not in message
    # the last line is the command that resumes the run, one the CLI really takes
    from agent.cli.main import build_parser, with_default_command

    words = shlex.split(message.splitlines()[-1].strip())
    assert words[0] == "steer-agent"
    args = build_parser().parse_args(with_default_command(words[1:]))
    assert args.features == "8-11" and str(args.store) == "store" and args.judge == "offline"
    assert (args.model, args.sae, args.layer) == ("fake-vlm", "fake-sae", 1)


async def test_the_run_line_ticks_between_events(filled: Any, make_app: Any, engine: Any) -> None:
    engine.gate = threading.Event()
    app = make_app(filled)
    try:
        async with app.run_test(size=(120, 24)) as pilot:
            await start_held_run(app, pilot, range(8, 12))
            panel = app.main_screen.run_panel
            await pilot.pause(0.3)
            before = panel_on_screen(app)
            await pilot.pause(2.2)  # the engine holds: no event arrives meanwhile
            assert panel_on_screen(app) != before
            engine.gate.set()
            await wait_until(pilot, lambda: not app.running)
    finally:
        engine.gate.set()


async def test_probing_an_unrun_feature_starts_at_a_runs_strengths(filled: Any, make_app: Any, engine: Any) -> None:
    from agent.run.config import RunConfig, SweepConfig
    from textual.widgets import Input

    from tui.screens.probe import ProbeModal

    engine.gate = threading.Event()
    app = make_app(filled, run_config=RunConfig(sweep=SweepConfig(background=2)))  # hidden-norm multiples
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await start_held_run(app, pilot, range(8, 10))
            await pilot.press("c")
            engine.gate.set()
            await wait_until(pilot, lambda: not app.running and app.rows[8].status == "pending")
            app.main_screen.jump_to(8)
            await pilot.press("p")
            await wait_until(pilot, lambda: isinstance(app.screen, ProbeModal))
            box = app.screen.query_one("#strength", Input)
            await wait_until(pilot, lambda: box.value != "")
            assert float(box.value) == 40.0  # 4 x the fake engine's norm of 10, as a run's sweep ends
            assert "a run sweeps 5, 10, 15, 20, 25, 30, 40" in str(app.screen.query_one("#ladder").render())
    finally:
        engine.gate.set()


async def test_rows_written_by_another_process_appear_and_ctrl_r_reloads(filled: Any, make_app: Any) -> None:
    import asyncio

    from agent.store.store import Store
    from tests.tui.fakes import FakeEngine, fill_store
    from tests.tui.test_app import table_ids

    def cli_run() -> None:  # what `steer-agent --features 8-9 --store ...` does, through its own Store
        with Store(filled.path) as other:
            fill_store(other, FakeEngine(), [8, 9])

    app = make_app(filled)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 8)
        await asyncio.to_thread(cli_run)
        await wait_until(pilot, lambda: table_ids(app) == list(range(10)), timeout=10)
        assert app.rows[9].status == "done"
        with Store(filled.path) as other:
            other.set_review(3, "reject", reviewer="bob")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.rows[3].review == "reject", timeout=1.5)


async def test_the_setup_form_keeps_the_last_range_names_its_fields_and_spins(store: Any, make_app: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Input, LoadingIndicator, Select

    from tests.tui.fakes import scripted_judge
    from tests.tui.test_app import setup_error, start
    from tui.screens.setup import SetupScreen

    app = make_app(store, judge=scripted_judge())
    async with app.run_test(size=(100, 40)) as pilot:
        await start(app, pilot, features="2-3")
        await wait_until(pilot, lambda: not app.running and len(app.rows) == 2)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen) and app.screen.query("#features"))
        assert app.screen.query_one("#features", Input).value == "2-3"  # the last range run
        # The judge's errors name a field of the form, and the form has it.
        monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
        app.screen.query_one("#judge", Select).value = "openai"
        app.screen.query_one("#judge_key_env", Input).value = "NO_SUCH_KEY_VAR"
        gate = threading.Event()
        prepare = app.services.prepare

        def slow_prepare(request: Any) -> Any:
            gate.wait(10)
            return prepare(request)

        monkeypatch.setattr(app.services, "prepare", slow_prepare)
        await pilot.click("#start")
        await wait_until(pilot, lambda: app.screen.query_one("#setup-checking").display)
        assert app.screen.query_one(LoadingIndicator).display
        gate.set()
        await wait_until(pilot, lambda: "NO_SUCH_KEY_VAR" in setup_error(app))
        assert "--judge-api-key-env" not in setup_error(app)
        assert app.screen.query_one("#judge_key_env").has_class("-problem")
        assert not app.screen.query_one("#setup-checking").display


async def test_a_ray_run_shows_each_workers_rows_under_the_run_line(filled: Any, make_app: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19's "visible": while a run on a Ray address runs, the panel draws the pool's per-worker
    lines (faked engines: no cluster); they go when the run ends."""
    from agent.world import Engines
    from tests.tui.test_app import start

    slow = SlowEngine(per_probe=0.0, hold_at=8)

    class PoolEngines(Engines):
        def worker_lines(self) -> list[str]:
            return ["ray worker 0 (pid 11 on node-a): 40 rows, 12.5 rows/s", "ray worker 1 (pid 12 on node-b): 38 rows"]

    monkeypatch.setattr("agent.session.engines_on", lambda address, workers=None: PoolEngines(factory=lambda s: slow))
    # The pool is faked, so the run needs no Ray: the README's install has none, and its refusal of a Ray
    # address (tested on its own) must not stop this panel test.
    monkeypatch.setattr("agent.session.ray_problem", lambda address, workers: None)
    app = make_app(filled, engine=slow)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: len(app.rows) == 8)
            await pilot.press("s")
            await start(app, pilot, features="8-11", ray="local")
            await wait_until(pilot, lambda: slow.held.is_set(), timeout=30)
            panel = app.main_screen.run_panel
            await wait_until(pilot, lambda: "ray worker 1 (pid 12 on node-b): 38 rows" in str(panel.render()))
            slow.release.set()
            await wait_until(pilot, lambda: not app.running, timeout=30)
            assert "ray worker" not in str(panel.render())
    finally:
        slow.release.set()
