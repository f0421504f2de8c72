"""Claim-level scoring: explanations and ground truth as sets of (family, value) claims; precision, recall, F1,
exact; and the truth records' kinds, purity and support (which features a truth names, and how)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from steering.toy.naming import KIND_VALUES, named_values
from steering.toy.scenes import FAMILIES

Claim = tuple[str, str]
"""One attribute claim: (family, value), e.g. ("colour", "red")."""

TRUE_SHARE = 0.9
"""Truth version 1-2 (records without ``counts``): a value at least this share of a feature's top scenes is
one of its true claims."""
TRUE_LOWER = 0.8
"""Truth version 3: a value is a true claim when the Wilson lower bound (95%) of its share among the
feature's top scenes is at least this (of 20 top scenes: all 20; of 50: 46 or more)."""
MIN_SUPPORT = 50
"""Truth version 3: an SAE feature is scored only when at least this many eval scenes activate it."""
TOP_SCENES_V3 = 20
"""Truth version 3: the top scenes a feature's ``counts`` (its true claims) are taken over (fewer when fewer
are active). Chosen on the dev split of the shipped world by the true claims' simulation AUROC (issue 29;
kind-only truths left out): 20 -> 0.877, 25 -> 0.867, 30 -> 0.841, 40 -> 0.828, 50 -> 0.789. A feature's
weaker top scenes spread over neighbouring values (yellow and orange), so over 50 the bound drops the colour
of most object features."""
KIND_MIX_SCENES = 50
"""Truth version 3: the top scenes a feature's ``kind_mix`` (where the simulator draws its scenes) is taken
over: a share estimated from more scenes than the claims' unanimity needs. On dev: 20 -> 0.871, 50 -> 0.877,
100 -> 0.877, every active scene -> 0.879 (but a planted feature is active on most scenes)."""
KIND_FAMILY = "kind"
"""The scene-kind family: ``field`` (the colour or pattern fills the whole image) or ``object``."""
CLAIM_FAMILIES: dict[str, tuple[str, ...]] = {**FAMILIES, KIND_FAMILY: KIND_VALUES}
"""The claim vocabulary: the scene attribute families (steering.toy.scenes.FAMILIES, which stays the
renderer's four) plus the kind family."""

_PLAIN_COLOUR = re.compile(r"\bthe colou?r \w+ filling\b")
_WORD = re.compile(r"[a-z]+")


def wilson_lower(k: int, n: int, z: float = 1.96) -> float:
    """The lower end of the Wilson score interval of ``k`` successes in ``n`` (0 for n = 0)."""
    if n <= 0:
        return 0.0
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in 0..n, got {k}/{n}")
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half) if k else 0.0


def parse_claims(text: str | None, synonyms: Mapping[str, Mapping[str, Iterable[str]]] | None = None) -> frozenset[Claim]:
    """Every (family, value) that ``text`` names (steering.toy.naming: the toy world's words and phrases, the
    kind family included); with ``synonyms``, every value named by one of its words there."""
    if not text:
        return frozenset()
    if synonyms is None:
        return frozenset((fam, v) for fam, vals in named_values(text).items() for v in vals)
    low = text.lower()
    words = set(_WORD.findall(low))
    out = set()
    for fam, values in synonyms.items():
        for value, names in values.items():
            if words & set(names):
                out.add((fam, value))
    if _PLAIN_COLOUR.search(low):
        out.add(("pattern", "solid"))
    return frozenset(out)


def truth_claims(t: Mapping[str, Any], share: float = TRUE_SHARE, lower: float = TRUE_LOWER) -> frozenset[Claim]:
    """A feature's true claims: an explicit ``claims`` list (planted features); else, for a version-3 record
    (``counts`` and ``n_top``), every value whose count among the ``n_top`` top scenes has a Wilson lower
    bound of at least ``lower`` (scene kind included, an empty image never); else (older records) every
    value at least ``share`` of its top scenes carry (``shares``), else its single family/value."""
    if t.get("claims"):
        return frozenset((str(f), str(v)) for f, v in t["claims"])
    if "counts" in t and "n_top" in t:
        n = int(t["n_top"])
        return frozenset((str(fam), str(v)) for fam, vals in (t["counts"] or {}).items() for v, k in vals.items()
                         if not (fam == KIND_FAMILY and v == "empty") and wilson_lower(int(k), n) >= lower)
    return share_claims(t, share)


def share_claims(t: Mapping[str, Any], share: float = TRUE_SHARE) -> frozenset[Claim]:
    """The version 1-2 rule: every value at least ``share`` of the top scenes carry, else the single value."""
    out = {(str(fam), str(v)) for fam, vals in (t.get("shares") or {}).items() for v, s in vals.items()
           if float(s) >= share - 1e-9}
    if not out and t.get("family") is not None and t.get("value") is not None:
        out.add((str(t["family"]), str(t["value"])))
    return frozenset(out)


@dataclass(frozen=True)
class ClaimScore:
    """One explanation's claims against one truth."""

    precision: float
    recall: float
    f1: float
    exact: float

    def get(self, name: str) -> float:
        return float(getattr(self, name))


def score_claims(said: frozenset[Claim], true: frozenset[Claim]) -> ClaimScore:
    """Precision (share of said claims that are true; 0 when nothing is said), recall, F1, exact set match."""
    hit = len(said & true)
    p = hit / len(said) if said else 0.0
    r = hit / len(true) if true else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return ClaimScore(p, r, f1, float(bool(true) and said == true))


def comparable(said: frozenset[Claim], t: Mapping[str, Any]) -> frozenset[Claim]:
    """The claims of ``said`` that truth record ``t`` can judge: scene-kind claims only where the truth counted
    scene kinds (a version-3 SAE record, ``counts["kind"]``); planted and older records know nothing of kind,
    so "filling the whole image" is neither right nor wrong there. Score with
    ``score_claims(comparable(said, t), truth_claims(t))``."""
    if "kind" in (t.get("counts") or {}):
        return said
    return frozenset(c for c in said if c[0] != KIND_FAMILY)


def score_text(text: str | None, t: Mapping[str, Any]) -> ClaimScore:
    return score_claims(comparable(parse_claims(text), t), truth_claims(t))


def cluster_key(t: Mapping[str, Any]) -> str:
    """The cluster a feature's bootstrap resamples with: its set of true claims."""
    return "+".join(f"{f}={v}" for f, v in sorted(truth_claims(t)))


def kind_of(t: Mapping[str, Any]) -> str:
    """A feature's kind: the planted kind where given, else single or multi by its number of true claims
    outside the kind family (field or object says where a feature fires, not how many things it means)."""
    about = [c for c in truth_claims(t) if c[0] != KIND_FAMILY]
    return str(t.get("kind") or ("multi" if len(about) > 1 else "single"))


def named(said: frozenset[Claim], t: Mapping[str, Any]) -> frozenset[Claim]:
    """The true claims ``said`` names, the kind family left out: a field caption says "filling the whole image"
    for every field feature, so naming the kind alone does not name the feature (the world's gates, onsets)."""
    return frozenset(c for c in said & truth_claims(t) if c[0] != KIND_FAMILY)


def pure_features(truth: dict[int, dict[str, Any]], features: list[int], purity: float) -> list[int]:
    """The features of ``features`` whose truth names a value at least ``purity`` pure (the version 1-2
    selection; version 3 scores ``scored_features``)."""
    return [f for f in features if f in truth and truth[f].get("value") is not None
            and truth[f].get("family") is not None and float(truth[f].get("purity", 0.0)) >= purity]


def scored_features(truth: Mapping[int, Mapping[str, Any]], features: Iterable[int],
                    min_support: int = MIN_SUPPORT) -> tuple[list[int], list[int]]:
    """(scored, excluded) among ``features``, in their order.

    Scored: a truth record with at least one true claim (``truth_claims``) outside the kind family, and
    either no ``n_active_scenes`` (planted features: true by construction, no support needed) or
    ``n_active_scenes >= min_support``. A truth of scene kind alone ("an object") names nothing the
    feature is about: explanations scored against it would be measured against a shrug.
    Excluded: a truth record, not scored, and either ``0 < n_active_scenes < min_support`` (too little
    support), or true claims of the kind family only, or a true claim under the version 1-2 rule
    (``shares`` at least TRUE_SHARE, or the single family/value of a record at least TRUE_SHARE pure: the
    features the old benchmark scored) that the version-3 rule drops. Neither: no truth record, a feature
    no scene activates, or a well-supported feature impure under both rules.
    """
    scored, excluded = [], []
    for f in features:
        t = truth.get(f)
        if t is None:
            continue
        n_active = t.get("n_active_scenes")
        supported = n_active is None or int(n_active) >= min_support
        claims = truth_claims(t)
        if supported and any(fam != KIND_FAMILY for fam, _ in claims):
            scored.append(f)
        elif claims or (n_active is not None and 0 < int(n_active) < min_support) or _old_true(t):
            excluded.append(f)
    return scored, excluded


def pure_enough(t: Mapping[str, Any], purity: float) -> bool:
    """A truth record's purity rule for files without version-3 counts (a user's own): its value at least
    ``purity`` pure; a version-3 record always passes (its Wilson bound already decides)."""
    return "counts" in t or float(t.get("purity", 1.0)) >= purity


def why_excluded(t: Mapping[str, Any], min_support: int = MIN_SUPPORT) -> str:
    """Why ``scored_features`` leaves an excluded record out: "support" (active on fewer than ``min_support``
    scenes), "kind only" (its true claims name only field or object) or "bound" (pure under the 90% rule,
    but no value passes the Wilson bound)."""
    n_active = t.get("n_active_scenes")
    if n_active is not None and int(n_active) < min_support:
        return "support"
    return "kind only" if truth_claims(t) else "bound"


def _old_true(t: Mapping[str, Any]) -> bool:
    """Whether the version 1-2 benchmark scored this record (a value at least TRUE_SHARE of its top scenes)."""
    if t.get("claims"):
        return True
    if any(float(s) >= TRUE_SHARE - 1e-9 for vals in (t.get("shares") or {}).values() for s in vals.values()):
        return True
    return t.get("value") is not None and float(t.get("purity", 0.0)) >= TRUE_SHARE - 1e-9
