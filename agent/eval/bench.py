"""The benchmark: a seeded dev/test split, baselines tuned on dev, floors, claim metrics with clustered
CIs, paired differences and the world's gates (steering.toy.gates). Pure Python: texts in, figures out."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.eval.metrics import derangement
from agent.eval.simulation import TRUTH_AUROC_GATE
from agent.eval.stats import cluster_ci, paired_diff
from steering.text import degenerate
from steering.toy.claims import Claim, cluster_key, comparable, kind_of, parse_claims, score_claims, truth_claims
from steering.toy.gates import Sweep, Texts, gates

METRICS = ("f1", "precision", "recall", "exact")
BASELINES = ("oneshot", "rule_majority", "rule_lowest", "rule_calibrate")
"""The steering-only no-follow-up baselines of ``diffs.agent_vs_best_baseline`` (kept for continuity)."""
NONADAPTIVE = (*BASELINES, "topk", "hybrid", "filter", "filter_images")
"""Every method that reads a fixed set of probes and never follows up: the steering baselines, top-k, the hybrid
(top-k + steering, the paper's best mode), and the claim filter fitted on dev over the fixed sweep and the object
transfer probes (agent.eval.ceiling), without and with the top-k and hybrid descriptions. The best of these on dev
is what ``diffs.agent_vs_best_nonadaptive`` compares the agent with."""
MODES = ("agent", "agent_r1", "agent_llm", "agent_images", "oneshot", "rule_majority", "rule_lowest", "rule_calibrate",
         "oracle", "topk", "hybrid", "filter", "filter_images")
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
    claims: dict[str, dict[int, frozenset[Claim]]] = field(default_factory=dict)
    """Modes given as claims rather than texts (the dev-fitted claim filters): mode -> feature -> claims."""
    causal: Mapping[int, frozenset[Claim]] | None = None
    """Each feature's causal truth (agent.eval.causal: what steering it adds beyond random directions); None:
    not measured (planted features)."""
    groups: Mapping[int, str] = field(default_factory=dict)
    """A feature's group (its planted seed when seeds are pooled): bootstrap clusters never cross groups."""

    def true(self, f: int) -> frozenset[Claim]:
        return truth_claims(self.truth[f])

    def score(self, said: frozenset[Claim], f: int) -> Any:
        """One feature's claims against its truth (claims of a family its truth cannot judge are left out)."""
        return score_claims(comparable(said, self.truth[f]), self.true(f))

    def scores(self, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int], metric: str) -> list[float]:
        return [self.score(claims.get(f, frozenset()), f).get(metric) for f in fs]

    def key(self, f: int) -> str:
        """The bootstrap cluster of feature ``f``: its group and its set of true claims."""
        group = self.groups.get(f)
        return f"{group}|{cluster_key(self.truth[f])}" if group is not None else cluster_key(self.truth[f])

    def keys(self, fs: Sequence[int]) -> list[str]:
        return [self.key(f) for f in fs]

    def mean_f1(self, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int]) -> float:
        return statistics.fmean(self.scores(claims, fs, "f1")) if fs else 0.0


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
        best = max(range(len(per_strength)), key=lambda i: (b.mean_f1(per_strength[i], dev), -i))
        b.choices["oneshot_strength"] = b.sweep.strengths[best]
        out["oneshot"] = per_strength[best]
        out["rule_majority"] = {f: rule_majority(b.sweep, f) for f in fs}
        out["rule_lowest"] = {f: rule_lowest(b.sweep, f) for f in fs}
        if b.sweep.kl:
            target = max(KL_TARGETS, key=lambda t: (b.mean_f1({f: rule_calibrate(b.sweep, f, t) for f in dev}, dev), -t))
            b.choices["calibrate_kl_target"] = target
            out["rule_calibrate"] = {f: rule_calibrate(b.sweep, f, target) for f in fs}
        out["oracle"] = {f: max((p[f] for p in per_strength), key=lambda c: b.score(c, f).f1) for f in fs}
    for name in ("topk", "hybrid"):
        if name in b.texts:
            out[name] = _parsed(b.texts[name], fs) if answers_prompt(b.texts[name], fs) else None
    for name, claims in b.claims.items():
        out[name] = {f: claims.get(f, frozenset()) for f in fs}
    out["truth"] = {f: b.true(f) for f in fs}
    return out


def constant_claims(b: Bench) -> frozenset[Claim]:
    """The one- or two-claim explanation with the best mean F1 on dev (the metric's floor for a fixed guess)."""
    from steering.toy.claims import CLAIM_FAMILIES

    vocab = [(f, v) for f, vals in CLAIM_FAMILIES.items() for v in vals]
    dev = b.splits["dev"]
    sets = [frozenset([c]) for c in vocab] + [frozenset(p) for p in itertools.combinations(vocab, 2)]
    return max(sets, key=lambda s: (b.mean_f1({f: s for f in dev}, dev), -len(s), sorted(s)))


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


def recall_by_family(b: Bench, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int]) -> dict[str, Any]:
    """Per family, the share of the true claims of that family the mode names (pooled over ``fs``)."""
    hits: dict[str, list[int]] = {}
    for f in fs:
        said = claims.get(f, frozenset())
        for c in b.true(f):
            hits.setdefault(c[0], []).append(int(c in said))
    return {fam: {"recall": round(sum(v) / len(v), 6), "n": len(v)} for fam, v in sorted(hits.items())}


def causal_scores(b: Bench, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int]) -> tuple[list[float], list[str]]:
    """Per feature with a non-empty causal truth: the F1 of the mode's claims against it, and its cluster key."""
    if b.causal is None:
        return [], []
    known = [f for f in fs if b.causal.get(f)]
    return ([score_claims(claims.get(f, frozenset()), b.causal[f]).f1 for f in known],
            [cluster_key({"claims": sorted(b.causal[f])}) for f in known])


def summarize_mode(b: Bench, claims: Mapping[int, frozenset[Claim]], fs: Sequence[int]) -> dict[str, Any]:
    keys = b.keys(fs)
    out = {m: cluster_ci(b.scores(claims, fs, m), keys, b.seed) for m in METRICS}
    out["recall_by_family"] = recall_by_family(b, claims, fs)
    if b.causal is not None:
        out["causal_f1"] = cluster_ci(*causal_scores(b, claims, fs), b.seed)
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
    keys = b.keys(fs)
    a = b.scores(agent, fs, "f1")
    out: dict[str, Any] = {}
    for name in ("agent_r1", *BASELINES, "oracle", "topk", "hybrid", "filter", "filter_images"):
        other = claims.get(name)
        if other is not None:
            out[f"agent_vs_{name}"] = {"f1": paired_diff(a, b.scores(other, fs, "f1"), keys, b.seed)}
    avail = [n for n in BASELINES if claims.get(n) is not None]
    if avail:
        best = _best_on_dev(b, claims, avail)
        b.choices["best_baseline"] = best
        out["agent_vs_best_baseline"] = {"baseline": best, **out[f"agent_vs_{best}"]}
    nonadaptive = [n for n in NONADAPTIVE if claims.get(n) is not None]
    if nonadaptive:
        best = _best_on_dev(b, claims, nonadaptive)
        b.choices["best_nonadaptive"] = best
        d = dict(out[f"agent_vs_{best}"]["f1"])
        base = statistics.fmean(b.scores(claims[best], fs, "f1")) if fs else 0.0  # type: ignore[arg-type]
        out["agent_vs_best_nonadaptive"] = {"baseline": best, "f1": {**d, "best": best},
                                            "error_reduction": error_reduction(statistics.fmean(a), base) if fs else None}
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


def error_reduction(f1: float, base: float) -> float | None:
    """The share of the baseline's error (1 - F1) a mode removes: (F1 - base) / (1 - base); None at base 1."""
    return None if base >= 1 - 1e-12 else round((f1 - base) / (1 - base), 6)


def skill(f1: float | None, constant: float | None) -> float | None:
    """A floor's F1 as skill over the constant explanation: (F1 - F1_constant) / (1 - F1_constant)."""
    if f1 is None or constant is None:
        return None
    return error_reduction(f1, constant)


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
    floors = {name: {"f1": cluster_ci(b.scores(c, fs, "f1"), b.keys(fs), b.seed)}
              for name, c in floor_claims(b, claims.get("agent")).items()}
    constant = floors.get("constant", {}).get("f1", {}).get("mean")
    for row in floors.values():
        row["skill"] = skill(row["f1"]["mean"], constant)
    world_gates = gates(b.truth, b.sweep, fs, claims.get("oneshot"), at_4x_onset)
    truth_auroc = modes.get("truth", {}).get("auroc", {}).get("mean")
    world_gates["truth_auroc"] = {"value": truth_auroc, "bar": TRUTH_AUROC_GATE,
                                  "met": None if truth_auroc is None else truth_auroc >= TRUTH_AUROC_GATE - 1e-9}
    the_diffs = diffs(b, claims, fs)
    best = b.choices.get("best_nonadaptive")
    if best is not None:
        base = modes[best]["f1"]["mean"]
        for row in modes.values():
            if row.get("applicable") and row["f1"]["mean"] is not None and base is not None:
                row["error_reduction"] = error_reduction(row["f1"]["mean"], base)
    out = {"split": part, "n": len(fs), "split_sizes": {k: len(v) for k, v in b.splits.items()},
           "kinds": _kinds(b, fs), "modes": modes, "floors": floors, "diffs": the_diffs,
           "gates": world_gates, "chosen_on_dev": dict(b.choices)}
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
        keys = b.keys(fs)
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


POOL_STRIDE = 100_000
"""Pooled feature ids: seed * POOL_STRIDE + the feature's id in its own dictionary."""


def pool(benches: Mapping[int, Bench], at_4x_onset: Mapping[int, Mapping[int, str | None] | None] | None = None
         ) -> tuple[Bench, dict[int, str | None] | None]:
    """Several planted seeds' benchmarks as one (``--planted-seed 0-4``): features renumbered seed * POOL_STRIDE
    + id, each seed's own dev/test split kept, bootstrap clusters within a seed (``groups``), and everything
    tunable chosen again on the pooled dev split. The seeds must share the model (their sweeps' strengths)."""
    if not benches:
        raise ValueError("no benchmark to pool")
    seeds = sorted(benches)
    first = benches[seeds[0]]
    for s in seeds[1:]:
        if benches[s].sweep.strengths != first.sweep.strengths:
            raise ValueError(f"seed {s} was swept at other strengths than seed {seeds[0]}: pool runs of one model")

    def ids(s: int, table: Mapping[int, Any]) -> dict[int, Any]:
        return {s * POOL_STRIDE + f: v for f, v in table.items()}

    truth: dict[int, Any] = {}
    splits: dict[str, list[int]] = {"dev": [], "test": []}
    groups: dict[int, str] = {}
    for s in seeds:
        b = benches[s]
        truth.update(ids(s, b.truth))
        for part in splits:
            splits[part] += [s * POOL_STRIDE + f for f in b.splits.get(part, [])]
        groups.update({s * POOL_STRIDE + f: f"seed{s}" for f in b.truth})
    n_strengths = len(first.sweep.texts)
    texts_by_strength = [{k: v for s in seeds for k, v in ids(s, benches[s].sweep.texts[i]).items()}
                         for i in range(n_strengths)]
    kl = None
    if all(benches[s].sweep.kl for s in seeds):
        kl = [{k: v for s in seeds for k, v in ids(s, benches[s].sweep.kl[i]).items()}  # type: ignore[index]
              for i in range(n_strengths)]
    sweep = Sweep(list(first.sweep.strengths), texts_by_strength, first.sweep.caption, kl)
    shared = [name for name in first.texts if all(name in benches[s].texts for s in seeds)]
    texts = {name: {k: v for s in seeds for k, v in ids(s, benches[s].texts[name]).items()} for name in shared}
    claims = {name: {k: v for s in seeds for k, v in ids(s, benches[s].claims[name]).items()}
              for name in first.claims if all(name in benches[s].claims for s in seeds)}

    def auroc(f: int, said: frozenset[Claim]) -> float | None:
        own = benches[f // POOL_STRIDE].auroc
        return None if own is None else own(f % POOL_STRIDE, said)

    pooled = Bench(truth, {k: sorted(v) for k, v in splits.items()}, sweep, texts,
                   auroc if any(benches[s].auroc for s in seeds) else None, first.seed, claims=claims, groups=groups)
    at4: dict[int, str | None] | None = None
    if at_4x_onset and all(at_4x_onset.get(s) is not None for s in seeds):
        at4 = {k: v for s in seeds for k, v in ids(s, at_4x_onset[s] or {}).items()}
    return pooled, at4
