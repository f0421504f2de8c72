"""What a feature page shows, as plain data computed from a stored record (and the store's top-k collection):
the answer and its review, scores, the top-k and hybrid explanations, activation statistics, and every probe
numbered as the judge cites it. The TUI and the HTML site render the same FeaturePage; nothing here imports
textual, rich or (at module level) torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.groundtruth import names_truth
from agent.judges.evidence import words
from steering.activation_tests import EDIT_MEANING, ActivationTestResult, family_values

CHANGE_NAME = "answer change"
CHANGE_HELP = ("answer change: 1 - word Jaccard between the steered answer and the baseline answer (same image and "
               "prompt), over content words; 0 = the same words, 1 = no word in common (averaged over samples)")
KL_HELP = ("first-token KL: KL divergence of the first answer token's distribution from the unsteered run's; "
           "0 means the first token's odds did not move, not that the answer did not change")
NOT_COMPUTED = "not computed"


@dataclass
class ProbeEntry:
    """One probe result the judge saw, under the number it cites."""

    id: int
    round: int
    role: str
    """baseline, steered or control (a random direction of the same norm)."""
    strength: float
    base_image: str
    prompt: str
    """describe, or ask (a targeted question)."""
    question: str | None
    texts: list[str]
    kl_first: float | None
    """KL of the first answer token against the unsteered run (None for a baseline)."""
    change: float | None = None
    """1 - word Jaccard against the baseline of the same image and prompt (None without one)."""
    reason: str = ""

    @property
    def title(self) -> str:
        """``#3 steered s=154 on white`` (``asks 'q'`` for a question)."""
        what = "baseline" if self.role == "baseline" else f"{self.role} s={self.strength:g}"
        ask = f" asks {self.question!r}" if self.question else ""
        return f"#{self.id} {what} on {self.base_image}{ask}"


@dataclass
class ImageEntry:
    """A top-k or hybrid description of the feature's top images (numbered with the probes)."""

    id: int
    mode: str
    strength: float
    texts: list[str]
    names: list[str]
    note: str = ""

    @property
    def text(self) -> str:
        said = " / ".join(t for t in self.texts if t.strip())
        if said:
            return said
        return "(the model's answer was empty)" if self.texts else f"no description ({self.note or 'never fired'})"


@dataclass
class TestValue:
    """One value of a render test's family: what the feature read on the scenes carrying it."""

    value: str
    mean: float
    """Mean activation over the pool's scenes that carry the value."""
    top_share: float | None
    """Share of the pool's most activating scenes that carry it (None: nothing in the pool fired)."""
    wins: float
    """Share of the decisive base scenes where this value gives the highest activation."""


@dataclass
class TestEntry:
    """An activation test the judge asked for (steering.activation_tests), numbered with the probes."""

    __test__ = False  # not a pytest class

    id: int
    round: int
    kind: str
    """``render`` (scenes that vary one family) or ``edit`` (the top images before and after an edit)."""
    name: str
    """``render colour holding shape circle``, ``edit desaturate``."""
    reason: str = ""
    values: list[TestValue] = field(default_factory=list)
    """Render: every value of the family, the highest mean activation first."""
    before: float | None = None
    """Edit: mean activation of the top images as they are, then edited."""
    after: float | None = None
    meaning: str = ""
    """Edit: what the edit removes."""
    n_images: int = 0
    n_top: int = 0
    peak: float = 0.0
    error: str | None = None
    """Why the test did not run (one line), else None."""

    @property
    def title(self) -> str:
        return f"#{self.id} {self.name}"

    @property
    def change(self) -> float | None:
        """Edit: the relative change of the mean activation (None without a positive before)."""
        if self.before is None or self.after is None or self.before <= 0:
            return None
        return (self.after - self.before) / self.before

    @property
    def scope(self) -> str:
        """What the figures are over, in a few words."""
        if self.kind == "edit":
            return f"over {self.n_images} top images"
        top = f"top share of the {self.n_top} most active" if self.n_top else "no scene fired"
        return f"over {self.n_images} scenes, peak {self.peak:.3g}; {top}"

    @property
    def summary(self) -> str:
        """The result in one line (the overview's)."""
        if self.error:
            return f"not run: {self.error}"
        if self.kind == "edit":
            change = "n/a" if self.change is None else f"{self.change:+.0%}"
            return f"mean activation {_g(self.before)} -> {_g(self.after)} ({change}), {self.meaning or 'edited'}"
        if not self.values or self.peak <= 0:
            return "it never fired on these scenes"
        best = self.values[0]
        return f"most on {best.value} (mean {best.mean:.3g}, top {_pct(best.top_share)}, wins {_pct(best.wins)})"


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


TEST_HELP = ("activation tests read the feature's activation (mean over the patch grid): render tests draw scenes "
             "that differ in one family only (mean: over the scenes carrying the value; top: share of the most "
             "active scenes that carry it; wins: share of the base scenes where the value fires most); edit tests "
             "compare the top images before and after an edit")


@dataclass
class StrengthRow:
    strength: float
    steered: list[ProbeEntry] = field(default_factory=list)
    controls: list[ProbeEntry] = field(default_factory=list)


@dataclass
class Sweep:
    """The described probes on one base image: the baseline, then steered and control probes by strength."""

    base_image: str
    baseline: list[ProbeEntry] = field(default_factory=list)
    rows: list[StrengthRow] = field(default_factory=list)


@dataclass
class Score:
    name: str
    value: str
    """A figure, or NOT_COMPUTED."""
    note: str = ""


@dataclass
class FeaturePage:
    feature: int
    status: str
    label: str | None
    explanation: str | None
    confidence: float | None
    forced: bool
    review: dict[str, Any] | None
    """decision, reviewer, at, note (the reason), or None when unreviewed."""
    judge_label: str | None
    judge_explanation: str | None
    error: str | None
    scores: list[Score]
    probes: list[ProbeEntry]
    images: list[ImageEntry]
    sweeps: list[Sweep]
    questions: list[ProbeEntry]
    cited: list[int]
    """The evidence numbers the final verdict rests on."""
    tests: list[TestEntry] = field(default_factory=list)
    """The activation tests the judge asked for."""

    @property
    def review_state(self) -> str:
        """unreviewed, accepted, edited or rejected."""
        decision = (self.review or {}).get("decision")
        return {"accept": "accepted", "edit": "edited", "reject": "rejected"}.get(decision, "unreviewed")

    def entry(self, number: int) -> ProbeEntry | ImageEntry | TestEntry | None:
        return next((e for e in self.numbered() if e.id == number), None)

    def numbered(self) -> list[ProbeEntry | ImageEntry | TestEntry]:
        """Every item the judge saw, in the order of its numbers."""
        return sorted([*self.probes, *self.images, *self.tests], key=lambda e: e.id)


def answer_change(texts: list[str], baseline: list[str]) -> float | None:
    """1 - word Jaccard of each answer against the baseline's words, averaged over ``texts``."""
    if not texts or not baseline:
        return None
    base = {w for t in baseline for w in words(t)}
    out = []
    for t in texts:
        mine = set(words(t))
        union = mine | base
        out.append(1.0 - len(mine & base) / len(union) if union else 0.0)
    return sum(out) / len(out)


def _probe_entries(record: Any) -> list[ProbeEntry]:
    entries = []
    for item in record.evidence or []:
        res = item.get("result") if isinstance(item, dict) else None
        if not isinstance(res, dict) or not isinstance(item.get("id"), int):
            continue
        p = res.get("probe") or {}
        role = str(item.get("role") or ("baseline" if not p.get("feature") and not p.get("strength") else "steered"))
        entries.append(ProbeEntry(
            id=item["id"], round=int(item.get("round", 0)), role=role, strength=float(p.get("strength", 0.0)),
            base_image=str(p.get("base_image", "white")), prompt=str(p.get("prompt", "describe")),
            question=p.get("question"), texts=[str(t) for t in res.get("texts") or []],
            kl_first=None if role == "baseline" else float(res.get("kl_first") or 0.0),
            reason=str(item.get("reason") or "")))
    baselines: dict[tuple[str, str, Any], list[str]] = {}
    for e in entries:
        if e.role == "baseline":
            baselines.setdefault((e.base_image, e.prompt, e.question), []).extend(e.texts)
    for e in entries:
        if e.role != "baseline":
            e.change = answer_change(e.texts, baselines.get((e.base_image, e.prompt, e.question), []))
    return entries


def _image_entries(record: Any) -> list[ImageEntry]:
    out = []
    for item in getattr(record, "image_evidence", None) or []:
        r = item.get("image") if isinstance(item, dict) else None
        if isinstance(r, dict) and isinstance(item.get("id"), int):
            out.append(ImageEntry(item["id"], str(r.get("mode", "?")), float(r.get("strength") or 0.0),
                                  [str(t) for t in r.get("texts") or []], [str(n) for n in r.get("image_names") or []],
                                  str(r.get("note") or "")))
    return out


def _family_rank(family: str, value: str) -> int:
    """Where ``value`` stands in its family (ties of a render test's table keep the family's order: a stored
    result's values come back sorted by name)."""
    try:
        values = family_values(family)
    except (KeyError, ImportError):
        return 0
    return values.index(value) if value in values else len(values)


def test_entries(record: Any) -> list[TestEntry]:
    """The record's activation tests, in the order they ran (a malformed item is left out)."""
    out = []
    for item in getattr(record, "test_evidence", None) or []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int) or not isinstance(item.get("test"), dict):
            continue
        try:
            r = ActivationTestResult.from_dict(item["test"])
        except (KeyError, TypeError, ValueError):  # a malformed item is left out, as a malformed probe is
            continue
        t = r.test
        entry = TestEntry(id=item["id"], round=int(item.get("round") or 0), kind=t.kind, name=t.name(),
                          reason=str(item.get("reason") or ""), n_images=r.n_images, n_top=r.n_top, peak=r.peak,
                          error=r.error)
        if t.kind == "edit":
            entry.before, entry.after = r.values.get("before"), r.values.get("after")
            entry.meaning = EDIT_MEANING.get(str(t.edit), "")
        else:
            order = sorted(r.values, key=lambda v: (-r.values[v], _family_rank(str(t.family), v)))
            entry.values = [TestValue(v, r.values[v], r.top_share.get(v) if r.n_top else None, r.wins.get(v, 0.0))
                            for v in order]
        out.append(entry)
    return out


def sweeps(probes: list[ProbeEntry], first: str = "white") -> list[Sweep]:
    """Described probes by base image (``first`` first), rows by strength."""
    by_image: dict[str, Sweep] = {}
    rows: dict[tuple[str, float], StrengthRow] = {}
    for e in probes:
        if e.prompt != "describe":
            continue
        sweep = by_image.setdefault(e.base_image, Sweep(e.base_image))
        if e.role == "baseline":
            sweep.baseline.append(e)
            continue
        row = rows.get((e.base_image, e.strength))
        if row is None:
            row = rows[(e.base_image, e.strength)] = StrengthRow(e.strength)
            sweep.rows.append(row)
        (row.controls if e.role == "control" else row.steered).append(e)
    for sweep in by_image.values():
        sweep.rows.sort(key=lambda r: r.strength)
    return [by_image[k] for k in sorted(by_image, key=lambda k: (k != first, k))]


def cited(record: Any) -> list[int]:
    """The evidence numbers of the last final verdict."""
    for e in reversed(record.transcript or []):
        if e.get("kind") == "verdict" and e.get("action") == "final":
            return [int(i) for i in e.get("evidence") or [] if isinstance(i, int)]
    return []


def scores(record: Any, truth: dict[str, Any] | None) -> list[Score]:
    """The explanation's scores the store holds; a run computes neither simulation nor forced choice."""
    valid = record.status == "done" and not (record.review and record.review.decision == "reject")
    out = [Score("simulation", NOT_COMPUTED, "a run does not score it; steer-agent eval scores a benchmark"),
           Score("forced choice", NOT_COMPUTED, "likewise: steer-agent eval --modes ...,forced-choice")]
    if truth and truth.get("value") is not None:
        named = names_truth(record.final_explanation if valid else None, truth)
        purity = f", purity {float(truth.get('purity') or 0):.2f}" if truth.get("purity") is not None else ""
        out.append(Score("ground truth named", "yes" if named else "no",
                         f"{truth.get('family')}={truth.get('value')}{purity}"))
    return out


def feature_page(record: Any, truth: dict[str, Any] | None = None) -> FeaturePage:
    """The page of ``record`` (truth: the feature's ground truth, where the world has one)."""
    probes = _probe_entries(record)
    first = str(((record.fingerprint or {}).get("sweep") or {}).get("base_image") or "white")
    rv = record.review
    return FeaturePage(
        feature=record.feature, status=record.status, label=record.final_label, explanation=record.final_explanation,
        confidence=record.confidence, forced=bool(record.forced),
        review=None if rv is None else {"decision": rv.decision, "reviewer": rv.reviewer, "at": rv.at,
                                        "note": rv.note},
        judge_label=record.label, judge_explanation=record.explanation, error=record.error,
        scores=scores(record, truth), probes=probes, images=_image_entries(record), sweeps=sweeps(probes, first),
        questions=[e for e in probes if e.prompt == "ask"], cited=cited(record), tests=test_entries(record))


# ----------------------------------------------------------------------------- activations (top-k collection)


@dataclass
class TopImage:
    rank: int
    image_id: int
    name: str
    score: float
    """Mean activation over the patch grid (what the collection ranks by)."""
    peak: float
    """Largest activation on one patch."""
    picture: Any = None
    """A PIL image (the heatmap view), when drawn."""

    @property
    def caption(self) -> str:
        return f"#{self.rank} {self.score:.3g} (peak {self.peak:.3g}) {Path(self.name).name}"


@dataclass
class Activation:
    """How the feature fires on the store's top-k collection."""

    n_images: int
    density: float
    """Share of the collection's images where the feature fires on at least one patch."""
    patch_density: float
    max_activation: float
    histogram: list[tuple[float, float, int]]
    """(low, high, count) of the patch activations > 0 over the kept top images."""
    top: list[TopImage]
    k: int

    @property
    def density_line(self) -> str:
        return (f"fires on {100 * self.density:.2f}% of the collection's {self.n_images} images "
                f"({100 * self.patch_density:.3f}% of patches); largest activation {self.max_activation:.3g}")


def activation(root: str | Path, feature: int, bins: int = 10, pictures: int = 0) -> Activation:
    """The feature's statistics from the collection at ``root`` (loads torch); ``pictures`` top images are drawn
    as heatmaps. The collection keeps only the k top images, so the histogram covers their patches."""
    from agent.topk import feature_views, open_topk

    topk = open_topk(root)
    top = topk.top(feature)  # raises TopKError for a feature out of range
    values = [float(v) for t in top for v in t.map.flatten().tolist() if v > 0]
    hi = max(values, default=0.0)
    hist: list[tuple[float, float, int]] = []
    if hi > 0:
        width = hi / bins
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, int(v / width))] += 1
        hist = [(i * width, (i + 1) * width, c) for i, c in enumerate(counts)]
    drawn = feature_views(root, feature, pictures, "heatmap") if pictures and top else []
    images = [TopImage(i + 1, t.id, t.name, t.score, float(t.map.max()), drawn[i].image if i < len(drawn) else None)
              for i, t in enumerate(top)]
    return Activation(int(topk.meta.get("n_images") or len(topk.names)), float(topk.image_frequency[feature]),
                      float(topk.patch_frequency[feature]), float(topk.max_activation[feature]), hist, images, topk.k)
