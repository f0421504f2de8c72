"""Typed progress events a run emits, and the running statistics each one carries.

``on_event`` callbacks are called from the thread that runs the event loop (a worker thread when
the TUI drives a run); they should return quickly, e.g. by posting a message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agent.run.phases import PhaseCounts

if TYPE_CHECKING:
    from agent.store.records import FeatureRecord


@dataclass
class RunStats:
    """Counters of a run so far."""

    total: int = 0
    """Features asked for."""
    to_run: int = 0
    """Features this run works on (the others were finished, reviewed or unreadable)."""
    skipped: int = 0
    done: int = 0
    failed: int = 0
    unreadable: int = 0
    not_started: int = 0
    """Features left pending because the run stopped (budget, quota, cancel)."""
    in_flight: dict[int, int] = field(default_factory=dict)
    """feature -> current round (0 while its sweep runs)."""
    rounds: int = 0
    probes_run: int = 0
    probe_rows: int = 0
    probes_cached: int = 0
    probes_queued: int = 0
    """Probes handed to the engine so far (the batch in progress included)."""
    probes_done: int = 0
    """Probes the engine has finished, counted as each one finishes (not only per batch)."""
    phase: str = ""
    """What the run does now, in words (loading the model, measuring the norm, probing)."""
    engine_seconds: float = 0.0
    judge_calls: int = 0
    judge_cached: int = 0
    judge_live_calls: int = 0
    """HTTP calls answered by the endpoint (not the store), with ``judge_seconds`` their summed latency."""
    judge_seconds: float = 0.0
    judge_format: str | None = None
    """The response format the judge's last live call used (what --judge-format auto settled on)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    errors: int = 0
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    phases: PhaseCounts = field(default_factory=PhaseCounts)
    """Done and total of each phase (agent.run.phases), each total fixed when its phase starts."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def probes_per_s(self) -> float:
        return self.probes_run / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def finished_features(self) -> int:
        return self.done + self.failed

    def snapshot(self) -> RunStats:
        return replace(self, in_flight=dict(self.in_flight), phases=self.phases.copy())


@dataclass(frozen=True)
class RunEvent:
    stats: RunStats


@dataclass(frozen=True)
class RunPlanned(RunEvent):
    """Which features need work; sent before the engine is loaded (which may take a while)."""

    features: list[int]
    to_run: list[int]


@dataclass(frozen=True)
class RunStarted(RunEvent):
    features: list[int]
    to_run: list[int]
    strengths: list[float]
    judge: str
    store: str


@dataclass(frozen=True)
class FeatureSkipped(RunEvent):
    feature: int
    reason: str
    """``done``, ``reviewed`` or ``unreadable``."""


@dataclass(frozen=True)
class FeatureStarted(RunEvent):
    feature: int


@dataclass(frozen=True)
class ProbesFinished(RunEvent):
    """One engine call finished."""

    n_probes: int
    n_rows: int
    seconds: float


@dataclass(frozen=True)
class RunPhase(RunEvent):
    """The run moved to another step (loading the model, measuring the hidden-state norm, probing)."""

    message: str


@dataclass(frozen=True)
class PhaseProgressed(RunEvent):
    """A phase moved on: a run-wide phase began or advanced (``feature`` None), or a feature took a step."""

    phase: str
    feature: int | None = None
    round: int = 0


@dataclass(frozen=True)
class ProbeProgress(RunEvent):
    """Probes were handed to the engine or finished inside a batch (sent at most a few times a second)."""


@dataclass(frozen=True)
class JudgeDecided(RunEvent):
    feature: int
    round: int
    action: str | None
    """``probe``, ``final``, or None when the reply was invalid."""
    hypothesis: str | None
    confidence: float | None
    tokens: int
    cached: bool
    attempts: int


@dataclass(frozen=True)
class FeatureFinished(RunEvent):
    feature: int
    record: FeatureRecord
    written: bool
    """False when a human review kept the stored record."""


@dataclass(frozen=True)
class RunError(RunEvent):
    message: str
    feature: int | None = None
    fatal: bool = False


@dataclass(frozen=True)
class RunFinished(RunEvent):
    summary: Any
    """The RunSummary."""
