"""What a judge reads: numbered probe results grouped by role, and word statistics over their texts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.probes import Probe, ProbeResult

ROLES = ("baseline", "steered", "control")

# Function words and the words every description shares; they never carry a concept.
STOPWORDS = frozenset(
    ["a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "of", "in", "on", "at", "to", "for", "with", "by", "from", "and", "or", "but", "as", "into", "onto", "over", "under", "than", "then", "there", "here", "which", "who", "whom", "whose", "what", "when", "where", "how", "has", "have", "had", "do", "does", "did", "not", "no", "so", "such", "very", "some", "any", "all", "each", "both", "more", "most", "other", "same", "own", "only", "just", "also", "can", "could", "would", "should", "may", "might", "must", "will", "shall", "i", "you", "he", "she", "we", "they", "them", "their", "his", "her", "one", "two", "three", "highlighted", "element", "elements", "image", "picture", "photo", "shows", "showing", "shown", "appears", "appear", "looks", "look", "like", "seems", "seem", "kind", "sort", "type"]
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case content words of ``text``, in order, stopwords dropped."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


def word_set(texts: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for t in texts:
        out.update(words(t))
    return out


def role_of(probe: Probe) -> str:
    if probe.is_baseline:
        return "baseline"
    return "control" if probe.direction == "random" else "steered"


@dataclass(frozen=True)
class EvidenceItem:
    """One probe result as the judge sees it, under a stable number."""

    id: int
    """1-based number the judge cites."""
    round: int
    """The judge round before which this result arrived (1 = the opening sweep)."""
    result: ProbeResult
    reason: str = ""
    """Why it was run (the judge's reason for a requested probe)."""

    @property
    def probe(self) -> Probe:
        return self.result.probe

    @property
    def role(self) -> str:
        return role_of(self.result.probe)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "round": self.round, "role": self.role, "reason": self.reason,
                "result": self.result.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvidenceItem:
        return cls(id=int(d["id"]), round=int(d["round"]), result=ProbeResult.from_dict(d["result"]),
                   reason=d.get("reason", ""))


@dataclass
class Evidence:
    """All results gathered for one feature, numbered in arrival order."""

    items: list[EvidenceItem] = field(default_factory=list)

    def add(self, results: Iterable[ProbeResult], round: int, reasons: Iterable[str] | None = None) -> list[int]:
        reasons = list(reasons) if reasons is not None else None
        ids = []
        for i, r in enumerate(results):
            item = EvidenceItem(id=len(self.items) + 1, round=round, result=r,
                                reason=reasons[i] if reasons is not None else "")
            self.items.append(item)
            ids.append(item.id)
        return ids

    def by_role(self, role: str) -> list[EvidenceItem]:
        return [i for i in self.items if i.role == role]

    def in_round(self, round: int) -> list[EvidenceItem]:
        return [i for i in self.items if i.round == round]

    @property
    def ids(self) -> set[int]:
        return {i.id for i in self.items}

    def baseline_texts(self, prompt: str = "describe", question: str | None = None) -> list[str]:
        return [t for i in self.by_role("baseline") if i.probe.prompt == prompt and i.probe.question == question
                for t in i.result.texts]
