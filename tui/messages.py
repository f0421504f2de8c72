"""Messages workers post to the UI (posting is thread-safe; handlers run on the UI thread)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from tui.rows import FeatureRow


class RowsLoaded(Message):
    """The store's rows, read in a worker; ``generation`` drops a late answer to an older request."""

    def __init__(self, rows: list[FeatureRow], errors: list[str], generation: int, merge: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.errors = errors
        self.generation = generation
        self.merge = merge
        """Read because another process changed the store: update what differs, keep the view."""


class RunProgress(Message):
    """One agent RunEvent, as emitted by the run in its worker thread."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class RunEnded(Message):
    """The run came to its end (done, stopped or cancelled); ``summary`` is its RunSummary."""

    def __init__(self, summary: Any, title: str) -> None:
        super().__init__()
        self.summary = summary
        self.title = title


class RunFailed(Message):
    """The run's worker raised ``error`` (a bug or a broken backend, not a feature's failure)."""

    def __init__(self, title: str, error: BaseException | None) -> None:
        super().__init__()
        self.title = title
        self.error = error


class ReviewSaved(Message):
    """A decision was written; ``row`` is the feature's row as the store now has it."""

    def __init__(self, feature: int, decision: str | None, row: FeatureRow | None) -> None:
        super().__init__()
        self.feature = feature
        self.decision = decision
        self.row = row


class FeatureChanged(Message):
    """A feature's record or review changed: screens showing it reload."""

    def __init__(self, feature: int) -> None:
        super().__init__()
        self.feature = feature


class ProbeAnswer(Message):
    """A manual probe's result arrived (``request`` identifies the request it answers)."""

    def __init__(self, request: int, result: Any) -> None:
        super().__init__()
        self.request = request
        self.result = result
