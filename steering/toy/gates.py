"""The world's gates (issue 15): does a world behave like a real VLM under steering? Figures over its pure
features' one-shot descriptions along a strength ladder, from texts and truth alone (steering.toy.claims).

``world_gates`` measures them straight through an engine (``python -m steering.toy.measure``); the
benchmark (agent.eval.bench) reports the same figures beside its own.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steering.text import degenerate
from steering.toy.claims import (
    Claim,
    comparable,
    kind_of,
    named,
    parse_claims,
    pure_enough,
    score_claims,
    scored_features,
    truth_claims,
)

Texts = Mapping[int, "str | None"]
GATES = {"best_global_strength_hit": ("<=", 0.70), "oracle_hit": (">=", 0.85), "onset_spread": (">=", 4.0),
         "degenerate_at_4x_onset": (">=", 0.30), "polysemantic_oneshot_both": ("<=", 0.20)}
"""The world's gates (issue 15): the figure's name -> (comparison, bar)."""


def split(features: Sequence[int], truth: Mapping[int, Mapping[str, Any]], seed: int = 0) -> dict[str, list[int]]:
    """Half of each kind to dev and half to test (dev takes the odd one), fixed by ``seed``."""
    out: dict[str, list[int]] = {"dev": [], "test": []}
    by_kind: dict[str, list[int]] = {}
    for f in sorted(features):
        by_kind.setdefault(kind_of(truth[f]), []).append(f)
    for kind in sorted(by_kind):
        fs = by_kind[kind]
        random.Random(f"split-{seed}-{kind}").shuffle(fs)
        cut = (len(fs) + 1) // 2
        out["dev"] += fs[:cut]
        out["test"] += fs[cut:]
    return {k: sorted(v) for k, v in out.items()}


@dataclass
class Sweep:
    """One-shot descriptions per strength of the schedule, and the unsteered caption."""

    strengths: list[float]
    texts: list[Texts]
    caption: str = ""
    kl: list[dict[int, float]] | None = None
    """Per strength, each feature's first-token KL from the unsteered answer (for the calibrate rule)."""

    def claims(self, f: int) -> list[frozenset[Claim]]:
        return [parse_claims(t.get(f)) for t in self.texts]


def mean_f1(truth: Mapping[int, Mapping[str, Any]], claims: Mapping[int, frozenset[Claim]], fs: Sequence[int]) -> float:
    """The mean claim F1 of ``claims`` over ``fs`` (0 for no features)."""
    vals = [score_claims(comparable(claims.get(f, frozenset()), truth[f]), truth_claims(truth[f])).get("f1") for f in fs]
    return statistics.fmean(vals) if vals else 0.0


def best_strength(truth: Mapping[int, Mapping[str, Any]], per_strength: Sequence[Mapping[int, frozenset[Claim]]],
                  dev: Sequence[int]) -> int:
    """The one-shot baseline's strength: the index of the sweep strength whose claims have the best mean F1
    on ``dev`` (ties: the lower strength)."""
    return max(range(len(per_strength)), key=lambda i: (mean_f1(truth, per_strength[i], dev), -i))


def onsets(truth: Mapping[int, Mapping[str, Any]], sweep: Sweep, fs: Sequence[int]) -> dict[int, float | None]:
    """The first strength of the sweep whose description names a true claim, per feature."""
    out: dict[int, float | None] = {}
    for f in fs:
        out[f] = next((s for s, cs in zip(sweep.strengths, sweep.claims(f)) if named(cs, truth[f])), None)
    return out


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def gates(truth: Mapping[int, Mapping[str, Any]], sweep: Sweep, fs: Sequence[int],
          oneshot: Mapping[int, frozenset[Claim]] | None,
          at_4x_onset: Mapping[int, str | None] | None = None) -> dict[str, Any]:
    """The world's gates over ``fs``: a feature is named when a description names one of its true claims."""
    out: dict[str, Any] = {"n": len(fs)}
    if not fs or not sweep.texts:
        return out
    hits = [[bool(named(cs, truth[f])) for cs in sweep.claims(f)] for f in fs]
    out["best_global_strength_hit"] = round(max(statistics.fmean(col) for col in zip(*hits)), 6)
    out["oracle_hit"] = round(statistics.fmean(any(row) for row in hits), 6)
    on = [s for s in onsets(truth, sweep, fs).values() if s is not None]
    out["onset_spread"] = round(_quantile(on, 0.9) / _quantile(on, 0.1), 6) if on else None
    if at_4x_onset:
        bad = [degenerate(t) or not named(parse_claims(t), truth[f]) for f, t in at_4x_onset.items()]
        out["degenerate_at_4x_onset"] = round(statistics.fmean(bad), 6) if bad else None
    # Polysemantic means a union (fires on red things OR on dotted ones), not a conjunction (every top
    # scene is a red dotted thing: one meaning with two claims, which a single steered caption names).
    poly = [f for f in fs if kind_of(truth[f]) == "union"]
    out["n_polysemantic"] = len(poly)
    if oneshot is not None and poly:
        out["polysemantic_oneshot_both"] = round(statistics.fmean(truth_claims(truth[f]) <= oneshot[f] for f in poly), 6)
    out["met"] = {k: _meets(out.get(k), *GATES[k]) for k in GATES}
    return out


def _meets(value: float | None, op: str, bar: float) -> bool | None:
    if value is None:
        return None
    return value <= bar + 1e-9 if op == "<=" else value >= bar - 1e-9


def world_gates(engine: Any, truth: dict[int, dict[str, Any]], purity: float = 0.9, seed: int = 0) -> dict[str, Any]:
    """The world's gates measured straight through an engine (no cache): the agent's strength schedule
    (SWEEP_MULTIPLES of the white image's hidden-state norm) over the features the benchmark scores
    (steering.toy.claims.scored_features; a truth without version-3 counts: also at least ``purity`` pure),
    one-shot at the strength best on dev, and 4x onsets."""
    from steering.probes import SWEEP_MULTIPLES, Probe

    features = [f for f in scored_features(truth, sorted(truth))[0]
                if pure_enough(truth[f], purity)]
    norm = float(engine.hidden_norm("white"))
    strengths = [round(m * norm, 2) for m in SWEEP_MULTIPLES]
    probes = [Probe(feature=None, seed=seed)] + [Probe(feature=f, strength=s, seed=seed)
                                                 for s in strengths for f in features]
    res = engine.run(probes)
    caption = res[0].texts[0] if res[0].texts else ""
    it = iter(res[1:])
    sweep = Sweep(strengths, [{f: next(it).texts[0] for f in features} for _ in strengths], caption)
    first = {f: s for f, s in onsets(truth, sweep, features).items() if s is not None}
    at4 = engine.run([Probe(feature=f, strength=round(4 * s, 4), seed=seed) for f, s in first.items()])
    splits = split(features, truth, seed)
    fs = splits["dev"] + splits["test"]
    per_strength = [{f: parse_claims(t.get(f)) for f in fs} for t in sweep.texts]
    best = best_strength(truth, per_strength, splits["dev"]) if per_strength else None
    out = gates(truth, sweep, features, None if best is None else per_strength[best],
                {f: r.texts[0] for f, r in zip(first, at4)})
    return {**out, "strengths": strengths, "oneshot_strength": None if best is None else strengths[best]}
