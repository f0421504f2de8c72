"""Ask for an evidence number the judge cites (#N) and show that probe."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from tui.screens.modals import Dialog


class ProbeNumberModal(Dialog):
    """Ask for one of ``known`` evidence numbers; returns it or None."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known = known

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label("Go to the probe the judge cites as #", classes="title")
            yield Input(placeholder="evidence number, e.g. 4", type="integer", id="number")
            yield Static("", classes="error")

    def on_mount(self) -> None:
        self.error(None)
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _go(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.error("type a number (escape cancels)")
            return
        number = int(text)
        if number not in self.known:
            span = f"#{min(self.known)}-#{max(self.known)}" if self.known else "none"
            self.error(f"#{number} is not in this feature's evidence ({span})")
            return
        self.dismiss(number)
