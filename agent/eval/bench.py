"""The benchmark: a seeded dev/test split, baselines tuned on dev, floors, claim metrics with clustered
CIs, paired differences and the world's gates (steering.toy.gates). Pure Python: texts in, figures out."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.eval.metrics import derangement
from agent.eval.stats import cluster_ci, paired_diff
from steering.text import degenerate
from steering.toy.claims import Claim, cluster_key, kind_of, parse_claims, score_claims, truth_claims
from steering.toy.gates import Sweep, Texts, best_strength, gates, mean_f1

METRICS = ("f1", "precision", "recall", "exact")
BASELINES = ("oneshot", "rule_majority", "rule_lowest", "rule_calibrate")
"""The no-follow-up baselines the agent must beat (the best of them is picked on dev)."""
MODES = ("agent", "agent_r1", "agent_llm", "agent_images", "oneshot", "rule_majority", "rule_lowest", "rule_calibrate", "oracle", "topk", "hybrid")
CEILINGS = ("truth",)
"""Rows that read the truth itself: the true claims as an explanation (F1 1 by construction; its AUROC is
what the truth scores on the simulation, a reference rather than a bound: a narrower explanation can
score higher)."""
FLOORS = ("constant", "permuted", "random", "caption")
AGENT_BAR = {"margin": 0.10, "floor": 0.15, "auroc": 0.90}
"""The agent's bar (issue 16): it beats the best no-follow-up baseline by this F1 margin with the paired CI
above zero, every floor stays at or below ``floor`` F1, and its simulation AUROC reaches ``auroc``."""


def rule_majority(sweep: Sweep, f: int) -> frozenset[Claim]:
    """Claims named at more than half of the strengths, less those the unsteered caption names."""
    base = parse_claims(sweep.caption)
    per = sweep.claims(f)
    counts: dict[Claim, int] = {}
    for cs in per:
        for c in cs:
            counts[c] = counts.get(c, 0) + 1
    return frozenset(c for c, n in counts.items() if n > len(per) / 2 and c not in base)


def rule_lowest(sweep: Sweep, f: int) -> frozenset[Claim]:
    """The claims of the lowest strength whose description differs from the unsteered caption."""
    for t in sweep.texts:
        text = t.get(f)
        if text and text.strip() != sweep.caption.strip():
            return parse_claims(text)
    return frozenset()


KL_TARGETS = (0.03, 0.1, 0.3, 1.0, 2.0, 4.0, 8.0)
"""First-token KL targets the calibrate rule chooses among on dev."""


def rule_calibrate(sweep: Sweep, f: int, target: float) -> frozenset[Claim]:
    """``--calibrate`` with no follow-up: the claims at the sweep strength whose first-token KL is closest
    (in log scale) to ``target``, less those the unsteered caption names."""
    if not sweep.kl or not sweep.texts:
        return frozenset()
    kls = [max(k.get(f, 0.0), 1e-6) for k in sweep.kl]
    i = min(range(len(kls)), key=lambda j: (abs(math.log(kls[j] / target)), j))
    return parse_claims(sweep.texts[i].get(f)) - parse_claims(sweep.caption)


@dataclass
class Bench:
    """Everything the benchmark reads: truth, the split, the sweep and each explainer's texts."""

    truth: Mapping[int, Mapping[str, Any]]
    splits: dict[str, list[int]]
    sweep: Sweep
    texts: dict[str, Texts]
    """agent, agent_r1, agent_llm, agent_images, topk, hybrid, random (whichever were run): feature -> explanation."""
    auroc: Callable[[int, frozenset[Claim]], float | None] | None = None
    seed: int = 0
    choices: dict[str, Any] = field(default_factory=dict)

    def true(self, f: int) -> frozenset[Claim]:
        return truth_claims(self.truth[f])

    def scores(self, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int], metric: str) -> list[float]:
        return [score_claims(claims.get(f, frozenset()), self.true(f)).get(metric) for f in fs]

    def mean_f1(self, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int]) -> float:
        return mean_f1(self.truth, claims, fs)


def _parsed(texts: Texts, fs: Sequence[int]) -> dict[int, frozenset[Claim]]:
    return {f: parse_claims(texts.get(f)) for f in fs}


def answers_prompt(texts: Texts, fs: Sequence[int]) -> bool:
    """Whether a mode's model answered its prompt: most of its texts are neither degenerate nor empty of claims."""
    ok = sum(not degenerate(texts.get(f)) and bool(parse_claims(texts.get(f))) for f in fs)
    return bool(fs) and ok > len(fs) / 2


def mode_claims(b: Bench) -> dict[str, dict[int, frozenset[Claim]] | None]:
    """Each mode's claims for every feature of both splits (None: not applicable); tunes one-shot on dev."""
    fs = b.splits["dev"] + b.splits["test"]
    dev = b.splits["dev"]
    per_strength = [_parsed(t, fs) for t in b.sweep.texts]
    out: dict[str, dict[int, frozenset[Claim]] | None] = {}
    for name in ("agent", "agent_r1", "agent_llm", "agent_images"):
        if name in b.texts:
            out[name] = _parsed(b.texts[name], fs)
    if per_strength:
        best = best_strength(b.truth, per_strength, dev)
        b.choices["oneshot_strength"] = b.sweep.strengths[best]
        out["oneshot"] = per_strength[best]
        out["rule_majority"] = {f: rule_majority(b.sweep, f) for f in fs}
        out["rule_lowest"] = {f: rule_lowest(b.sweep, f) for f in fs}
        if b.sweep.kl:
            target = max(KL_TARGETS, key=lambda t: (b.mean_f1({f: rule_calibrate(b.sweep, f, t) for f in dev}, dev), -t))
            b.choices["calibrate_kl_target"] = target
            out["rule_calibrate"] = {f: rule_calibrate(b.sweep, f, target) for f in fs}
        out["oracle"] = {f: max((p[f] for p in per_strength),
                                key=lambda c: score_claims(c, b.true(f)).f1) for f in fs}
    for name in ("topk", "hybrid"):
        if name in b.texts:
            out[name] = _parsed(b.texts[name], fs) if answers_prompt(b.texts[name], fs) else None
    out["truth"] = {f: b.true(f) for f in fs}
    return out


def constant_claims(b: Bench) -> frozenset[Claim]:
    """The one- or two-claim explanation with the best mean F1 on dev (the metric's floor for a fixed guess)."""
    from steering.toy.scenes import FAMILIES

    vocab = [(f, v) for f, vals in FAMILIES.items() for v in vals]
    dev = b.splits["dev"]
    sets = [frozenset([c]) for c in vocab] + [frozenset(p) for p in itertools.combinations(vocab, 2)]
    return max(sets, key=lambda s: (b.mean_f1({f: s for f in dev}, dev), sorted(s)))


def floor_claims(b: Bench, agent: Mapping[int, frozenset[Claim]] | None) -> dict[str, dict[int, frozenset[Claim]]]:
    """Constant (chosen on dev), permuted (the agent's claims scored against another feature), random
    directions (the agent loop on norm-matched random vectors), and the unsteered caption."""
    fs = b.splits["dev"] + b.splits["test"]
    const = constant_claims(b)
    b.choices["constant"] = sorted("=".join(c) for c in const)
    out = {"constant": {f: const for f in fs}, "caption": {f: parse_claims(b.sweep.caption) for f in fs}}
    if agent is not None:
        out["permuted"] = {}
        for part in ("dev", "test"):
            perm = derangement(b.splits[part], b.seed)
            out["permuted"].update({f: agent[perm.get(f, f)] for f in b.splits[part]})
    if "random" in b.texts:
        out["random"] = _parsed(b.texts["random"], fs)
    return out


def summarize_mode(b: Bench, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int]) -> dict[str, Any]:
    keys = [cluster_key(b.truth[f]) for f in fs]
    out = {m: cluster_ci(b.scores(claims, fs, m), keys, b.seed) for m in METRICS}
    if b.auroc is not None:
        vals = [b.auroc(f, claims.get(f, frozenset())) for f in fs]
        known = [(v, k) for v, k in zip(vals, keys) if v is not None]
        out["auroc"] = cluster_ci([v for v, _ in known], [k for _, k in known], b.seed)
    else:
        out["auroc"] = {"mean": None, "ci": [None, None], "n": 0}
    return out


def _best_on_dev(b: Bench, claims: Mapping[str, Any], names: Sequence[str]) -> str:
    """The mode of ``names`` with the best mean F1 on dev (ties: the earlier name)."""
    return max(names, key=lambda n: (b.mean_f1(claims[n], b.splits["dev"]), -names.index(n)))


def diffs(b: Bench, claims: Mapping[str, Mapping[int, frozenset[Claim]] | None], fs: Sequence[int]) -> dict[str, Any]:
    """The agent against each baseline on F1 (paired, clustered), and against the best no-follow-up
    baseline picked on dev."""
    agent = claims.get("agent")
    if agent is None:
        return {}
    keys = [cluster_key(b.truth[f]) for f in fs]
    a = b.scores(agent, fs, "f1")
    out: dict[str, Any] = {}
    for name in ("agent_r1", *BASELINES, "oracle", "topk", "hybrid"):
        other = claims.get(name)
        if other is not None:
            out[f"agent_vs_{name}"] = {"f1": paired_diff(a, b.scores(other, fs, "f1"), keys, b.seed)}
    avail = [n for n in BASELINES if claims.get(n) is not None]
    if avail:
        best = _best_on_dev(b, claims, avail)
        b.choices["best_baseline"] = best
        out["agent_vs_best_baseline"] = {"baseline": best, **out[f"agent_vs_{best}"]}
    llm = claims.get("agent_llm")
    if llm is not None:  # a user's LLM judge against the offline one, and against the best baseline
        la = b.scores(llm, fs, "f1")
        out["agent_llm_vs_agent"] = {"f1": paired_diff(la, a, keys, b.seed)}
        if avail:
            best_f1 = b.scores(claims[b.choices["best_baseline"]], fs, "f1")  # type: ignore[arg-type]
            out["agent_llm_vs_best_baseline"] = {"baseline": b.choices["best_baseline"],
                                                 "f1": paired_diff(la, best_f1, keys, b.seed)}
    images = claims.get("agent_images")
    if images is not None:
        # The loop that also reads top-k and hybrid descriptions: against the one that does not, and
        # against the best no-follow-up baseline with the image modes among them (picked on dev).
        ia = b.scores(images, fs, "f1")
        out["agent_images_vs_agent"] = {"f1": paired_diff(ia, a, keys, b.seed)}
        pool = [n for n in (*BASELINES, "topk", "hybrid") if claims.get(n) is not None]
        if pool:
            best = _best_on_dev(b, claims, pool)
            b.choices["best_baseline_with_images"] = best
            out["agent_images_vs_best_baseline"] = {
                "baseline": best, "f1": paired_diff(ia, b.scores(claims[best], fs, "f1"), keys, b.seed)}  # type: ignore[arg-type]
    return out


def run_bench(b: Bench, part: str, at_4x_onset: Mapping[int, str | None] | None = None) -> dict[str, Any]:
    """The benchmark's figures on split ``part`` (everything tunable chosen on dev)."""
    if part not in b.splits:
        raise ValueError(f"unknown split {part!r}: choose dev or test")
    fs = b.splits[part]
    claims = mode_claims(b)
    modes: dict[str, Any] = {}
    for name in (*MODES, *CEILINGS):
        if name in claims:
            c = claims[name]
            modes[name] = {"applicable": False, "note": "not applicable: the model does not answer this prompt"} \
                if c is None else {"applicable": True, **summarize_mode(b, c, fs)}
    floors = {name: {"f1": cluster_ci(b.scores(c, fs, "f1"), [cluster_key(b.truth[f]) for f in fs], b.seed)}
              for name, c in floor_claims(b, claims.get("agent")).items()}
    out = {"split": part, "n": len(fs), "split_sizes": {k: len(v) for k, v in b.splits.items()},
           "kinds": _kinds(b, fs), "modes": modes, "floors": floors, "diffs": diffs(b, claims, fs),
           "gates": gates(b.truth, b.sweep, fs, claims.get("oneshot"), at_4x_onset), "chosen_on_dev": dict(b.choices)}
    out["agent_bar"] = agent_bar(out, b, claims, fs)
    return out


def _clears(d: Mapping[str, Any]) -> bool:
    """A paired F1 difference at least the agent's margin, with its CI above zero."""
    lo = d["ci"][0]
    return d["mean"] is not None and d["mean"] >= AGENT_BAR["margin"] - 1e-9 and lo is not None and lo > 0


def agent_bar(bench: Mapping[str, Any], b: Bench, claims: Mapping[str, Any], fs: Sequence[int]) -> dict[str, Any]:
    """Issue 16's criteria on this split, each with its value and whether it is met, beside two references:
    the per-feature oracle's F1 margin over the same baseline and the true claims' own AUROC."""
    if claims.get("agent") is None:
        return {}
    d = bench["diffs"].get("agent_vs_best_baseline")
    out: dict[str, Any] = {}
    if d:
        f = d["f1"]
        out["margin"] = {"value": f["mean"], "ci": f["ci"], "bar": AGENT_BAR["margin"], "baseline": d["baseline"],
                         "met": _clears(f)}
        keys = [cluster_key(b.truth[x]) for x in fs]
        best = b.scores(claims[d["baseline"]], fs, "f1")
        if claims.get("agent_r1") is not None:  # the gain comes from follow-ups: the first round alone lacks it
            r1 = paired_diff(b.scores(claims["agent_r1"], fs, "f1"), best, keys, b.seed)
            out["round1_margin"] = {"value": r1["mean"], "ci": r1["ci"], "bar": AGENT_BAR["margin"],
                                    "met": not _clears(r1)}
        if claims.get("oracle") is not None:
            out["margin"]["oracle_margin"] = paired_diff(b.scores(claims["oracle"], fs, "f1"), best, keys, b.seed)["mean"]
    means = {name: v["f1"]["mean"] or 0.0 for name, v in bench["floors"].items()}
    if means:
        worst = max(means, key=lambda n: means[n])
        out["floors"] = {"value": means[worst], "worst": worst, "bar": AGENT_BAR["floor"],
                         "met": means[worst] <= AGENT_BAR["floor"] + 1e-9}
    auroc = bench["modes"].get("agent", {}).get("auroc", {}).get("mean")
    if auroc is not None:
        out["auroc"] = {"value": auroc, "bar": AGENT_BAR["auroc"],
                        "truth": bench["modes"].get("truth", {}).get("auroc", {}).get("mean"),
                        "met": auroc >= AGENT_BAR["auroc"] - 1e-9}
    out["met"] = bool(out) and all(v["met"] for v in out.values() if isinstance(v, dict))
    return out


def _kinds(b: Bench, fs: Sequence[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in fs:
        out[kind_of(b.truth[f])] = out.get(kind_of(b.truth[f]), 0) + 1
    return dict(sorted(out.items()))
