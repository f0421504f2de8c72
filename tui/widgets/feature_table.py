"""The feature table: id, label, confidence, status and review of every feature."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from tui.rows import FeatureRow

STATUS_STYLES = {"done": "green", "failed": "bold red", "running": "bold yellow", "pending": "dim"}
REVIEW_STYLES = {"accepted": "bold green", "edited": "bold cyan", "rejected": "bold red"}
FIXED = {"id": 5, "confidence": 4, "status": 10, "review": 8}


def _cells(row: FeatureRow, label_width: int) -> tuple[Text, ...]:
    label = row.label or (row.error or "" if row.status == "failed" else "")
    if len(label) > label_width:
        label = label[: label_width - 1] + "…"
    conf = "" if row.confidence is None else f"{row.confidence:.2f}"
    return (Text(str(row.feature), justify="right"), Text(label, style="red" if not row.label and label else ""),
            Text(conf, justify="right"), Text(row.status_text, style=STATUS_STYLES.get(row.status, "")),
            Text(row.review_word or "·", style=REVIEW_STYLES.get(row.review_word, "dim")))


class FeatureTable(DataTable):
    """A DataTable of FeatureRows keyed by feature id; the cursor stays on its feature across reloads."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id, classes=classes)
        self._label_width = 30
        self._shown: list[FeatureRow] = []

    def on_mount(self) -> None:
        self._fit_label()
        self._add_columns()

    def _add_columns(self) -> None:
        self.add_column("id", key="id", width=FIXED["id"])
        self.add_column("label", key="label", width=self._label_width)
        self.add_column("conf", key="confidence", width=FIXED["confidence"])
        self.add_column("status", key="status", width=FIXED["status"])
        self.add_column("review", key="review", width=FIXED["review"])

    def _fit_label(self) -> bool:
        """Give the label column what the other columns leave; True when it changed."""
        avail = self.size.width or self.app.size.width
        width = max(16, avail - sum(FIXED.values()) - 2 * 5 - 2)
        if width == self._label_width:
            return False
        self._label_width = width
        return True

    def on_resize(self) -> None:
        self.show(self._shown)

    @property
    def current_feature(self) -> int | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return int(row_key.value) if row_key.value is not None else None

    def show(self, rows: Iterable[FeatureRow]) -> None:
        """Replace the rows, keeping the cursor on the same feature where it is still shown."""
        keep = self.current_feature
        self._shown = list(rows)
        if self._fit_label():  # the label column takes what the window leaves
            self.clear(columns=True)
            self._add_columns()
        else:
            self.clear()
        for row in self._shown:
            self.add_row(*_cells(row, self._label_width), key=str(row.feature))
        if keep is not None:
            self.select_feature(keep)

    def update_row(self, row: FeatureRow) -> bool:
        """Update one shown row in place; False when it is not shown."""
        key = str(row.feature)
        if key not in self.rows:
            return False
        self._shown = [row if r.feature == row.feature else r for r in self._shown]
        for col, value in zip(("id", "label", "confidence", "status", "review"), _cells(row, self._label_width)):
            self.update_cell(key, col, value)
        return True

    def select_feature(self, feature: int) -> bool:
        key = str(feature)
        if key not in self.rows:
            return False
        self.move_cursor(row=self.get_row_index(key))
        return True
