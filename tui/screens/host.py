"""What screens use of the app and of the home screen, typed without importing either (no import cycle)."""

from __future__ import annotations

from typing import Protocol, cast

from textual.dom import DOMNode

from tui.evaluation import EvalReport
from tui.rows import FeatureRow
from tui.services import Services
from tui.widgets.run_panel import RunPanel


class FeatureList(Protocol):
    """The home screen's side: every feature's row, the run line (which owns the run), reviews."""

    rows: dict[int, FeatureRow]

    @property
    def run_panel(self) -> RunPanel: ...

    def neighbour(self, feature: int, delta: int) -> int | None:
        """The feature ``delta`` rows away in the table's current order."""
        ...

    def save_review(self, feature: int, decision: str | None, explanation: str | None = None,
                    label: str | None = None) -> None:
        """Write a decision (None withdraws the current one) and show it when the store has it."""
        ...

    def feature_changed(self, feature: int) -> None:
        """Tell the screens showing ``feature`` to reload it."""
        ...


class Host(Protocol):
    """The app as screens see it: the injected backends, the loaded report, the home screen."""

    services: Services
    report: EvalReport | None
    startup_error: str | None

    @property
    def main_screen(self) -> FeatureList: ...


def host(node: DOMNode) -> Host:
    """The running SteerApp of ``node``, typed as what screens may use of it."""
    return cast(Host, node.app)
