"""The CLI's rich display: a live line of run statistics, and the summary table at the end."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from agent.events import FeatureFinished, RunError, RunEvent, RunFinished, RunStarted, RunStats
from agent.groundtruth import names_truth

log = logging.getLogger(__name__)


def stats_line(s: RunStats) -> str:
    rounds = Counter(s.in_flight.values())
    in_flight = ", ".join(f"r{r}:{n}" for r, n in sorted(rounds.items())) or "-"
    cost = f" ${s.cost_usd:.4f}" if s.cost_usd is not None else ""
    return (f"in flight {len(s.in_flight)} ({in_flight}) | probes {s.probes_run} ({s.probes_per_s:.1f}/s) | "
            f"judge {s.judge_calls} calls, {s.tokens:,} tok{cost} | failed {s.failed} | errors {s.errors}")


class RichProgress:
    """Consumes run events; draws a live bar on a terminal, stays quiet elsewhere."""

    def __init__(self, console: Console | None = None, enabled: bool = True, verbose: bool = False,
                 extra: Callable[[], str] | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.extra = extra
        """A second line drawn under the statistics (a Ray pool's per-worker rows/s and queue depth)."""
        self.enabled = enabled and self.console.is_terminal
        self.verbose = verbose
        self._progress = Progress(TextColumn("[bold]features"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self.console, transient=False)
        self._task = self._progress.add_task("features", total=1)
        self._line = Text("")
        self._live: Live | None = None
        self.errors: list[str] = []

    def __enter__(self) -> RichProgress:
        if self.enabled:
            self._live = Live(Group(self._progress, self._line), console=self.console, refresh_per_second=4,
                              transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(self, event: RunEvent) -> None:
        s = event.stats
        if isinstance(event, RunStarted):
            self._progress.update(self._task, total=max(1, s.to_run), completed=0)
            if s.skipped:
                self._print(f"{s.skipped} of {s.total} features already finished or reviewed: resuming with "
                            f"{s.to_run} (--rejudge or --force to redo)")
            if event.to_run:
                self._print(f"judge: {event.judge} | strengths: {', '.join(f'{x:g}' for x in event.strengths)} | "
                            f"store: {event.store}")
        elif isinstance(event, FeatureFinished):
            self._progress.update(self._task, completed=s.finished_features)
            if self.verbose:
                r = event.record
                self._print(f"feature {r.feature}: {r.status} {r.label or ''} ({r.rounds} rounds, {r.n_probes} probes)")
        elif isinstance(event, RunError):
            self.errors.append(event.message)
            if self.verbose or event.fatal or not self.enabled:
                self._print(f"[red]error:[/red] {event.message}" if self.enabled else f"error: {event.message}")
        elif isinstance(event, RunFinished):
            self._progress.update(self._task, completed=s.finished_features)
        line = stats_line(s)
        if self.extra is not None:
            line += "\n" + self.extra()
        self._line.plain = line

    def _print(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)
        else:
            self.console.print(message, markup=False, highlight=False)


def summary_table(records: list[Any], truth: dict[int, dict[str, Any]] | None, limit: int = 64) -> Table:
    """One line of numbers per feature; the label takes whatever width the terminal has left."""
    table = Table(title="features", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_lines=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("label", ratio=1, min_width=12, overflow="fold")
    table.add_column("conf", justify="right", no_wrap=True)
    table.add_column("rounds\nprobes", justify="right", no_wrap=True)
    if truth:
        table.add_column("ground truth", no_wrap=True)
        table.add_column("named", no_wrap=True)
    for r in records[:limit]:
        row = [str(r.feature), r.status, r.final_label or (r.error or "")[:60],
               "" if r.confidence is None else f"{r.confidence:.2f}", f"{r.rounds}/{r.n_probes}"]
        if truth:
            t = truth.get(r.feature)
            hit = names_truth(r.final_explanation if r.status == "done" else None, t)
            purity = f"{float(t.get('purity', 0)):.2f}".removeprefix("0") if t else ""
            row += [f"{t['family']}={t['value']} {purity}" if t and t.get("value") else "",
                    "" if hit is None else ("yes" if hit else "no")]
        table.add_row(*row)
    if len(records) > limit:
        table.caption = f"{len(records) - limit} more not shown; see --export"
    return table
