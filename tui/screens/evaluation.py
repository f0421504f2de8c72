"""The evaluation screen: a `steer-agent eval` report's numbers as tables (bar, modes, controls, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Label, Static

from tui.eval_tables import Section, sections
from tui.evaluation import EvalReport
from tui.screens.host import host
from tui.screens.modals import ReportModal
from tui.services import display_path


def open_report(node: DOMNode, show: bool = True) -> None:
    """Ask for a report path and load it as the app's report; ``show`` opens the evaluation screen afterwards."""
    app = host(node)
    if app.report is not None:
        default = display_path(app.report.path.parent)
    else:
        default = "docs/eval" if Path("docs/eval/metrics.json").is_file() else ""

    def loaded(report: EvalReport | None) -> None:
        if report is None:
            return
        app.report = report
        if show and not isinstance(node.app.screen, EvaluationScreen):
            node.app.push_screen(EvaluationScreen())

    node.app.push_screen(ReportModal(default), loaded)


class SectionTable(DataTable):
    """One section's table; read-only (no cursor), so arrows scroll it sideways and the page up and down."""

    def __init__(self, section: Section) -> None:
        super().__init__(id=f"eval-{section.key}", cursor_type="none", zebra_stripes=True, classes="eval-table")
        self.section = section

    def on_mount(self) -> None:
        self.add_columns(*self.section.columns)
        self.add_rows(self.section.rows)


class EvaluationScreen(Screen):
    """The loaded report (``app.report``); follows it when another report is opened (o)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "back"),
        Binding("o", "open", "open another report"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="eval-head")
        yield VerticalScroll(id="eval-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "evaluation"
        self.watch(self.app, "report", self.show)
        self.query_one("#eval-body").focus()

    @property
    def shown(self) -> list[Section]:
        """The sections on screen, in order."""
        return [t.section for t in self.query(SectionTable)]

    async def show(self, report: EvalReport | None) -> None:
        head = self.query_one("#eval-head", Static)
        body = self.query_one("#eval-body", VerticalScroll)
        await body.remove_children()
        if report is None:
            head.update(Text("no evaluation report loaded: o opens one", style="dim"))
            return
        first, *rest = report.header_lines()
        head.update(Text(first, style="bold") + Text("".join(f"\n{line}" for line in rest)))
        widgets: list[Widget] = []
        for section in sections(report.metrics):
            widgets.append(Label(section.title, classes="title section-title"))
            if section.columns:
                widgets.append(SectionTable(section))
            if section.notes:
                widgets.append(Static("\n".join(section.notes), classes="notes" if section.columns else "warning"))
        if not widgets:
            widgets.append(Static("This report has no tables to show.", classes="dim"))
        await body.mount_all(widgets)
        body.scroll_home(animate=False)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_open(self) -> None:
        open_report(self, show=False)
