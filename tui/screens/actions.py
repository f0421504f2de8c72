"""Review keys shared by the table and the detail screen: a e r n p x (and u to undo)."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding

REVIEW_BINDINGS = [
    Binding("a", "accept", "accept"),
    Binding("e", "edit", "edit"),
    Binding("r", "reject", "reject"),
    Binding("n", "rerun", "re-run"),
    Binding("p", "probe", "probe"),
    Binding("x", "export", "export"),
    Binding("u", "undo", "undo review", show=False),
]

ACTION_HELP = {
    "accept": "Accept the explanation",
    "edit": "Edit the explanation and label",
    "reject": "Reject the explanation",
    "rerun": "Re-run the feature with a note to the judge",
    "probe": "Probe the feature by hand (strength, samples, question)",
    "export": "Export every record as JSON lines",
    "undo": "Withdraw the current review decision",
}


class FeatureActions:
    """Forwards the review keys to the app for the screen's current feature."""

    app: Any

    @property
    def current_feature(self) -> int | None:  # pragma: no cover - overridden
        return None

    def _with_feature(self, then: Any) -> None:
        feature = self.current_feature
        if feature is None:
            self.app.notify("no feature selected", severity="warning")
            return
        then(feature)

    def action_accept(self) -> None:
        self._with_feature(lambda f: self.app.review(f, "accept"))

    def action_reject(self) -> None:
        self._with_feature(lambda f: self.app.review(f, "reject"))

    def action_edit(self) -> None:
        self._with_feature(self.app.edit)

    def action_rerun(self) -> None:
        self._with_feature(self.app.rerun)

    def action_probe(self) -> None:
        self._with_feature(self.app.probe)

    def action_undo(self) -> None:
        self._with_feature(self.app.undo_review)

    def action_export(self) -> None:
        self.app.export()
