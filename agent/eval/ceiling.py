"""How far any rule that filters one-shot's claims by the steering evidence can get on the benchmark.

    python -m agent.cli.ceiling [--planted-seed N] [--split-seed 0] [--images METRICS_JSON] [--auroc-oracle] [--json]

One-shot steering at the dev-chosen strength names most true claims and some the model only fills in
("small red solid triangle" for a red, solid feature). An explainer that reads more probes can at best
keep the true claims and drop the rest. This measures how well the evidence the agent can gather tells
the two apart: per candidate claim it computes the signals a judge can read (how many strengths name it,
how early, how many other features and random directions name it, whether steering the feature on the
built-in object images brings it in beyond random directions; with ``--images``, whether an eval's top-k
and hybrid descriptions name it), fits a logistic filter on the dev split's
truth, and reports the filtered claims' F1 on the test split against one-shot's, with a paired, clustered
CI. It also fits the filter on the test split itself (an optimistic bound for any rule over these signals)
and shows what a perfect filter (keep exactly the true claims) would reach. With ``--auroc-oracle`` it also
reports the simulation AUROC of the true claims and of the best claim sets a greedy search finds with the
features' own activations (how high any explanation's AUROC is likely to get on this world). Everything
runs on the toy world's model in about half a minute on 2 CPU cores.
"""

from __future__ import annotations

import functools
import json
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.eval.simulation import auroc
from agent.eval.stats import paired_diff
from steering.probes import SWEEP_MULTIPLES
from steering.toy.claims import Claim, cluster_key, comparable, score_claims, truth_claims
from steering.toy.claims import parse_claims as _parse

SWEEP = SWEEP_MULTIPLES
"""The white-image sweep, multiples of the hidden-state norm (the run's default ladder)."""
TRANSFER = (1.0, 1.5, 2.0)
"""Strengths, as multiples, at which each feature is steered on the object images."""
CONTROLS = 12
"""Random directions per strength and base image."""
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
SIGNALS = ("share", "onset", "first", "panel", "random", "transfer")
"""share: of the changed sweep strengths, the part naming the claim; onset: minus the lowest multiple naming
it; first: named at the first changed strength; panel: minus the share of other features' one-shot claims
that include it; random: minus the share of random-direction descriptions on white naming it; transfer: on
the object images whose own description lacks it, the share of steered descriptions naming it less the
random directions' share at the same strength and image. With ``--images``, one more signal per image
mode of an eval's metrics (top-k, hybrid): 1 when that mode's description names the claim."""
IMAGE_TEXTS = {"topk": "topk", "hybrid": "hybrid-best"}
"""Image-evidence signal -> the per-feature text key in an eval's metrics.json."""


@functools.lru_cache(maxsize=None)
def parse_claims(text: str | None) -> frozenset[Claim]:
    """The claims of a text, parsed once: the signals read the same few thousand texts for every claim."""
    return _parse(text)


@dataclass
class Evidence:
    """Every text the signals read, keyed by multiple (and base image)."""

    sweep: dict[int, dict[float, str]]
    objects: dict[int, dict[tuple[str, float], str]]
    object_base: dict[str, str]
    random_white: list[str]
    random_objects: dict[tuple[str, float], list[str]]


def collect(engine: Any, features: Sequence[int], norm: float,
            run: Callable[[list[Any]], list[Any]] | None = None) -> Evidence:
    """Run every probe the signals need through ``engine`` (greedy, one text each); ``run``: how a list of
    probes is run (the eval's cache: ``lambda ps: cache.run_probes(engine, ps)``; None: ``engine.run``)."""
    from steering.image_names import OBJECT_BASES
    from steering.probes import Probe

    def texts(probes: list[Probe]) -> list[str]:
        return [r.texts[0] if r.texts else "" for r in (run or engine.run)(probes)]

    white = [Probe(feature=f, strength=round(m * norm, 4)) for f in features for m in SWEEP]
    on_objects = [Probe(feature=f, strength=round(m * norm, 4), base_image=b)
                  for f in features for b in OBJECT_BASES for m in TRANSFER]
    rand_white = [Probe(feature=0, strength=round(m * norm, 4), direction="random", seed=s)
                  for s in range(CONTROLS) for m in SWEEP]
    rand_obj = [Probe(feature=0, strength=round(m * norm, 4), base_image=b, direction="random", seed=s)
                for s in range(CONTROLS) for b in OBJECT_BASES for m in TRANSFER]
    bases = [Probe(feature=None, base_image=b) for b in OBJECT_BASES]
    out = texts(white + on_objects + rand_white + rand_obj + bases)
    it = iter(out)
    sweep: dict[int, dict[float, str]] = {}
    for p in white:
        sweep.setdefault(int(p.feature or 0), {})[round(p.strength / norm, 4)] = next(it)
    objects: dict[int, dict[tuple[str, float], str]] = {}
    for p in on_objects:
        objects.setdefault(int(p.feature or 0), {})[(p.base_image, round(p.strength / norm, 4))] = next(it)
    random_white = [next(it) for _ in rand_white]
    random_objects: dict[tuple[str, float], list[str]] = {}
    for p in rand_obj:
        random_objects.setdefault((p.base_image, round(p.strength / norm, 4)), []).append(next(it))
    object_base = {p.base_image: next(it) for p in bases}
    return Evidence(sweep, objects, object_base, random_white, random_objects)


def oneshot_multiple(ev: Evidence, truth: Mapping[int, Mapping[str, Any]], dev: Sequence[int]) -> float:
    """The sweep multiple whose descriptions score the best mean F1 on dev (ties: the lower)."""
    def f1(m: float) -> float:
        return statistics.fmean(score_claims(comparable(parse_claims(ev.sweep[f][m]), truth[f]),
                                             truth_claims(truth[f])).f1 for f in dev)
    return max(SWEEP, key=lambda m: (f1(m), -m))


def signals(ev: Evidence, f: int, claim: Claim, panel: Mapping[Claim, float],
            images: Mapping[str, Mapping[int, str | None]] | None = None) -> list[float]:
    """The signal vector (SIGNALS, then one per image mode) of one candidate claim of feature ``f``."""
    named = {m: claim in parse_claims(t) for m, t in ev.sweep[f].items()}
    changed = [m for m in SWEEP if parse_claims(ev.sweep[f][m])]
    share = sum(named[m] for m in changed) / len(changed) if changed else 0.0
    onset = -min((m for m in SWEEP if named[m]), default=2 * SWEEP[-1]) / SWEEP[-1]
    first = float(bool(changed) and named[changed[0]])
    rand = sum(claim in parse_claims(t) for t in ev.random_white) / max(1, len(ev.random_white))
    gains = []
    for (image, m), text in ev.objects.get(f, {}).items():
        if claim in parse_claims(ev.object_base[image]):
            continue
        noise = ev.random_objects.get((image, m), [])
        gains.append(float(claim in parse_claims(text))
                     - (sum(claim in parse_claims(t) for t in noise) / len(noise) if noise else 0.0))
    transfer = statistics.fmean(gains) if gains else 0.0
    seen = [float(claim in parse_claims(texts.get(f))) for texts in (images or {}).values()]
    return [share, onset, first, -panel.get(claim, 0.0), -rand, transfer, *seen]


class Logistic:
    """L2-regularised logistic regression on standardised inputs, fitted by Newton steps (no dependency)."""

    def __init__(self, l2: float = 1.0, steps: int = 50) -> None:
        self.l2, self.steps = l2, steps

    def fit(self, x: np.ndarray, y: np.ndarray) -> Logistic:
        self.mu, self.sd = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = np.hstack([np.ones((len(x), 1)), (x - self.mu) / self.sd])
        w = np.zeros(z.shape[1])
        reg = self.l2 * np.eye(z.shape[1])
        reg[0, 0] = 0.0
        for _ in range(self.steps):
            p = 1 / (1 + np.exp(-z @ w))
            grad = z.T @ (p - y) + reg @ w
            hess = (z * (p * (1 - p))[:, None]).T @ z + reg
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]  # singular on a handful of rows: least squares
            w -= step
            if float(np.abs(step).max()) < 1e-8:
                break
        self.w = w
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.hstack([np.ones((len(x), 1)), (x - self.mu) / self.sd])
        return 1 / (1 + np.exp(-z @ self.w))


Rows = list[tuple[int, Claim, list[float]]]


def _rows(ev: Evidence, features: Sequence[int], candidates: Mapping[int, frozenset[Claim]],
          panel: Mapping[Claim, float], images: Mapping[str, Mapping[int, str | None]] | None) -> Rows:
    return [(f, c, signals(ev, f, c, panel, images)) for f in features for c in sorted(candidates[f])]


def _filtered(rows: Rows, probs: np.ndarray, threshold: float, features: Sequence[int]) -> dict[int, frozenset[Claim]]:
    keep: dict[int, set[Claim]] = {f: set() for f in features}
    for (f, c, _), p in zip(rows, probs):
        if p >= threshold:
            keep[f].add(c)
    return {f: frozenset(v) for f, v in keep.items()}


def fit_filter(rows: Rows, truth: Mapping[int, Mapping[str, Any]], features: Sequence[int]
               ) -> tuple[Logistic, float, float]:
    """The filter fitted on ``rows`` and the threshold with the best mean F1 over ``features``."""
    x = np.array([s for _, _, s in rows], dtype=float)
    y = np.array([c in truth_claims(truth[f]) for f, c, _ in rows], dtype=float)
    model = Logistic().fit(x, y)
    probs = model.predict(x)

    def f1(t: float) -> float:
        kept = _filtered(rows, probs, t, features)
        return statistics.fmean(score_claims(comparable(kept[f], truth[f]), truth_claims(truth[f])).f1
                                for f in features)
    best = max(THRESHOLDS, key=lambda t: (f1(t), -t))
    return model, best, f1(best)


def fitted_claims(ev: Evidence, truth: Mapping[int, Mapping[str, Any]], splits: Mapping[str, Sequence[int]],
                  images: Mapping[str, Mapping[int, str | None]] | None = None) -> dict[int, frozenset[Claim]]:
    """The claim filter as an explainer: one-shot's claims at the dev-chosen strength, kept where a filter fitted
    on the dev split's truth (model and threshold) says so, for every feature of both splits. A dev feature's
    claims come from the filter fitted on the other half of dev (two folds), so its dev score, which picks the
    best no-follow-up method, is out of sample like its test score."""
    dev, test = list(splits["dev"]), list(splits["test"])
    m = oneshot_multiple(ev, truth, dev)
    candidates = {f: comparable(parse_claims(ev.sweep[f][m]), truth[f]) for f in dev + test}
    panel = _panel(candidates)
    out: dict[int, frozenset[Claim]] = {}
    folds = [sorted(dev)[0::2], sorted(dev)[1::2]]
    for fit_on, apply_to in ((dev, test), (folds[0], folds[1]), (folds[1], folds[0])):
        if not fit_on or not apply_to:
            continue
        fit_rows = _rows(ev, fit_on, candidates, panel, images)
        if not fit_rows:  # nothing to learn from (one-shot named nothing there): one-shot's claims unfiltered
            out.update({f: candidates[f] for f in apply_to})
            continue
        model, threshold, _ = fit_filter(fit_rows, truth, fit_on)
        rows = _rows(ev, apply_to, candidates, panel, images)
        probs = model.predict(np.array([s for _, _, s in rows], dtype=float)) if rows else np.zeros(0)
        out.update(_filtered(rows, probs, threshold, apply_to))
    return out


def _panel(candidates: Mapping[int, frozenset[Claim]]) -> dict[Claim, float]:
    """A claim's panel share leaves its own feature out (how many *other* features name it)."""
    counts = Counter(c for cs in candidates.values() for c in cs)
    n = max(1, len(candidates) - 1)
    return {c: (k - 1) / n for c, k in counts.items()}


def measure(ev: Evidence, truth: Mapping[int, Mapping[str, Any]], splits: Mapping[str, Sequence[int]],
            seed: int = 0, images: Mapping[str, Mapping[int, str | None]] | None = None) -> dict[str, Any]:
    """The figures: one-shot, the dev-fitted filter, the test-fitted bound and the perfect filter on test
    (``images``: image mode -> feature -> its description, read as extra signals)."""
    dev, test = list(splits["dev"]), list(splits["test"])
    m = oneshot_multiple(ev, truth, dev)
    candidates = {f: comparable(parse_claims(ev.sweep[f][m]), truth[f]) for f in dev + test}
    panel = _panel(candidates)
    dev_rows, test_rows = _rows(ev, dev, candidates, panel, images), _rows(ev, test, candidates, panel, images)
    names = (*SIGNALS, *(images or {}))
    model, threshold, dev_f1 = fit_filter(dev_rows, truth, dev)
    x_test = np.array([s for _, _, s in test_rows], dtype=float)
    kept = _filtered(test_rows, model.predict(x_test), threshold, test)
    _, bound_t, bound_f1 = fit_filter(test_rows, truth, test)

    def scores(claims: Mapping[int, frozenset[Claim]]) -> list[float]:
        return [score_claims(comparable(claims[f], truth[f]), truth_claims(truth[f])).f1 for f in test]
    keys = [cluster_key(truth[f]) for f in test]
    oneshot, filtered = scores(candidates), scores(kept)
    perfect = scores({f: candidates[f] & truth_claims(truth[f]) for f in test})
    aurocs = {}
    for i, name in enumerate(names):
        pos = [s[i] for f, c, s in test_rows if c in truth_claims(truth[f])]
        neg = [s[i] for f, c, s in test_rows if c not in truth_claims(truth[f])]
        aurocs[name] = round(auroc(pos, neg), 3) if pos and neg else None
    diff = paired_diff(filtered, oneshot, keys, seed)
    return {"n_test": len(test), "oneshot_multiple": m, "claims_test": len(test_rows),
            "true_claims_test": sum(c in truth_claims(truth[f]) for f, c, _ in test_rows),
            "oneshot_f1": statistics.fmean(oneshot), "filter_f1": statistics.fmean(filtered),
            "filter_threshold": threshold, "filter_dev_f1": dev_f1,
            "filter_minus_oneshot": {"mean": diff["mean"], "ci": diff["ci"], "verdict": diff["verdict"]},
            "bound_f1": bound_f1, "bound_threshold": bound_t, "perfect_f1": statistics.fmean(perfect),
            "signal_auroc_test": aurocs, "signals": list(names), "weights": dict(zip(("bias", *names), np.round(model.w, 3).tolist()))}


ORACLE_STEPS = 3
"""Moves of the claim-set search (each: add a claim of a family not yet claimed, keep one claim alone, or drop
one)."""


def auroc_oracle(score: Callable[[int, frozenset[Claim]], float | None], features: Sequence[int],
                 truth: Mapping[int, Mapping[str, Any]], values: Sequence[Claim],
                 steps: int = ORACLE_STEPS) -> dict[str, Any]:
    """The simulation AUROC the true claims get, and the best a greedy search over claim sets reaches when it
    scores each candidate with the feature's own activations (``score``, the simulator): from the true claims,
    take the move that raises the AUROC most while one does. What no explainer in the world's vocabulary is
    likely to pass: a search, not a proof, and its claim sets need not be the truth."""
    def auroc_of(f: int, claims: frozenset[Claim]) -> float:
        value = score(f, claims)
        return 0.5 if value is None else float(value)

    true_scores, best_scores = [], []
    for f in features:
        cur = truth_claims(truth[f])
        cur_score = auroc_of(f, cur)
        true_scores.append(cur_score)
        for _ in range(steps):
            families = {fam for fam, _ in cur}
            moves = ([cur | {c} for c in values if c[0] not in families] + [frozenset({c}) for c in values]
                     + ([cur - {c} for c in cur] if len(cur) > 1 else []))
            scored = {m: auroc_of(f, m) for m in moves if m != cur}
            if not scored:
                break
            best = max(scored, key=lambda m: (scored[m], sorted(m)))  # ties: the same set on every machine
            if scored[best] <= cur_score:
                break
            cur, cur_score = best, scored[best]
        best_scores.append(cur_score)
    return {"n": len(true_scores), "truth_auroc": statistics.fmean(true_scores) if true_scores else None,
            "oracle_auroc": statistics.fmean(best_scores) if best_scores else None}


def summary(r: dict[str, Any], world: str) -> str:
    """The figures of ``measure`` as the lines the command prints."""
    lo, hi = (100 * x for x in r["filter_minus_oneshot"]["ci"])
    return "\n".join([
        f"evidence ceiling, {world}: test split, {r['n_test']} features, {r['claims_test']} one-shot claims "
        f"({r['true_claims_test']} true); signals: {', '.join(r['signals'])}",
        f"  one-shot at the dev-chosen strength ({r['oneshot_multiple']:g}x the norm): F1 {100 * r['oneshot_f1']:.1f}",
        f"  claims filtered by the evidence, fitted on dev (threshold {r['filter_threshold']:g}): F1 "
        f"{100 * r['filter_f1']:.1f}, minus one-shot {100 * r['filter_minus_oneshot']['mean']:+.1f} "
        f"[{lo:+.1f}, {hi:+.1f}] ({r['filter_minus_oneshot']['verdict']})",
        f"  the same filter fitted on the test split itself (optimistic bound): F1 {100 * r['bound_f1']:.1f}",
        f"  a perfect filter (keeps exactly one-shot's true claims): F1 {100 * r['perfect_f1']:.1f}",
        f"  one-shot + 10 points (issue 16's margin): {100 * r['oneshot_f1'] + 10:.1f}",
        "  each signal's AUROC for true against filled-in claims (test): "
        + ", ".join(f"{k} {'n/a' if v is None else f'{v:.2f}'}" for k, v in r["signal_auroc_test"].items()),
    ] + ([f"  simulation AUROC on the test split (bar 0.9): the true claims {r['auroc_oracle']['truth_auroc']:.3f}; "
           f"the best claim sets a greedy search finds by the feature's own activations "
           f"{r['auroc_oracle']['oracle_auroc']:.3f}"] if r.get("auroc_oracle") else []))


def image_texts(path: Path) -> dict[str, dict[int, str | None]]:
    """Image mode -> feature -> description, from an eval's metrics.json (ValueError: not one)."""
    try:
        rows = json.loads(Path(path).read_text())["per_feature"]
        out = {name: {int(r["feature"]): r["texts"].get(key) for r in rows} for name, key in IMAGE_TEXTS.items()}
    except FileNotFoundError:
        raise ValueError(f"no file at {path}: pass an eval's metrics.json (steer-agent eval --report DIR writes "
                         "DIR/metrics.json)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not an eval's metrics.json ({exc.__class__.__name__}): pass the "
                         "metrics.json that steer-agent eval --report DIR writes") from None
    return {name: texts for name, texts in out.items() if any(texts.values())}
