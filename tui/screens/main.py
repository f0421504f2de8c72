"""The home screen: the feature table with its filters, and the live run line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from tui.rows import REVIEW_FILTERS, SORT_KEYS, STATUS_FILTERS, RowFilter, view
from tui.screens.actions import REVIEW_BINDINGS, FeatureActions
from tui.widgets.feature_table import FeatureTable
from tui.widgets.run_panel import RunPanel


class MainScreen(FeatureActions, Screen):
    """Browse features: search, filter by status and review, sort, jump to an id, open one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *REVIEW_BINDINGS,
        Binding("slash", "focus_search", "search", show=False),
        Binding("g", "jump", "jump to id", show=False),
        Binding("o", "sort", "sort by next column", show=False),
        Binding("O,shift+o", "sort_reverse", "reverse the sort", show=False),
        Binding("escape", "clear_filter", "clear filters", show=False),
    ]

    filt: reactive[RowFilter] = reactive(RowFilter, init=False)
    sort_key: reactive[str] = reactive("id", init=False)
    sort_reverse: reactive[bool] = reactive(False, init=False)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Input(placeholder="search text or #id  (/)", id="search", compact=True)
            yield Select([(f"status: {s}", s) for s in STATUS_FILTERS], value="any", allow_blank=False,
                         id="status-filter", compact=True)
            yield Select([(f"review: {s}", s) for s in REVIEW_FILTERS], value="any", allow_blank=False,
                         id="review-filter", compact=True)
        yield FeatureTable(id="features")
        yield Static("", id="table-info")
        yield RunPanel(id="run-panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(FeatureTable).focus()

    @property
    def table(self) -> FeatureTable:
        return self.query_one(FeatureTable)

    @property
    def current_feature(self) -> int | None:
        return self.table.current_feature

    # ------------------------------------------------------------------ showing rows

    def refresh_view(self) -> None:
        rows = self.app.rows
        shown = view(rows.values(), self.filt, self.sort_key, self.sort_reverse)
        self.table.show(shown)
        arrow = "↓" if self.sort_reverse else "↑"
        if not rows:
            info = "no features in this store yet · s: set up a run"
        else:
            info = f"{len(shown)} of {len(rows)} features · sorted by {self.sort_key} {arrow} (o)"
            if self.filt.active and not shown:
                info += " · nothing matches: esc clears the filters"
        self.query_one("#table-info", Static).update(info)

    def update_rows(self, features: Iterable[int]) -> None:
        """Refresh changed rows in place; rebuild when one enters or leaves the filtered view."""
        rebuild = False
        for f in features:
            row = self.app.rows.get(f)
            if row is None:
                continue
            matches, present = self.filt.matches(row), str(f) in self.table.rows
            if matches and present:
                self.table.update_row(row)
            elif matches != present:
                rebuild = True
        if rebuild:
            self.refresh_view()

    def watch_filt(self) -> None:
        self.refresh_view()

    def watch_sort_key(self) -> None:
        self.refresh_view()

    def watch_sort_reverse(self) -> None:
        self.refresh_view()

    # ------------------------------------------------------------------ events

    @on(Input.Changed, "#search")
    def _search(self, event: Input.Changed) -> None:
        self.filt = RowFilter(event.value, self.filt.status, self.filt.review)

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.table.focus()

    @on(Select.Changed, "#status-filter")
    def _status(self, event: Select.Changed) -> None:
        self.filt = RowFilter(self.filt.text, str(event.value), self.filt.review)

    @on(Select.Changed, "#review-filter")
    def _review(self, event: Select.Changed) -> None:
        self.filt = RowFilter(self.filt.text, self.filt.status, str(event.value))

    @on(DataTable.HeaderSelected, "#features")
    def _sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        elif key in SORT_KEYS:
            self.sort_key = key

    @on(DataTable.RowSelected, "#features")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.open_detail(int(event.row_key.value))

    # ------------------------------------------------------------------ actions

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_clear_filter(self) -> None:
        self.set_filter(RowFilter())
        self.table.focus()

    def set_filter(self, filt: RowFilter) -> None:
        self.query_one("#search", Input).value = filt.text
        self.query_one("#status-filter", Select).value = filt.status
        self.query_one("#review-filter", Select).value = filt.review
        self.filt = filt

    def action_sort(self) -> None:
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def action_jump(self) -> None:
        from tui.screens.modals import JumpModal

        self.app.push_screen(JumpModal(set(self.app.rows)), self.jump_to)

    def jump_to(self, feature: int | None) -> None:
        if feature is None:
            return
        if not self.table.select_feature(feature):
            self.set_filter(RowFilter())
            self.refresh_view()
            self.table.select_feature(feature)
        self.table.focus()
