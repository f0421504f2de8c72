"""A causal truth for SAE features: the claims steering a feature adds on neutral images beyond random directions.

    python -m agent.eval.causal [--features 0-63] [--purity 0.9] [--json]

The activation truth (steering.toy.claims.truth_claims) says what a feature's top scenes share, i.e. what
*activates* it. This says what steering it *does*. The feature is steered, greedy, on every (base image,
strength) cell of ``bases`` x ``multiples`` (white and colourless outline shapes, so no object colour mixes
in; strengths are multiples of the hidden-state norm), and so are ``n_random`` random directions of the same
norm, shared by every feature. For a claim ``c`` (parsed with steering.toy.claims.parse_claims) and a feature:

- the cells where ``c`` can count are those whose base image's own unsteered caption does not name ``c``;
- ``share_f(c)``: the share of the feature's steered descriptions on those cells that name ``c``;
- ``share_r(c)``: the same share for the random directions, averaged over the directions;
- ``c`` is a causal claim when ``share_f(c) - share_r(c) >= MARGIN`` and ``share_f(c) >= MIN_SHARE``.

Both bounds were fixed before any measurement. MIN_SHARE = 0.5: a causal claim is what the feature's
steering names on most neutral images and strengths, not at one strength only. MARGIN = 0.25: the vocabulary
is small and a steered toy model always names some colour and shape, so a claim must come at least a
quarter of the cells more often than same-norm random directions bring it; with 8 directions x 15 cells
the random share's binomial standard error is at most 0.046, so the margin is over five of them and no fluke
of the controls decides a claim. A feature can have no causal claim (it changes nothing nameable).

The probes are ordinary Probes (random directions as in agent.run.sweep.background_probes: feature 0's
seeded random direction scaled to its decoder column's norm; SAE decoder columns are unit norm, so that
is every feature's), with strengths rounded as the eval's schedule rounds them (two decimals), so the
white cells are the eval's own one-shot probes and come from its cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.probes import Probe, ProbeResult
from steering.toy.claims import Claim, parse_claims, score_claims

CAUSAL_BASES = ("white", "outline-circle-small", "outline-square-large", "outline-triangle-small",
                "outline-cross-large")
"""White and four outlines: every shape of the toy vocabulary once, both sizes twice."""
CAUSAL_MULTIPLES = (1.0, 2.0, 3.0)
"""Strengths, as multiples of the hidden-state norm (all on the eval's default sweep ladder)."""
N_RANDOM = 8
"""Random directions per cell (the issue's minimum)."""
MARGIN = 0.25
MIN_SHARE = 0.5
_EPS = 1e-9  # shares are ratios of small counts: 0.75 - 0.5 must pass a 0.25 margin

RunProbes = Callable[[list[Probe]], list[ProbeResult]]
Cell = tuple[str, float]
"""(base image, multiple)."""


@dataclass(frozen=True)
class ClaimShares:
    """How often one claim is named where it can count."""

    feature: float
    """Share of the feature's steered descriptions naming it (share_f)."""
    random: float
    """The same share for the random directions, averaged over them (share_r)."""
    cells: int
    """(base image, multiple) cells it was counted on (those whose base caption lacks it)."""


@dataclass(frozen=True)
class CausalTruth:
    """Per feature, its causal claims and the shares of every claim its steering named."""

    claims: dict[int, frozenset[Claim]]
    shares: dict[int, dict[Claim, ClaimShares]]
    base_claims: dict[str, frozenset[Claim]]
    """The claims each base image's own unsteered caption names (they do not count on that image)."""
    texts: dict[int, dict[Cell, str]]
    """The feature's steered description per cell."""

    def scored(self, features: Iterable[int]) -> list[int]:
        """The features of ``features`` with at least one causal claim (the ones a causal F1 is defined for)."""
        return [f for f in features if self.claims.get(f)]


@dataclass(frozen=True)
class CausalProbes:
    """Every probe of a causal truth, in the order they are run."""

    baselines: list[Probe]
    """One unsteered probe per base image."""
    steered: list[Probe]
    """Per feature, one probe per cell."""
    random: list[Probe]
    """Per direction, one probe per cell (shared by every feature)."""

    def all(self) -> list[Probe]:
        return [*self.baselines, *self.steered, *self.random]


def _strength(multiple: float, norm: float) -> float:
    return float(round(multiple * norm, 2))  # the eval's schedule rounding (agent.run.strengths)


def causal_probes(features: Sequence[int], norm: float, *, bases: Sequence[str] = CAUSAL_BASES,
                  multiples: Sequence[float] = CAUSAL_MULTIPLES, n_random: int = N_RANDOM,
                  seed: int = 0) -> CausalProbes:
    """The probes ``causal_truth`` runs: len(bases) baselines, len(bases) x len(multiples) per feature and
    n_random x len(bases) x len(multiples) random ones. ``seed`` is the probes' seed (the eval's), random
    direction i is feature 0's with seed ``seed + i``."""
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    cells = [(b, m) for b in bases for m in multiples]
    return CausalProbes(
        baselines=[Probe(feature=None, seed=seed, base_image=b) for b in bases],
        steered=[Probe(feature=f, strength=_strength(m, norm), seed=seed, base_image=b)
                 for f in features for b, m in cells],
        random=[Probe(feature=0, strength=_strength(m, norm), seed=seed + i, base_image=b, direction="random")
                for i in range(n_random) for b, m in cells],
    )


def causal_truth(run_probes: RunProbes, features: Sequence[int], norm: float, *,
                 bases: Sequence[str] = CAUSAL_BASES, multiples: Sequence[float] = CAUSAL_MULTIPLES,
                 n_random: int = N_RANDOM, seed: int = 0, margin: float = MARGIN,
                 min_share: float = MIN_SHARE) -> CausalTruth:
    """Each feature's causal claims (see the module docstring), from one batch through ``run_probes``
    (``lambda ps: cache.run_probes(engine, ps)`` in the eval, ``engine.run`` on a bare engine)."""
    plan = causal_probes(features, norm, bases=bases, multiples=multiples, n_random=n_random, seed=seed)
    probes = plan.all()
    results = run_probes(probes)
    if len(results) != len(probes):
        raise ValueError(f"run_probes answered {len(results)} results for {len(probes)} probes")
    texts = [r.texts[0] if r.texts else "" for r in results]
    parsed = {t: parse_claims(t) for t in set(texts)}
    cells = [(b, m) for b in bases for m in multiples]
    it = iter(texts)
    base_claims = {p.base_image: parsed[next(it)] for p in plan.baselines}
    steered = {f: {c: next(it) for c in cells} for f in features}
    random: dict[Cell, list[frozenset[Claim]]] = {c: [] for c in cells}
    for _ in range(n_random):
        for c in cells:
            random[c].append(parsed[next(it)])

    def counted(claim: Claim) -> list[Cell]:
        return [(b, m) for b, m in cells if claim not in base_claims[b]]

    random_share: dict[Claim, float] = {}

    def share_r(claim: Claim, where: list[Cell]) -> float:
        if claim not in random_share:
            random_share[claim] = sum(sum(claim in r for r in random[c]) / n_random for c in where) / len(where)
        return random_share[claim]

    claims: dict[int, frozenset[Claim]] = {}
    shares: dict[int, dict[Claim, ClaimShares]] = {}
    for f in features:
        named = {c: parsed[t] for c, t in steered[f].items()}
        candidates = {claim for (b, m), cs in named.items() for claim in cs if claim not in base_claims[b]}
        shares[f] = {}
        for claim in sorted(candidates):
            where = counted(claim)
            sf = sum(claim in named[c] for c in where) / len(where)
            shares[f][claim] = ClaimShares(sf, share_r(claim, where), len(where))
        claims[f] = frozenset(c for c, s in shares[f].items()
                              if s.feature - s.random >= margin - _EPS and s.feature >= min_share - _EPS)
    return CausalTruth(claims, shares, base_claims, steered)


def causal_f1(claims_by_feature: Mapping[int, frozenset[Claim]],
              causal: CausalTruth | Mapping[int, frozenset[Claim]], features: Sequence[int]) -> list[float]:
    """Per feature of ``features``, the F1 of a mode's claims against its causal claims (a feature the mode
    left unexplained scores 0). Every feature needs a causal claim: pass ``truth.scored(features)``."""
    truth = causal.claims if isinstance(causal, CausalTruth) else causal
    empty = [f for f in features if not truth.get(f)]
    if empty:
        raise ValueError(f"features {empty[:10]} have no causal claim, so no causal F1: "
                         "score CausalTruth.scored(features) only")
    return [score_claims(frozenset(claims_by_feature.get(f, frozenset())), truth[f]).f1 for f in features]


def agreement(causal: CausalTruth, activation: Mapping[int, frozenset[Claim]], features: Sequence[int]
              ) -> dict[str, object]:
    """How the causal truth compares with the activation truth on ``features``: how many have a causal
    claim, the mean number of causal claims, the mean F1 between the two truths (0 where the causal truth is
    empty) and the features where they differ."""
    f1 = {f: score_claims(causal.claims[f], activation[f]).f1 for f in features}
    scored = causal.scored(features)
    return {
        "n": len(features), "scored": len(scored),
        "mean_causal_claims": sum(len(causal.claims[f]) for f in features) / max(1, len(features)),
        "mean_f1": sum(f1.values()) / max(1, len(f1)),
        "mean_f1_scored": sum(f1[f] for f in scored) / max(1, len(scored)),
        "equal": sum(causal.claims[f] == activation[f] for f in features),
        "differ": [f for f in features if causal.claims[f] != activation[f]],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the causal truth on the shipped toy world's pure features (see the module docstring)."""
    import argparse
    import json
    import time

    from agent.world import WorldSpec, load_engine
    from steering import toy
    from steering.toy.claims import pure_features, truth_claims

    parser = argparse.ArgumentParser(prog="python -m agent.eval.causal", description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=None, help="only the first N pure features")
    parser.add_argument("--purity", type=float, default=0.9)
    parser.add_argument("--n-random", type=int, default=N_RANDOM)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    engine = load_engine(WorldSpec())
    truth = toy.ground_truth()
    features = pure_features(truth, sorted(truth), args.purity)[: args.features]
    norm = float(engine.hidden_norm("white"))
    t1 = time.perf_counter()
    causal = causal_truth(engine.run, features, norm, n_random=args.n_random)
    t2 = time.perf_counter()
    activation = {f: truth_claims(truth[f]) for f in features}
    out = agreement(causal, activation, features)
    n_probes = len(causal_probes(features, norm, n_random=args.n_random).all())
    out.update({"probes": n_probes, "load_s": round(t1 - t0, 1), "causal_s": round(t2 - t1, 1),
                "base_claims": {b: sorted(c) for b, c in causal.base_claims.items()}})
    examples = {}
    for f in out["differ"]:  # type: ignore[union-attr]
        examples[f] = {"activation": sorted(activation[f]), "causal": sorted(causal.claims[f]),
                       "shares": {"/".join(c): [round(s.feature, 2), round(s.random, 2)]
                                  for c, s in causal.shares[f].items()},
                       "texts": {f"{b}@{m:g}": t for (b, m), t in causal.texts[f].items()}}
    out["examples"] = examples
    if args.json:
        print(json.dumps(out, indent=1, default=list))
    else:
        print(f"{out['n']} features at purity >= {args.purity:g}: {out['scored']} with a causal claim, "
              f"{out['mean_causal_claims']:.2f} causal claims each; F1 causal vs activation truth "
              f"{out['mean_f1']:.3f} ({out['mean_f1_scored']:.3f} on those scored), equal on {out['equal']}; "
              f"{n_probes} probes in {out['causal_s']} s (+{out['load_s']} s loading)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
