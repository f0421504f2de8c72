"""The home screen: the feature table with its filters, and the live run line.

It holds every feature's row: it loads them from the store, and keeps them current as the run
(owned by its RunPanel) and reviews change them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import replace
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Header, Input, Select, Static
from textual.worker import Worker, WorkerState

from agent.run.events import FeatureFinished, FeatureStarted, JudgeDecided, RunError, RunPlanned, RunStarted
from agent.store.records import FeatureRecord
from tui.messages import FeatureChanged, ReviewSaved, RowsLoaded, RunEnded, RunFailed, RunProgress
from tui.rows import REVIEW_FILTERS, REVIEW_WORDS, SORT_KEYS, STATUS_FILTERS, FeatureRow, RowFilter, view
from tui.screens.actions import REVIEW_BINDINGS, FeatureActions
from tui.screens.detail import DetailScreen
from tui.screens.host import host
from tui.screens.modals import JumpModal
from tui.screens.resume import resume_command
from tui.services import PreparedRun
from tui.widgets.feature_table import FeatureTable
from tui.widgets.run_panel import RunPanel


class MainScreen(FeatureActions):
    """Browse features: search, filter by status and review, sort, jump to an id, open one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *REVIEW_BINDINGS,
        Binding("slash", "focus_search", "find"),
        Binding("g", "jump", "go", tooltip="jump to a feature id"),
        Binding("o", "sort", "sort", tooltip="sort by the next column"),
        Binding("A,shift+a", "accept_shown", "accept every feature shown (asks first)", show=False),
        Binding("O,shift+o", "sort_reverse", "reverse the sort", show=False),
        Binding("escape", "clear_filter", "clear filters", show=False),
        Binding("ctrl+r", "reload", "reload the store", show=False),
    ]

    POLL_S: ClassVar[float] = 3.0
    """How often the store is checked for writes by another process (a CLI run on the same store)."""

    filt: reactive[RowFilter] = reactive(RowFilter, init=False)
    sort_key: reactive[str] = reactive("id", init=False)
    sort_reverse: reactive[bool] = reactive(False, init=False)

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, FeatureRow] = {}
        self._generation = 0
        self._in_run: set[int] = set()
        self._signature: tuple[object, ...] | None = None
        self.resume: str | None = None
        """The command that resumes the run in progress (printed when the user quits during it)."""

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
        yield RunPanel(host(self).services, id="run-panel")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(FeatureTable).focus()
        self.reload_rows()
        self.set_interval(self.POLL_S, self._poll)

    @property
    def table(self) -> FeatureTable:
        return self.query_one(FeatureTable)

    @property
    def run_panel(self) -> RunPanel:
        return self.query_one("#run-panel", RunPanel)

    @property
    def current_feature(self) -> int | None:
        return self.table.current_feature

    # ------------------------------------------------------------------ showing rows

    def refresh_view(self) -> None:
        rows = self.rows
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
            row = self.rows.get(f)
            if row is None:
                continue
            matches, present = self.filt.matches(row), str(f) in self.table.rows
            if matches and present:
                self.table.update_row(row)
            elif matches != present:
                rebuild = True
        if rebuild:
            self.refresh_view()

    def set_rows(self, rows: Iterable[FeatureRow]) -> None:
        changed = []
        for row in rows:
            self.rows[row.feature] = row
            changed.append(row.feature)
        self.update_rows(changed)

    def next_unreviewed(self, after: int | None) -> int | None:
        """The next feature in the table's order, after ``after`` and wrapping, that has an answer and no decision."""
        order = [r for r in view(self.rows.values(), self.filt, self.sort_key, self.sort_reverse)]
        start = next((i + 1 for i, r in enumerate(order) if r.feature == after), 0)
        for row in order[start:] + order[:start]:
            if row.feature != after and row.review is None and row.status in ("done", "failed"):
                return row.feature
        return None

    def go_to(self, feature: int | None) -> None:
        if feature is not None:
            self.table.select_feature(feature)

    def action_accept_shown(self) -> None:
        """Accept every done, undecided feature the filters show, after a confirmation."""
        from tui.screens.modals import ConfirmModal

        shown = [r.feature for r in view(self.rows.values(), self.filt, self.sort_key, self.sort_reverse)
                 if r.status == "done" and r.review is None]
        if not shown:
            self.notify("no undecided explanation is shown", severity="warning")
            return
        ids = ", ".join(map(str, shown[:8])) + (" ..." if len(shown) > 8 else "")
        question = f"Accept the {len(shown)} undecided explanations the table shows ({ids}) as {host(self).services.reviewer}?"

        def answer(yes: bool | None) -> None:
            if yes:
                for f in shown:
                    self.save_review(f, "accept")

        self.app.push_screen(ConfirmModal("Accept every feature shown?", question, yes="Accept all"), answer)

    def neighbour(self, feature: int, delta: int) -> int | None:
        """The feature ``delta`` rows away in the table's current order."""
        order = [r.feature for r in view(self.rows.values(), self.filt, self.sort_key, self.sort_reverse)]
        if feature not in order:
            return order[0] if order else None
        return order[max(0, min(len(order) - 1, order.index(feature) + delta))]

    def feature_changed(self, feature: int) -> None:
        for screen in self.app.screen_stack:
            if isinstance(screen, DetailScreen):
                screen.post_message(FeatureChanged(feature))

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
            self.app.push_screen(DetailScreen(int(event.row_key.value)))

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
        self.app.push_screen(JumpModal(set(self.rows)), self.jump_to)

    def jump_to(self, feature: int | None) -> None:
        if feature is None:
            return
        if not self.table.select_feature(feature):
            self.set_filter(RowFilter())
            self.refresh_view()
            self.table.select_feature(feature)
        self.table.focus()

    def system_commands(self) -> Iterable[SystemCommand]:
        yield from super().system_commands()
        yield SystemCommand("Jump to feature", "Move the cursor to a feature id", self.action_jump)
        yield SystemCommand("Sort by next column", "id, label, confidence, status, review", self.action_sort)
        yield SystemCommand("Clear filters", "Show every feature", self.action_clear_filter)
        for status in ("done", "failed", "pending", "running"):
            yield SystemCommand(f"Show {status} features", f"Filter the table to status {status}",
                                lambda st=status: self.set_filter(replace(self.filt, status=st)))
        for review in ("unreviewed", "accepted", "edited", "rejected"):
            yield SystemCommand(f"Show {review} features", f"Filter the table to review {review}",
                                lambda rv=review: self.set_filter(replace(self.filt, review=rv)))

    # ------------------------------------------------------------------ loading rows

    def reload_rows(self) -> None:
        self._generation += 1
        self._signature = host(self).services.store_signature()
        self._load_rows(self._generation)

    def action_reload(self) -> None:
        """Read the store again (another process may have written it)."""
        self.reload_rows()
        self.notify("store reloaded", timeout=2)

    def _poll(self) -> None:
        """Cheap check for writes by another process; the changed rows follow without a rebuild."""
        signature = host(self).services.store_signature()
        if signature == self._signature or self._signature is None:
            return
        self._signature = signature
        self._generation += 1
        self._load_rows(self._generation, merge=True)

    @work(thread=True, exclusive=True, group="rows", exit_on_error=False)
    def _load_rows(self, generation: int, merge: bool = False) -> None:
        rows, errors = host(self).services.load_rows()
        self.post_message(RowsLoaded(rows, errors, generation, merge))

    def on_rows_loaded(self, msg: RowsLoaded) -> None:
        """Show the rows (the app then decides what opens first); a late answer is dropped."""
        if msg.generation != self._generation:  # an older request answered late
            msg.stop()
            return
        if msg.merge:
            msg.stop()
            self._merge_rows(msg.rows)
            return
        live = {f: r for f, r in self.rows.items() if f in self._in_run and r.status in ("pending", "running")}
        self.rows = {r.feature: r for r in msg.rows} | live
        self.refresh_view()
        for error in msg.errors[:3]:
            self.notify(error, severity="error", timeout=10)

    def _merge_rows(self, rows: list[FeatureRow]) -> None:
        """Take the rows another process changed (rows this app's run is working on stay as they are)."""
        fresh = {r.feature: r for r in rows if not (r.feature in self._in_run
                                                     and self.rows.get(r.feature, r).status in ("pending", "running"))}
        changed = [r for f, r in fresh.items() if self.rows.get(f) != r]
        added = [r.feature for r in changed if r.feature not in self.rows]
        for row in changed:
            self.rows[row.feature] = row
            self.feature_changed(row.feature)
        if added:
            self.refresh_view()
        else:
            self.update_rows(r.feature for r in changed)

    # ------------------------------------------------------------------ the run

    def start_run(self, prepared: PreparedRun | None) -> None:
        """The setup screen's answer: run it (a run in another store switches the table to it)."""
        if prepared is None:
            return
        if self.run_panel.running:
            self.notify("a run is in progress: cancel it first (c)", severity="warning")
            return
        app = host(self)
        app.startup_error = None
        if app.services.adopt(prepared):
            self.app.sub_title = app.services.store_label
            self.rows = {}
            self.reload_rows()
        self.resume = resume_command(prepared.features, prepared.store.path, prepared.world, prepared.judge_config)
        self.run_panel.start(prepared, prepared.title)

    def on_run_progress(self, msg: RunProgress) -> None:
        ev = msg.event
        if isinstance(ev, (RunPlanned, RunStarted)):
            self._in_run = set(ev.to_run)
            self.set_rows(replace(self.rows.get(f) or FeatureRow(f), status="pending") for f in ev.to_run)
        elif isinstance(ev, FeatureStarted):
            self.set_rows([replace(self.rows.get(ev.feature) or FeatureRow(ev.feature), status="running", round=0)])
        elif isinstance(ev, JudgeDecided):
            row = self.rows.get(ev.feature)
            if row is not None and row.status == "running":
                self.set_rows([replace(row, round=ev.round)])
        elif isinstance(ev, FeatureFinished):
            self._in_run.discard(ev.feature)
            if ev.written:
                self.set_rows([FeatureRow.from_record(ev.record)])
            self.feature_changed(ev.feature)
        elif isinstance(ev, RunError) and ev.fatal:
            self.notify(ev.message, title="run stopped", severity="error", timeout=20)

    def on_run_ended(self, msg: RunEnded) -> None:
        self._finish_run()
        s = msg.summary
        counts = {k: sum(v == k for v in s.statuses.values()) for k in ("done", "failed", "not-started")}
        kept = sum(v.startswith("skipped") for v in s.statuses.values())
        text = f"{msg.title}: {counts['done']} done, {counts['failed']} failed"
        if kept:
            text += f", {kept} already finished or reviewed"
        if counts["not-started"]:
            text += f", {counts['not-started']} not started"
        if s.stop_reason:
            text += f" (stopped: {s.fatal_error or s.stop_reason})"
        self.notify(text, severity="information" if s.stop_reason is None else "warning", timeout=8)

    def on_run_failed(self, msg: RunFailed) -> None:
        self._finish_run()
        self.notify(f"the run failed: {msg.error}", severity="error", timeout=20)

    def _finish_run(self) -> None:
        """Features the run left running go back to pending; then the run line goes idle."""
        stuck = [f for f in self._in_run if f in self.rows]
        self.set_rows(replace(self.rows[f], status="pending", round=None) for f in stuck
                      if self.rows[f].status == "running")
        self._in_run = set()
        self.run_panel.finished()

    # ------------------------------------------------------------------ reviews

    def save_review(self, feature: int, decision: str | None, explanation: str | None = None,
                    label: str | None = None, note: str | None = None) -> None:
        """Write a decision (None withdraws the current one); the row follows once it is stored."""
        future = host(self).services.submit_review(feature, decision, explanation=explanation, label=label,
                                                   note=note)
        self._await_review(future, feature, decision)

    @work(group="review", exit_on_error=False)
    async def _await_review(self, future: Future[FeatureRecord | None], feature: int, decision: str | None) -> None:
        record = await asyncio.wrap_future(future)
        self.post_message(ReviewSaved(feature, decision, FeatureRow.from_record(record) if record else None))

    def on_review_saved(self, msg: ReviewSaved) -> None:
        if msg.row is not None:
            self.set_rows([msg.row])
        done = f"{REVIEW_WORDS[msg.decision]} by {host(self).services.reviewer}" if msg.decision else "review withdrawn"
        self.notify(f"feature {msg.feature} {done}", timeout=3)
        self.feature_changed(msg.feature)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Failures of this screen's workers (the run's are the RunPanel's)."""
        if event.state != WorkerState.ERROR:
            return
        if event.worker.group == "review":
            self.notify(f"could not save the review: {event.worker.error}", severity="error", timeout=10)
        elif event.worker.group == "rows":
            self.notify(f"could not read the store: {event.worker.error}", severity="error", timeout=10)
