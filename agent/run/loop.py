"""The loop for one feature: opening sweep, judge rounds with requested probes, a final record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.config import RunConfig
from agent.events import JudgeDecided, RunEvent
from agent.evidence import Evidence
from agent.run.images import ImageEvidenceService, ImageRequest
from agent.judges.base import Judge, JudgeCache, JudgeCallError, JudgeContext, PastTurn, Usage
from agent.run.batcher import EngineFailed
from agent.run.probes import ProbeService
from agent.probes import ProbeResult, describe_probe
from agent.records import FeatureRecord
from agent.run.sweep import calibrate, requested_probe, sweep_probes


class TokenBudget:
    """Judge tokens a whole run may spend (None: unlimited)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, usage: Usage) -> None:
        self.spent += usage.total_tokens

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit


@dataclass
class LoopContext:
    """What every feature loop of a run shares."""

    config: RunConfig
    probes: ProbeService
    judge: Judge
    judge_slots: asyncio.Semaphore
    strengths: list[float]
    world: dict[str, Any]
    fingerprint: dict[str, Any]
    budget: TokenBudget
    emit: Callable[[Callable[..., RunEvent]], None]
    """Called with a factory taking ``stats=``; the runner fills in its statistics."""
    cache: JudgeCache | None = None
    background: asyncio.Future[list[ProbeResult]] | None = None
    run_id: str = ""
    notes: dict[int, str] = field(default_factory=dict)
    on_round: Callable[[int, int], None] | None = None
    on_usage: Callable[[Usage, bool], None] | None = None
    images: ImageEvidenceService | None = None
    """Top-k / hybrid descriptions (None: the judge reads steering evidence only)."""
    image_requests: tuple[tuple[str, float], ...] = ()
    """(mode, strength) of the image descriptions every feature gets."""
    topk_images: int = 5
    judge_images: bool = False
    """Attach the masked top images to the judge's first message."""


def _verdict_entry(round: int, turn: Any) -> dict[str, Any]:
    v = turn.verdict
    entry: dict[str, Any] = {
        "round": round, "kind": "verdict", "attempts": turn.attempts, "cached": turn.cached,
        "tokens": turn.usage.total_tokens, "cost_usd": turn.usage.cost_usd, "seconds": round_s(turn.seconds),
        "raw": turn.raw, "calls": turn.calls,
    }
    if v is None:
        entry.update(kind="invalid", error=turn.error)
    else:
        entry.update(v.model_dump(exclude_none=True))
    return entry


def round_s(x: float) -> float:
    return round(float(x), 4)


async def _timed(awaitable: Any, timings: dict[str, float], key: str) -> Any:
    t = time.perf_counter()
    try:
        return await awaitable
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t


async def explain_feature(feature: int, lc: LoopContext) -> FeatureRecord:
    """Run the whole loop for ``feature`` and return its record (not yet stored).

    Raises JudgeFatalError (the run must stop) and CancelledError; every other failure ends in a
    ``failed`` record.
    """
    cfg, sweep = lc.config, lc.config.sweep
    t0 = time.perf_counter()
    timings = {"probes": 0.0, "judge": 0.0}
    if lc.images is not None:
        timings["images"] = 0.0
    usage = Usage()
    evidence = Evidence()
    transcript: list[dict[str, Any]] = []
    record = FeatureRecord(feature=feature, status="failed", judge=lc.judge.describe(), world=lc.world,
                           fingerprint=lc.fingerprint, prompt_versions=list(lc.fingerprint.get("prompts", [])),
                           run_id=lc.run_id)

    def finish(**fields: Any) -> FeatureRecord:
        for k, v in fields.items():
            setattr(record, k, v)
        record.transcript = transcript
        record.evidence = [i.to_dict() for i in evidence.items]
        record.image_evidence = [i.to_dict() for i in evidence.images]
        record.usage = usage.to_dict()
        record.n_probes = len(evidence.items)
        timings["total"] = time.perf_counter() - t0
        record.timings = {k: round_s(v) for k, v in timings.items()}
        return record

    async def run_probes(probes: list[Any]) -> list[ProbeResult]:
        t = time.perf_counter()
        try:
            return await lc.probes.run(probes)
        finally:
            timings["probes"] += time.perf_counter() - t

    # 1. The opening sweep, and the top-k / hybrid descriptions (queued first: they share engine calls).
    image_task = None
    if lc.images is not None and lc.image_requests:
        requests = [ImageRequest(feature, mode, strength, lc.topk_images) for mode, strength in lc.image_requests]
        image_task = asyncio.ensure_future(_timed(lc.images.get(requests), timings, "images"))
    pictures: list[str] = []
    try:
        try:
            if sweep.calibrate:
                s_max = max(lc.strengths) * 2
                strengths, _ = await calibrate(feature, run_probes, sweep, s_max)
            else:
                strengths = list(lc.strengths)
            probes = sweep_probes(feature, strengths, sweep)
            evidence.add(await run_probes(probes), round=1)
            if image_task is not None:
                images = await image_task
                evidence.add_images(images, round=1)
                if lc.judge_images and any(r.texts for r in images):
                    pictures = await _timed(lc.images.pictures(feature, lc.topk_images), timings,  # type: ignore[union-attr]
                                            "images")
        except EngineFailed as exc:
            return finish(status="failed", error=str(exc))
    finally:
        if image_task is not None and not image_task.done():
            image_task.cancel()
    transcript.append({"round": 0, "kind": "sweep", "strengths": strengths, "calibrated": sweep.calibrate,
                       "probes": [describe_probe(p) for p in probes]})
    if evidence.images:
        transcript.append({"round": 0, "kind": "images", "ids": [i.id for i in evidence.images],
                           "modes": [i.role for i in evidence.images], "pictures": len(pictures)})
    background: list[ProbeResult] = []
    if lc.background is not None:
        try:
            background = list(await asyncio.shield(lc.background))
        except EngineFailed:
            background = []
    max_strength = max(strengths, default=1.0) * 16

    # 2. Judge rounds.
    history: list[PastTurn] = []
    probes_used = 0
    for rnd in range(1, cfg.max_rounds + 1):
        if lc.on_round:
            lc.on_round(feature, rnd)
        over_tokens = cfg.max_feature_tokens is not None and usage.total_tokens >= cfg.max_feature_tokens
        force = rnd == cfg.max_rounds or probes_used >= cfg.max_probes or over_tokens or lc.budget.exhausted
        ctx = JudgeContext(
            feature=feature, round=rnd, max_rounds=cfg.max_rounds, evidence=evidence, history=history,
            background=background, strengths=strengths, force_final=force,
            probes_left=max(0, cfg.max_probes - probes_used), max_samples=cfg.max_probe_samples,
            note=lc.notes.get(feature, cfg.note), world={**lc.world, "base_image": sweep.base_image},
            cache=lc.cache, read_cache=not (cfg.force or cfg.rejudge), pictures=pictures,
        )
        t = time.perf_counter()
        try:
            async with lc.judge_slots:
                turn = await lc.judge.decide(ctx)
        except JudgeCallError as exc:
            timings["judge"] += time.perf_counter() - t
            transcript.append({"round": rnd, "kind": "error", "error": str(exc)})
            return finish(status="failed", error=str(exc), rounds=rnd)
        timings["judge"] += time.perf_counter() - t
        usage.add(turn.usage)
        lc.budget.spend(turn.usage)
        if lc.on_usage:
            lc.on_usage(turn.usage, turn.cached)
        transcript.append(_verdict_entry(rnd, turn))
        v = turn.verdict
        lc.emit(lambda stats, v=v, turn=turn, rnd=rnd: JudgeDecided(
            stats=stats, feature=feature, round=rnd, action=v.action if v else None,
            hypothesis=v.hypothesis if v else None, confidence=v.confidence if v else None,
            tokens=turn.usage.total_tokens, cached=turn.cached, attempts=turn.attempts))
        if v is None:
            return finish(status="failed", rounds=rnd, raw_reply=turn.raw,
                          error=f"no valid verdict after {turn.attempts} replies: {turn.error}")
        if v.action == "final":
            return finish(status="done", rounds=rnd, explanation=v.explanation, label=v.label,
                          confidence=v.confidence, hypothesis=v.hypothesis, forced=force)
        if force:  # a judge that ignores a forced final gets no explanation out of it
            return finish(status="failed", rounds=rnd, raw_reply=turn.raw, hypothesis=v.hypothesis,
                          error="the judge asked for more probes after the budget was spent")
        requests = v.probes[: cfg.max_probes - probes_used]
        new = [requested_probe(feature, r, sweep, rnd, max_strength) for r in requests]
        try:
            results = await run_probes(new)
        except EngineFailed as exc:
            return finish(status="failed", rounds=rnd, hypothesis=v.hypothesis, error=str(exc))
        evidence.add(results, round=rnd + 1, reasons=[r.reason for r in requests])
        transcript.append({"round": rnd, "kind": "probes", "probes": [describe_probe(p) for p in new]})
        probes_used += len(new)
        history.append(PastTurn(round=rnd, verdict=v, raw=turn.raw))
    return finish(status="failed", rounds=cfg.max_rounds, error="no final answer within the round budget")
