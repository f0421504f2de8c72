"""The phases of a run and their counts: every total is fixed when its phase starts and can only shrink.

A run's work comes in named phases (``PHASES``). Run-wide phases (the baseline, the background probes)
get their total when they start. Per-feature phases are steps each feature takes in order: its opening
sweep, then per judge round the judge's answer and the follow-up probes it asked for. The total of a
step is the number of features that may still reach it; a feature that finishes early leaves the totals
of the steps it will never take, so a total never grows and a bar never drops back.

Adding a phase is one line in ``PHASES`` and one ``step`` call where its work ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["run", "opening", "round"]


@dataclass(frozen=True)
class Phase:
    """One phase of a run."""

    key: str
    """The name the run reports it by (``step(feature, key, round)``)."""
    short: str
    """Its abbreviation in the progress displays (a ``round`` phase gets the round's number after it)."""
    title: str
    """Its name in words, the label of its bar (at most 12 characters)."""
    scope: Scope
    """``run``: once per run; ``opening``: once per feature; ``round``: once per feature and judge round."""
    unit: str
    """What its counts count."""
    legend: str
    """What it is, for the legends (CLI --help, the TUI's help screen)."""


PHASES: tuple[Phase, ...] = (
    Phase("baseline", "base", "baseline", "run", "steps",
          "the unsteered run that sets the strength scale (the hidden-state norm at the layer)"),
    Phase("background", "bg", "background", "run", "probes",
          "random directions and reference features every feature is compared with (offline judge only)"),
    Phase("sweep", "sweep", "sweep", "opening", "features",
          "each feature's opening sweep: unsteered baseline, every strength, random-direction controls"),
    Phase("judge", "r", "judge round", "round", "features",
          "judge round N: features whose judge has answered round N, of those that may still need it"),
    Phase("followup", "fu", "follow-ups", "round", "features",
          "follow-up probes of round N: features whose requested probes have run"),
    Phase("tests", "t", "tests", "round", "features",
          "activation tests of round N: features whose requested activation tests have run (what makes the "
          "feature fire; a feature that asked for none passes it)"),
)

BY_KEY = {p.key: p for p in PHASES}
_FEATURE_PHASES = [p for p in PHASES if p.scope != "run"]
_INDEX = {p.key: i for i, p in enumerate(_FEATURE_PHASES)}
Step = tuple[int, int]
"""(round, index of the phase among the per-feature ones); round 0 holds the opening phases."""
_BEFORE_ALL: Step = (-1, -1)


def legend_lines() -> list[str]:
    """``short: legend`` per phase (a round phase's abbreviation is followed by the round, e.g. r2)."""
    return [f"{p.short + ('N' if p.scope == 'round' else '')}: {p.legend}" for p in PHASES]


def step_label(step: Step) -> str:
    """The abbreviation of a per-feature step: ``sweep``, ``r2``, ``fu2``."""
    rnd, i = step
    p = _FEATURE_PHASES[i]
    return f"{p.short}{rnd}" if p.scope == "round" else p.short


def step_title(step: Step) -> str:
    """The step in words: ``sweep``, ``judge round 2``."""
    rnd, i = step
    p = _FEATURE_PHASES[i]
    return f"{p.title} {rnd}" if p.scope == "round" else p.title


@dataclass
class PhaseCounts:
    """Done and total of every phase so far (a RunStats field; copy it with ``copy``)."""

    features: int = 0
    """Features this run works on (set by ``plan``)."""
    max_rounds: int = 0
    run_totals: dict[str, int] = field(default_factory=dict)
    run_done: dict[str, int] = field(default_factory=dict)
    reached: dict[Step, int] = field(default_factory=dict)
    """step -> features that have taken it."""
    ended_at: dict[Step, int] = field(default_factory=dict)
    """step -> features that ended right after it (they take no later step)."""
    steps_done: int = 0
    """Per-feature steps taken, all phases and rounds together (the ETA's measure of work)."""
    ended_steps: int = 0
    """Steps taken by the features that have ended."""
    ended_stepping: int = 0
    """Features that ended after taking at least one step (the others say nothing of a feature's work)."""
    open_taken: dict[int, int] = field(default_factory=dict)
    """steps taken -> features still open that have taken that many (at least one)."""
    since: float | None = None
    """When the features' work started (time.monotonic), set by ``plan``."""
    _pos: dict[int, Step] = field(default_factory=dict, repr=False)
    """feature -> the last step it took (features still open only; not copied)."""

    # ------------------------------------------------------------------ updates (the run's thread)

    def plan(self, features: int, max_rounds: int) -> None:
        self.features, self.max_rounds, self.since = features, max_rounds, time.monotonic()

    def begin(self, key: str, total: int) -> None:
        """A run-wide phase starts with ``total`` units of work."""
        self.run_totals[key] = max(0, int(total))
        self.run_done.setdefault(key, 0)

    def advance(self, key: str, n: int = 1) -> None:
        self.run_done[key] = min(self.run_totals.get(key, 0), self.run_done.get(key, 0) + n)

    def step(self, feature: int, key: str, rnd: int = 0) -> None:
        """``feature`` took the step ``key`` (of judge round ``rnd``); steps it passed over count as taken.
        A phase not in ``PHASES`` (or a run-wide one) is no step: ignored, never an error in a feature's loop."""
        if key not in _INDEX:
            return
        target = (rnd if BY_KEY[key].scope == "round" else 0, _INDEX[key])
        prev = self._pos.get(feature, _BEFORE_ALL)
        if target <= prev:
            return
        taken = self._steps(after=prev, upto=target)
        for s in taken:
            self.reached[s] = self.reached.get(s, 0) + 1
        self.steps_done += len(taken)
        before = self._taken(prev)
        self._move(before, before + len(taken))
        self._pos[feature] = target

    def end(self, feature: int) -> None:
        """``feature`` needs no more steps (finished, failed, or done by another run)."""
        pos = self._pos.pop(feature, _BEFORE_ALL)
        self.ended_at[pos] = self.ended_at.get(pos, 0) + 1
        taken = self._taken(pos)
        self._move(taken, 0)
        self.ended_steps += taken
        self.ended_stepping += int(taken > 0)

    # ------------------------------------------------------------------ reading (any snapshot)

    def copy(self) -> PhaseCounts:
        return PhaseCounts(self.features, self.max_rounds, dict(self.run_totals), dict(self.run_done),
                           dict(self.reached), dict(self.ended_at), self.steps_done, self.ended_steps,
                           self.ended_stepping, dict(self.open_taken), self.since)

    @property
    def ended(self) -> int:
        return sum(self.ended_at.values())

    def done(self, step: Step) -> int:
        return self.reached.get(step, 0)

    def total(self, step: Step) -> int:
        """Features that took ``step`` or may still take it."""
        return self.features - sum(n for s, n in self.ended_at.items() if s < step)

    def feature_steps(self) -> list[Step]:
        """Every per-feature step of the run, in order (rounds up to ``max_rounds``)."""
        return list(self._steps(after=_BEFORE_ALL, upto=(self.max_rounds, len(_FEATURE_PHASES) - 1)))

    def current(self) -> Step | None:
        """The first step some feature still has to take (None: none left, or nothing planned)."""
        for s in self.feature_steps():
            if self.done(s) < self.total(s):
                return s
        return None

    def rows(self) -> list[tuple[str, int, int]]:
        """(abbreviation, done, total) of every phase started so far, in order; later rounds are left out
        until some feature reaches them."""
        out = [(BY_KEY[k].short, self.run_done.get(k, 0), t) for k, t in self.run_totals.items()]
        current = self.current()
        out += [(step_label(s), self.done(s), self.total(s)) for s in self.feature_steps()
                if self.done(s) > 0 or s == current]
        return out

    def expected_steps(self) -> float:
        """Steps a feature takes on average: over the features that have ended, else the most it may take."""
        if self.ended_stepping:
            return max(1.0, self.ended_steps / self.ended_stepping)
        return float(len(self.feature_steps()))

    def work_left(self) -> float:
        """Per-feature steps still to take, estimated (features still open take ``expected_steps`` each)."""
        expected, most = self.expected_steps(), len(self.feature_steps())
        not_started = max(0, self.features - self.ended - sum(self.open_taken.values()))
        left = not_started * expected
        for taken, n in self.open_taken.items():  # an open feature has at least one step to go
            left += n * min(max(1.0, expected - taken), max(0, most - taken))
        return left

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, estimated from the pace of the steps so far (None: no step taken yet). Until a
        feature has ended, each open feature is counted at the most steps it may take."""
        if self.since is None or self.steps_done == 0:
            return None
        elapsed = (now if now is not None else time.monotonic()) - self.since
        return self.work_left() * elapsed / self.steps_done

    # ------------------------------------------------------------------ internals

    def _taken(self, pos: Step) -> int:
        """Steps a feature at ``pos`` has taken."""
        return len(self._steps(after=_BEFORE_ALL, upto=pos))

    def _move(self, before: int, after: int) -> None:
        """A feature that had taken ``before`` steps has taken ``after`` (0: it ended)."""
        if before:
            self.open_taken[before] -= 1
            if not self.open_taken[before]:
                del self.open_taken[before]
        if after:
            self.open_taken[after] = self.open_taken.get(after, 0) + 1

    def _steps(self, after: Step, upto: Step) -> list[Step]:
        """The per-feature steps in (after, upto], in order."""
        out: list[Step] = []
        for rnd in range(upto[0] + 1):
            for i, p in enumerate(_FEATURE_PHASES):
                s = (rnd, i)
                if (p.scope == "round") != (rnd > 0):
                    continue
                if after < s <= upto:
                    out.append(s)
        return out


# ---------------------------------------------------------------------- words for the displays (CLI, TUI)

LEGEND = ("progress: the first bar is the phase the run is in (its total is fixed when it starts, and shrinks "
          "when features finish early), the second counts features finished; ETA: time left, estimated from the "
          "pace so far (ETA ≤: no feature has finished yet, so each open feature is counted at its most rounds). "
          "Phases: " + "; ".join(legend_lines()) + ". in flight: features being worked on now (sweeping: in their opening "
          "sweep; judging: in judge rounds and their follow-ups). probes N run (P/s): engine probes finished, +M "
          "queued: handed to the engine and not finished yet. tok: judge tokens (prompt and completion), $: their "
          "estimated cost.")
"""What the live display's words mean (the run's --help epilog)."""


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = max(0, round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def eta_text(counts: PhaseCounts, now: float | None = None) -> str:
    """``ETA 1:40``; ``ETA ≤4:10`` while no feature has ended (every open feature counted at its most
    rounds); ``ETA ?`` before the first step."""
    left = counts.eta(now)
    if left is None:
        return "ETA ?"
    return f"ETA {'' if counts.ended_stepping else '≤'}{clock(left)}"


def phase_line(counts: PhaseCounts, width: int = 80) -> str:
    """Every phase so far on one line of at most ``width`` characters: the finished ones by name after a
    tick, the others as done/total (``✓ base sweep r1 · fu1 30/41 · r2 10/41``)."""
    rows = counts.rows()
    finished = [abbr for abbr, done, total in rows if done >= total]
    open_ = [f"{abbr} {done}/{total}" for abbr, done, total in rows if done < total]
    parts = ([("✓ " + " ".join(finished))] if finished else []) + open_
    line = " · ".join(parts)
    if len(line) > width:  # many finished rounds: keep the newest names
        line = line[: 2] + "…" + line[len(line) - width + 3:]
    return line
