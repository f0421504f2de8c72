"""Run an evaluation: every requested mode over the features, scored against ground truth where the
world has it, plus forced choice and CLIP similarity; returns the metrics as one JSON-able dict."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agent.eval import modes as M
from agent.eval.bench_run import add_bench
from agent.eval.cache import EvalCache, digest
from agent.eval.config import EvalConfig
from agent.eval.embeddings import Embedder, embedding_hits
from agent.eval.report import portable_world
from agent.eval.metrics import (
    Scored,
    derangement,
    expected_permuted,
    false_claims,
    rate,
    summarize,
    word_hit,
)
from agent.eval.world import families_of
from steering.text import degenerate
from steering.toy.claims import MIN_SUPPORT, pure_enough, scored_features, why_excluded

log = logging.getLogger(__name__)

METRICS_VERSION = 2


class EvalError(ValueError):
    """The evaluation cannot run as asked (e.g. no feature to score)."""

BAR = {"pipeline_min": 0.80, "margin_over_oneshot": 0.15, "controls_max": 0.15}
"""The toy-world bar: the offline pipeline names >= 80% of pure features, beats one-shot steering at
its best single strength by >= 15 points, and the controls stay <= 15%."""


@dataclass
class Inputs:
    """What an evaluation runs on besides its config (injected, so tests can fake any of them)."""

    engine: Any
    cache: EvalCache
    features: list[int]
    truth: dict[int, dict[str, Any]] | None = None
    embedder: Embedder | None = None
    llm_judge: Any | None = None
    """An LLM judge for the ``llm`` pipeline (agent.judges.LLMJudge)."""
    chooser: Any | None = None
    """An LLMChooser for forced choice with a chat model."""
    topk: Any | None = None
    """A TopKResult; None builds one over toy scenes when the world has ground truth."""
    clip: tuple[Any, Any] | None = None
    """(model, processor) of a CLIP-like model."""
    simulator: Callable[[int, frozenset], float | None] | None = None
    """The simulation score (agent.eval.simulation.Simulator); None: no AUROC."""
    on_stage: Callable[[str], None] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    bench: Any = None
    """After evaluate: the benchmark's inputs (agent.eval.bench.Bench), for pooling several planted seeds."""
    at_4x_onset: Any = None
    """After evaluate: each named feature's description at 4x its onset (a gate's input, pooled likewise)."""


def _stage(inp: Inputs, name: str) -> Callable[[], None]:
    if inp.on_stage:
        inp.on_stage(name)
    t0 = time.perf_counter()

    def done() -> None:
        inp.timings[name] = round(inp.timings.get(name, 0.0) + time.perf_counter() - t0, 2)

    return done


def score(texts: dict[int, str | None], features: Sequence[int], truth: dict[int, dict[str, Any]],
          families: dict[str, list[str]], embedder: Embedder | None,
          truth_of: dict[int, int] | None = None) -> list[Scored]:
    """Each feature's text against its own truth (or, for the permutation control, another's)."""
    rows = []
    for f in features:
        g = truth_of.get(f, f) if truth_of else f
        t = truth[g]
        fam, val = str(t["family"]), str(t["value"])
        text = texts.get(f)
        rivals = [v for v in families.get(fam, []) if v != val]
        rows.append(Scored(f, fam, val, text, word_hit(text, val, fam, rivals), word_hit(text, val, fam),
                           truth_of=g if truth_of else None,
                           claims=false_claims(text, fam, t.get("shares"), families)))
    if embedder is not None and rows:
        texts = [None if degenerate(r.text) else r.text for r in rows]
        hits = embedding_hits(embedder, texts, [(r.family, r.value) for r in rows], families)
        for r, h in zip(rows, hits):
            r.embedding = h
    return rows


def _best(explained: list[M.Explained], scored: dict[int, list[Scored]]) -> int:
    """Index of the strength with the most word hits (the lowest such strength on a tie)."""
    return max(range(len(explained)), key=lambda i: (sum(s.word for s in scored[i]), -(explained[i].strength or 0)))


def _cost(records: dict[int, Any], features: Sequence[int]) -> dict[str, Any]:
    rows = []
    for f in features:
        r = records.get(f)
        if r is None:
            continue
        rows.append({"feature": f, "status": r.status, "rounds": r.rounds, "probes": r.n_probes,
                     "tokens": int(r.usage.get("total_tokens", 0)), "cost_usd": r.usage.get("cost_usd"),
                     "seconds": r.timings.get("total"), "label": r.label, "forced": r.forced})

    def stats(key: str) -> dict[str, float] | None:
        vals = [float(x[key]) for x in rows if x.get(key) is not None]
        if not vals:
            return None
        return {"mean": round(statistics.fmean(vals), 3), "median": round(statistics.median(vals), 3),
                "max": round(max(vals), 3), "total": round(sum(vals), 3)}

    errors: dict[str, int] = {}
    for f in features:
        r = records.get(f)
        if r is not None and r.status != "done":
            errors[str(r.error)[:200]] = errors.get(str(r.error)[:200], 0) + 1
    return {"n": len(rows), "done": sum(x["status"] == "done" for x in rows), "missing": len(features) - len(rows),
            "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
            **{k: stats(k) for k in ("rounds", "probes", "tokens", "seconds")}, "per_feature": rows}


def evaluate(inp: Inputs, cfg: EvalConfig) -> dict[str, Any]:
    """Run ``cfg``'s modes over ``inp.features`` and return the metrics."""
    from agent.run.strengths import hidden_norm

    engine, truth = inp.engine, inp.truth
    if inp.embedder is not None and getattr(inp.embedder, "disk", False) is None:
        inp.embedder.disk = inp.cache.embeddings  # type: ignore[union-attr]
    fp = engine.fingerprint()
    # no absolute paths: the report is read on other machines, and matched to a store by content fingerprints
    world = portable_world({k: fp.get(k) for k in ("model", "revision", "sae", "sae_revision", "layer")})
    excluded: list[int] = []
    if truth:
        features, excluded = scored_features(truth, inp.features)
        # a truth file without v3 counts (a user's own) still says how pure each value is: --purity applies
        features = [f for f in features if pure_enough(truth[f], cfg.purity)]
    else:
        features = list(inp.features)
    if not features:
        raise EvalError("no features to evaluate" + (f" (none of those asked for has a true claim, at least "
                                                      f"{MIN_SUPPORT} active eval scenes and, in a truth file without "
                                                      f"counts, a value at least {cfg.purity:g} pure)" if truth else ""))

    done = _stage(inp, "strengths")
    norm = hidden_norm(engine)
    strengths = sorted(cfg.strengths) if cfg.strengths else [round(m * norm, 2) for m in M.SweepConfig().multiples]
    hybrid_strengths = [round(m * norm, 2) for m in cfg.hybrid_multiples]
    done()

    explained, by_strength, baseline, topk = _explain(inp, cfg, features, strengths, hybrid_strengths)
    metrics: dict[str, Any] = {
        "version": METRICS_VERSION, "world": world, "config": cfg.to_dict(), "baseline": baseline,
        "features": {"requested": len(inp.features), "evaluated": features, "n": len(features)},
        "strengths": strengths, "hidden_norm": round(norm, 4), "hybrid_strengths": hybrid_strengths,
        "embedder": getattr(inp.embedder, "name", None), "modes": {}, "by_strength": {}, "controls": {},
    }
    if truth:
        world.update(scored=len(features), excluded=excluded,
                     excluded_why={str(f): why_excluded(truth[f]) for f in excluded})
    done = _stage(inp, "scoring")
    if truth:
        _score_modes(inp, cfg, features, explained, by_strength, metrics)
        done()
        done = _stage(inp, "benchmark")
        add_bench(inp, cfg, features, explained, by_strength, baseline, metrics)
        world["truth_auroc"] = metrics["gates"].get("truth_auroc", {}).get("value")
    else:
        metrics["per_feature"] = [{"feature": f, "texts": {n: e.texts.get(f) for n, e in explained.items()}}
                                  for f in features]
    done()
    _costs_and_warnings(features, explained, by_strength, metrics)

    readers = {name: e for name, e in explained.items() if not name.startswith("random")}
    if cfg.wants("forced-choice") and (inp.embedder is not None or inp.chooser is not None):
        done = _stage(inp, "forced-choice")
        metrics["forced_choice"] = _forced_choice(inp, cfg, features, strengths, readers)
        done()
    if cfg.wants("clip") and inp.clip is not None and topk is not None:
        done = _stage(inp, "clip")
        metrics["clip"] = _clip(inp, cfg, topk, features, readers)
        done()
    metrics["digest"] = digest(reproducible(metrics), 16)
    metrics["timings"] = dict(inp.timings)
    return metrics


def pooled_metrics(per_seed: dict[int, dict[str, Any]], bench: dict[str, Any], cfg: EvalConfig) -> dict[str, Any]:
    """The metrics of several planted seeds' evaluations pooled into one benchmark (``bench``: run_bench over
    agent.eval.bench.pool): the benchmark's keys as one evaluation has them, and a line per seed."""
    first = per_seed[min(per_seed)]
    seeds = sorted(per_seed)
    world = {**{k: first["world"].get(k) for k in ("model", "revision", "layer")}, "sae": "planted",
             "scored": sum(m["world"].get("scored", m["features"]["n"]) for m in per_seed.values()),
             "excluded": [f"seed{s}:{f}" for s in seeds for f in per_seed[s]["world"].get("excluded", [])],
             "truth_auroc": bench["gates"].get("truth_auroc", {}).get("value")}
    modes = {name: {k: row[k] for k in ("f1", "precision", "recall", "exact", "auroc", "recall_by_family",
                                         "error_reduction", "applicable", "note") if k in row}
             for name, row in bench["modes"].items()}
    out = {"version": METRICS_VERSION, "world": world, "config": cfg.to_dict(), "planted_seeds": seeds,
           "features": {"requested": sum(m["features"]["requested"] for m in per_seed.values()),
                        "n": sum(m["features"]["n"] for m in per_seed.values())},
           "strengths": first["strengths"], "hidden_norm": first["hidden_norm"],
           "modes": modes, "bench": bench, "gates": bench["gates"], "floors": bench["floors"], "diffs": bench["diffs"],
           "per_seed": {str(s): {"n_test": m["bench"]["split_sizes"].get("test"), "digest": m.get("digest"),
                                 **{k: m["diffs"][k] for k in ("agent_vs_best_nonadaptive",) if k in m.get("diffs", {})}}
                        for s, m in per_seed.items()}}
    out["digest"] = digest(reproducible(out), 16)
    return out


def _explain(inp: Inputs, cfg: EvalConfig, features: list[int], strengths: list[float],
             hybrid_strengths: list[float]) -> tuple[dict[str, M.Explained], dict[str, list[M.Explained]], str, Any]:
    """Run every wanted mode: (explained by mode, per-strength series by mode, the baseline text, top-k)."""
    from agent.judges import OfflineJudge

    engine, cache = inp.engine, inp.cache
    explained: dict[str, M.Explained] = {}
    by_strength: dict[str, list[M.Explained]] = {}
    baseline = ""
    for mode, direction in (("oneshot", "feature"), ("oneshot-random", "random")):
        if cfg.wants("oneshot" if direction == "feature" else "random"):
            done = _stage(inp, mode)
            by_strength[mode], baseline = M.oneshot(cache, engine, features, strengths, cfg.seed, direction)
            done()
    run_cfg = M.run_config(strengths, cfg.seed, cfg.max_rounds, cfg.max_probes, rejudge=True)
    if cfg.wants("offline"):
        done = _stage(inp, "offline")
        explained["offline"] = M.pipeline(cache, engine, OfflineJudge(), features, run_cfg, "offline")
        done()
    if cfg.wants("llm") and inp.llm_judge is not None:
        done = _stage(inp, "llm")
        llm_cfg = M.run_config(strengths, cfg.seed, cfg.max_rounds, cfg.max_probes, rejudge=False)
        explained["llm"] = M.pipeline(cache, engine, inp.llm_judge, features, llm_cfg, "llm")
        done()
    if cfg.wants("offline") and cfg.max_rounds > 1:
        done = _stage(inp, "offline-r1")
        r1_cfg = M.run_config(strengths, cfg.seed, 1, cfg.max_probes, rejudge=True)
        explained["offline-r1"] = M.pipeline(cache, engine, OfflineJudge(), features, r1_cfg, "offline-r1")
        done()
    if cfg.wants("random"):
        done = _stage(inp, "random")
        explained["random-offline"] = M.random_pipeline(cache, engine, OfflineJudge(), features, run_cfg)
        done()
    topk = inp.topk
    if any(cfg.wants(m) for m in ("topk", "hybrid", "images", "clip")) and topk is None and inp.truth:
        done = _stage(inp, "topk-collect")
        topk = M.toy_topk(cache, engine, cfg.topk_scenes)
        done()
    if topk is not None and cfg.wants("images"):
        # The same loop and judge, also reading each feature's top-k and hybrid descriptions (--evidence all).
        done = _stage(inp, "images")
        explained["offline-images"] = M.pipeline(cache, engine, OfflineJudge(), features,
                                                 replace(run_cfg, evidence="all"), "offline-images", topk=topk.root)
        done()
    if topk is not None and (cfg.wants("topk") or cfg.wants("hybrid")):
        done = _stage(inp, "topk-hybrid")
        for e in M.describe_modes(cache, engine, topk, features, hybrid_strengths if cfg.wants("hybrid") else [],
                                  cfg.n_images, with_topk=cfg.wants("topk")):
            if e.mode == "topk":
                explained["topk"] = e
            else:
                by_strength.setdefault("hybrid", []).append(e)
        done()
    return explained, by_strength, baseline, topk


def _score_modes(inp: Inputs, cfg: EvalConfig, features: list[int], explained: dict[str, M.Explained],
                 by_strength: dict[str, list[M.Explained]], metrics: dict[str, Any]) -> None:
    """Score every mode against the ground truth into ``metrics`` (adds each series' best strength to
    ``explained``: chosen on the features themselves, an optimistic pick that can only flatter them)."""
    truth, embedder = inp.truth, inp.embedder
    families = families_of(truth)
    metrics["features"]["by_family"] = {fam: sum(truth[f]["family"] == fam for f in features)
                                        for fam in sorted({str(truth[f]["family"]) for f in features})}
    for name, series in by_strength.items():
        scored = {i: score(e.texts, features, truth, families, embedder) for i, e in enumerate(series)}
        metrics["by_strength"][name] = [{"strength": e.strength, **summarize(scored[i])}
                                        for i, e in enumerate(series)]
        best = _best(series, scored)
        if name != "oneshot-random":
            explained[f"{name}-best"] = series[best]
    rows = {name: score(e.texts, features, truth, families, embedder) for name, e in explained.items()}
    for name, e in explained.items():
        target = metrics["controls"] if name.startswith("random") else metrics["modes"]
        target[name] = {**summarize(rows[name]), "strength": e.strength}
    if "oneshot-random" in by_strength:
        worst = max(metrics["by_strength"]["oneshot-random"], key=lambda d: d["word"]["hits"])
        metrics["controls"]["oneshot-random-max"] = {**{k: v for k, v in worst.items() if k != "strength"},
                                                     "strength": worst["strength"]}
    if cfg.wants("permuted"):
        perm = derangement(features, cfg.seed)
        readers = {name: e for name, e in explained.items() if not name.startswith("random")}
        metrics["controls"]["permuted"] = {
            name: {**summarize(score(e.texts, features, truth, families, embedder, perm)), "strength": e.strength,
                   "expected_word_rate": expected_permuted(e.texts, features, truth, families)}
            for name, e in readers.items()}
    metrics["per_feature"] = _per_feature(features, truth, explained, rows)
    metrics["diagnostics"] = _diagnostics(features, truth, families, by_strength, explained, rows)
    metrics["bar"] = _bar(metrics)


def _costs_and_warnings(features: list[int], explained: dict[str, M.Explained],
                        by_strength: dict[str, list[M.Explained]], metrics: dict[str, Any]) -> None:
    """Each loop mode's cost, and a warning for each mode that left features unexplained or said nothing."""
    for name in ("offline", "offline-images", "llm", "random-offline"):
        if name in explained:
            metrics.setdefault("cost", {})[name] = _cost(explained[name].records, features)
            if explained[name].extra.get("stop_reason"):
                metrics["cost"][name]["stop_reason"] = explained[name].extra["stop_reason"]
    metrics["warnings"] = [f"{name}: {c['n'] - c['done'] + c['missing']} of {len(features)} features have no "
                           f"explanation ({'; '.join(f'{n}x {e}' for e, n in c['errors'].items()) or 'not run'})"
                           for name, c in metrics.get("cost", {}).items() if c["done"] < len(features)]
    series = {n: [e] for n, e in explained.items() if n in ("topk",)} | dict(by_strength)
    for name, group in series.items():
        empty = [sum(degenerate(e.texts.get(f)) for f in features) for e in group]
        if max(empty) > len(features) // 2:
            at = f" at strengths {', '.join(f'{e.strength:g}' for e in group)}" if len(group) > 1 else ""
            metrics["warnings"].append(
                f"{name}: {'/'.join(map(str, empty))} of {len(features)} descriptions are empty or degenerate{at} "
                "(the explainer said nothing usable: is its prompt out of the model's distribution?)")
    for w in metrics["warnings"]:
        log.info("%s", w)


def reproducible(metrics: Any) -> Any:
    """The metrics without what varies between identical runs (wall-clock times) or between checkouts
    (absolute paths: a local model or SAE is named by its folder, its revision is a content hash)."""
    if isinstance(metrics, dict):
        return {k: (_local_name(v) if k in ("model", "sae") else reproducible(v)) for k, v in metrics.items()
                if k not in ("timings", "digest", "seconds", "store")}
    if isinstance(metrics, list):
        return [reproducible(v) for v in metrics]
    return metrics


def _local_name(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(("/", "~")) or isinstance(value, str) and ":\\" in value:
        from pathlib import PurePath

        return PurePath(value).name
    return reproducible(value)


def _per_feature(features: Sequence[int], truth: dict[int, dict[str, Any]], explained: dict[str, M.Explained],
                 rows: dict[str, list[Scored]]) -> list[dict[str, Any]]:
    out = []
    for i, f in enumerate(features):
        t = truth[f]
        labels = {n: e.records[f].label for n, e in explained.items() if f in e.records and e.records[f].label}
        out.append({"feature": f, "family": t["family"], "value": t["value"], "purity": t.get("purity"),
                    "texts": {n: e.texts.get(f) for n, e in explained.items()}, "labels": labels,
                    "word": {n: rows[n][i].word for n in explained},
                    "claims": {n: rows[n][i].claims for n in explained if rows[n][i].claims},
                    "embedding": {n: rows[n][i].embedding for n in explained}})
    return out


def _names_truth(texts: Sequence[str], truth: dict[str, Any], families: dict[str, list[str]]) -> bool:
    fam, val = str(truth["family"]), str(truth["value"])
    rivals = [v for v in families.get(fam, []) if v != val]
    return any(word_hit(t, val, fam, rivals) for t in texts)


def _diagnostics(features: Sequence[int], truth: dict[int, dict[str, Any]], families: dict[str, list[str]],
                 by_strength: dict[str, list[M.Explained]], explained: dict[str, M.Explained],
                 rows: dict[str, list[Scored]]) -> dict[str, Any]:
    """Where explanations are lost: is the truth in what the explainer saw at all?

    ``oneshot_any_strength``: some one-shot description of the schedule names the truth (what an
    oracle picking the strength per feature would get). ``<mode>_evidence``: some steered
    description the agent loop's judge read names the truth; ``<mode>_judge_missed``: features
    where it did but the explanation does not (the judge's own loss).
    """
    out: dict[str, Any] = {}
    if "oneshot" in by_strength:
        out["oneshot_any_strength"] = rate(
            _names_truth([e.texts.get(f) or "" for e in by_strength["oneshot"]], truth[f], families)
            for f in features).to_dict()
    for name in ("offline", "llm"):
        if name not in explained:
            continue
        seen, missed = [], []
        why: dict[str, int] = {}
        for i, f in enumerate(features):
            rec = explained[name].records.get(f)
            texts = [t for e in (rec.evidence if rec else []) if e.get("role") == "steered"
                     for t in e["result"]["texts"]]
            has = _names_truth(texts, truth[f], families)
            seen.append(has)
            if has and not rows[name][i].word:
                missed.append(f)
                reason = _miss_reason(rows[name][i], texts, truth[f], families, baseline_texts(rec))
                why[reason] = why.get(reason, 0) + 1
        out[f"{name}_evidence"] = rate(seen).to_dict()
        out[f"{name}_judge_missed"] = {"n": len(missed), "features": missed,
                                       "why": dict(sorted(why.items(), key=lambda kv: -kv[1]))}
    return out


def baseline_texts(rec: Any) -> set[str]:
    return {t for e in (rec.evidence if rec else []) if e.get("role") == "baseline" for t in e["result"]["texts"]}


def _miss_reason(row: Scored, texts: Sequence[str], truth: dict[str, Any], families: dict[str, list[str]],
                 baseline: set[str]) -> str:
    """Why an explanation misses a value its evidence named: a coarse class, for the judge's authors."""
    if row.word_lenient:
        return "names the value and a rival value of its family"
    changed = [t for t in texts if t not in baseline]
    share = sum(_names_truth([t], truth, families) for t in changed) / max(1, len(changed))
    if share >= 0.999:
        return "in every changed description, left out"
    if share >= 0.5:
        return "in most changed descriptions, left out"
    return "in a minority of changed descriptions"


def _bar(metrics: dict[str, Any]) -> dict[str, Any]:
    """The toy-world bar, where the modes it names were run."""
    modes, controls = metrics["modes"], metrics["controls"]
    out: dict[str, Any] = {"thresholds": BAR}
    off = modes.get("offline", {}).get("word", {}).get("rate")
    one = modes.get("oneshot-best", {}).get("word", {}).get("rate")
    if off is not None:
        out["pipeline_rate"] = off
        out["pipeline_ok"] = off >= BAR["pipeline_min"]
    if off is not None and one is not None:
        out["margin_over_oneshot"] = round(off - one, 6)
        out["margin_ok"] = off - one >= BAR["margin_over_oneshot"] - 1e-9
        # The rate the margin asks for, beside the most that steering evidence can give: an oracle
        # picking each feature's best strength of the schedule (any judge reading those descriptions).
        out["margin_needs_rate"] = round(one + BAR["margin_over_oneshot"], 6)
        ceiling = metrics.get("diagnostics", {}).get("oneshot_any_strength", {}).get("rate")
        if ceiling is not None:
            out["steering_ceiling"] = ceiling
    ctrl = {}
    if "random-offline" in controls:
        ctrl["random-offline"] = controls["random-offline"]["word"]["rate"]
    if "offline" in controls.get("permuted", {}):
        ctrl["permuted-offline"] = controls["permuted"]["offline"]["word"]["rate"]
    if ctrl:
        out["controls"] = ctrl
        out["controls_ok"] = all(v is not None and v <= BAR["controls_max"] for v in ctrl.values())
    checks = [out[k] for k in ("pipeline_ok", "margin_ok", "controls_ok") if k in out]
    out["met"] = bool(checks) and all(checks) and len(checks) == 3
    return out


def _forced_choice(inp: Inputs, cfg: EvalConfig, features: list[int], strengths: list[float],
                   readers: dict[str, M.Explained]) -> dict[str, Any]:
    from agent.eval.forced_choice import forced_choice, make_trials

    texts = M.heldout_texts(inp.cache, inp.engine, features, strengths, cfg.seed, cfg.fc_samples)
    trials = make_trials(features, features, cfg.fc_distractors, cfg.seed)
    out: dict[str, Any] = {"n_trials": len(trials), "chance": round(1 / (1 + cfg.fc_distractors), 6),
                           "descriptions_per_set": len(strengths) * cfg.fc_samples, "embedding": {}, "llm": {}}
    for name, e in readers.items():
        if inp.embedder is not None:
            res = forced_choice(trials, e.texts, texts, inp.embedder)
            out["embedding"][name] = {k: v for k, v in res.items() if k != "trials"}
        if inp.chooser is not None:
            res = forced_choice(trials, e.texts, texts, inp.chooser)
            out["llm"][name] = {k: v for k, v in res.items() if k != "trials"}
    if inp.chooser is not None:
        out["llm_reader"] = inp.chooser.describe()
        out["llm_tokens"] = inp.chooser.tokens
    return out


def _clip(inp: Inputs, cfg: EvalConfig, topk: Any, features: list[int],
          readers: dict[str, M.Explained]) -> dict[str, Any]:
    from agent.eval.clip_score import clip_similarity, masked_top_images

    model, processor = inp.clip  # type: ignore[misc]
    images = [masked_top_images(topk, f, cfg.n_images) for f in features]
    perm = derangement(features, cfg.seed)
    out: dict[str, Any] = {"model": getattr(model.config, "_name_or_path", None) or type(model).__name__}
    for name, e in readers.items():
        matched = clip_similarity(model, processor, images, [e.texts.get(f) or "" for f in features])
        swapped = clip_similarity(model, processor, images, [e.texts.get(perm.get(f, f)) or "" for f in features])
        pairs = [(a, b) for a, b in zip(matched, swapped) if a is not None and b is not None]
        out[name] = {"n": len(pairs),
                     "matched": round(statistics.fmean(a for a, _ in pairs), 6) if pairs else None,
                     "permuted": round(statistics.fmean(b for _, b in pairs), 6) if pairs else None,
                     "matched_wins": rate(a > b for a, b in pairs).to_dict()}
    return out
