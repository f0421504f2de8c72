"""The keys of the app, and the review actions the table and the detail screen share: a e r n p x (u undoes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from tui.rows import FeatureRow
from tui.screens.host import host
from tui.screens.modals import EditModal, ExportModal, NoteModal, ReasonModal
from tui.screens.probe import ProbeModal

APP_BINDINGS: list[BindingType] = [
    Binding("q", "quit", "quit", show=False),
    Binding("question_mark,f1", "help", "help"),
    Binding("s", "setup", "new run", show=False),
    Binding("c", "cancel_run", "cancel run", show=False),
    Binding("m", "evaluation", "evaluation report", show=False),
]

REVIEW_BINDINGS = [
    Binding("a", "accept", "accept"),
    Binding("e", "edit", "edit"),
    Binding("r", "reject", "reject"),
    Binding("n", "rerun", "rerun", tooltip="re-run the feature with a note to the judge"),
    Binding("p", "probe", "probe"),
    Binding("x", "export", "export", show=False),
    Binding("u", "undo", "undo"),
    Binding("v", "next_unreviewed", "todo", tooltip="the next feature without a review decision"),
]

ACTION_HELP = {
    "accept": "Accept the explanation",
    "edit": "Edit the explanation and label",
    "reject": "Reject the explanation",
    "rerun": "Re-run the feature with a note to the judge",
    "probe": "Probe the feature by hand (strength, samples, question)",
    "export": "Export every record as JSON lines",
    "undo": "Withdraw the current review decision",
    "next_unreviewed": "Go to the next feature without a review decision",
}


class FeatureActions(Screen[None]):
    """A screen showing one current feature, with the review keys acting on it."""

    @property
    def current_feature(self) -> int | None:  # pragma: no cover - overridden
        return None

    def system_commands(self) -> Iterable[SystemCommand]:
        """The palette's commands for this screen."""
        feature = self.current_feature
        where = f" (feature {feature})" if feature is not None else ""
        for action, help_text in ACTION_HELP.items():
            title = help_text.split(" (")[0] + where
            yield SystemCommand(title, help_text, lambda a=action: self.run_action(a))

    def _on_current(self, then: Callable[[int, FeatureRow | None], None]) -> None:
        """Call ``then`` with the current feature and its row (None before the store has one);
        warn when no feature is selected."""
        feature = self.current_feature
        if feature is None:
            self.notify("no feature selected", severity="warning")
            return
        then(feature, host(self).main_screen.rows.get(feature))

    def _with_row(self, then: Callable[[FeatureRow], None], missing: str) -> None:
        """Call ``then`` with the current feature's row; warn when it has no record yet."""

        def check(feature: int, row: FeatureRow | None) -> None:
            if row is None or row.status in ("pending", "running"):
                self.notify(f"feature {feature} has no {missing} yet", severity="warning")
            else:
                then(row)

        self._on_current(check)

    def _decide(self, row: FeatureRow, decision: str, note: str | None = None) -> None:
        if decision == "accept" and row.status == "failed":
            self.notify(f"feature {row.feature} failed: nothing to accept; edit it (e) or re-run it (n)",
                        severity="warning")
            return
        host(self).main_screen.save_review(row.feature, decision, note=note)
        if decision == "accept":
            self.go_to(host(self).main_screen.next_unreviewed(row.feature))

    def go_to(self, feature: int | None) -> None:
        """Show ``feature`` (this screen's way: the table moves its cursor, the detail screen its feature)."""

    def action_next_unreviewed(self) -> None:
        current = self.current_feature
        feature = host(self).main_screen.next_unreviewed(current)
        if feature is None:
            self.notify("every feature shown has a review decision", timeout=3)
        self.go_to(feature)

    def action_accept(self) -> None:
        self._with_row(lambda row: self._decide(row, "accept"), "explanation")

    def action_reject(self) -> None:
        self._with_row(self._reject, "explanation")

    def _reject(self, row: FeatureRow) -> None:
        def save(reason: str | None) -> None:
            if reason is not None:
                self._decide(row, "reject", reason or None)

        self.app.push_screen(ReasonModal(row), save)

    def action_edit(self) -> None:
        self._with_row(self._edit, "record to edit")

    def _edit(self, row: FeatureRow) -> None:
        def save(result: tuple[str, str, str] | None) -> None:
            if result is not None:
                host(self).main_screen.save_review(row.feature, "edit", result[0] or None, result[1] or None,
                                                   note=result[2] or None)

        self.app.push_screen(EditModal(row), save)

    def action_undo(self) -> None:
        self._on_current(self._undo)

    def _undo(self, feature: int, row: FeatureRow | None) -> None:
        if row is None or row.review is None:
            self.notify(f"feature {feature} has no review to withdraw", severity="warning")
            return
        host(self).main_screen.save_review(feature, None)

    def action_rerun(self) -> None:
        self._with_row(self._rerun, "record to re-run")

    def _rerun(self, row: FeatureRow) -> None:
        panel = host(self).main_screen.run_panel
        if panel.running:
            self.notify("a run is in progress: wait for it or cancel it (c)", severity="warning")
            return

        def go(note: str | None) -> None:
            if note is None or panel.running:
                return
            from tui.screens.resume import resume_command

            services = host(self).services
            store = services.store.path if services.store is not None else None
            extra = ["--rejudge", "--overwrite-reviewed", *(["--note", note] if note else [])]
            host(self).main_screen.resume = resume_command([row.feature], store, services.session.world,
                                                           services.session.judge_config, extra)
            panel.start(lambda: services.prepare_rerun(row.feature, note), f"re-run #{row.feature}")

        self.app.push_screen(NoteModal(row), go)

    def action_probe(self) -> None:
        self._on_current(self._probe)

    def _probe(self, feature: int, row: FeatureRow | None) -> None:
        strength = row.strength if row is not None and row.strength else None  # None: a run's strongest
        main = host(self).main_screen
        self.app.push_screen(ProbeModal(feature, strength), lambda _: main.feature_changed(feature))

    def action_export(self) -> None:
        store = host(self).services.store
        default = str(Path.cwd() / f"{store.path.name if store else 'steer'}-export.jsonl")

        def done(result: tuple[str, int] | None) -> None:
            if result is not None:
                self.notify(f"exported {result[1]} records to {result[0]}", timeout=6)

        self.app.push_screen(ExportModal(default), done)
