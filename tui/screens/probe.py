"""Probe a feature by hand: pick strength, samples or a question, and watch the answers arrive."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from agent.judges.evidence import words
from agent.probes import BASE_IMAGES, Probe, ProbeResult
from tui.detail_model import highlight
from tui.messages import ProbeAnswer
from tui.screens.host import host
from tui.screens.modals import Dialog


class ProbeModal(Dialog):
    """Runs one probe (and its unsteered baseline) on the engine; answers stay listed until closed."""

    def __init__(self, feature: int, strength: float | None = None) -> None:
        super().__init__()
        self.feature = feature
        self.strength = strength
        self._request = 0
        self._baseline: set[str] = set()
        self._answers: list[Text] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="box wide"):
            yield Label(f"Probe feature #{self.feature} by hand", classes="title")
            with Grid(classes="form"):
                yield Label("strength")
                yield Input("" if self.strength is None else f"{self.strength:g}", type="number", id="strength",
                            compact=True, placeholder="finding a run's strengths…")
                yield Label("samples")
                yield Input("1", type="integer", id="samples", compact=True)
                yield Label("question")
                yield Input(placeholder="(none: describe the image)", id="question", compact=True)
                yield Label("base image")
                yield Select([(s, s) for s in BASE_IMAGES], value="white", allow_blank=False,
                             id="base", compact=True)
            yield Static("", id="ladder", classes="hint")
            yield Checkbox("random direction of the same norm (control)", id="control", compact=True)
            yield Static("", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Run", variant="primary", id="go")
                yield Button("Close", id="cancel")
            with VerticalScroll(id="answers"):
                yield Static("", id="answers-text")

    def on_mount(self) -> None:
        self.error(None)
        self.query_one("#strength", Input).focus()
        self._ladder()

    @work(thread=True, exclusive=True, group="ladder", exit_on_error=False)
    def _ladder(self) -> list[float]:
        """The strengths a run sweeps (a feature never run starts at the strongest, as a run's would)."""
        return host(self).services.run_strengths()

    def _show_ladder(self, strengths: list[float]) -> None:
        if not strengths:
            return
        self.query_one("#ladder", Static).update("a run sweeps " + ", ".join(f"{s:g}" for s in strengths))
        box = self.query_one("#strength", Input)
        if self.strength is None and not box.value:
            box.value = f"{max(strengths):g}"

    def _probe(self) -> Probe | None:
        try:
            strength = float(self.query_one("#strength", Input).value or "nan")
            samples = int(self.query_one("#samples", Input).value or "1")
        except ValueError:
            self.error("strength must be a number and samples a whole number")
            return None
        if not strength >= 0:
            self.error("strength must be a number >= 0 (0 is the unsteered model)")
            return None
        if not 1 <= samples <= 16:
            self.error("samples must be between 1 and 16")
            return None
        question = self.query_one("#question", Input).value.strip() or None
        try:
            return Probe(feature=self.feature, strength=strength, samples=samples, seed=0,
                         prompt="ask" if question else "describe", question=question,
                         base_image=str(self.query_one("#base", Select).value),
                         direction="random" if self.query_one("#control", Checkbox).value else "feature",
                         greedy=samples == 1)
        except ValueError as exc:
            self.error(str(exc))
            return None

    @on(Input.Submitted)
    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        probe = self._probe()
        if probe is None:
            return
        self.error(None)
        self._request += 1
        self._baseline = set()
        self._status(f"running {probe.samples} sample(s) at strength {probe.strength:g}… "
                     "(the model loads first if it is not loaded yet)")
        self._run(probe, self._request)

    @work(thread=True, exclusive=True, group="probe", exit_on_error=False)
    def _run(self, probe: Probe, request: int) -> Any:
        def answer(result: ProbeResult) -> None:
            self.post_message(ProbeAnswer(request, result))

        return host(self).services.probe(probe, on_result=answer)

    def _status(self, text: str) -> None:
        self.query_one("#answers-text", Static).update(Text("\n").join([*self._answers, Text(text, style="dim")]))

    def on_probe_answer(self, msg: ProbeAnswer) -> None:
        if msg.request != self._request:  # an answer to an older request
            return
        r = msg.result
        p = r.probe
        if p.is_baseline:
            self._baseline = {w for t in r.texts for w in words(t)}
            head = Text("baseline: ", style="bold")
        else:
            what = "control" if p.direction == "random" else f"#{p.feature}"
            head = Text(f"{what} s={p.strength:g} (KL {r.kl_first:.2f})" + (f" {p.question!r}" if p.question else "")
                        + ": ", style="bold")
        lines = [head + highlight(t, self._baseline) if len(r.texts) == 1 else
                 Text(f"  {i}. ") + highlight(t, self._baseline) for i, t in enumerate(r.texts, 1)]
        if len(r.texts) > 1:
            lines.insert(0, head)
        self._answers.extend(lines)
        self._status("")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "ladder":
            if event.state == WorkerState.SUCCESS:
                self._show_ladder(event.worker.result or [])
            elif event.state == WorkerState.ERROR and self.strength is None:
                self.error(f"could not find a run's strengths ({event.worker.error}): type one")
            return
        if event.worker.group != "probe":
            return
        if event.state == WorkerState.ERROR:
            self.error(f"the probe failed: {event.worker.error}")
            self._status("")
        elif event.state == WorkerState.SUCCESS:
            self._answers.append(Text("─" * 20, style="dim"))
            self._status("")
