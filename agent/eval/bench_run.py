"""The benchmark inside an evaluation: collect the sweep and each explainer's texts, probe each
feature at 4x its onset, and merge the benchmark's figures into the metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.eval import modes as M
from agent.eval.bench import MODES, Bench, mode_claims, run_bench
from agent.eval.metrics import rate
from steering.toy.claims import parse_claims
from steering.toy.gates import Sweep, onsets, split

NOT_APPLICABLE = {"mean": None, "ci": [None, None]}
MODE_SOURCES = {"agent": "offline", "agent_r1": "offline-r1", "agent_llm": "llm", "agent_images": "offline-images",
                "topk": "topk",
                "random": "random-offline"}
"""Benchmark name -> the evaluation's explainer it reads."""


def _hybrid(b: Bench, series: Sequence[M.Explained]) -> dict[int, str | None] | None:
    """The hybrid strength with the best mean F1 on dev."""
    if not series:
        return None
    dev = b.splits["dev"]
    best = max(series, key=lambda e: (b.mean_f1({f: parse_claims(e.texts.get(f)) for f in dev}, dev),
                                      -(e.strength or 0)))
    b.choices["hybrid_strength"] = best.strength
    return best.texts


def at_4x_onset(inp: Any, b: Bench, features: Sequence[int], seed: int) -> dict[int, str | None]:
    """Each named feature's greedy description at 4x the first strength that names its truth."""
    from agent.run.sweep import steered_probe

    first = {f: s for f, s in onsets(b.truth, b.sweep, features).items() if s is not None}
    if not first:
        return {}
    sweep = M.sweep_config(b.sweep.strengths, seed)
    probes = [steered_probe(f, round(4 * s, 4), sweep) for f, s in first.items()]
    results = inp.cache.run_probes(inp.engine, probes)
    return {f: (r.texts[0] if r.texts else None) for f, r in zip(first, results)}


def word_rate(b: Bench, name: str, part: str) -> dict[str, Any]:
    """A benchmark mode's hit rate by words on ``part``: its claims name the truth's value and no rival of
    that family (the word-level metric, read from claims)."""
    claims = mode_claims(b).get(name) or {}
    hits = []
    for f in b.splits[part]:
        fam, val = str(b.truth[f]["family"]), str(b.truth[f]["value"])
        said = claims.get(f, frozenset())
        hits.append((fam, val) in said and not any(c[0] == fam and c[1] != val for c in said))
    return rate(hits).to_dict()


def add_filters(inp: Any, b: Bench, features: Sequence[int], norm: float) -> None:
    """The claim filter fitted on dev over the fixed probes (agent.eval.ceiling: the white sweep, the object
    transfer probes and their random controls, through the eval's cache), as two no-follow-up modes: over the
    steering signals alone, and with the top-k and hybrid descriptions as signals too."""
    from agent.eval.ceiling import collect, fitted_claims

    ev = collect(inp.engine, features, norm, run=lambda probes: inp.cache.run_probes(inp.engine, probes))
    b.claims["filter"] = fitted_claims(ev, b.truth, b.splits)
    images = {name: b.texts[name] for name in ("topk", "hybrid") if name in b.texts}
    if images:
        b.claims["filter_images"] = fitted_claims(ev, b.truth, b.splits, images)


def add_causal(inp: Any, b: Bench, features: Sequence[int], norm: float, seed: int) -> None:
    """Each feature's causal truth (agent.eval.causal: what steering it adds on white and on colourless outline
    shapes beyond same-norm random directions), through the eval's cache, for every mode's causal F1."""
    from agent.eval.causal import causal_truth

    causal = causal_truth(lambda probes: inp.cache.run_probes(inp.engine, probes), features, norm, seed=seed)
    b.causal = {f: frozenset(causal.claims.get(f, frozenset())) for f in features}


def add_bench(inp: Any, cfg: Any, features: list[int], explained: dict[str, M.Explained],
              by_strength: dict[str, list[M.Explained]], baseline: str, metrics: dict[str, Any]) -> None:
    """Run the benchmark on ``cfg.split`` and merge it: ``gates``, ``floors``, ``diffs``, and each
    benchmark mode's claim metrics under ``modes.<name>``."""
    series = by_strength.get("oneshot", [])
    norm = metrics.get("hidden_norm")
    kl = [e.extra["kl"] for e in series] if all("kl" in e.extra for e in series) else None
    sweep = Sweep([float(e.strength or 0.0) for e in series], [e.texts for e in series], baseline, kl)
    texts = {name: explained[src].texts for name, src in MODE_SOURCES.items() if src in explained}
    b = Bench(inp.truth, split(features, inp.truth, cfg.split_seed), sweep, texts, inp.simulator, cfg.seed)
    hybrid = _hybrid(b, by_strength.get("hybrid", []))
    if hybrid is not None:
        b.texts["hybrid"] = hybrid
    if series and norm:
        add_filters(inp, b, features, norm)
        if not any(inp.truth[f].get("claims") for f in features):  # SAE features (planted ones are causal by construction)
            add_causal(inp, b, features, norm, cfg.seed)
    at4 = at_4x_onset(inp, b, features, cfg.seed) if series else None
    inp.bench, inp.at_4x_onset = b, at4  # for pooling several planted seeds (agent.eval.bench.pool)
    bench = run_bench(b, cfg.split, at4)
    metrics["bench"] = bench
    metrics["gates"] = bench["gates"]
    metrics["floors"] = bench["floors"]
    metrics["diffs"] = bench["diffs"]
    for name in MODES:
        if name not in bench["modes"]:
            continue
        row = bench["modes"][name]
        target = metrics["modes"].setdefault(name, {})
        target.update({k: (row.get(k, NOT_APPLICABLE)) for k in ("f1", "precision", "recall", "exact", "auroc")})
        target.update({k: row[k] for k in ("causal_f1", "recall_by_family", "error_reduction") if k in row})
        target["applicable"] = row["applicable"]
        if "word" not in target:  # the word-level tables (report, TUI) read every mode: its hit rate on the split
            target["word"] = word_rate(b, name, bench["split"]) if row["applicable"] else rate([]).to_dict()
            target["embedding"] = rate([]).to_dict()
        if not row["applicable"]:
            target["note"] = row["note"]
