"""Scoring explanations against ground truth: hits by words, rates with Wilson intervals, the
permutation control, and per-group breakdowns. Pure Python (no torch, no numpy)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile."""


@dataclass(frozen=True)
class Rate:
    """``hits`` out of ``n`` with a Wilson score interval."""

    hits: int
    n: int
    lo: float
    hi: float

    @property
    def value(self) -> float | None:
        return self.hits / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rate"] = None if self.value is None else round(self.value, 6)
        d["lo"], d["hi"] = round(self.lo, 6), round(self.hi, 6)
        return d

    def fmt(self, digits: int = 0) -> str:
        """``83% [76-88] (125/150)``; ``n/a`` when there is nothing to rate."""
        if not self.n:
            return "n/a"
        p = 10 ** digits
        pct = lambda x: f"{round(100 * x * p) / p:.{digits}f}"
        return f"{pct(self.value or 0.0)}% [{pct(self.lo)}-{pct(self.hi)}] ({self.hits}/{self.n})"


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved at 0, 1 and small n)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= hits <= n:
        raise ValueError(f"hits must lie in 0..n, got {hits}/{n}")
    p = hits / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Clamp the rounding noise at the ends (the exact interval touches 0 or 1 there).
    return max(0.0, centre - half) if hits else 0.0, min(1.0, centre + half) if hits < n else 1.0


def rate(hits: Iterable[bool | None]) -> Rate:
    """A Rate over the non-None outcomes."""
    known = [bool(h) for h in hits if h is not None]
    lo, hi = wilson(sum(known), len(known))
    return Rate(sum(known), len(known), lo, hi)


# ----------------------------------------------------------------------------- hits by words

NamesValue = Callable[[str, str, "str | None"], bool]


def default_namer() -> NamesValue:
    """The toy world's word-level test (``steering.toy.names_value``), else a whole-word match."""
    try:
        from steering.toy import names_value

        return names_value
    except ImportError:  # pragma: no cover - steering ships with the package
        import re

        def names(text: str, value: str, family: str | None = None) -> bool:
            return re.search(rf"\b{re.escape(value.lower())}\b", text.lower()) is not None

        return names


def word_hit(text: str | None, value: str, family: str | None, rivals: Sequence[str] = (),
             names: NamesValue | None = None) -> bool:
    """Whether ``text`` names ``value`` and none of its ``rivals`` (the other values of its family).

    Naming a rival as well ("red or orange") is no hit: an explanation that lists every value of a
    family would otherwise name whatever the truth is. Pass no rivals for the lenient test.
    """
    if not text:
        return False
    names = names or default_namer()
    if not names(text, value, family):
        return False
    return not any(names(text, r, family) for r in rivals if r != value)


CLAIM_MIN_SHARE = 0.5
"""A value an explanation names beside the truth is a false claim when fewer than this share of
the feature's top scenes carry it."""


def false_claims(text: str | None, family: str, shares: dict[str, dict[str, float]] | None,
                 families: dict[str, Sequence[str]], names: NamesValue | None = None) -> list[str] | None:
    """The values of *other* families that ``text`` names but the feature's top scenes mostly lack.

    ``shares`` is family -> value -> share of the feature's top scenes carrying it (the toy world's
    ground truth keeps it). "small yellow striped cross" for a cross feature whose top scenes are
    crosses of every colour claims yellow falsely; for one whose top scenes are all small yellow
    striped crosses it claims nothing false. None when the truth has no shares to check against.
    """
    if not shares:
        return None
    if not text:
        return []
    names = names or default_namer()
    return [f"{fam}={v}" for fam, vals in families.items() if fam != family for v in vals
            if names(text, v, fam) and shares.get(fam, {}).get(v, 0.0) < CLAIM_MIN_SHARE]


def expected_permuted(texts: dict[int, str | None], features: Sequence[int], truth: dict[int, dict[str, Any]],
                      families: dict[str, Sequence[str]], names: NamesValue | None = None) -> float | None:
    """The permuted control's expectation over all derangements: the mean, over features f, of the
    share of the other features whose truth f's explanation names (word hits, rivals excluded).

    One seeded derangement draws one sample of this; the expectation shows the chance floor an
    explanation of this length sits on (how many values it names, how many values each family has).
    """
    feats = list(features)
    if len(feats) < 2:
        return None
    names = names or default_namer()
    total = 0.0
    for f in feats:
        text = texts.get(f)
        hits = 0
        for g in feats:
            if g == f:
                continue
            fam, val = str(truth[g]["family"]), str(truth[g]["value"])
            hits += word_hit(text, val, fam, [v for v in families.get(fam, []) if v != val], names)
        total += hits / (len(feats) - 1)
    return round(total / len(feats), 6)


# ----------------------------------------------------------------------------- permutation control


def derangement(items: Sequence[int], seed: int) -> dict[int, int]:
    """A seeded permutation of ``items`` with no fixed point: item -> the item whose truth it gets.

    Sattolo's algorithm gives a uniformly random single cycle, which never maps an item to itself.
    """
    order = list(items)
    if len(order) < 2:
        return {}
    rng = random.Random(f"derangement:{seed}")
    shuffled = order[:]
    for i in range(len(shuffled) - 1, 0, -1):
        j = rng.randrange(i)  # j < i: Sattolo, one cycle
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
    return dict(zip(order, shuffled))


# ----------------------------------------------------------------------------- per-feature scores


@dataclass
class Scored:
    """One explanation scored against one feature's ground truth."""

    feature: int
    family: str
    value: str
    text: str | None
    word: bool
    """Names the value by a word for it, and no other value of the family."""
    word_lenient: bool
    """Names the value (other values of the family may be named too)."""
    embedding: bool | None = None
    """The value is the most similar of its family's values (None: no embedding model)."""
    truth_of: int | None = None
    """For the permutation control: the feature whose ground truth this explanation is scored against."""
    claims: list[str] | None = None
    """Values of other families it names that the feature's top scenes mostly lack (None: no shares)."""

    @property
    def specific(self) -> bool | None:
        """A word hit with no false claim beside it (None when the truth cannot tell)."""
        return None if self.claims is None else self.word and not self.claims

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(scored: Sequence[Scored]) -> dict[str, Any]:
    """Word, lenient-word and embedding rates overall and per family."""
    families = sorted({s.family for s in scored})
    out: dict[str, Any] = {
        "n": len(scored),
        "word": rate(s.word for s in scored).to_dict(),
        "word_lenient": rate(s.word_lenient for s in scored).to_dict(),
        "embedding": rate(s.embedding for s in scored).to_dict(),
        "by_family": {},
    }
    if any(s.claims is not None for s in scored):
        out["specific"] = rate(s.specific for s in scored).to_dict()
        out["false_claims_mean"] = round(statistics.fmean(len(s.claims or []) for s in scored), 4)
    for fam in families:
        group = [s for s in scored if s.family == fam]
        out["by_family"][fam] = {"n": len(group), "word": rate(s.word for s in group).to_dict(),
                                 "embedding": rate(s.embedding for s in group).to_dict()}
        if "specific" in out:
            out["by_family"][fam]["specific"] = rate(s.specific for s in group).to_dict()
    return out


def rate_from(d: dict[str, Any]) -> Rate:
    """The Rate stored by ``Rate.to_dict``."""
    return Rate(int(d["hits"]), int(d["n"]), float(d["lo"]), float(d["hi"]))
