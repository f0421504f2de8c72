"""Per-feature records and human reviews: what the store keeps about each explained feature."""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("done", "failed")
DECISIONS = ("accept", "edit", "reject")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_reviewer() -> str:
    try:
        return os.environ.get("STEER_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Review:
    """A human decision about a record."""

    decision: str
    """``accept``, ``edit`` or ``reject``."""
    reviewer: str
    at: str
    """ISO time (UTC) of the decision."""
    explanation: str | None = None
    """The reviewer's explanation (for ``edit``)."""
    label: str | None = None
    """The reviewer's label (for ``edit``)."""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Review:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class FeatureRecord:
    """The outcome of explaining one feature: the answer, how it was reached, and what it cost."""

    feature: int
    status: str
    """``done`` (a final verdict) or ``failed`` (no valid verdict; never an explanation)."""
    explanation: str | None = None
    label: str | None = None
    confidence: float | None = None
    hypothesis: str | None = None
    """The judge's last hypothesis."""
    error: str | None = None
    """Why the feature failed."""
    raw_reply: str | None = None
    """The judge's last raw reply, kept when it could not be parsed."""
    forced: bool = False
    """The final answer was forced by a spent budget."""
    judge: dict[str, Any] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)
    """model, revision, sae, layer."""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    """engine fingerprint, sweep config and judge identity this record was made with."""
    prompt_versions: list[str] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """Every probe result the judge saw (EvidenceItem dicts), in order."""
    image_evidence: list[dict[str, Any]] = field(default_factory=list)
    """Top-k and hybrid descriptions the judge saw (ImageItem dicts), numbered with the probes."""
    test_evidence: list[dict[str, Any]] = field(default_factory=list)
    """Activation tests the judge asked for (TestItem dicts), numbered with the probes."""
    usage: dict[str, Any] = field(default_factory=dict)
    """Judge tokens and estimated cost."""
    timings: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    n_probes: int = 0
    created_at: str = field(default_factory=now_iso)
    run_id: str = ""
    schema: int = SCHEMA_VERSION
    note: str | None = None
    """The reviewer's note to the judge this record was made with (a re-run request), if any."""
    review: Review | None = None
    """The current human decision (kept apart in the store; attached when read)."""
    manual: list[dict[str, Any]] = field(default_factory=list)
    """Probes a person ran by hand (kept apart in the store, like reviews; attached when read)."""

    @property
    def final_explanation(self) -> str | None:
        """The explanation after review: the reviewer's edit where there is one."""
        if self.review and self.review.decision == "edit" and self.review.explanation:
            return self.review.explanation
        return self.explanation

    @property
    def final_label(self) -> str | None:
        if self.review and self.review.decision == "edit" and self.review.label:
            return self.review.label
        return self.label

    def to_dict(self, with_review: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d.pop("review")
        manual = d.pop("manual")
        if with_review:
            d["review"] = self.review.to_dict() if self.review else None
            d["manual"] = manual
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureRecord:
        """A record from its stored form; raises ValueError naming the first field that does not fit."""
        problem = record_problem(d)
        if problem:
            raise ValueError(problem)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and k not in ("review", "manual")})


_TEXT = (str, type(None))
_NUMBER = (int, float, type(None))
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "feature": (int,), "status": (str,), "schema": (int,), "explanation": _TEXT, "label": _TEXT,
    "confidence": _NUMBER, "hypothesis": _TEXT, "error": _TEXT, "raw_reply": _TEXT, "forced": (bool,),
    "judge": (dict,), "world": (dict,), "fingerprint": (dict,), "prompt_versions": (list,), "transcript": (list,),
    "evidence": (list,), "usage": (dict,), "timings": (dict,), "rounds": (int,), "n_probes": (int,),
    "created_at": (str,), "run_id": (str,),
}
"""Every field a schema-1 record has always been written with, and the JSON types it may hold."""
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {"image_evidence": (list,), "test_evidence": (list,), "note": _TEXT}
"""Fields added later: absent in older records."""


def record_problem(d: Any) -> str | None:
    """Why ``d`` is not a complete stored record (one phrase), or None when it is one."""
    if not isinstance(d, dict):
        return f"expected an object, found {type(d).__name__}"
    missing = [k for k in RECORD_FIELDS if k not in d]
    if missing:
        return f"incomplete: no {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
    for name, types in (RECORD_FIELDS | OPTIONAL_FIELDS).items():
        if name not in d:  # an optional field an older record lacks
            continue
        value = d[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"field {name!r} holds {type(value).__name__}"
    for name in ("transcript", "evidence", "image_evidence", "test_evidence"):
        if not all(isinstance(item, dict) for item in d.get(name, [])):
            return f"field {name!r} holds an entry that is not an object"
    if d["status"] not in STATUSES:
        return f"unknown status {d['status']!r}"
    if d["status"] == "done" and not (d["explanation"] or "").strip():
        return "a done record without an explanation"
    if d["status"] == "failed" and d["error"] is None:
        return "a failed record without its error"
    return None


def review_problem(d: Any) -> str | None:
    """Why ``d`` is not a stored review entry ({"current": ..., "history": [...]}), or None."""
    if not isinstance(d, dict) or not isinstance(d.get("history", []), list):
        return "expected an object with a history list"
    current = d.get("current")
    if current is None:
        return None
    if not isinstance(current, dict) or current.get("decision") not in DECISIONS:
        return "its current decision is not one of " + ", ".join(DECISIONS)
    if not all(isinstance(current.get(k), str) for k in ("reviewer", "at")):
        return "its current decision lacks a reviewer or time"
    return None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
