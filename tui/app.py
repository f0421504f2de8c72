"""The steer-tui app: browse a store's features, run the agent, review explanations.

Build it with ``create_app`` (the CLI and the tests both do), injecting the store, the engine
factory and the judge. Model, judge and store work runs in thread workers that report through
messages; one ``Worker.StateChanged`` handler reports their failures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from agent.config import RunConfig
from agent.store import Store
from tui.backends import EngineFactory, Engines, JudgeFactory, JudgeSpec, WorldSpec
from tui.evaluation import EvalReport, load_report
from tui.messages import ReviewSaved, RowsLoaded, RunEnded, RunProgress
from tui.rows import FeatureRow, view
from tui.screens.actions import ACTION_HELP
from tui.screens.main import MainScreen
from tui.services import PreparedRun, Services, display_path


class SteerApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "steer-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark,f1", "help", "help"),
        Binding("s", "setup", "new run", show=False),
        Binding("c", "cancel_run", "cancel run", show=False),
        Binding("m", "evaluation", "evaluation report", show=False),
    ]

    running: reactive[bool] = reactive(False)
    report: reactive[EvalReport | None] = reactive(None, init=False)
    """The evaluation report whose numbers the evaluation and detail screens show (steer-tui --report)."""

    def __init__(self, services: Services, *, open_setup: bool | None = None,
                 report: EvalReport | None = None) -> None:
        super().__init__()
        self.services = services
        self.set_reactive(SteerApp.report, report)
        self.rows: dict[int, FeatureRow] = {}
        self.open_setup = open_setup
        self.startup_error: str | None = None
        self._generation = 0
        self._loaded_once = False
        self._control: Any = None
        self._in_run: set[int] = set()

    def get_default_screen(self) -> Screen:
        return MainScreen()

    @property
    def main_screen(self) -> MainScreen:
        return self.screen_stack[0]  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.sub_title = self.services.store_label
        self.reload_rows()

    # ------------------------------------------------------------------ rows

    def reload_rows(self) -> None:
        self._generation += 1
        self._load_rows(self._generation)

    @work(thread=True, exclusive=True, group="rows", exit_on_error=False)
    def _load_rows(self, generation: int) -> None:
        rows, errors = self.services.load_rows()
        self.post_message(RowsLoaded(rows, errors, generation))

    def on_rows_loaded(self, msg: RowsLoaded) -> None:
        if msg.generation != self._generation:  # an older request answered late
            return
        live = {f: r for f, r in self.rows.items() if f in self._in_run and r.status in ("pending", "running")}
        self.rows = {r.feature: r for r in msg.rows} | live
        self.main_screen.refresh_view()
        for error in msg.errors[:3]:
            self.notify(error, severity="error", timeout=10)
        first = not self._loaded_once
        self._loaded_once = True
        if first and self.startup_error and self.open_setup is False:
            self.notify(self.startup_error, severity="error", timeout=15)
        # An empty store opens the setup screen, unless the user came to read an evaluation report.
        wanted = self.open_setup if self.open_setup is not None else not self.rows and self.report is None
        if first and wanted and not self.running:
            self.action_setup()

    def neighbour(self, feature: int, delta: int) -> int | None:
        """The feature ``delta`` rows away in the table's current order."""
        screen = self.main_screen
        order = [r.feature for r in view(self.rows.values(), screen.filt, screen.sort_key, screen.sort_reverse)]
        if feature not in order:
            return order[0] if order else None
        return order[max(0, min(len(order) - 1, order.index(feature) + delta))]

    def set_rows(self, rows: Iterable[FeatureRow]) -> None:
        changed = []
        for row in rows:
            self.rows[row.feature] = row
            changed.append(row.feature)
        self.main_screen.update_rows(changed)

    def feature_changed(self, feature: int) -> None:
        from tui.messages import FeatureChanged
        from tui.screens.detail import DetailScreen

        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen):
                screen.post_message(FeatureChanged(feature))

    # ------------------------------------------------------------------ runs

    def action_setup(self) -> None:
        from tui.screens.setup import SetupScreen

        if not isinstance(self.screen, SetupScreen):
            self.push_screen(SetupScreen(), self.start_run)

    def start_run(self, prepared: PreparedRun | None) -> None:
        if prepared is None:
            return
        if self.running:
            self.notify("a run is in progress: cancel it first (c)", severity="warning")
            return
        self.startup_error = None
        if self.services.adopt(prepared):
            self.sub_title = self.services.store_label
            self.rows = {}
            self.reload_rows()
        self._begin(prepared.title)
        self._run(prepared, self._control)

    def rerun(self, feature: int) -> None:
        from tui.screens.modals import NoteModal

        row = self.rows.get(feature)
        if row is None or row.status in ("pending", "running"):
            self.notify(f"feature {feature} has no record to re-run yet", severity="warning")
            return
        if self.running:
            self.notify("a run is in progress: wait for it or cancel it (c)", severity="warning")
            return

        def go(note: str | None) -> None:
            if note is None or self.running:
                return
            self._begin(f"re-run #{feature}")
            self._run(lambda: self.services.prepare_rerun(feature, note), self._control)

        self.push_screen(NoteModal(row), go)

    def _begin(self, title: str) -> None:
        from agent.run import RunControl

        self._control = RunControl()
        self.running = True
        panel = self.main_screen.query_one("#run-panel")
        panel.run_title, panel.state, panel.stats = title, "starting", None  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run(self, source: PreparedRun | Callable[[], PreparedRun], control: Any) -> None:
        """Run to the end in this thread; ``source`` may be a factory (its checks then run here too)."""
        prepared = source if isinstance(source, PreparedRun) else source()
        summary = self.services.run(prepared, lambda ev: self.post_message(RunProgress(ev)), control)
        self.post_message(RunEnded(summary, prepared.title))

    def action_cancel_run(self) -> None:
        if not self.running or self._control is None:
            self.notify("no run in progress")
            return
        self._control.cancel("cancelled")
        self.main_screen.query_one("#run-panel").state = "cancelling"  # type: ignore[attr-defined]

    def on_run_progress(self, msg: RunProgress) -> None:
        from agent.events import (
            FeatureFinished,
            FeatureStarted,
            JudgeDecided,
            RunError,
            RunPlanned,
            RunStarted,
        )

        ev = msg.event
        panel = self.main_screen.query_one("#run-panel")
        panel.stats = ev.stats  # type: ignore[attr-defined]
        if isinstance(ev, RunPlanned):
            panel.state = "loading the model" if ev.to_run else "nothing to do"  # type: ignore[attr-defined]
        elif panel.state in ("starting", "loading the model"):  # type: ignore[attr-defined]
            panel.state = "running"  # type: ignore[attr-defined]
        if isinstance(ev, (RunPlanned, RunStarted)):
            self._in_run = set(ev.to_run)
            self.set_rows(replace(self.rows.get(f) or FeatureRow(f), status="pending") for f in ev.to_run)
        elif isinstance(ev, FeatureStarted):
            self.set_rows([replace(self.rows.get(ev.feature) or FeatureRow(ev.feature), status="running", round=0)])
        elif isinstance(ev, JudgeDecided):
            row = self.rows.get(ev.feature)
            if row is not None and row.status == "running":
                self.set_rows([replace(row, round=ev.round)])
        elif isinstance(ev, FeatureFinished):
            self._in_run.discard(ev.feature)
            if ev.written:
                self.set_rows([FeatureRow.from_record(ev.record)])
            self.feature_changed(ev.feature)
        elif isinstance(ev, RunError) and ev.fatal:
            self.notify(ev.message, title="run stopped", severity="error", timeout=20)

    def on_run_ended(self, msg: RunEnded) -> None:
        self._finish_run(msg.title)
        s = msg.summary
        counts = {k: sum(v == k for v in s.statuses.values()) for k in ("done", "failed", "not-started")}
        kept = sum(v.startswith("skipped") for v in s.statuses.values())
        text = f"{msg.title}: {counts['done']} done, {counts['failed']} failed"
        if kept:
            text += f", {kept} already finished or reviewed"
        if counts["not-started"]:
            text += f", {counts['not-started']} not started"
        severity = "information" if s.stop_reason is None else "warning"
        if s.stop_reason:
            text += f" (stopped: {s.fatal_error or s.stop_reason})"
        self.notify(text, severity=severity, timeout=8)

    def _finish_run(self, title: str) -> None:
        self.running = False
        stuck = [f for f in self._in_run if f in self.rows]
        self.set_rows(replace(self.rows[f], status="pending", round=None) for f in stuck
                      if self.rows[f].status == "running")
        self._in_run = set()
        self.main_screen.query_one("#run-panel").state = "idle"  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ reviews

    def review(self, feature: int, decision: str, explanation: str | None = None, label: str | None = None) -> None:
        row = self.rows.get(feature)
        if row is None or row.status in ("pending", "running"):
            self.notify(f"feature {feature} has no explanation yet", severity="warning")
            return
        if decision == "accept" and row.status == "failed":
            self.notify(f"feature {feature} failed: nothing to accept; edit it (e) or re-run it (n)",
                        severity="warning")
            return
        self._save_review(feature, decision, explanation, label)

    def _save_review(self, feature: int, decision: str | None, explanation: str | None, label: str | None) -> None:
        future = self.services.submit_review(feature, decision, explanation=explanation, label=label)
        self._await_review(future, feature, decision)

    @work(group="review", exit_on_error=False)
    async def _await_review(self, future: Any, feature: int, decision: str | None) -> None:
        record = await asyncio.wrap_future(future)
        self.post_message(ReviewSaved(feature, decision, FeatureRow.from_record(record) if record else None))

    def on_review_saved(self, msg: ReviewSaved) -> None:
        if msg.row is not None:
            self.set_rows([msg.row])
        words = {"accept": "accepted", "edit": "edited", "reject": "rejected", None: "review withdrawn"}
        who = f" by {self.services.reviewer}" if msg.decision else ""
        self.notify(f"feature {msg.feature} {words[msg.decision]}{who}", timeout=3)
        self.feature_changed(msg.feature)

    def edit(self, feature: int) -> None:
        from tui.screens.modals import EditModal

        row = self.rows.get(feature)
        if row is None or row.status in ("pending", "running"):
            self.notify(f"feature {feature} has no record to edit yet", severity="warning")
            return

        def save(result: tuple[str, str] | None) -> None:
            if result is not None:
                self._save_review(feature, "edit", result[0] or None, result[1] or None)

        self.push_screen(EditModal(row), save)

    def undo_review(self, feature: int) -> None:
        row = self.rows.get(feature)
        if row is None or row.review is None:
            self.notify(f"feature {feature} has no review to withdraw", severity="warning")
            return
        self._save_review(feature, None, None, None)

    # ------------------------------------------------------------------ probes, export, help

    def probe(self, feature: int) -> None:
        from tui.screens.probe import ProbeModal

        row = self.rows.get(feature)
        strength = row.strength if row is not None and row.strength else 10.0
        self.push_screen(ProbeModal(feature, strength), lambda _: self.feature_changed(feature))

    def export(self) -> None:
        from tui.screens.modals import ExportModal

        store = self.services.store
        default = f"{store.path.name if store else 'steer'}-export.jsonl"

        def done(result: tuple[str, int] | None) -> None:
            if result is not None:
                self.notify(f"exported {result[1]} records to {result[0]}", timeout=6)

        self.push_screen(ExportModal(default), done)

    def open_detail(self, feature: int) -> None:
        from tui.screens.detail import DetailScreen

        self.push_screen(DetailScreen(feature))

    def action_evaluation(self) -> None:
        """Show the evaluation report's numbers; ask for a report first when none is loaded."""
        from tui.screens.evaluation import EvaluationScreen

        if isinstance(self.screen, EvaluationScreen):
            return
        if self.report is None:
            self.open_report(show=True)
        else:
            self.push_screen(EvaluationScreen())

    def open_report(self, show: bool = True) -> None:
        """Ask for a report path and load it; ``show`` opens the evaluation screen afterwards."""
        from tui.screens.evaluation import EvaluationScreen
        from tui.screens.modals import ReportModal

        if self.report is not None:
            default = display_path(self.report.path.parent)
        else:
            default = "docs/eval" if Path("docs/eval/metrics.json").is_file() else ""

        def loaded(report: EvalReport | None) -> None:
            if report is None:
                return
            self.report = report
            if show and not isinstance(self.screen, EvaluationScreen):
                self.push_screen(EvaluationScreen())

        self.push_screen(ReportModal(default), loaded)

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_quit(self) -> None:  # type: ignore[override]
        if self._control is not None:
            self._control.cancel("quit")
        self.exit()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures surface (screens handle the ones they show inline)."""
        if event.state != WorkerState.ERROR:
            return
        worker, error = event.worker, event.worker.error
        if worker.group == "run":
            self._finish_run("run")
            self.notify(f"the run failed: {error}", severity="error", timeout=20)
        elif worker.group == "review":
            self.notify(f"could not save the review: {error}", severity="error", timeout=10)
        elif worker.group == "rows":
            self.notify(f"could not read the store: {error}", severity="error", timeout=10)
        else:
            self.notify(f"{worker.name or worker.group} failed: {error}", severity="error")

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        from tui.screens.actions import FeatureActions

        if isinstance(screen, FeatureActions):
            feature = screen.current_feature
            where = f" (feature {feature})" if feature is not None else ""
            for action, help_text in ACTION_HELP.items():
                title = help_text.split(" (")[0] + where
                yield SystemCommand(title, help_text, lambda a=action, s=screen: s.run_action(a))
        if isinstance(screen, MainScreen):
            yield SystemCommand("Jump to feature", "Move the cursor to a feature id", screen.action_jump)
            yield SystemCommand("Sort by next column", "id, label, confidence, status, review", screen.action_sort)
            yield SystemCommand("Clear filters", "Show every feature", screen.action_clear_filter)
            for status in ("done", "failed", "pending", "running"):
                yield SystemCommand(f"Show {status} features", f"Filter the table to status {status}",
                                    lambda st=status, s=screen: s.set_filter(replace(s.filt, status=st)))
            for review in ("unreviewed", "accepted", "edited", "rejected"):
                yield SystemCommand(f"Show {review} features", f"Filter the table to review {review}",
                                    lambda rv=review, s=screen: s.set_filter(replace(s.filt, review=rv)))
        yield SystemCommand("New run", "Pick model, SAE, layer, judge and features; start a run", self.action_setup)
        if self.running:
            yield SystemCommand("Cancel run", "Stop the run after the engine batch in progress",
                                self.action_cancel_run)
        yield SystemCommand("Evaluation report", "The numbers of a steer-agent eval report (m)", self.action_evaluation)
        yield SystemCommand("Open an evaluation report", "Load a report folder or metrics.json",
                            lambda: self.open_report(show=True))
        yield SystemCommand("Help: keys", "Every key of every screen", self.action_help)


def create_app(store: Store | str | Path | None = None, *, engine_factory: EngineFactory | None = None,
               engine: Any = None, judge: Any = None, judge_factory: JudgeFactory | None = None,
               world: WorldSpec | None = None, judge_spec: JudgeSpec | None = None,
               run_config: RunConfig | None = None, features: str | None = None, reviewer: str | None = None,
               topk: str | Path | None = None, open_setup: bool | None = None,
               startup_error: str | None = None, report: EvalReport | str | Path | None = None) -> SteerApp:
    """Build the app. Every backend is injectable: tests pass a fake engine and a scripted judge.

    store: a Store or a folder; engine_factory: WorldSpec -> engine (default: load model + SAE);
    engine: an engine already loaded for ``world``; judge: a judge offered as the setup default;
    judge_factory: JudgeSpec -> judge; open_setup: show the setup screen first (default: when the
    store is empty); report: an evaluation report (folder or metrics.json; raises ReportError when
    unreadable).
    """
    if report is not None and not isinstance(report, EvalReport):
        report = load_report(report)  # before the store opens: a bad path leaves nothing open
    if store is not None and not isinstance(store, Store):
        store = Store(store)
    world = world or WorldSpec()
    engines = Engines(engine_factory, engine=engine, spec=WorldSpec.from_world(store.world(), world)
                      if store is not None and store.world() else world)
    services = Services(store, engines=engines, judge_factory=judge_factory, judge=judge, world=world,
                        judge_spec=judge_spec, run_config=run_config, reviewer=reviewer, topk_dir=topk,
                        features=features)
    app = SteerApp(services, open_setup=open_setup, report=report)
    app.startup_error = startup_error
    return app
