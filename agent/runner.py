"""The scheduler: many feature loops in flight, probes packed into shared engine batches, judge calls
bounded by a semaphore, results stored as each feature finishes. Importable (the TUI drives it from
a worker thread) as well as used by the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import RunConfig
from agent.events import (
    FeatureFinished,
    FeatureSkipped,
    FeatureStarted,
    ProbesFinished,
    RunError,
    RunEvent,
    RunFinished,
    RunPlanned,
    RunStarted,
    RunStats,
)
from agent.image_evidence import (
    Describer,
    ImageEvidenceService,
    TopKDescriber,
    default_hybrid_strength,
    reference_hybrid_strength,
)
from agent.judges.base import Judge, JudgeFatalError, JudgeQuotaError, Usage
from agent.leases import FeatureLeases
from agent.loop import LoopContext, TokenBudget, explain_feature
from agent.probe_service import Engine, ProbeService
from agent.probes import ProbeResult
from agent.records import FeatureRecord, new_run_id
from agent.scale import resolve_strengths
from agent.store import WORLD_KEYS, RecordUnreadable, Store
from agent.sweep import background_probes

log = logging.getLogger(__name__)

EventCallback = Callable[[RunEvent], None]


class RunControl:
    """A handle to stop a run from another thread (Ctrl-C, a TUI button). Thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class RunSummary:
    """How a run ended."""

    stats: RunStats
    statuses: dict[int, str] = field(default_factory=dict)
    """feature -> done, failed, skipped-done, skipped-reviewed, unreadable, not-started."""
    records: dict[int, FeatureRecord] = field(default_factory=dict)
    """Records this run produced."""
    strengths: list[float] = field(default_factory=list)
    strength_source: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    """Why the run stopped early: cancelled, interrupted, budget, quota, fatal judge error."""
    fatal_error: str | None = None
    images: dict[str, Any] = field(default_factory=dict)
    """Top-k / hybrid evidence of the run: modes, hybrid strength and how it was chosen, collection."""

    @property
    def complete(self) -> bool:
        return all(s in ("done", "skipped-done", "skipped-reviewed") for s in self.statuses.values())

    @property
    def exit_code(self) -> int:
        """0 when every feature is done, 1 otherwise (failed, unreadable, or left by a stop)."""
        return 0 if self.complete and self.stop_reason is None else 1


def _leases(store: Store | None, run_id: str, summary: RunSummary, stats: RunStats,
            emit: Callable[[Callable[..., RunEvent]], None]) -> FeatureLeases | None:
    """This run's feature leases on ``store``; a feature another run finishes meanwhile counts as done."""
    if store is None:
        return None

    def done_elsewhere(f: int) -> None:
        summary.statuses[f] = "skipped-done"
        stats.skipped += 1
        emit(lambda stats: FeatureSkipped(stats=stats, feature=f, reason="done"))

    return FeatureLeases(store, run_id, on_done_elsewhere=done_elsewhere)


def world_of(engine: Engine) -> dict[str, Any]:
    fp = engine.fingerprint()
    return {k: fp.get(k) for k in WORLD_KEYS}


EngineSource = Engine | Callable[[], Engine]


def run_features(engine: EngineSource, judge: Judge, store: Store | None, features: Sequence[int],
                 config: RunConfig | None = None, *, on_event: EventCallback | None = None,
                 control: RunControl | None = None, topk: str | Path | None = None,
                 describer: Describer | None = None) -> RunSummary:
    """Explain ``features`` (blocking; runs its own event loop, so call it from a worker thread in a UI).

    ``engine`` may be a zero-argument factory: it is then called only when some feature needs work,
    so a run that the store already answers never loads a model. With ``config.evidence`` other than
    ``steering`` the top-k collection is ``topk`` or the store's (agent.topk.require_topk raises
    TopKMissing without one); ``describer`` replaces the engine-backed one (tests).
    """
    return asyncio.run(arun_features(engine, judge, store, features, config, on_event=on_event, control=control,
                                     topk=topk, describer=describer))


async def arun_features(engine: EngineSource, judge: Judge, store: Store | None, features: Sequence[int],
                        config: RunConfig | None = None, *, on_event: EventCallback | None = None,
                        control: RunControl | None = None, topk: str | Path | None = None,
                        describer: Describer | None = None) -> RunSummary:
    cfg = config or RunConfig()
    control = control or RunControl()
    stats = RunStats(total=len(features))
    summary = RunSummary(stats=stats)
    run_id = new_run_id()

    def emit(factory: Callable[..., RunEvent]) -> None:
        if on_event is None:
            return
        try:
            on_event(factory(stats=stats.snapshot()))
        except Exception:
            log.exception("progress callback failed")

    def error(message: str, feature: int | None = None, fatal: bool = False) -> None:
        stats.errors += 1
        stats.last_error = message
        emit(lambda stats: RunError(stats=stats, message=message, feature=feature, fatal=fatal))

    lazy = not hasattr(engine, "run")
    if not lazy and store is not None:
        store.bind_world(world_of(engine))  # refuse a store made for another world before reading it
    topk_root: Path | None = None
    if cfg.image_modes and describer is None:
        from agent.topk import require_topk

        if store is None and topk is None:
            raise ValueError(f"evidence {cfg.evidence!r} needs a top-k collection: pass topk= or a store")
        topk_root = Path(topk) if store is None else require_topk(store, topk)  # TopKMissing names the fix

    # Which features need work.
    to_run: list[int] = []
    for f in features:
        if store is None or cfg.force and cfg.overwrite_reviewed:
            to_run.append(f)
            continue
        try:
            rec = store.get_record(f)
        except RecordUnreadable as exc:
            if cfg.force:
                to_run.append(f)
                continue
            summary.statuses[f] = "unreadable"
            stats.unreadable += 1
            error(str(exc), feature=f)
            continue
        reviewed = rec is not None and rec.review is not None or (rec is None and store.has_review(f))
        if reviewed and not cfg.overwrite_reviewed:
            summary.statuses[f] = "skipped-reviewed"
            stats.skipped += 1
            emit(lambda stats, f=f: FeatureSkipped(stats=stats, feature=f, reason="reviewed"))
        elif rec is not None and rec.status == "done" and not (cfg.force or cfg.rejudge):
            summary.statuses[f] = "skipped-done"
            stats.skipped += 1
            emit(lambda stats, f=f: FeatureSkipped(stats=stats, feature=f, reason="done"))
        else:
            to_run.append(f)
    stats.to_run = len(to_run)
    emit(lambda stats: RunPlanned(stats=stats, features=list(features), to_run=list(to_run)))
    if not to_run:
        stats.finished = time.monotonic()
        emit(lambda stats: RunStarted(stats=stats, features=list(features), to_run=[], strengths=[],
                                      judge=judge.name, store=str(store.path) if store else ""))
        for f in features:
            summary.statuses.setdefault(f, "not-started")
        emit(lambda stats: RunFinished(stats=stats, summary=summary))
        return summary
    if lazy:
        engine = await asyncio.get_running_loop().run_in_executor(None, engine)  # type: ignore[operator]
    world = world_of(engine)  # type: ignore[arg-type]
    if store is not None:
        store.bind_world(world)
        store.set_meta("last_run", {"run_id": run_id, "config": cfg.to_dict(), "judge": judge.describe(),
                                    "features": len(features)})
        d_sae = getattr(getattr(engine, "sae", None), "d_sae", None)
        if d_sae is not None and store.get_meta("n_features") is None:
            store.set_meta("n_features", int(d_sae))

    def on_batch(n_probes: int, n_rows: int, seconds: float) -> None:
        stats.probes_run += n_probes
        stats.probe_rows += n_rows
        stats.engine_seconds += seconds
        emit(lambda stats: ProbesFinished(stats=stats, n_probes=n_probes, n_rows=n_rows, seconds=seconds))

    service = ProbeService(engine, store, read_cache=not cfg.force, max_batch=cfg.max_batch_probes,
                           on_batch=on_batch)
    images: ImageEvidenceService | None = None
    try:
        strengths, source = await _strengths(engine, cfg, store, service)
        summary.strengths, summary.strength_source = strengths, source
        if cfg.image_modes:
            if describer is None:
                assert topk_root is not None
                describer = TopKDescriber(engine, topk_root)
            images, summary.images = await _image_evidence(engine, cfg, store, service, source, describer)
        emit(lambda stats: RunStarted(stats=stats, features=list(features), to_run=list(to_run),
                                      strengths=list(strengths), judge=judge.name,
                                      store=str(store.path) if store else ""))
        await _run_loops(to_run, cfg, engine, judge, store, service, strengths, world, run_id, stats,
                         summary, control, emit, error, images)
    finally:
        if images is not None:
            await images.close()
        await service.close()
        close = getattr(judge, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001 - closing an HTTP pool must not mask the run's outcome
                log.debug("closing the judge failed", exc_info=True)
    stats.probes_cached = service.cached_hits
    stats.finished = time.monotonic()
    if control.cancelled and summary.stop_reason is None:
        summary.stop_reason = control.reason or "cancelled"
    for f in features:
        summary.statuses.setdefault(f, "not-started")
    stats.not_started = sum(s == "not-started" for s in summary.statuses.values())
    emit(lambda stats: RunFinished(stats=stats, summary=summary))
    return summary


async def _strengths(engine: Engine, cfg: RunConfig, store: Store | None,
                     service: ProbeService) -> tuple[list[float], dict[str, Any]]:
    """The schedule, measuring the hidden-state norm once per engine (remembered in the store)."""
    sweep = cfg.sweep
    if sweep.strengths:
        return resolve_strengths(engine, sweep)
    fp_hash = hashlib.sha256(json.dumps(engine.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]
    meta_key = f"hidden_norm/{fp_hash}/{sweep.base_image}"
    known = store.get_meta(meta_key) if store is not None else None
    strengths, source = await service.call(resolve_strengths, engine, sweep, known)
    if store is not None and "norm" in source and known is None:
        store.set_meta(meta_key, source["norm"])
    return strengths, source


async def _norm(engine: Engine, base_image: str, store: Store | None, service: ProbeService) -> float:
    """The median hidden-state norm at the hooked layer on ``base_image`` (remembered in the store)."""
    from agent.scale import hidden_norm

    fp_hash = hashlib.sha256(json.dumps(engine.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]
    meta_key = f"hidden_norm/{fp_hash}/{base_image}"
    known = store.get_meta(meta_key) if store is not None else None
    if known is not None:
        return float(known)
    norm = float(await service.call(hidden_norm, engine, base_image))
    if store is not None:
        store.set_meta(meta_key, round(norm, 4))
    return norm


async def _image_evidence(engine: Engine, cfg: RunConfig, store: Store | None, service: ProbeService,
                          source: dict[str, Any], describer: Describer) -> tuple[ImageEvidenceService, dict[str, Any]]:
    """Load and check the collection (in the engine's thread) and settle the hybrid strength."""
    fingerprint = await service.call(describer.prepare)  # TopKError: the collection does not fit
    info: dict[str, Any] = {"evidence": cfg.evidence, "modes": list(cfg.image_modes), "n_images": cfg.topk_images,
                            "topk": fingerprint.get("topk"), "judge_images": cfg.judge_images}
    if "hybrid" in cfg.image_modes:
        if cfg.hybrid_strength is not None:
            strength, why = float(cfg.hybrid_strength), "given"
        else:
            fp = engine.fingerprint()
            norm = source.get("norm")
            if norm is None and reference_hybrid_strength(fp.get("sae"), fp.get("layer")) is None:
                norm = await _norm(engine, cfg.sweep.base_image, store, service)  # a fixed --strengths ladder
            strength, why = default_hybrid_strength(fp, norm)
        info.update(hybrid_strength=strength, hybrid_source=why)
    service_ = ImageEvidenceService(describer, fingerprint, service.call, store, read_cache=not cfg.force)
    return service_, info


async def _run_loops(to_run: list[int], cfg: RunConfig, engine: Engine, judge: Judge, store: Store | None,
                     service: ProbeService, strengths: list[float], world: dict[str, Any], run_id: str,
                     stats: RunStats, summary: RunSummary, control: RunControl,
                     emit: Callable[[Callable[..., RunEvent]], None],
                     error: Callable[..., None], images: ImageEvidenceService | None = None) -> None:
    loop = asyncio.get_running_loop()
    budget = TokenBudget(cfg.budget_tokens)
    background: asyncio.Future[list[ProbeResult]] | None = None
    d_sae = getattr(getattr(engine, "sae", None), "d_sae", None)
    shared = background_probes(strengths, cfg.sweep, d_sae)
    if not getattr(judge, "is_llm", True) and shared:
        background = loop.create_task(service.run(shared))

    def on_round(feature: int, rnd: int) -> None:
        stats.in_flight[feature] = rnd
        stats.rounds += 1

    def on_usage(usage: Usage, cached: bool) -> None:
        stats.judge_calls += usage.calls
        stats.judge_cached += int(cached)
        stats.prompt_tokens += usage.prompt_tokens
        stats.completion_tokens += usage.completion_tokens
        if usage.cost_usd is not None:
            stats.cost_usd = (stats.cost_usd or 0.0) + usage.cost_usd

    fingerprint = {"engine": engine.fingerprint(), "sweep": cfg.sweep.to_dict(), "judge": judge.describe(),
                   "max_rounds": cfg.max_rounds, "max_probes": cfg.max_probes,
                   "prompts": list(engine.fingerprint().get("prompts", []))
                   + [p for p in (judge.describe().get("prompts") or [])]}
    image_requests: tuple[tuple[str, float], ...] = ()
    if images is not None:
        info = summary.images
        image_requests = tuple((m, 0.0 if m == "topk" else float(info["hybrid_strength"])) for m in cfg.image_modes)
        fingerprint["evidence"] = {k: info.get(k) for k in ("evidence", "n_images", "topk", "judge_images",
                                                            "hybrid_strength")}
        fingerprint["prompts"] += [p for p in images.fingerprint.get("prompts", []) if p not in fingerprint["prompts"]]
    lc = LoopContext(config=cfg, probes=service, judge=judge, judge_slots=asyncio.Semaphore(max(1, cfg.concurrency)),
                     strengths=strengths, world=world, fingerprint=fingerprint, budget=budget, emit=emit,
                     cache=store, background=background, run_id=run_id, on_round=on_round, on_usage=on_usage,
                     images=images, image_requests=image_requests, topk_images=cfg.topk_images,
                     judge_images=cfg.judge_images and getattr(judge, "is_llm", True))
    queue = list(to_run)
    queue.reverse()
    stop = asyncio.Event()
    leases = _leases(store, run_id, summary, stats, emit)  # concurrent runs on one store share the work

    def halt(reason: str, message: str | None = None) -> None:
        if summary.stop_reason is None:
            summary.stop_reason = reason
            summary.fatal_error = message
        stop.set()

    async def worker() -> None:
        while (queue or leases is not None and leases.deferred) and not stop.is_set():
            if budget.exhausted:  # no new features; the running ones end with a forced final
                if summary.stop_reason is None:
                    summary.stop_reason = "budget"
                    summary.fatal_error = (f"the judge token budget ({budget.limit} tokens) is spent: "
                                           "features not started are left for a rerun")
                return
            f = queue.pop() if leases is None else await leases.next(queue, stop)
            if f is None:
                return
            stats.in_flight[f] = 0
            emit(lambda stats, f=f: FeatureStarted(stats=stats, feature=f))
            try:
                record = await explain_feature(f, lc)
            except JudgeFatalError as exc:
                stats.in_flight.pop(f, None)
                halt("quota" if isinstance(exc, JudgeQuotaError) else "judge", str(exc))
                error(str(exc), feature=f, fatal=True)
                return
            except asyncio.CancelledError:
                stats.in_flight.pop(f, None)
                raise
            except Exception as exc:
                log.exception("feature %d crashed", f)
                record = FeatureRecord(feature=f, status="failed", error=f"internal error: {exc!r}",
                                       judge=judge.describe(), world=world, fingerprint=fingerprint, run_id=run_id)
            stats.in_flight.pop(f, None)
            written = True
            if store is not None:
                try:
                    written = store.put_record(record, overwrite_reviewed=cfg.overwrite_reviewed)
                except Exception as exc:  # noqa: BLE001
                    error(f"could not store feature {f}: {exc}", feature=f)
                    summary.statuses[f] = "failed"
                    stats.failed += 1
                    continue
                finally:
                    if leases is not None:
                        leases.release(f)
            summary.records[f] = record
            summary.statuses[f] = record.status
            if record.status == "done":
                stats.done += 1
            else:
                stats.failed += 1
                error(f"feature {f} failed: {record.error}", feature=f)
            emit(lambda stats, f=f, record=record, written=written: FeatureFinished(
                stats=stats, feature=f, record=record, written=written))

    async def watch() -> None:
        while not stop.is_set():
            if control.cancelled:
                halt(control.reason or "cancelled")
                return
            await asyncio.sleep(0.05)

    workers = [loop.create_task(worker(), name=f"feature-worker-{i}")
               for i in range(max(1, min(cfg.in_flight, len(to_run))))]
    watcher = loop.create_task(watch(), name="run-watch")
    renewer = loop.create_task(leases.keep_alive(), name="run-leases") if leases is not None else None
    waiter = loop.create_task(stop.wait())
    try:
        pending = set(workers)
        while pending:
            _done, pending = await asyncio.wait(pending | {waiter}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(waiter)
            if stop.is_set():
                break
        if stop.is_set():
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    finally:
        watcher.cancel()
        waiter.cancel()
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            leases.release_all()  # type: ignore[union-attr]
        if background is not None and not background.done():
            background.cancel()
        await asyncio.gather(watcher, waiter, return_exceptions=True)
        if background is not None:
            await asyncio.gather(background, return_exceptions=True)
    stats.in_flight.clear()
