"""One run's state: its statistics and summary, its stop signal, and the events it reports."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.run.config import RunConfig
from agent.run.events import (
    FeatureFinished,
    FeatureSkipped,
    ProbeProgress,
    ProbesFinished,
    RunError,
    RunEvent,
    RunFinished,
    RunPhase,
    RunStats,
)
from agent.judges.base import Usage
from agent.store.records import FeatureRecord, new_run_id

log = logging.getLogger(__name__)

EventCallback = Callable[[RunEvent], None]


class RunControl:
    """A handle to stop a run from another thread (Ctrl-C, a TUI button). Thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class RunSummary:
    """How a run ended."""

    stats: RunStats
    statuses: dict[int, str] = field(default_factory=dict)
    """feature -> done, failed, skipped-done, skipped-reviewed, unreadable, not-started."""
    records: dict[int, FeatureRecord] = field(default_factory=dict)
    """Records this run produced."""
    strengths: list[float] = field(default_factory=list)
    strength_source: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    """Why the run stopped early: cancelled, interrupted, budget, quota, fatal judge error."""
    fatal_error: str | None = None
    images: dict[str, Any] = field(default_factory=dict)
    """Top-k / hybrid evidence of the run: modes, hybrid strength and how it was chosen, collection."""

    @property
    def complete(self) -> bool:
        return all(s in ("done", "skipped-done", "skipped-reviewed") for s in self.statuses.values())

    @property
    def exit_code(self) -> int:
        """0 when every feature is done, 1 otherwise (failed, unreadable, or left by a stop)."""
        return 0 if self.complete and self.stop_reason is None else 1


class Run:
    """What the scheduler and its workers share while a run goes on; the event callback sees
    each event with a snapshot of the statistics."""

    def __init__(self, features: Sequence[int], config: RunConfig, control: RunControl | None = None,
                 on_event: EventCallback | None = None) -> None:
        self.features = list(features)
        self.config = config
        self.control = control or RunControl()
        self.on_event = on_event
        self.stats = RunStats(total=len(self.features))
        self.summary = RunSummary(stats=self.stats)
        self.run_id = new_run_id()
        self.stop = asyncio.Event()
        """Set by ``halt``: the workers stop taking features and the running ones are cancelled."""
        self._progress_sent = 0.0

    # ------------------------------------------------------------------ events

    def emit(self, factory: Callable[..., RunEvent]) -> None:
        """Report the event ``factory(stats=<snapshot>)``; a failing callback never stops the run."""
        if self.on_event is None:
            return
        try:
            self.on_event(factory(stats=self.stats.snapshot()))
        except Exception:
            log.exception("progress callback failed")

    def error(self, message: str, feature: int | None = None, fatal: bool = False) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        self.emit(lambda stats: RunError(stats=stats, message=message, feature=feature, fatal=fatal))

    # ------------------------------------------------------------------ stopping

    def note_stop(self, reason: str, message: str | None = None) -> None:
        """Record why the run stops early (the first reason wins)."""
        if self.summary.stop_reason is None:
            self.summary.stop_reason = reason
            self.summary.fatal_error = message

    def halt(self, reason: str, message: str | None = None) -> None:
        """Stop the run now: no new features, and the features in flight are cancelled."""
        self.note_stop(reason, message)
        self.stop.set()

    # ------------------------------------------------------------------ progress

    def on_batch(self, n_probes: int, n_rows: int, seconds: float) -> None:
        self.stats.probes_run += n_probes
        self.stats.probe_rows += n_rows
        self.stats.engine_seconds += seconds
        self.emit(lambda stats: ProbesFinished(stats=stats, n_probes=n_probes, n_rows=n_rows, seconds=seconds))

    def phase(self, message: str) -> None:
        """Say what the run does now (a step that may take a while)."""
        self.stats.phase = message
        self.emit(lambda stats: RunPhase(stats=stats, message=message))

    def on_probe_progress(self, queued: int, done: int) -> None:
        """Probes handed to the engine (``queued``) or finished (``done``); reported a few times a second."""
        self.stats.probes_queued += queued
        self.stats.probes_done += done
        now = time.monotonic()
        if queued or now - self._progress_sent >= 0.2:
            self._progress_sent = now
            self.emit(lambda stats: ProbeProgress(stats=stats))

    def on_round(self, feature: int, rnd: int) -> None:
        self.stats.in_flight[feature] = rnd
        self.stats.rounds += 1

    def on_usage(self, usage: Usage, cached: bool, calls: list[dict[str, Any]] | None = None) -> None:
        """A judge turn's usage, and its HTTP calls (latency, format) for the live display."""
        stats = self.stats
        stats.judge_calls += usage.calls
        stats.judge_cached += int(cached)
        for call in calls or []:
            if call.get("cached"):
                continue
            stats.judge_live_calls += 1
            stats.judge_seconds += float(call.get("seconds") or 0.0)
            stats.judge_format = str(call.get("format") or stats.judge_format or "") or None
        stats.prompt_tokens += usage.prompt_tokens
        stats.completion_tokens += usage.completion_tokens
        if usage.cost_usd is not None:
            stats.cost_usd = (stats.cost_usd or 0.0) + usage.cost_usd

    def skipped(self, feature: int, status: str, reason: str) -> None:
        """``feature`` needs no work: already done, or reviewed by a human."""
        self.summary.statuses[feature] = status
        self.stats.skipped += 1
        self.emit(lambda stats: FeatureSkipped(stats=stats, feature=feature, reason=reason))

    def unreadable(self, feature: int, message: str) -> None:
        self.summary.statuses[feature] = "unreadable"
        self.stats.unreadable += 1
        self.error(message, feature=feature)

    def store_failed(self, feature: int, message: str) -> None:
        self.error(message, feature=feature)
        self.summary.statuses[feature] = "failed"
        self.stats.failed += 1

    def finished(self, record: FeatureRecord, written: bool) -> None:
        """A feature's loop ended with ``record`` (``written``: the store took it)."""
        f = record.feature
        self.summary.records[f] = record
        self.summary.statuses[f] = record.status
        if record.status == "done":
            self.stats.done += 1
        else:
            self.stats.failed += 1
            self.error(f"feature {f} failed: {record.error}", feature=f)
        self.emit(lambda stats: FeatureFinished(stats=stats, feature=f, record=record, written=written))

    def end(self) -> RunSummary:
        """Features never reached are ``not-started``; report RunFinished and return the summary."""
        for f in self.features:
            self.summary.statuses.setdefault(f, "not-started")
        self.stats.not_started = sum(s == "not-started" for s in self.summary.statuses.values())
        self.emit(lambda stats: RunFinished(stats=stats, summary=self.summary))
        return self.summary
