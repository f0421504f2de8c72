"""What a judge reads: numbered probe results grouped by role, top-k image descriptions, and word
statistics over their texts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.probes import Probe, ProbeResult, describe_probe
from steering.activation_tests import ActivationTestResult

ROLES = ("baseline", "steered", "control")

# Function words and the words every description shares; they never carry a concept.
STOPWORDS = frozenset(
    ["a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "of", "in", "on", "at", "to", "for", "with", "by", "from", "and", "or", "but", "as", "into", "onto", "over", "under", "than", "then", "there", "here", "which", "who", "whom", "whose", "what", "when", "where", "how", "has", "have", "had", "do", "does", "did", "not", "no", "so", "such", "very", "some", "any", "all", "each", "both", "more", "most", "other", "same", "own", "only", "just", "also", "can", "could", "would", "should", "may", "might", "must", "will", "shall", "i", "you", "he", "she", "we", "they", "them", "their", "his", "her", "one", "two", "three", "highlighted", "element", "elements", "image", "picture", "photo", "shows", "showing", "shown", "appears", "appear", "looks", "look", "like", "seems", "seem", "kind", "sort", "type"]
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case content words of ``text``, in order, stopwords dropped."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


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


IMAGE_MODES = ("topk", "hybrid")


@dataclass(frozen=True)
class ImageEvidence:
    """What the explainer said about a feature's masked top-activating images (top-k or hybrid mode)."""

    feature: int
    mode: str
    """``topk``: the masked top images only; ``hybrid``: the same, steered at the patches where it fired."""
    strength: float
    """L2 norm of the vector added at active patches (0 for topk)."""
    n_images: int
    """Top images asked for (fewer are shown when the feature fired on fewer images)."""
    texts: tuple[str, ...]
    """The answers, prefix stripped; empty when the feature never fired on the collection."""
    image_ids: tuple[int, ...] = ()
    """Ids of the images shown, best first (indices into the collection's image list)."""
    image_names: tuple[str, ...] = ()
    note: str = ""
    """Why there are no texts, when there are none."""

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "mode": self.mode, "strength": self.strength, "n_images": self.n_images,
                "texts": list(self.texts), "image_ids": list(self.image_ids), "image_names": list(self.image_names),
                "note": self.note}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageEvidence:
        return cls(feature=int(d["feature"]), mode=str(d["mode"]), strength=float(d["strength"]),
                   n_images=int(d["n_images"]), texts=tuple(d.get("texts", ())),
                   image_ids=tuple(int(i) for i in d.get("image_ids", ())),
                   image_names=tuple(d.get("image_names", ())), note=str(d.get("note", "")))


@dataclass(frozen=True)
class ImageItem:
    """One top-k or hybrid description as the judge sees it, numbered like the probe results."""

    id: int
    round: int
    result: ImageEvidence

    @property
    def role(self) -> str:
        return self.result.mode

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "round": self.round, "role": self.role, "image": self.result.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageItem:
        return cls(id=int(d["id"]), round=int(d["round"]), result=ImageEvidence.from_dict(d["image"]))


@dataclass(frozen=True)
class TestItem:
    """One activation test (steering.activation_tests) as the judge sees it, numbered like the probes."""

    __test__ = False  # not a pytest class

    id: int
    round: int
    result: ActivationTestResult
    reason: str = ""

    @property
    def role(self) -> str:
        return "test"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "round": self.round, "role": self.role, "reason": self.reason,
                "test": self.result.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestItem:
        return cls(id=int(d["id"]), round=int(d["round"]), result=ActivationTestResult.from_dict(d["test"]),
                   reason=str(d.get("reason", "")))


@dataclass
class Evidence:
    """All results gathered for one feature, numbered in arrival order (probes, image descriptions and
    activation tests share one numbering, so a verdict can cite any)."""

    items: list[EvidenceItem] = field(default_factory=list)
    images: list[ImageItem] = field(default_factory=list)
    tests: list[TestItem] = field(default_factory=list)

    def _next_id(self) -> int:
        return 1 + max((i.id for i in (*self.items, *self.images, *self.tests)), default=0)

    def _append(self, into: list[Any], make: Any, results: Iterable[Any], round: int,
                reasons: Iterable[str] | None) -> list[int]:
        """Number ``results`` on from the last id (one numbering for every kind) and append them to ``into``."""
        reasons = list(reasons) if reasons is not None else None
        ids = []
        for i, r in enumerate(results):
            item = make(id=self._next_id(), round=round, result=r, reason=reasons[i] if reasons is not None else "")
            into.append(item)
            ids.append(item.id)
        return ids

    def add_tests(self, results: Iterable[ActivationTestResult], round: int,
                  reasons: Iterable[str] | None = None) -> list[int]:
        return self._append(self.tests, TestItem, results, round, reasons)

    def add(self, results: Iterable[ProbeResult], round: int, reasons: Iterable[str] | None = None) -> list[int]:
        return self._append(self.items, EvidenceItem, results, round, reasons)

    def add_images(self, results: Iterable[ImageEvidence], round: int) -> list[int]:
        ids = []
        for r in results:
            item = ImageItem(id=self._next_id(), round=round, result=r)
            self.images.append(item)
            ids.append(item.id)
        return ids

    def images_in_round(self, round: int) -> list[ImageItem]:
        return [i for i in self.images if i.round == round]

    def image_texts(self, mode: str | None = None) -> list[str]:
        """Texts of the top-k / hybrid descriptions (of one mode, or all)."""
        return [t for i in self.images if mode is None or i.role == mode for t in i.result.texts]

    def by_role(self, role: str) -> list[EvidenceItem]:
        return [i for i in self.items if i.role == role]

    def in_round(self, round: int) -> list[EvidenceItem]:
        return [i for i in self.items if i.round == round]

    @property
    def ids(self) -> set[int]:
        return {i.id for i in self.items} | {i.id for i in self.images} | {i.id for i in self.tests}

    def baseline_texts(self, prompt: str = "describe", question: str | None = None) -> list[str]:
        return [t for i in self.by_role("baseline") if i.probe.prompt == prompt and i.probe.question == question
                for t in i.result.texts]


def item_view(item: EvidenceItem) -> dict[str, Any]:
    """One probe result as a judge prompt shows it (title, texts, first-token KL)."""
    p = item.probe
    if item.role == "baseline":
        title = "baseline (strength 0)"
    elif item.role == "control":
        title = f"control: random direction, strength {p.strength:g}"
    else:
        title = f"steered, strength {p.strength:g}"
    if p.samples > 1:
        title += f", {p.samples} samples"
    if p.base_image != "white":
        title += f", {p.base_image} base image"
    if p.prompt == "ask":
        title += f", asked {p.question!r}"
    return {"id": item.id, "title": title, "texts": list(item.result.texts), "reason": item.reason,
            "kl": None if item.role == "baseline" else f"{item.result.kl_first:.3f}", "name": describe_probe(p)}
