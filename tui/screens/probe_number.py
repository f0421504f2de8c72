"""Ask for an evidence number the judge cites (#N) and show that probe."""

from __future__ import annotations

from tui.screens.modals import JumpModal


class ProbeNumberModal(JumpModal):
    """Ask for one of ``known`` evidence numbers; returns it or None."""

    TITLE = "Go to the probe the judge cites as #"
    PLACEHOLDER = "evidence number, e.g. 4"
    EMPTY = "type a number (escape cancels)"

    def miss(self, number: int) -> str:
        span = f"#{min(self.known)}-#{max(self.known)}" if self.known else "none"
        return f"#{number} is not in this feature's evidence ({span})"
