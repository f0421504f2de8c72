"""The help screen: every key of every screen."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.screens.actions import APP_BINDINGS, REVIEW_BINDINGS
from tui.screens.detail import DetailScreen
from tui.screens.evaluation import EvaluationScreen
from tui.screens.main import MainScreen
from tui.widgets.run_panel import RUN_TERMS

EXTRA = [
    ("feature table", "enter", "open the feature"),
    ("feature table", "↑ ↓ pgup pgdn", "move"),
    ("evaluation", "tab / ← →", "next table / scroll a wide table"),
    ("everywhere", "ctrl+p", "command palette"),
    ("dialogs", "enter / escape", "confirm / cancel"),
]


TERMS = [
    ("conf", "the judge's confidence in its explanation, 0 to 1 (the offline judge: how consistent and "
             "specific the recurring words are)"),
    ("first-token KL", "KL divergence of the first answer token's distribution, steered against unsteered: 0 "
                       "means that token's odds did not move, not that the answer did not change"),
    ("answer change", "how much the whole answer changed: 1 - word Jaccard of its content words against the "
                      "baseline answer (same image and prompt); 0 the same words, 1 none in common"),
    ("#N", "an evidence number as the judge cites it: click it, or press g and the number, to see that probe"),
    ("density", "the share of the top-k collection's images where the feature fires (Overview tab)"),
    ("response plot", "x: steering strength; first-token KL (left axis) and the share of answers that name the "
                      "label's words (right axis); the table below it holds the same numbers"),
    ("rounds / probes", "judge rounds used, and steering probes run for the feature"),
    ("review", "accepted / edited / rejected by a person; u withdraws; v goes to the next undecided feature"),
]


TERMS += RUN_TERMS  # the run lines' words, kept beside the widget that draws them


def terms_table() -> Table:
    """What the numbers and words of the table and the detail screen mean."""
    table = Table(expand=True, box=None, show_header=True, header_style="bold")
    table.add_column("term", style="bold", no_wrap=True)
    table.add_column("means")
    for term, means in TERMS:
        table.add_row(term, means)
    return table


def key_table(app: App[Any]) -> Table:
    """Every binding of every screen, the review keys once (``app`` spells the keys)."""
    table = Table(expand=True, box=None, show_header=True, header_style="bold")
    table.add_column("where", style="dim", no_wrap=True)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    groups = (("table + detail", REVIEW_BINDINGS), ("feature table", MainScreen.BINDINGS),
              ("feature detail", DetailScreen.BINDINGS), ("evaluation", EvaluationScreen.BINDINGS),
              ("everywhere", APP_BINDINGS))
    review_keys = {b.key for b in REVIEW_BINDINGS}
    for where, bindings in groups:
        for b in bindings:
            if not isinstance(b, Binding) or (where != "table + detail" and b.key in review_keys):
                continue
            keys = " ".join(app.get_key_display(Binding(k, b.action)) for k in b.key.split(","))
            table.add_row(where, keys, b.tooltip or b.description)
    for where, key, does in EXTRA:
        table.add_row(where, key, does)
    return table


class HelpScreen(ModalScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "dismiss", "close")]
    DEFAULT_CLASSES = "dialog"

    def compose(self) -> ComposeResult:
        with Vertical(classes="box wide"):
            yield Label("Keys  (escape closes)", classes="title")
            with VerticalScroll():
                yield Static(key_table(self.app), id="keys")
                yield Label("What the numbers mean", classes="title")
                yield Static(terms_table(), id="terms")
