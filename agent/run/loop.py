"""The loop for one feature: opening sweep, judge rounds with requested probes, a final record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.run.config import RunConfig
from agent.run.events import JudgeDecided, RunEvent
from agent.judges.evidence import Evidence
from agent.judges.base import Judge, JudgeCache, JudgeCallError, JudgeContext, PastTurn, Usage
from agent.probes import ProbeResult, describe_probe
from agent.store.records import FeatureRecord
from agent.run.batcher import EngineFailed
from agent.run.images import ImageEvidenceService
from agent.run.activation import ActivationService
from agent.run.probes import ProbeService
from agent.run.sweep import calibrate, requested_probe, sweep_probes
from steering.activation_tests import ActivationTest, ActivationTestResult
from steering.probes import EvidenceRequest


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
    """Called with a factory taking ``stats=``; the scheduler fills in its statistics."""
    cache: JudgeCache | None = None
    background: asyncio.Future[list[ProbeResult]] | None = None
    run_id: str = ""
    notes: dict[int, str] = field(default_factory=dict)
    on_round: Callable[[int, int], None] | None = None
    on_usage: Callable[[Usage, bool, list[dict[str, Any]]], None] | None = None
    images: ImageEvidenceService | None = None
    """Top-k / hybrid descriptions (None: the judge reads steering evidence only)."""
    image_requests: tuple[tuple[str, float], ...] = ()
    """(mode, strength) of the image descriptions every feature gets."""
    topk_images: int = 5
    judge_images: bool = False
    """Attach the masked top images to the judge's first message."""
    activation: ActivationService | None = None
    """Activation tests (None: the judge cannot ask for them: a pool of remote engines, or --max-tests 0)."""
    on_step: Callable[[int, str, int], None] | None = None
    """(feature, phase, round): the feature took a step of agent.run.phases.PHASES (for progress)."""


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
        if v.dropped:
            entry["dropped"] = [d.model_dump() for d in v.dropped]
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
    loop = _FeatureLoop(feature, lc)
    try:
        await loop.opening()
    except EngineFailed as exc:
        return loop.finish(status="failed", error=str(exc))
    loop.step("sweep")
    await loop.read_background()
    return await loop.judge_rounds()


class _FeatureLoop:
    """One feature's loop: the evidence, transcript, usage and timings its record is made of."""

    def __init__(self, feature: int, lc: LoopContext) -> None:
        self.feature, self.lc = feature, lc
        self.t0 = time.perf_counter()
        self.timings = {"probes": 0.0, "judge": 0.0}
        if lc.images is not None:
            self.timings["images"] = 0.0
        self.usage = Usage()
        self.replayed = Usage()
        """What the judge replies served from the store cost when first asked (kept in the record)."""
        self.evidence = Evidence()
        self.transcript: list[dict[str, Any]] = []
        self.record = FeatureRecord(feature=feature, status="failed", judge=lc.judge.describe(), world=lc.world,
                                    fingerprint=lc.fingerprint,
                                    prompt_versions=list(lc.fingerprint.get("prompts", [])), run_id=lc.run_id,
                                    note=lc.notes.get(feature, lc.config.note))
        self.strengths: list[float] = []
        self.pictures: list[str] = []
        self.background: list[ProbeResult] = []
        self.history: list[PastTurn] = []
        self.probes_used = 0
        self.tests_used = 0

    def finish(self, **fields: Any) -> FeatureRecord:
        record = self.record
        for k, v in fields.items():
            setattr(record, k, v)
        record.transcript = self.transcript
        record.evidence = [i.to_dict() for i in self.evidence.items]
        record.image_evidence = [i.to_dict() for i in self.evidence.images]
        record.test_evidence = [i.to_dict() for i in self.evidence.tests]
        record.usage = self.usage.to_dict()
        if self.replayed.total_tokens:  # a replay keeps the stored cost instead of writing 0 over it
            total = Usage(**{**self.usage.__dict__})
            total.add(self.replayed)
            record.usage = {**total.to_dict(), "replayed_tokens": self.replayed.total_tokens}
        record.n_probes = len(self.evidence.items)
        self.timings["total"] = time.perf_counter() - self.t0
        record.timings = {k: round_s(v) for k, v in self.timings.items()}
        return record

    def step(self, phase: str, rnd: int = 0) -> None:
        if self.lc.on_step is not None:
            self.lc.on_step(self.feature, phase, rnd)

    async def run_probes(self, probes: list[Any]) -> list[ProbeResult]:
        return await _timed(self.lc.probes.run(probes), self.timings, "probes")

    # ------------------------------------------------------------------ 1. the opening

    async def opening(self) -> None:
        """The opening sweep, and the top-k / hybrid descriptions (queued first: they share engine calls)."""
        lc, feature, sweep = self.lc, self.feature, self.lc.config.sweep
        image_task = None
        if lc.images is not None and lc.image_requests:
            requests = [EvidenceRequest(feature, mode, strength, lc.topk_images) for mode, strength in lc.image_requests]
            image_task = asyncio.ensure_future(_timed(lc.images.get(requests), self.timings, "images"))
        try:
            if sweep.calibrate:
                self.strengths, _ = await calibrate(feature, self.run_probes, sweep, max(lc.strengths) * 2)
            else:
                self.strengths = list(lc.strengths)
            probes = sweep_probes(feature, self.strengths, sweep)
            self.evidence.add(await self.run_probes(probes), round=1)
            if image_task is not None:
                images = await image_task
                self.evidence.add_images(images, round=1)
                if lc.judge_images and any(r.texts for r in images):
                    self.pictures = await _timed(lc.images.pictures(feature, lc.topk_images),  # type: ignore[union-attr]
                                                 self.timings, "images")
        finally:
            if image_task is not None and not image_task.done():
                image_task.cancel()
        self.transcript.append({"round": 0, "kind": "sweep", "strengths": self.strengths, "calibrated": sweep.calibrate,
                                "probes": [describe_probe(p) for p in probes]})
        if self.evidence.images:
            self.transcript.append({"round": 0, "kind": "images", "ids": [i.id for i in self.evidence.images],
                                    "modes": [i.role for i in self.evidence.images], "pictures": len(self.pictures)})

    async def read_background(self) -> None:
        """The probes shared by every feature (an offline judge compares against them)."""
        if self.lc.background is not None:
            try:
                self.background = list(await asyncio.shield(self.lc.background))
            except EngineFailed:
                self.background = []

    # ------------------------------------------------------------------ 2. judge rounds

    async def judge_rounds(self) -> FeatureRecord:
        cfg = self.lc.config
        for rnd in range(1, cfg.max_rounds + 1):
            if self.lc.on_round:
                self.lc.on_round(self.feature, rnd)
            force = self.must_finish(rnd)
            try:
                turn = await self.ask(self.context(rnd, force))
            except JudgeCallError as exc:
                self.transcript.append({"round": rnd, "kind": "error", "error": str(exc)})
                return self.finish(status="failed", error=str(exc), rounds=rnd)
            ended = self.conclude(rnd, turn, force)
            if ended is None:
                ended = await self.more_probes(rnd, turn)
            if ended is not None:
                return ended
        return self.finish(status="failed", rounds=cfg.max_rounds, error="no final answer within the round budget")

    def must_finish(self, rnd: int) -> bool:
        """This round must give the final answer: the last round, or a probe or token budget spent."""
        cfg = self.lc.config
        over_tokens = cfg.max_feature_tokens is not None and self.usage.total_tokens >= cfg.max_feature_tokens
        return rnd == cfg.max_rounds or self.probes_used >= cfg.max_probes or over_tokens or self.lc.budget.exhausted

    def context(self, rnd: int, force: bool) -> JudgeContext:
        lc, cfg = self.lc, self.lc.config
        return JudgeContext(
            feature=self.feature, round=rnd, max_rounds=cfg.max_rounds, evidence=self.evidence, history=self.history,
            background=self.background, strengths=self.strengths, force_final=force,
            probes_left=max(0, cfg.max_probes - self.probes_used), max_samples=cfg.max_probe_samples,
            note=lc.notes.get(self.feature, cfg.note),
            world={**lc.world, "base_image": cfg.sweep.base_image, "tests": self.test_kinds(),
                   "tests_left": max(0, cfg.max_tests - self.tests_used)},
            cache=lc.cache, read_cache=not (cfg.force or cfg.rejudge), pictures=self.pictures,
        )

    def test_kinds(self) -> list[str]:
        """The activation tests the judge may ask for now (none once its budget is spent)."""
        lc = self.lc
        if lc.activation is None or self.tests_used >= lc.config.max_tests:
            return []
        return lc.activation.kinds()

    async def ask(self, ctx: JudgeContext) -> Any:
        """One judge turn (within the run's judge slots), counted and written to the transcript."""
        lc, rnd = self.lc, ctx.round
        t = time.perf_counter()
        try:
            async with lc.judge_slots:
                turn = await lc.judge.decide(ctx)
        finally:
            self.timings["judge"] += time.perf_counter() - t
        self.usage.add(turn.usage)
        self.replayed.add(getattr(turn, "replayed", Usage()))
        lc.budget.spend(turn.usage)
        if lc.on_usage:
            lc.on_usage(turn.usage, turn.cached, list(getattr(turn, "calls", [])))
        self.transcript.append(_verdict_entry(rnd, turn))
        v = turn.verdict
        lc.emit(lambda stats: JudgeDecided(
            stats=stats, feature=self.feature, round=rnd, action=v.action if v else None,
            hypothesis=v.hypothesis if v else None, confidence=v.confidence if v else None,
            tokens=turn.usage.total_tokens, cached=turn.cached, attempts=turn.attempts))
        self.step("judge", rnd)
        return turn

    def conclude(self, rnd: int, turn: Any, force: bool) -> FeatureRecord | None:
        """The record when this turn ends the loop (no valid verdict, a final answer, a forced round)."""
        v = turn.verdict
        if v is None or force and v.action != "final":
            # The failing reply is kept once, as the record's raw_reply, not again in its transcript entry.
            self.transcript[-1].pop("raw", None)
        if v is None:
            return self.finish(status="failed", rounds=rnd, raw_reply=turn.raw,
                               error=f"no valid verdict after {turn.attempts} replies: {turn.error}")
        if v.action == "final":
            return self.finish(status="done", rounds=rnd, explanation=v.explanation, label=v.label,
                               confidence=v.confidence, hypothesis=v.hypothesis, forced=force)
        if force:  # a judge that ignores a forced final gets no explanation out of it
            return self.finish(status="failed", rounds=rnd, raw_reply=turn.raw, hypothesis=v.hypothesis,
                               error="the judge asked for more probes after the budget was spent")
        return None

    async def more_probes(self, rnd: int, turn: Any) -> FeatureRecord | None:
        """Run the probes the judge asked for; a record only when the engine fails. Requests out of bounds
        were set aside when the verdict was read (Verdict.dropped): the judge reads why in the next round."""
        cfg, v = self.lc.config, turn.verdict
        requests = v.probes[: cfg.max_probes - self.probes_used]
        max_strength = max(self.strengths, default=1.0) * 16
        new = [requested_probe(self.feature, r, cfg.sweep, rnd, max_strength) for r in requests]
        kinds = self.test_kinds()
        asked = v.tests[: max(0, cfg.max_tests - self.tests_used)]
        tests = [ActivationTest(self.feature, t.kind, t.family if t.kind == "render" else None,
                                t.edit if t.kind == "edit" else None,
                                tuple(sorted(t.hold)) if t.kind == "render" else ()) for t in asked]
        offered = [t for t in tests if t.kind in kinds]
        try:
            results = await self.run_probes(new) if new else []
            ran = await _timed(self.lc.activation.run(offered), self.timings, "tests") if offered else []  # type: ignore[union-attr]
        except EngineFailed as exc:
            return self.finish(status="failed", rounds=rnd, hypothesis=v.hypothesis, error=str(exc))
        self.evidence.add(results, round=rnd + 1, reasons=[r.reason for r in requests])
        by_test = dict(zip(offered, ran))
        offer = ", ".join(kinds) or "none"
        read = [by_test.get(t) or ActivationTestResult(test=t, error=f"this world offers no {t.kind} tests now (it "
                                                                      f"offers: {offer})") for t in tests]
        self.evidence.add_tests(read, round=rnd + 1, reasons=[t.reason for t in asked])
        self.tests_used += len(tests)
        entry: dict[str, Any] = {"round": rnd, "kind": "probes", "probes": [describe_probe(p) for p in new]}
        if tests:
            entry["tests"] = [t.name() for t in tests]
        if v.dropped:
            entry["dropped"] = [d.line() for d in v.dropped]
        self.transcript.append(entry)
        self.probes_used += len(new)
        self.history.append(PastTurn(round=rnd, verdict=v, raw=turn.raw))
        self.step("followup", rnd)
        self.step("tests", rnd)
        return None
