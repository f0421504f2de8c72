"""The steer-tui app: browse a store's features, run the agent, review explanations.

Build it with ``create_app`` (the CLI and the tests both do), injecting the store, the engine
factory and the judge. The app routes: it opens screens and offers the palette; the screens own
their actions (the home screen the rows, its run line the run, the review keys their screen's feature).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.reactive import reactive
from textual.screen import Screen


from agent.run.config import RunConfig
from agent.store.store import Store
from tui.backends import EngineFactory, Engines, JudgeFactory, JudgeSpec, WorldSpec
from tui.evaluation import EvalReport, load_report
from tui.messages import RowsLoaded
from tui.rows import FeatureRow
from tui.screens.actions import APP_BINDINGS, FeatureActions
from tui.screens.evaluation import EvaluationScreen, open_report
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.modals import ConfirmModal
from tui.screens.resume import stopped_message
from tui.screens.setup import SetupScreen
from tui.services import Services


class SteerApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "steer-tui"
    BINDINGS: ClassVar[list[BindingType]] = APP_BINDINGS

    report: reactive[EvalReport | None] = reactive(None, init=False)
    """The evaluation report whose numbers the evaluation and detail screens show (steer-tui --report)."""

    def __init__(self, services: Services, *, open_setup: bool | None = None,
                 report: EvalReport | None = None, startup_error: str | None = None) -> None:
        super().__init__()
        self.services = services
        self.set_reactive(SteerApp.report, report)
        self.open_setup = open_setup
        """Show the setup screen first: True, False, or None (when the store is empty)."""
        self.startup_error = startup_error
        """Why the model or store could not be resolved at start; the setup screen shows it."""
        self._loaded_once = False
        self.exit_message: str | None = None
        """What the app printed on leaving (a quit during a run says how to resume)."""

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """App.run, then the exit message printed as plain lines: Textual's console would wrap the resume
        command at the terminal's width, with newlines that break it when pasted."""
        result = super().run(*args, **kwargs)
        if self.exit_message:
            print(self.exit_message, file=sys.stderr, flush=True)
        return result

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    @property
    def main_screen(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    @property
    def rows(self) -> dict[int, FeatureRow]:
        """Every feature's row, as the home screen holds it."""
        return self.main_screen.rows

    @property
    def running(self) -> bool:
        return self.main_screen.run_panel.running

    def on_mount(self) -> None:
        self.sub_title = self.services.store_label

    def on_rows_loaded(self, msg: RowsLoaded) -> None:
        """After the first rows: say why the setup failed, or open the setup screen where it is wanted."""
        first = not self._loaded_once
        self._loaded_once = True
        if not first:
            return
        if self.startup_error and self.open_setup is False:
            self.notify(self.startup_error, severity="error", timeout=15)
        # An empty store opens the setup screen, unless the user came to read an evaluation report.
        wanted = self.open_setup if self.open_setup is not None else not self.rows and self.report is None
        if wanted and not self.running:
            self.action_setup()

    # ------------------------------------------------------------------ routes

    def action_setup(self) -> None:
        if not isinstance(self.screen, SetupScreen):
            self.push_screen(SetupScreen(), self.main_screen.start_run)

    def action_cancel_run(self) -> None:
        self.main_screen.run_panel.cancel()

    def action_evaluation(self) -> None:
        """Show the evaluation report's numbers; ask for a report first when none is loaded."""
        if isinstance(self.screen, EvaluationScreen):
            return
        if self.report is None:
            open_report(self, show=True)
        else:
            self.push_screen(EvaluationScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Quit; during a run, ask first, and say how to resume once the app is gone."""
        panel = self.main_screen.run_panel
        if not panel.running:
            self.exit()
            return
        if isinstance(self.screen, ConfirmModal):
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.exit_message = stopped_message(panel.run_title, panel.stats, self.main_screen.resume)
                panel.halt()
                self.exit()  # the message is printed by ``run``, once the terminal is restored

        self.push_screen(ConfirmModal("Quit during a run?", "The run stops after the probe in progress; finished "
                                      "features are stored, and running the same features again resumes.",
                                      yes="Quit", no="Keep running"), answer)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, FeatureActions):
            yield from screen.system_commands()
        yield SystemCommand("New run", "Pick model, SAE, layer, judge and features; start a run", self.action_setup)
        if self.running:
            yield SystemCommand("Cancel run", "Stop the run after the engine batch in progress",
                                self.action_cancel_run)
        yield SystemCommand("Evaluation report", "The numbers of a steer-agent eval report (m)", self.action_evaluation)
        yield SystemCommand("Open an evaluation report", "Load a report folder or metrics.json",
                            lambda: open_report(self, show=True))
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
    return SteerApp(services, open_setup=open_setup, report=report, startup_error=startup_error)
