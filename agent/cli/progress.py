"""The CLI's rich display: a live line of run statistics, and the summary table at the end."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from agent.run.events import FeatureFinished, RunError, RunEvent, RunPhase, RunPlanned, RunStarted, RunStats
from agent.run.phases import clock, eta_text, phase_line, step_title
from agent.groundtruth import names_truth
from agent.judges.redact import printable

log = logging.getLogger(__name__)


def in_flight_words(s: RunStats) -> str:
    """Features in flight, in words: how many still run their sweep and how many are with the judge."""
    if not s.in_flight:
        return "none in flight"
    sweeping = sum(1 for r in s.in_flight.values() if r == 0)
    judging = len(s.in_flight) - sweeping
    parts = [f"{sweeping} sweeping" if sweeping else "", f"{judging} judging" if judging else ""]
    return f"{len(s.in_flight)} in flight: " + ", ".join(p for p in parts if p)


def plain(text: object) -> Text:
    """``text`` as Rich shows it literally: no markup, no emoji codes, no escape sequences or control
    characters (what a judge, a store or a model wrote is never read as markup or sent to the terminal raw)."""
    return Text(printable(text))


def line_console(stderr: bool = False) -> Console:
    """A console for the CLI's own lines (no highlighting, no emoji codes: a model name such as ``m`` after
    ``openai:`` is not an emoji); pass judge and store text through ``plain``."""
    return Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=True)


def say(out: Console, line: object, *, soft_wrap: bool | None = None) -> None:
    """Print one line literally (see ``plain``)."""
    out.print(plain(line), soft_wrap=soft_wrap)


def probes_words(s: RunStats, room: int = 80) -> str:
    """Probes run so far and their pace (no total: the judge's follow-ups are not known in advance), and those
    queued in the engine when ``room`` characters allow."""
    rate = s.probes_done / s.elapsed if s.elapsed > 0 else 0.0
    waiting = max(0, s.probes_queued - s.probes_done)
    words = f"probes {s.probes_done} run ({rate:.1f}/s)"
    queued = f" +{waiting} queued" if waiting else ""
    return words + queued if len(words + queued) <= room else words


def stats_lines(s: RunStats) -> list[str]:
    """The live statistics as short lines (each fits 80 columns for any plausible numbers)."""
    cost = f" ${s.cost_usd:.4f}" if s.cost_usd is not None else ""
    flight = in_flight_words(s)
    first = f"{flight} | {probes_words(s, 80 - len(flight) - 3)}"
    second = f"judge {s.judge_calls} calls, {s.tokens:,} tok{cost}"
    if s.failed:
        second += f" | {s.failed} failed"
    if s.errors:
        second += f" | {s.errors} errors"
    if not s.judge_live_calls:
        return [first, second]
    third = (f"judge endpoint {s.judge_seconds / s.judge_live_calls:.1f} s/call over {s.judge_live_calls} "
             f"requests" + (f", format {s.judge_format}" if s.judge_format else ""))
    return [first, second, third]


def stats_line(s: RunStats) -> str:
    """The live statistics on one line (for logs)."""
    return " | ".join(stats_lines(s))


def loading(console: Console, enabled: bool = True) -> AbstractContextManager[Any]:
    """A spinner saying what happens while the options are checked and the model loads (terminals only)."""
    if not (enabled and console.is_terminal):
        return nullcontext()
    return console.status("checking the options, loading the model and SAE (the first load takes a while) ...")


class RichProgress:
    """Consumes run events; draws a live display on a terminal (what the run does now, features and
    probes as they finish), and prints each step as a plain line elsewhere."""

    def __init__(self, console: Console | None = None, enabled: bool = True, verbose: bool = False,
                 extra: Callable[[], str] | None = None) -> None:
        self.console = console or Console(stderr=True, emoji=False)
        self.extra = extra
        """A second line drawn under the statistics (a Ray pool's per-worker rows/s and queue depth)."""
        self.live_display = enabled and self.console.is_terminal
        self.enabled = enabled
        self.verbose = verbose
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description:<13}"), BarColumn(bar_width=20),
                                  MofNCompleteColumn(), TextColumn("{task.fields[note]}"), console=self.console,
                                  transient=False)
        self._step = self._progress.add_task("starting", total=None, note="")
        self._features = self._progress.add_task("features", total=None, note="finished")
        self._phase = Text("starting", style="bold", no_wrap=True, overflow="ellipsis")
        self._phases = Text("", style="dim", no_wrap=True, overflow="ellipsis")
        self._line = Text("", no_wrap=True, overflow="ellipsis")
        self._live: Live | None = None
        self.errors: list[str] = []

    def __enter__(self) -> RichProgress:
        if self.live_display:
            hint = Text("  what these words mean: steer-agent run --help", style="dim", no_wrap=True)
            self._live = Live(Group(self._phase, self._progress, self._phases, self._line, hint), console=self.console,
                              refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(self, event: RunEvent) -> None:
        s = event.stats
        if isinstance(event, RunPlanned):
            self._progress.update(self._features, total=max(1, len(event.to_run)), completed=0)
            self._progress.update(self._step, description="loading")
        elif isinstance(event, RunPhase):
            self._set_phase(event.message)
        elif isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, FeatureFinished) and self.verbose:
            r = event.record
            self._print(f"feature {r.feature}: {r.status} {r.label or ''} ({r.rounds} rounds, {r.n_probes} probes)")
        elif isinstance(event, RunError):
            self.errors.append(event.message)
            if self.verbose or event.fatal or not self.live_display:
                self._print(f"error: {event.message}", prefix_style="red" if self.live_display else "")
        self.show(s)

    def show(self, s: RunStats) -> None:
        """Draw the bars and lines for ``s``: the phase in progress (done/total, elapsed, ETA), the features
        finished, every phase so far on one line, then the statistics."""
        counts = s.phases
        step = counts.current()
        if step is not None:
            self._progress.update(self._step, description=step_title(step), total=max(1, counts.total(step)),
                                  completed=counts.done(step), note=f"{clock(s.elapsed)} {eta_text(counts)}")
        elif counts.features:  # every step taken: the last features are being stored
            self._progress.update(self._step, description="finishing", total=1, completed=1,
                                  note=clock(s.elapsed))
        if counts.features:
            self._progress.update(self._features, total=counts.features, completed=counts.ended)
        width = max(20, min(self.console.width, 80) - 2)
        self._phases.plain = "  " + phase_line(counts, width) if counts.rows() else ""
        lines = stats_lines(s) + ([printable(self.extra())] if self.extra is not None else [])
        self._line.plain = "\n".join(lines)

    def _started(self, event: RunStarted) -> None:
        s = event.stats
        if s.skipped:
            self._print(f"{s.skipped} of {s.total} features already finished or reviewed: resuming with "
                        f"{s.to_run} (--rejudge or --force to redo)")
        if event.to_run:
            strengths = ", ".join(f"{x:.4g}" for x in event.strengths)
            self._print(f"judge: {event.judge} | strengths: {strengths}")
            self._print(f"store: {event.store}")

    def _set_phase(self, message: str) -> None:
        self._phase.plain = printable(message) + " ..."
        if not self.live_display:
            self._print(message + " ...")

    def _print(self, message: str, prefix_style: str = "") -> None:
        """One line, shown literally (judge and store text in it is neither markup nor escape sequences);
        ``prefix_style`` colours its first word."""
        line = plain(message)
        if prefix_style:
            line.stylize(prefix_style, 0, len(message.split(" ", 1)[0]))
        self.console.print(line, highlight=False)


REVIEW_WORDS = {"accept": "accepted", "edit": "edited", "reject": "rejected"}


def summary_table(records: list[Any], truth: dict[int, dict[str, Any]] | None, limit: int = 64) -> Table:
    """One line of numbers per feature; the label takes whatever width the terminal has left."""
    table = Table(title="features", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_lines=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("label", ratio=1, min_width=12, overflow="fold")
    table.add_column("conf", justify="right", no_wrap=True)
    table.add_column("rounds/\nprobes", justify="right", no_wrap=True)
    reviewed = any(getattr(r, "review", None) is not None for r in records[:limit])
    if reviewed:
        table.add_column("review", no_wrap=True)
    if truth:
        table.add_column("ground truth", no_wrap=True)
        table.add_column("named", no_wrap=True)
    for r in records[:limit]:
        row = [str(r.feature), r.status, r.final_label or (r.error or "")[:60],
               "" if r.confidence is None else f"{r.confidence:.2f}", f"{r.rounds}/{r.n_probes}"]
        decision = r.review.decision if getattr(r, "review", None) is not None else None
        if reviewed:
            row.append(REVIEW_WORDS.get(decision or "", decision or ""))
        if truth:
            t = truth.get(r.feature)
            # a rejected explanation is nobody's answer: it names nothing
            hit = names_truth(r.final_explanation if r.status == "done" and decision != "reject" else None, t)
            purity = f"{float(t.get('purity', 0)):.2f}".removeprefix("0") if t else ""
            row += [f"{t['family']}={t['value']} {purity}" if t and t.get("value") else "",
                    "" if hit is None else ("yes" if hit else "no")]
        table.add_row(*(plain(cell) for cell in row))  # a label is the judge's text: never markup
    caption = "rounds/probes: judge rounds and probes run for the feature; conf: the judge's confidence"
    if reviewed:
        caption += "; review: a person's decision (the label shown is the edited one)"
    if truth:
        caption += ("; ground truth: the attribute value the feature's top scenes share, and its purity; named: "
                    "whether the explanation (not a rejected one) names it")
    if len(records) > limit:
        caption += f"\n{len(records) - limit} more not shown; see --export"
    table.caption = caption
    return table
