"""Claim-level scoring: explanations and ground truth as sets of (family, value) claims; precision, recall, F1,
exact; and the truth records' kinds and purity (which features a truth names, and how)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Claim = tuple[str, str]
"""One attribute claim: (family, value), e.g. ("colour", "red")."""

TRUE_SHARE = 0.9
"""A value at least this share of a feature's top scenes is one of its true claims."""

_PLAIN_COLOUR = re.compile(r"\bthe colou?r \w+ filling\b")
_WORD = re.compile(r"[a-z]+")


def _synonyms() -> dict[str, dict[str, tuple[str, ...]]]:
    from steering.toy.naming import SYNONYMS

    return SYNONYMS


def parse_claims(text: str | None, synonyms: Mapping[str, Mapping[str, Iterable[str]]] | None = None) -> frozenset[Claim]:
    """Every (family, value) that ``text`` names by one of its words (the toy world's vocabulary by default)."""
    if not text:
        return frozenset()
    low = text.lower()
    words = set(_WORD.findall(low))
    out = set()
    for fam, values in (synonyms or _synonyms()).items():
        for value, names in values.items():
            if words & set(names):
                out.add((fam, value))
    if _PLAIN_COLOUR.search(low):
        out.add(("pattern", "solid"))
    return frozenset(out)


def truth_claims(t: Mapping[str, Any], share: float = TRUE_SHARE) -> frozenset[Claim]:
    """A feature's true claims: an explicit ``claims`` list (planted features), else every value at
    least ``share`` of its top scenes carry (``shares``), else its single family/value."""
    if t.get("claims"):
        return frozenset((str(f), str(v)) for f, v in t["claims"])
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


def score_text(text: str | None, t: Mapping[str, Any]) -> ClaimScore:
    return score_claims(parse_claims(text), truth_claims(t))


def cluster_key(t: Mapping[str, Any]) -> str:
    """The cluster a feature's bootstrap resamples with: its set of true claims."""
    return "+".join(f"{f}={v}" for f, v in sorted(truth_claims(t)))


def kind_of(t: Mapping[str, Any]) -> str:
    """A feature's kind: the planted kind where given, else single or multi by its number of true claims."""
    return str(t.get("kind") or ("multi" if len(truth_claims(t)) > 1 else "single"))


def pure_features(truth: dict[int, dict[str, Any]], features: list[int], purity: float) -> list[int]:
    """The features of ``features`` whose truth names a value at least ``purity`` pure."""
    return [f for f in features if f in truth and truth[f].get("value") is not None
            and truth[f].get("family") is not None and float(truth[f].get("purity", 0.0)) >= purity]
