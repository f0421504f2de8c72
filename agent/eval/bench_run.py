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


def add_bench(inp: Any, cfg: Any, features: list[int], explained: dict[str, M.Explained],
              by_strength: dict[str, list[M.Explained]], baseline: str, metrics: dict[str, Any]) -> None:
    """Run the benchmark on ``cfg.split`` and merge it: ``gates``, ``floors``, ``diffs``, and each
    benchmark mode's claim metrics under ``modes.<name>``."""
    series = by_strength.get("oneshot", [])
    kl = [e.extra["kl"] for e in series] if all("kl" in e.extra for e in series) else None
    sweep = Sweep([float(e.strength or 0.0) for e in series], [e.texts for e in series], baseline, kl)
    texts = {name: explained[src].texts for name, src in MODE_SOURCES.items() if src in explained}
    b = Bench(inp.truth, split(features, inp.truth, cfg.split_seed), sweep, texts, inp.simulator, cfg.seed)
    hybrid = _hybrid(b, by_strength.get("hybrid", []))
    if hybrid is not None:
        b.texts["hybrid"] = hybrid
    bench = run_bench(b, cfg.split, at_4x_onset(inp, b, features, cfg.seed) if series else None)
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
        target["applicable"] = row["applicable"]
        if "word" not in target:  # the word-level tables (report, TUI) read every mode: its hit rate on the split
            target["word"] = word_rate(b, name, bench["split"]) if row["applicable"] else rate([]).to_dict()
            target["embedding"] = rate([]).to_dict()
        if not row["applicable"]:
            target["note"] = row["note"]
