"""The response of a feature against strength: first-token KL and the share of answers naming the label."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tui.detail_model import Series, series_table

try:  # optional: without it the series shows as a table of bars
    from textual_plotext import PlotextPlot

    HAVE_PLOTEXT = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_PLOTEXT = False


class ResponsePlot(Vertical):
    """A terminal plot (textual-plotext) of the series, with its numbers below."""

    def __init__(self, series: Series, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series = series

    def compose(self) -> ComposeResult:
        s = self.series
        if len(s.strengths) < 2:
            yield Static("Too few steered strengths to plot.", classes="dim")
            return
        if HAVE_PLOTEXT:
            yield PlotextPlot(id="plot")
        words = ", ".join(s.label_words) or "(the label has no content words)"
        yield Static(f"label words: {words}", classes="dim")
        yield Static(series_table(s), id="series-table")

    def on_mount(self) -> None:
        if not HAVE_PLOTEXT or len(self.series.strengths) < 2:
            return
        s = self.series
        plt = self.query_one(PlotextPlot).plt
        plt.plot(s.strengths, s.kl, label="first-token KL", marker="braille")
        plt.plot(s.strengths, s.label_share, label="label words", marker="braille", yside="right")
        plt.xlabel("strength")
        plt.title("response vs strength")
