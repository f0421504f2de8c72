"""The offline judge's hypothesis tests: what makes a feature fire, read from activation tests
(steering.activation_tests), the steering evidence only where the tests cannot tell.

The strategy, one round each:
1. **Open:** render every attribute family with nothing held (the world's own mix of scenes): which value
   of each family wins in each base scene, and which values fill the feature's top scenes.
2. **Hold the anchor:** the strongest value found (or, for a feature no rendered scene activates, the value
   its steering names) is held fixed while every other family varies: a conjunction's second half and a
   field feature's texture show up where the anchor already makes the feature fire.
3. **Conclude:** a value is claimed where it both fills the top scenes and wins the base scenes (thresholds
   chosen on the benchmark's dev split), in the open test or under the anchor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.judges.evidence import Evidence, TestItem, words
from steering.activation_tests import RENDER_FAMILIES, ActivationTestResult, family_values

Claim = tuple[str, str]
ADJECTIVE_ORDER = ("size", "colour", "pattern")


@dataclass(frozen=True)
class TestRule:
    """When a rendered family's value is claimed. Chosen on the benchmark's dev split (SAE features and five
    planted seeds pooled; the test split never read for it), maximising the smaller of the two margins over the
    best method that does not follow up (the claim filter with top-k and hybrid descriptions: 81.1 and 63.8 F1
    on dev). Open 0.4 / 0.9 with the anchor held for size at 0.7 / 0.6 gave 87.8 / 70.5 (held for shape and size:
    the same); open only: 85.7 / 72.5; held for every family (0.5 / 0.8): 87.0 / 68.9; adding the values steering names where the
    tests lean their way changed nothing."""

    __test__ = False  # not a pytest class

    open_top: float = 0.4
    """Share of the open pool's top scenes the value must fill..."""
    open_wins: float = 0.9
    """...and share of the decisive base scenes it must win."""
    held_top: float = 0.7
    """The same two shares under the held anchor."""
    held_wins: float = 0.6
    shape_top: float | None = None
    """The shape family's own thresholds (None: the open ones): an outline moves a patch-level feature less than a
    colour or a texture does..."""
    shape_wins: float | None = None
    held_families: tuple[str, ...] = ("size",)
    """The families tested with the anchor held: an object's size, which the world's mix of scenes (fields have
    none) hides in the open test. Holding it for shape too gave the same dev scores at three times the pools."""
    steer_top: float = 1.1
    """A value steering names, in a family the tests leave without a claim, is claimed when it fills at least
    this share of the open pool's top scenes..."""
    steer_wins: float = 1.1
    """...and wins at least this share of its paired scenes (the tests lean its way)."""


@dataclass
class TestReading:
    """The render tests of one feature, by family: open (nothing held) and under the held anchor."""

    open: dict[str, ActivationTestResult]
    held: dict[str, ActivationTestResult]
    anchor: Claim | None
    items: list[TestItem]

    @property
    def silent(self) -> bool:
        """No rendered scene of the open pools activates the feature."""
        return all(r.peak <= 0 for r in self.open.values())


def read_tests(evidence: Evidence) -> TestReading:
    items = [i for i in evidence.tests if i.result.test.kind == "render" and i.result.error is None]
    open_ = {str(i.result.test.family): i.result for i in items if not i.result.test.hold}
    held_items = [i for i in items if i.result.test.hold]
    anchor = tuple(held_items[0].result.test.hold[0]) if held_items else None
    held = {str(i.result.test.family): i.result for i in held_items}
    return TestReading(open_, held, anchor, items)  # type: ignore[arg-type]


def strongest(open_: dict[str, ActivationTestResult]) -> Claim | None:
    """The value that best fills the top scenes and wins the base scenes (the kind family aside: where a
    feature fires is held through its colour or texture), or None when nothing fires."""
    best: tuple[float, str, str] | None = None
    for fam in RENDER_FAMILIES:
        r = open_.get(fam)
        if fam == "kind" or r is None or r.peak <= 0:
            continue
        for v in r.values:
            s = r.top_share.get(v, 0.0) * r.wins.get(v, 0.0)
            if best is None or s > best[0]:
                best = (s, fam, v)
    return (best[1], best[2]) if best is not None and best[0] > 0 else None


def value_of_word(word: str) -> Claim | None:
    """The (family, value) a steering word names among the renderable values ("stripes" -> striped too)."""
    from steering.toy.naming import SYNONYMS

    for fam in RENDER_FAMILIES:
        for v in family_values(fam):
            if word == v or word in SYNONYMS.get(fam, {}).get(v, ()):
                return fam, v
    return None


def steering_claims(explanation: str | None) -> list[Claim]:
    """Every renderable value the steering explanation names, in its order."""
    found = [c for c in (value_of_word(w) for w in words(explanation or "")) if c is not None]
    return list(dict.fromkeys(found))


def steering_anchor(explanation: str | None) -> Claim | None:
    """The first renderable value the steering explanation names (the kind family last)."""
    found = [c for c in (value_of_word(w) for w in words(explanation or "")) if c is not None]
    found.sort(key=lambda c: c[0] == "kind")
    return found[0] if found else None


def claims(reading: TestReading, rule: TestRule, steering: Sequence[Claim] = ()) -> list[Claim]:
    """The values the tests support (see the module's strategy), in family order; ``steering``: the values
    steering named, kept in a family the tests leave open where they lean its way."""
    out: dict[str, list[str]] = {}

    def take(r: ActivationTestResult | None, top: float, wins: float) -> None:
        if r is None or r.peak <= 0:
            return
        for v in family_values(str(r.test.family)):
            if r.top_share.get(v, 0.0) >= top and r.wins.get(v, 0.0) >= wins:
                vals = out.setdefault(str(r.test.family), [])
                if v not in vals:
                    vals.append(v)

    for fam in RENDER_FAMILIES:
        if fam == "shape" and rule.shape_top is not None and rule.shape_wins is not None:
            take(reading.open.get(fam), rule.shape_top, rule.shape_wins)
        else:
            take(reading.open.get(fam), rule.open_top, rule.open_wins)
        if fam in rule.held_families:
            take(reading.held.get(fam), rule.held_top, rule.held_wins)
    if reading.anchor is not None and not reading.silent:
        fam, v = reading.anchor
        anchor_test = reading.open.get(fam)
        if anchor_test is not None and anchor_test.wins.get(v, 0.0) >= rule.held_wins:
            if v not in out.get(fam, []):
                out.setdefault(fam, []).append(v)
    for fam, v in steering:
        r = reading.open.get(fam)
        if fam in out or fam == "kind" or r is None or r.peak <= 0:
            continue
        if r.top_share.get(v, 0.0) >= rule.steer_top and r.wins.get(v, 0.0) >= rule.steer_wins:
            out[fam] = [v]
    if "kind" in out and len(out["kind"]) > 1:
        del out["kind"]  # fires on both: kind says nothing
    return [(fam, v) for fam in RENDER_FAMILIES for v in out.get(fam, [])]


def phrase(found: Sequence[Claim]) -> str:
    """The claims as words a reader (and the benchmark's claim parser) takes as meant: "large red striped
    circles", "a red striped fill covering the whole image", "red or blue"."""
    by: dict[str, list[str]] = {}
    for fam, v in found:
        by.setdefault(fam, []).append(v)
    field = by.get("kind") == ["field"]
    adjectives = [" or ".join(by[f]) for f in ADJECTIVE_ORDER if f in by]
    shapes = by.get("shape")
    if field:
        return f"{' '.join(adjectives) or 'any'} fill covering the whole image"
    if shapes:
        nouns = " or ".join(_plural(s) for s in shapes)
        return " ".join(adjectives + [nouns])
    if by.get("kind") == ["object"]:
        return " ".join(adjectives + ["objects"])
    return " ".join(adjectives)


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x")) else "s")


def evidence_line(items: Iterable[TestItem], found: Sequence[Claim]) -> str:
    """The figures behind the claims: each claimed value's share of the top scenes and of the paired scenes it
    wins, with the test's number."""
    parts = []
    items = list(items)
    for fam, v in found:
        for i in items:
            r = i.result
            if r.test.family == fam and v in r.values and r.peak > 0:
                parts.append(f"{v} {r.top_share.get(v, 0.0):.0%} of top scenes, wins {r.wins.get(v, 0.0):.0%} (#{i.id})")
                break
    return "; ".join(parts)
