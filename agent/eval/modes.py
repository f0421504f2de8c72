"""The explaining modes an evaluation compares, each producing one text per feature:
one-shot steering per strength, the agent loop (offline or LLM judge), top-k and hybrid."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.run.config import RunConfig, SweepConfig
from agent.eval.cache import EvalCache, digest
from agent.eval.control import RandomDirectionEngine
from agent.probes import Probe
from agent.store.records import FeatureRecord
from agent.run.sweep import baseline_probe, steered_probe
from agent.world import WORLD_KEYS

log = logging.getLogger(__name__)

HELD_OUT_SEED = 104_729
"""Added to the seed of forced-choice descriptions, so they are sampled apart from anything the
explainers saw."""
TOPK_SCENE_SEED = 5_000
"""Seed stream of the toy scenes rendered for the evaluation's top-k (apart from the build's)."""


@dataclass
class Explained:
    """What one mode said about each feature."""

    mode: str
    texts: dict[int, str | None]
    """feature -> explanation (None: the mode produced none, e.g. a failed record)."""
    strength: float | None = None
    """The one global strength of a one-shot or hybrid mode."""
    records: dict[int, FeatureRecord] = field(default_factory=dict)
    """The agent's records (pipeline modes)."""
    extra: dict[str, Any] = field(default_factory=dict)


def sweep_config(strengths: Sequence[float], seed: int) -> SweepConfig:
    return SweepConfig(strengths=tuple(float(s) for s in strengths), seed=seed)


# ----------------------------------------------------------------------------- one-shot steering


def oneshot(cache: EvalCache, engine: Any, features: Sequence[int], strengths: Sequence[float], seed: int,
            direction: str = "feature") -> tuple[list[Explained], str]:
    """The paper's plain steering: one greedy description per feature at one global strength, for
    every strength of the schedule. Returns one Explained per strength and the unsteered answer.

    The probes are the agent sweep's own (same seed, greedy), so the pipeline reuses them.
    """
    sweep = sweep_config(strengths, seed)
    base = baseline_probe(sweep)
    probes: list[Probe] = [base]
    for s in strengths:
        for f in features:
            p = steered_probe(f, s, sweep)
            probes.append(p if direction == "feature" else Probe(feature=f, strength=float(s), seed=seed,
                                                                 base_image=sweep.base_image, direction="random"))
    results = cache.run_probes(engine, probes)
    baseline = results[0].texts[0] if results[0].texts else ""
    out: list[Explained] = []
    it = iter(results[1:])
    name = "oneshot" if direction == "feature" else "oneshot-random"
    for s in strengths:
        rows = {f: next(it) for f in features}
        out.append(Explained(name, {f: r.texts[0] for f, r in rows.items()}, strength=float(s),
                             extra={"kl": {f: float(r.kl_first) for f, r in rows.items()}}))
    return out, baseline


# ----------------------------------------------------------------------------- the agent loop


def run_config(strengths: Sequence[float], seed: int, max_rounds: int, max_probes: int,
               rejudge: bool) -> RunConfig:
    return RunConfig(sweep=sweep_config(strengths, seed), max_rounds=max_rounds, max_probes=max_probes,
                     rejudge=rejudge)


def pipeline(cache: EvalCache, engine: Any, judge: Any, features: Sequence[int], config: RunConfig,
             name: str, topk: Path | None = None) -> Explained:
    """The multi-strength agent loop (``agent.run.run_features``) over ``features``.

    Records go to a store of their own, keyed by everything that shapes them; probes and judge
    calls come from (and go to) the evaluation's shared cache. A deterministic (offline) judge is
    re-asked every time, so the figures follow its current code; an LLM judge's records are kept
    and resumed like any run's. ``topk``: the collection whose top-k / hybrid descriptions the judge
    also reads, for a config whose evidence asks for them.
    """
    from agent.run import run_features

    key = digest({"engine": engine.fingerprint(), "judge": judge.describe(), "config": config.to_dict()})
    store = cache.mode_store(f"{name}-{key}")
    summary = run_features(engine, judge, store, list(features), config, topk=topk)
    if summary.stop_reason is not None:
        log.warning("%s: the run stopped early (%s): %s", name, summary.stop_reason, summary.fatal_error or "")
    records = {r.feature: r for r in store.list_records(features)}
    texts = {f: (records[f].explanation if f in records and records[f].status == "done" else None) for f in features}
    return Explained(name, texts, records=records,
                     extra={"stop_reason": summary.stop_reason, "fatal_error": summary.fatal_error,
                            "store": str(Path(store.path))})


def random_pipeline(cache: EvalCache, engine: Any, judge: Any, features: Sequence[int],
                    config: RunConfig) -> Explained:
    """The agent loop run on norm-matched random directions in place of each feature's own."""
    wrapped = RandomDirectionEngine(engine, features)
    out = pipeline(cache, wrapped, judge, features, config, "random")
    out.mode = "random-" + out.mode
    return out


# ----------------------------------------------------------------------------- top-k and hybrid


def toy_topk(cache: EvalCache, engine: Any, n_scenes: int) -> Any:
    """A top-k collection over freshly rendered toy scenes, made once per world and kept."""
    from steering.topk import (
        EncoderSpec,
        FolderSource,
        TopKConfig,
        collect_topk,
        write_toy_scenes,
    )

    fp = engine.fingerprint()
    root = cache.root / "topk" / f"toy-{n_scenes}-{digest({k: fp.get(k) for k in WORLD_KEYS})}"
    images = root / "images"
    if not (images / "scenes.json").is_file():
        write_toy_scenes(images, n_scenes, TOPK_SCENE_SEED)
    spec = EncoderSpec.from_vlm(engine.vlm, engine.sae, engine.layer)
    return collect_topk(spec, engine.sae, FolderSource(images), root / "collection", TopKConfig(k=10),
                        progress=False)


def describe_modes(cache: EvalCache, engine: Any, topk: Any, features: Sequence[int],
                   hybrid_strengths: Sequence[float], n_images: int, with_topk: bool = True) -> list[Explained]:
    """Top-k (and hybrid at each strength) descriptions of ``features``, cached per request."""
    from steering.probes import EvidenceRequest
    from steering.topk.describe import EvidenceResult, describe, fingerprint

    fp = fingerprint(engine, topk)
    requests = ([EvidenceRequest(f, "topk", 0.0, n_images) for f in features] if with_topk else [])
    requests += [EvidenceRequest(f, "hybrid", float(s), n_images) for s in hybrid_strengths for f in features]
    found: dict[int, EvidenceResult] = {}
    todo = []
    for i, r in enumerate(requests):
        hit = cache.get_evidence(r.key(fp))
        if hit is not None:
            found[i] = EvidenceResult.from_dict(hit)
        else:
            todo.append(i)
    if todo:
        log.info("describing %d top-k/hybrid requests (%d from the cache)", len(todo), len(found))
        results = describe(engine, topk, [requests[i] for i in todo])
        for i, res in zip(todo, results):
            cache.put_evidence(requests[i].key(fp), res.to_dict())
            found[i] = res
    out: list[Explained] = []
    groups: dict[tuple[str, float], dict[int, str | None]] = {}
    for i, r in enumerate(requests):
        res = found[i]
        groups.setdefault((r.mode, r.strength), {})[r.feature] = res.texts[0] if res.texts else None
    for (mode, s), texts in groups.items():
        out.append(Explained(mode, texts, strength=s if mode == "hybrid" else None))
    return out


def heldout_texts(cache: EvalCache, engine: Any, features: Sequence[int], strengths: Sequence[float], seed: int,
                  samples: int) -> dict[int, list[str]]:
    """Sampled descriptions of each feature at every strength, with a seed no explainer used."""
    probes = [Probe(feature=f, strength=float(s), samples=samples, seed=seed + HELD_OUT_SEED, greedy=False)
              for f in features for s in strengths]
    out: dict[int, list[str]] = {f: [] for f in features}
    for r in cache.run_probes(engine, probes):
        out[int(r.probe.feature)].extend(r.texts)  # type: ignore[arg-type]
    return out
