"""The table model: filters and sort orders."""

from __future__ import annotations

from tui.rows import FeatureRow, RowFilter, sort_rows, view

ROWS = [
    FeatureRow(0, "done", "red colour", "makes things red", 0.9, "accept", "ann", "t"),
    FeatureRow(1, "failed", "", "", None, error="judge timed out"),
    FeatureRow(2, "done", "blue stripes", "stripes in blue", 0.4, "reject", "bob", "t"),
    FeatureRow(3, "pending"),
    FeatureRow(4, "done", "green circle", "a green circle", 0.7, "edit", "ann", "t"),
]


def ids(rows: list[FeatureRow]) -> list[int]:
    return [r.feature for r in rows]


def test_filters_by_status_review_and_text() -> None:
    assert ids(view(ROWS, RowFilter(status="done"))) == [0, 2, 4]
    assert ids(view(ROWS, RowFilter(review="unreviewed"))) == [1, 3]
    assert ids(view(ROWS, RowFilter(review="reviewed"))) == [0, 2, 4]
    assert ids(view(ROWS, RowFilter(review="rejected"))) == [2]
    assert ids(view(ROWS, RowFilter(text="GREEN"))) == [4]
    assert ids(view(ROWS, RowFilter(text="timed out"))) == [1]
    assert ids(view(ROWS, RowFilter(text="#2"))) == [2]
    assert ids(view(ROWS, RowFilter(text="blue", status="done", review="rejected"))) == [2]
    assert not RowFilter().active and RowFilter(status="failed").active


def test_sorts_keep_empty_values_last() -> None:
    assert ids(sort_rows(ROWS, "confidence")) == [2, 4, 0, 1, 3]
    assert ids(sort_rows(ROWS, "confidence", reverse=True)) == [0, 4, 2, 1, 3]
    assert ids(sort_rows(ROWS, "label")) == [2, 4, 0, 1, 3]
    assert ids(sort_rows(ROWS, "review")) == [0, 4, 2, 1, 3]
    assert ids(sort_rows(ROWS, "id", reverse=True)) == [4, 3, 2, 1, 0]
    assert ids(sort_rows(ROWS, "status"))[0] == 3  # pending before finished


def test_review_changes_the_row() -> None:
    from agent.store.records import Review

    row = ROWS[1].with_review(Review("edit", "cy", "now", explanation="new words", label="new label"))
    assert (row.review_word, row.label, row.explanation, row.reviewer) == ("edited", "new label", "new words", "cy")
    assert row.with_review(None).review is None
