"""The scheduler: many feature loops in flight over shared engine batches, each record stored as it ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.run.config import RunConfig
from agent.run.events import FeatureStarted, PhaseProgressed, RunPlanned, RunStarted
from agent.judges.base import Judge, JudgeFatalError, JudgeQuotaError
from agent.store.leases import FeatureLeases
from agent.store.records import FeatureRecord
from agent.run.images import (
    Describer,
    ImageEvidenceService,
    default_hybrid_strength,
    describer_for,
    reference_hybrid_strength,
)
from agent.run.activation import ActivationService
from agent.run.loop import LoopContext, TokenBudget, explain_feature
from agent.run.probes import Engine, ProbeService
from agent.run.state import EventCallback, Run, RunControl, RunSummary
from agent.run.sweep import background_probes
from agent.run.strengths import Norms, resolve_strengths
from agent.world import world_of
from steering.activation_tests import Tester, engine_tester
from agent.store.store import RecordUnreadable, Store, StoreError, StoreUnwritable

log = logging.getLogger(__name__)


EngineSource = Engine | Callable[[], Engine]


def run_features(engine: EngineSource, judge: Judge, store: Store | None, features: Sequence[int],
                 config: RunConfig | None = None, *, on_event: EventCallback | None = None,
                 control: RunControl | None = None, topk: str | Path | None = None,
                 describer: Describer | None = None, norms: Norms | None = None) -> RunSummary:
    """Explain ``features`` (blocking; runs its own event loop, so call it from a worker thread in a UI).

    ``engine`` may be a zero-argument factory: it is then called only when some feature needs work,
    so a run that the store already answers never loads a model. With ``config.evidence`` other than
    ``steering`` the top-k collection is ``topk`` or the store's (agent.topk.require_topk raises
    TopKMissing without one); ``describer`` replaces the engine-backed one (tests). ``norms``: where the
    hidden-state norm is measured and remembered (None: ``Norms(store)``; a Session passes its own).
    """
    return asyncio.run(arun_features(engine, judge, store, features, config, on_event=on_event, control=control,
                                     topk=topk, describer=describer, norms=norms))


async def arun_features(engine: EngineSource, judge: Judge, store: Store | None, features: Sequence[int],
                        config: RunConfig | None = None, *, on_event: EventCallback | None = None,
                        control: RunControl | None = None, topk: str | Path | None = None,
                        describer: Describer | None = None, norms: Norms | None = None) -> RunSummary:
    """``run_features`` inside a running event loop."""
    cfg = config or RunConfig()
    norms = norms or Norms(store)
    run = Run(features, cfg, control, on_event)
    if _is_engine(engine) and store is not None:
        store.bind_world(world_of(engine))  # refuse a store made for another world before reading it
    topk_root = _topk_root(cfg, store, topk) if cfg.image_modes and describer is None else None
    to_run = _features_to_run(run, store)
    if not to_run:
        run.stats.finished = time.monotonic()
        _started(run, judge, store, [], [])
        return run.end()
    if store is not None:
        store.require_writable()  # a store opened read-only (full disk, read-only folder): before any work
    if not _is_engine(engine):
        run.phase("loading the model and SAE")
    loaded = await _load(engine)
    world = world_of(loaded)
    if store is not None:
        _remember_run(run, store, loaded, world, judge)
    # a pool of engines (agent.run.ray.pool) takes batches that fill every one of them
    max_batch = max(cfg.max_batch_probes, int(getattr(loaded, "batch_probes", 0)))
    service = ProbeService(loaded, store, read_cache=not cfg.force, max_batch=max_batch,
                           on_batch=run.on_batch, on_progress=run.on_probe_progress,
                           stop=lambda: run.control.cancelled)
    images: ImageEvidenceService | None = None
    try:
        run.stats.phases.begin("baseline", 1)  # shown by RunStarted's statistics (RunPhase names it meanwhile)
        strengths, source = await _strengths(loaded, cfg, norms, service, run.phase)
        run.stats.phases.advance("baseline")
        run.summary.strengths, run.summary.strength_source = strengths, source
        if cfg.image_modes:
            if describer is None:
                assert topk_root is not None
                describer = describer_for(loaded, topk_root)
            images, run.summary.images = await _image_evidence(loaded, cfg, store, service, source, describer,
                                                               norms)
        _started(run, judge, store, to_run, strengths)
        if not run.control.cancelled:  # a Ctrl-C while measuring starts no batch
            run.phase(f"probing {len(to_run)} features x {len(strengths)} strengths")
            lc = _loop_context(run, judge, store, service, world, images)
            lc.activation = await _activation(loaded, cfg, store, service, topk_root)
            if lc.activation is not None:
                lc.fingerprint["tests"] = lc.activation.kinds()
            await _run_loops(run, lc, store, to_run)
    finally:
        await _close(service, images, judge, cut=run.stop.is_set() or run.control.cancelled)
    run.stats.probes_cached = service.cached_hits
    run.stats.finished = time.monotonic()
    if run.control.cancelled:
        run.note_stop(run.control.reason or "cancelled")
    return run.end()


def _is_engine(engine: EngineSource) -> bool:
    return hasattr(engine, "run")


async def _load(engine: EngineSource) -> Engine:
    """The engine, or what its factory makes (in a thread: loading a model blocks)."""
    if _is_engine(engine):
        return engine  # type: ignore[return-value]
    return await asyncio.get_running_loop().run_in_executor(None, engine)  # type: ignore[arg-type]


def _topk_root(cfg: RunConfig, store: Store | None, topk: str | Path | None) -> Path:
    """The top-k collection the image evidence reads (checked before any work starts)."""
    from agent.topk import require_topk

    if store is None and topk is None:
        raise ValueError(f"evidence {cfg.evidence!r} needs a top-k collection: pass topk= or a store")
    return Path(topk) if store is None else require_topk(store, topk)  # TopKMissing names the fix


def _features_to_run(run: Run, store: Store | None) -> list[int]:
    """The features that need work; the others are reported skipped (done, reviewed) or unreadable."""
    cfg = run.config
    to_run: list[int] = []
    for f in run.features:
        if store is None or cfg.force and cfg.overwrite_reviewed:
            to_run.append(f)
            continue
        try:
            rec = store.get_record(f)
        except RecordUnreadable as exc:
            if cfg.force:
                to_run.append(f)
            else:
                run.unreadable(f, str(exc))
            continue
        reviewed = rec is not None and rec.review is not None or (rec is None and store.has_review(f))
        if reviewed and not cfg.overwrite_reviewed:
            run.skipped(f, "skipped-reviewed", "reviewed")
        elif rec is not None and rec.status == "done" and not (cfg.force or cfg.rejudge):
            run.skipped(f, "skipped-done", "done")
        else:
            to_run.append(f)
    run.stats.to_run = len(to_run)
    run.emit(lambda stats: RunPlanned(stats=stats, features=list(run.features), to_run=list(to_run)))
    return to_run


def _started(run: Run, judge: Judge, store: Store | None, to_run: list[int], strengths: list[float]) -> None:
    run.emit(lambda stats: RunStarted(stats=stats, features=list(run.features), to_run=list(to_run),
                                      strengths=list(strengths), judge=judge.name,
                                      store=str(store.path) if store else ""))


def _remember_run(run: Run, store: Store, engine: Engine, world: dict[str, Any], judge: Judge) -> None:
    """Bind the store to the engine's world and note the run (and the SAE's width) in its meta."""
    store.bind_world(world)
    store.set_meta("last_run", {"run_id": run.run_id, "config": run.config.to_dict(), "judge": judge.describe(),
                                "features": len(run.features)})
    d_sae = getattr(getattr(engine, "sae", None), "d_sae", None)
    if d_sae is not None and store.get_meta("n_features") is None:
        store.set_meta("n_features", int(d_sae))


async def _close(service: ProbeService, images: ImageEvidenceService | None, judge: Judge,
                 cut: bool = False) -> None:
    """Release the services (``cut``: a halted run waits only for the generate call in progress)."""
    if images is not None:
        await images.close()
    await service.close(cut=cut)
    close = getattr(judge, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # noqa: BLE001 - closing an HTTP pool must not mask the run's outcome
            log.debug("closing the judge failed", exc_info=True)


async def _strengths(engine: Engine, cfg: RunConfig, norms: Norms, service: ProbeService,
                     phase: Callable[[str], None] = lambda _m: None) -> tuple[list[float], dict[str, Any]]:
    """The schedule; the hidden-state norm comes from ``norms`` (measured in the engine's thread when new)."""
    sweep = cfg.sweep
    if sweep.strengths:
        return resolve_strengths(engine, sweep)
    if norms.known(engine, sweep.base_image) is None and not sweep.calibrate:
        phase("measuring the hidden-state norm at the layer")
    return await service.call(resolve_strengths, engine, sweep, norms)


async def _image_evidence(engine: Engine, cfg: RunConfig, store: Store | None, service: ProbeService,
                          source: dict[str, Any], describer: Describer,
                          norms: Norms) -> tuple[ImageEvidenceService, dict[str, Any]]:
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
                norm = await service.call(norms.norm, engine, cfg.sweep.base_image)  # a fixed --strengths ladder
            strength, why = default_hybrid_strength(fp, norm)
        info.update(hybrid_strength=strength, hybrid_source=why)
    service_ = ImageEvidenceService(describer, fingerprint, service.submit, store, read_cache=not cfg.force)
    return service_, info


async def _activation(engine: Engine, cfg: RunConfig, store: Store | None, service: ProbeService,
                      topk_root: Path | None) -> ActivationService | None:
    """The activation tests this engine can run (render on the toy world, edit with a top-k collection), or
    None: --max-tests 0, or an engine without a local model (a pool of remote engines)."""
    if cfg.max_tests <= 0:
        return None
    local: Any = engine
    if not (hasattr(engine, "vlm") and hasattr(engine, "sae")):
        # A pool of remote engines: the bundled toy world (the one world that renders its scenes) is small
        # enough to load here too, so a run on Ray asks the same tests as one in a single process.
        spec = getattr(engine, "spec", None)
        if spec is None or spec.model is not None or spec.sae is not None:
            log.info("no activation tests on Ray for this world: edit tests need the model in this process")
            return None
        from dataclasses import replace

        from agent.world import load_engine

        local = await service.call(load_engine, replace(spec, device="cpu"))

    def make() -> Tester | None:
        topk = None
        if topk_root is not None:
            from steering.topk.result import load_topk

            topk = load_topk(topk_root)
        from agent.store.store import cache_root

        try:
            return engine_tester(local, topk, pool_dir=cache_root() / "render-pools")
        except Exception as exc:  # noqa: BLE001 - a tower top-k cannot read (flat encoders): no tests, said once
            log.info("no activation tests on this model: %s", exc)
            return None

    tester = await service.call(make)
    if tester is None or not tester.kinds():
        return None
    return ActivationService(tester, engine.fingerprint(), service.submit, store, read_cache=not cfg.force)


def _loop_context(run: Run, judge: Judge, store: Store | None, service: ProbeService, world: dict[str, Any],
                  images: ImageEvidenceService | None) -> LoopContext:
    """What every feature loop of ``run`` shares; starts the background probes an offline judge reads."""
    cfg, engine, strengths = run.config, service.engine, run.summary.strengths
    background = None
    d_sae = getattr(getattr(engine, "sae", None), "d_sae", None)
    shared = background_probes(strengths, cfg.sweep, d_sae)
    if not getattr(judge, "is_llm", True) and shared:
        background = asyncio.get_running_loop().create_task(_background(run, service, shared))
    fingerprint = {"engine": engine.fingerprint(), "sweep": cfg.sweep.to_dict(), "judge": judge.describe(),
                   "max_rounds": cfg.max_rounds, "max_probes": cfg.max_probes,
                   "prompts": list(engine.fingerprint().get("prompts", []))
                   + [p for p in (judge.describe().get("prompts") or [])]}
    image_requests: tuple[tuple[str, float], ...] = ()
    if images is not None:
        info = run.summary.images
        image_requests = tuple((m, 0.0 if m == "topk" else float(info["hybrid_strength"])) for m in cfg.image_modes)
        fingerprint["evidence"] = {k: info.get(k) for k in ("evidence", "n_images", "topk", "judge_images",
                                                            "hybrid_strength")}
        fingerprint["prompts"] += [p for p in images.fingerprint.get("prompts", []) if p not in fingerprint["prompts"]]
    return LoopContext(config=cfg, probes=service, judge=judge, judge_slots=asyncio.Semaphore(max(1, cfg.concurrency)),
                       strengths=strengths, world=world, fingerprint=fingerprint, budget=TokenBudget(cfg.budget_tokens),
                       emit=run.emit, cache=store, background=background, run_id=run.run_id, on_round=run.on_round,
                       on_usage=run.on_usage, images=images, image_requests=image_requests,
                       topk_images=cfg.topk_images, judge_images=cfg.judge_images and getattr(judge, "is_llm", True),
                       on_step=_stepper(run))


def _run_phase(run: Run, key: str, *, total: int | None = None, advance: int = 0) -> None:
    """A run-wide phase (agent.run.phases) begins with ``total`` units, or ``advance``s; reported."""
    if total is not None:
        run.stats.phases.begin(key, total)
    if advance:
        run.stats.phases.advance(key, advance)
    run.emit(lambda stats: PhaseProgressed(stats=stats, phase=key))


def _stepper(run: Run) -> Callable[[int, str, int], None]:
    """LoopContext.on_step: count a feature's step and report it."""
    def step(feature: int, phase: str, rnd: int = 0) -> None:
        run.stats.phases.step(feature, phase, rnd)
        run.emit(lambda stats: PhaseProgressed(stats=stats, phase=phase, feature=feature, round=rnd))
    return step


async def _background(run: Run, service: ProbeService, probes: list[Any]) -> list[Any]:
    """The shared background probes, each counted as it finishes (they still share engine batches)."""
    _run_phase(run, "background", total=len(probes))

    async def one(probe: Any) -> Any:
        result = (await service.run([probe]))[0]
        _run_phase(run, "background", advance=1)
        return result

    return list(await asyncio.gather(*(one(p) for p in probes)))


async def _run_loops(run: Run, lc: LoopContext, store: Store | None, to_run: list[int]) -> None:
    """Keep up to ``in_flight`` feature loops going until every feature is done or the run halts."""
    loop = asyncio.get_running_loop()
    run.stats.phases.plan(len(to_run), run.config.max_rounds)
    queue = list(reversed(to_run))
    # concurrent runs on one store share the work: a feature another run finishes meanwhile counts as done
    def done_elsewhere(f: int) -> None:
        run.stats.phases.end(f)
        run.skipped(f, "skipped-done", "done")

    leases = FeatureLeases(store, run.run_id, on_done_elsewhere=done_elsewhere) if store is not None else None
    workers = [loop.create_task(_worker(run, lc, store, queue, leases), name=f"feature-worker-{i}")
               for i in range(max(1, min(run.config.in_flight, len(to_run))))]
    renewer = loop.create_task(leases.keep_alive(), name="run-leases") if leases is not None else None
    waiter = loop.create_task(run.stop.wait())
    skipped_before = store.write_failed if store is not None else None
    watcher = loop.create_task(_watch(run, store, skipped_before), name="run-watch")
    failure: BaseException | None = None
    try:
        pending = set(workers)
        while pending:
            done, pending = await asyncio.wait(pending | {waiter}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(waiter)
            failure = failure or _failure(done - {waiter})
            if failure is not None:  # a full disk, a damaged store: the other workers would only fail too
                run.halt("store" if isinstance(failure, StoreError) else "error", str(failure))
            if run.stop.is_set():
                break
        if run.stop.is_set():
            for w in workers:
                w.cancel()
            # every worker's outcome is read here: none is left to asyncio's "exception never retrieved"
            await asyncio.gather(*workers, return_exceptions=True)
            failure = failure or _failure(set(workers))
    finally:
        watcher.cancel()
        waiter.cancel()
        if renewer is not None and leases is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            leases.release_all()
        background = lc.background
        if background is not None and not background.done():
            background.cancel()
        await asyncio.gather(watcher, waiter, return_exceptions=True)
        if background is not None:
            await asyncio.gather(background, return_exceptions=True)
    run.stats.in_flight.clear()
    if failure is None and store is not None and store.write_failed is not skipped_before:
        failure = store.write_failed  # a result the store could not keep: the watcher stopped the run
    if failure is not None:
        raise failure.again() if isinstance(failure, StoreUnwritable) else failure


def _failure(tasks: set[asyncio.Task[Any]]) -> BaseException | None:
    """The first exception of the finished ``tasks`` (a worker that died), None when none raised."""
    for task in sorted(tasks, key=lambda t: t.get_name()):
        if task.done() and not task.cancelled() and task.exception() is not None:
            return task.exception()
    return None


async def _worker(run: Run, lc: LoopContext, store: Store | None, queue: list[int],
                  leases: FeatureLeases | None = None) -> None:
    """Explain features from ``queue`` one after another, storing each record, until the run stops
    (with ``leases``: only features no other run holds, coming back to those when the queue is empty)."""
    while (queue or leases is not None and leases.deferred) and not run.stop.is_set():
        if lc.budget.exhausted:  # no new features; the running ones end with a forced final
            run.note_stop("budget", f"the judge token budget ({lc.budget.limit} tokens) is spent: "
                                    "features not started are left for a rerun")
            return
        f = queue.pop() if leases is None else await leases.next(queue, run.stop)
        if f is None:
            return
        try:
            await _explain_and_store(run, lc, store, f)
        finally:
            if leases is not None:
                leases.release(f)


async def _explain_and_store(run: Run, lc: LoopContext, store: Store | None, f: int) -> None:
    """One feature: explain it and store its record (a fatal judge error halts the run)."""
    run.stats.in_flight[f] = 0
    run.emit(lambda stats, f=f: FeatureStarted(stats=stats, feature=f))
    try:
        record = await explain_feature(f, lc)
    except StoreUnwritable:  # a full disk stops the run (in _run_loops), it is no failure of this feature
        run.stats.in_flight.pop(f, None)
        raise
    except JudgeFatalError as exc:
        run.stats.in_flight.pop(f, None)
        run.halt("quota" if isinstance(exc, JudgeQuotaError) else "judge", str(exc))
        run.error(str(exc), feature=f, fatal=True)
        return
    except asyncio.CancelledError:
        run.stats.in_flight.pop(f, None)
        raise
    except Exception as exc:
        log.exception("feature %d crashed", f)
        record = FeatureRecord(feature=f, status="failed", error=f"internal error: {exc!r}",
                               judge=lc.judge.describe(), world=lc.world, fingerprint=lc.fingerprint,
                               run_id=lc.run_id)
    run.stats.in_flight.pop(f, None)
    run.stats.phases.end(f)
    if record.status == "failed" and run.control.cancelled:
        return  # its batch was cut short by the cancel: left not started, not stored as failed
    written = True
    if store is not None:
        try:
            written = store.put_record(record, overwrite_reviewed=run.config.overwrite_reviewed)
        except StoreUnwritable:
            raise
        except Exception as exc:  # noqa: BLE001
            run.store_failed(f, f"could not store feature {f}: {exc}")
            return
    run.finished(record, written)


async def _watch(run: Run, store: Store | None = None, skipped_before: StoreUnwritable | None = None) -> None:
    """Turn a cancel from another thread (RunControl), or a result the store could not keep (a full disk,
    noted by Store.write_failed), into a halt."""
    while not run.stop.is_set():
        if run.control.cancelled:
            run.halt(run.control.reason or "cancelled")
            return
        if store is not None and store.write_failed is not skipped_before:
            run.halt("store", str(store.write_failed))
            return
        await asyncio.sleep(0.05)
