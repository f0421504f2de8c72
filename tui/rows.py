"""The feature table's model: one row per feature, filters and sort orders (no textual)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

STATUSES = ("pending", "running", "done", "failed")
REVIEW_FILTERS = ("any", "unreviewed", "reviewed", "accepted", "edited", "rejected")
STATUS_FILTERS = ("any",) + STATUSES
SORT_KEYS = ("id", "label", "confidence", "status", "review")
REVIEW_WORDS = {"accept": "accepted", "edit": "edited", "reject": "rejected"}


@dataclass(frozen=True)
class FeatureRow:
    """What the table shows about one feature."""

    feature: int
    status: str = "pending"
    """pending, running, done or failed."""
    label: str = ""
    explanation: str = ""
    confidence: float | None = None
    review: str | None = None
    """accept, edit or reject (the current human decision)."""
    reviewer: str | None = None
    reviewed_at: str | None = None
    error: str | None = None
    round: int | None = None
    """The judge round while running."""
    strength: float | None = None
    """The strongest strength of the opening sweep (where a manual probe starts)."""

    @classmethod
    def from_record(cls, rec: Any) -> FeatureRow:
        review = rec.review
        sweep = next((e for e in rec.transcript or [] if e.get("kind") == "sweep"), {})
        strengths = [float(s) for s in sweep.get("strengths") or []]
        return cls(feature=rec.feature, status=rec.status, label=rec.final_label or "",
                   explanation=rec.final_explanation or "", confidence=rec.confidence,
                   review=review.decision if review else None, reviewer=review.reviewer if review else None,
                   reviewed_at=review.at if review else None, error=rec.error,
                   strength=max(strengths) if strengths else None)

    def with_review(self, review: Any | None) -> FeatureRow:
        """This row under a new current decision (an edit also changes what is shown)."""
        if review is None:
            return replace(self, review=None, reviewer=None, reviewed_at=None)
        row = replace(self, review=review.decision, reviewer=review.reviewer, reviewed_at=review.at)
        if review.decision == "edit":
            row = replace(row, label=review.label or row.label, explanation=review.explanation or row.explanation)
        return row

    @property
    def review_word(self) -> str:
        return REVIEW_WORDS.get(self.review or "", "")

    @property
    def status_text(self) -> str:
        if self.status == "running" and self.round:
            return f"running r{self.round}"
        return self.status


@dataclass(frozen=True)
class RowFilter:
    """The table's filter: free text over id, label and explanation, plus status and review."""

    text: str = ""
    status: str = "any"
    review: str = "any"

    @property
    def active(self) -> bool:
        return bool(self.text.strip()) or self.status != "any" or self.review != "any"

    def matches(self, row: FeatureRow) -> bool:
        if self.status != "any" and row.status != self.status:
            return False
        if self.review == "unreviewed" and row.review is not None:
            return False
        if self.review == "reviewed" and row.review is None:
            return False
        if self.review in ("accepted", "edited", "rejected") and row.review_word != self.review:
            return False
        needle = self.text.strip().lower()
        if needle:
            if needle.startswith("#"):
                return needle[1:] == str(row.feature)
            hay = f"{row.feature} {row.label} {row.explanation} {row.error or ''}".lower()
            return all(part in hay for part in needle.split())
        return True


def sort_rows(rows: Iterable[FeatureRow], key: str = "id", reverse: bool = False) -> list[FeatureRow]:
    """Rows ordered by ``key``; ties (and rows without a value) keep feature order, empty values last."""
    rows = sorted(rows, key=lambda r: r.feature)
    if key == "id":
        return rows[::-1] if reverse else rows
    order = {s: i for i, s in enumerate(("running", "pending", "failed", "done"))}

    def value(r: FeatureRow) -> Any:
        if key == "label":
            return r.label.lower() or None
        if key == "confidence":
            return r.confidence
        if key == "status":
            return order.get(r.status, 9)
        if key == "review":
            return r.review_word or None
        raise ValueError(f"unknown sort key {key!r}: use one of {', '.join(SORT_KEYS)}")

    present = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    return sorted(present, key=value, reverse=reverse) + missing


def view(rows: Iterable[FeatureRow], filt: RowFilter, key: str = "id", reverse: bool = False) -> list[FeatureRow]:
    return sort_rows((r for r in rows if filt.matches(r)), key, reverse)


def counts(rows: Iterable[FeatureRow]) -> dict[str, int]:
    out = {s: 0 for s in STATUSES}
    out["reviewed"] = 0
    for r in rows:
        out[r.status] = out.get(r.status, 0) + 1
        out["reviewed"] += r.review is not None
    return out
