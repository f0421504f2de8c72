"""The live display tells the truth: bars whose totals never grow, that move before the first feature
finishes, an ETA, and lines that fit 80 columns; the phases' counts themselves."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from agent.cli.progress import RichProgress
from agent.run.config import RunConfig, SweepConfig
from agent.run.events import FeatureFinished, RunEvent
from agent.run.phases import LEGEND, PHASES, PhaseCounts, legend_lines, phase_line
from tests.agent.fakes import CONCEPTS, FakeEngine

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=2, panel=0), in_flight=64, max_rounds=4)


def staged_judge() -> Any:
    """A scripted LLM judge: feature f asks for follow-up probes in its first f % 3 rounds, then answers."""
    from agent.judges import LLMJudge
    from agent.judges.scripted import ScriptedChat, final_reply, probe_reply

    def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
        feature = int(re.findall(r"Feature (\d+)\.", " ".join(m["content"] for m in messages))[-1])
        asked = sum(m["role"] == "assistant" for m in messages)
        if asked < feature % 3:
            return probe_reply([7.0 + asked, 30.0 + asked])
        concept = CONCEPTS[feature % len(CONCEPTS)]
        return final_reply(explanation=f"Steering makes the model describe something {concept}.",
                           label=f"{concept} mentions")

    return LLMJudge(ScriptedChat(reply, model="script"))


class Recorder:
    """Feeds each event to a RichProgress drawing on an 80-column terminal and keeps what its bars show."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24, emoji=False)
        self.progress = RichProgress(self.console, enabled=True)
        self.seen: list[tuple[bool, list[tuple[str, float, float | None]]]] = []
        """(a feature has finished, [(bar label, completed, total)]) after each event."""
        self.screens: list[str] = []
        self.finished = False

    def __call__(self, event: RunEvent) -> None:
        self.progress(event)
        self.finished = self.finished or isinstance(event, FeatureFinished)
        bars = [(t.description, t.completed, t.total) for t in self.progress._progress.tasks]
        self.seen.append((self.finished, bars))
        self.screens.append(self.render())

    def render(self) -> str:
        """The live display as the terminal shows it (80 columns)."""
        with self.console.capture() as cap:
            assert self.progress._live is not None
            self.console.print(self.progress._live.renderable)
        return ANSI.sub("", cap.get())


def run_with_display(store: Any, features: list[int]) -> Recorder:
    from agent.run import run_features

    rec = Recorder()
    with rec.progress:
        summary = run_features(FakeEngine(), staged_judge(), store, features, CFG, on_event=rec)
    assert summary.exit_code == 0
    return rec


def test_no_bar_drops_back_and_the_work_shows_before_any_feature_finishes(store: Any) -> None:
    rec = run_with_display(store, list(range(12)))
    last: dict[int, tuple[str, float, float | None]] = {}
    for _finished, bars in rec.seen:
        for i, (label, done, total) in enumerate(bars):
            before = last.get(i)
            if before is not None and before[0] == label and before[2] is not None and total is not None:
                assert total <= before[2], f"the total of {label!r} grew: {before} -> {(label, done, total)}"
                assert done >= before[1], f"{label!r} went back: {before} -> {(label, done, total)}"
            last[i] = (label, done, total)
    # with every feature in flight at once, none finishes until late: the phase bar moves meanwhile
    unfinished = [bars for finished, bars in rec.seen if not finished]
    assert any(label != "features" and done > 0 for bars in unfinished for label, done, _ in bars)
    assert any(label.startswith("judge round 2") for _, bars in rec.seen for label, _, _ in bars)
    assert rec.seen[-1][1][1] == ("features", 12, 12)


def test_the_display_fits_80_columns_and_shows_an_eta(store: Any) -> None:
    rec = run_with_display(store, list(range(12)))
    lines = [line for screen in rec.screens for line in screen.splitlines()]
    too_wide = [line for line in lines if len(line.rstrip()) > 80]
    assert not too_wide, too_wide
    assert any(re.search(r"ETA ≤?\d+:\d\d", line) for line in lines), "\n".join(lines[-20:])
    assert any(re.search(r"✓ base sweep r1 .*· r2 \d+/\d+", line) for line in lines), "\n".join(lines[-20:])


def test_counts_of_steps_features_take() -> None:
    c = PhaseCounts()
    c.plan(4, max_rounds=3)
    for f in range(4):
        c.step(f, "sweep")
    assert c.current() == (1, 1) and (c.done((1, 1)), c.total((1, 1))) == (0, 4)
    c.step(0, "judge", 1)
    c.end(0)  # a final answer in round 1: no follow-ups of round 1, no round 2
    c.step(1, "judge", 1)
    c.step(1, "followup", 1)
    c.step(1, "tests", 1)
    assert [(c.done(s), c.total(s)) for s in [(1, 1), (1, 2), (1, 3), (2, 1)]] == [(2, 4), (1, 3), (1, 3), (0, 3)]
    c.step(2, "judge", 2)  # a step passed over (round 1 for feature 2) counts as taken
    assert (c.done((1, 1)), c.done((1, 2)), c.done((1, 3)), c.done((2, 1))) == (3, 2, 2, 1)
    assert phase_line(c) == "✓ sweep · r1 3/4 · fu1 2/3 · t1 2/3 · r2 1/3"
    for f in (1, 2, 3):
        c.end(f)
    assert c.ended == 4 and c.current() is None


def test_every_abbreviation_has_a_legend() -> None:
    shown = {p.short for p in PHASES}
    assert {"base", "bg", "sweep", "r", "fu", "t"} <= shown
    for line in legend_lines():
        assert line.split(":")[0].rstrip("N") in shown
        assert line.split(":")[0] in LEGEND
    assert "ETA" in LEGEND and "queued" in LEGEND


def test_the_run_help_explains_the_display(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("fuN: follow-up probes", "tN: activation tests", "rN: judge round N", "bg:", "base:", "sweep:", "ETA", "tok:"):
        assert words in text, words


@pytest.fixture
def store(tmp_path: Any) -> Any:
    from agent.store.store import Store

    with Store(tmp_path / "store") as s:
        yield s
