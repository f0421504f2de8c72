"""The live lines of a run (the phase in progress and its bar, features finished, ETA, every phase so far,
probes/s, tokens and cost), and the run it shows. Each line fits 80 columns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.reactive import reactive, var
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from agent.run.events import RunPhase, RunPlanned
from agent.run.phases import clock, eta_text, legend_lines, phase_line, step_title
from agent.run import RunControl
from tui.messages import RunEnded, RunFailed, RunProgress
from tui.services import PreparedRun, Services


RUN_TERMS = [
    ("run line", ("the phase the run is in, its done/total (fixed when the phase starts; it shrinks when features "
                  "finish early) and bar; features finished of those the run works on; ETA: time left from the pace "
                  "so far (≤: no feature has finished yet, each counted at its most rounds)")),
    ("run phases", "the second run line: ✓ before the phases finished, done/total after the others; "
                   + "; ".join(legend_lines())),
    ("in flight", "features being worked on now; kept: features a run skipped (finished or reviewed before)"),
]
"""The run lines' words, for the help screen."""

WIDTH = 78
"""Characters a run line may take (80 columns less the panel's padding)."""


def bar(done: int, total: int, width: int = 12) -> Text:
    filled = round(width * done / total) if total else width
    return Text("━" * filled, style="green") + Text("━" * (width - filled), style="dim")


def stats_text(state: str, title: str, s: Any, workers: list[str] | tuple[str, ...] = ()) -> Text:
    """The run lines: the phase in progress with its bar, features finished and ETA; every phase so far and the
    elapsed time; in flight, probes/s, tokens and cost. Under them a Ray pool's per-worker lines."""
    if s is None:
        if state == "idle":
            return Text("no run yet · s: new run", style="dim")
        return Text(f"{title}: {state} (the model loads first if needed)", style="dim")
    counts = s.phases
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f"{title[:14]}: ", style="bold")
    step = counts.current()
    if step is not None:
        done, total = counts.done(step), counts.total(step)
        out.append(f"{step_title(step)} {done}/{total} ")
        out.append_text(bar(done, total))
    elif counts.features:
        out.append("finishing")
    else:
        out.append(state if state != "running" else "starting")
    features = counts.features or s.to_run
    out.append(f" · {counts.ended}/{max(features, 1)} features")
    if counts.features:
        out.append(f" · {eta_text(counts)}")
    if state not in ("idle", "running"):
        out.append(f" · {state}", style="bold yellow")
    rows = counts.rows()
    out.append("\n" + (phase_line(counts, WIDTH - 16) + " · " if rows else "") + f"{clock(s.elapsed)} elapsed",
               style="dim")
    rate = s.probes_done / s.elapsed if s.elapsed > 0 else 0.0
    third = f"{len(s.in_flight)} in flight · {rate:.1f} probes/s · {s.tokens:,} tok"
    if s.cost_usd is not None:
        third += f" · ${s.cost_usd:.4f}"
    out.append("\n" + third)
    if s.failed:
        out.append(f" · {s.failed} failed", style="red")
    if s.skipped:
        out.append(f" · {s.skipped} kept", style="dim")
    if s.last_error:
        out.append(f"\nlast error: {s.last_error}", style="red")
    for line in workers:
        out.append(f"\n{line}", style="dim")
    return out


class RunPanel(Widget):
    """Runs one run at a time in a worker and shows its latest RunStats.

    Its RunProgress, RunEnded and RunFailed messages bubble to the screen, which updates the rows
    and calls ``finished`` once it has.
    """

    stats: reactive[Any] = reactive(None, always_update=True, layout=True)  # its lines come and go
    state: reactive[str] = reactive("idle")
    run_title: reactive[str] = reactive("run")
    running: var[bool] = var(False)

    def __init__(self, services: Services, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.services = services
        self._control: RunControl | None = None
        self._workers: Callable[[], list[str]] | None = None
        """The running run's Ray pool's per-worker lines (None: no pool)."""

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        """Elapsed time and rate move on between events (an engine batch may run for a while)."""
        if self.running and self.stats is not None:
            self.refresh()

    def render(self) -> Text:
        workers = self._workers() if self._workers is not None and self.running else []
        return stats_text(self.state, self.run_title, self.stats, workers)

    def start(self, source: PreparedRun | Callable[[], PreparedRun], title: str) -> None:
        """Start a run; ``source`` may be a factory, whose checks then run in the worker too."""
        self._control = RunControl()
        self.running = True
        self.run_title, self.state, self.stats = title, "starting", None
        self._run(source, self._control)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run(self, source: PreparedRun | Callable[[], PreparedRun], control: RunControl) -> None:
        prepared = source if isinstance(source, PreparedRun) else source()
        self._workers = getattr(getattr(prepared, "engines", None), "worker_lines", None)

        def emit(event: Any) -> None:
            self.post_message(RunProgress(event))

        summary = self.services.run(prepared, emit, control)
        self.post_message(RunEnded(summary, prepared.title))

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the run: no new work, and the engine batch in progress stops after its current probe."""
        if not self.running or self._control is None:
            self.notify("no run in progress")
            return
        self._control.cancel(reason)
        self.state = "cancelling"

    def halt(self) -> None:
        """Stop any run because the app quits."""
        if self._control is not None:
            self._control.cancel("quit")

    def finished(self) -> None:
        self.running = False
        self.state = "idle"
        self._workers = None

    def on_run_progress(self, msg: RunProgress) -> None:
        ev = msg.event
        self.stats = ev.stats
        if isinstance(ev, RunPlanned):
            self.state = "loading the model" if ev.to_run else "nothing to do"
        elif isinstance(ev, RunPhase) and self.state != "cancelling":  # loading, measuring the norm, probing
            self.state = "running" if ev.message.startswith("probing") else ev.message
        elif self.state in ("starting", "loading the model"):
            self.state = "running"

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "run" and event.state == WorkerState.ERROR:
            self.post_message(RunFailed(self.run_title, event.worker.error))
