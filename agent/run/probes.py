"""The probe service: the engine's thread, and probes of many feature loops packed into shared engine calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from agent.probes import Probe, ProbeResult
from agent.run.batcher import MicroBatcher

T = TypeVar("T")


class Engine(Protocol):
    """What the agent needs from a steering engine (steering.engine.SteeringEngine has it)."""

    def run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        ...

    def fingerprint(self) -> dict[str, Any]:
        ...


class BatchStopped(Exception):
    """The run was cancelled in the middle of an engine batch."""


class ProbeCache(Protocol):
    def get_probe(self, key: str) -> ProbeResult | None: ...

    def put_probe(self, key: str, result: ProbeResult) -> None: ...


class ProbeService:
    """Async front of the engine shared by every feature loop of a run."""

    def __init__(self, engine: Engine, cache: ProbeCache | None = None, *, read_cache: bool = True,
                 max_batch: int = 256, gather_s: float = 0.02,
                 on_batch: Callable[[int, int, float], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> None:
        self.engine = engine
        self.stop = stop
        """Polled after each probe of a batch: when true, the rest of the batch is dropped (a cancel)."""
        self.on_progress = on_progress
        """(probes handed to the engine, probes finished), called in the event loop's thread."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.cache = cache
        self.read_cache = read_cache
        self.on_batch = on_batch
        self.fingerprint = engine.fingerprint()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="steer-engine")
        self._batcher: MicroBatcher[Probe, ProbeResult] = MicroBatcher(
            self._run_engine, self.key, self.submit, lookup=self._lookup if cache is not None and read_cache else None,
            store=cache.put_probe if cache is not None else None, failure="the engine failed",
            max_batch=max_batch, gather_s=gather_s, on_batch=self._batch_done, name="probe-dispatch")

    @property
    def cached_hits(self) -> int:
        return self._batcher.cached_hits

    async def close(self, cut: bool = False) -> None:
        """Stop dispatching; wait for the engine call in progress (its results are stored), with ``cut``
        only for its current generate call."""
        await self._batcher.close(finish_current=True, cut=cut)
        self._executor.shutdown(wait=True)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn`` for the engine's thread (torch work that must not race a generate call)."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the engine's thread and wait for it."""
        return await self.submit(fn, *args)

    def key(self, probe: Probe) -> str:
        return probe.key(self.fingerprint)

    async def run(self, probes: Sequence[Probe]) -> list[ProbeResult]:
        """Results for ``probes`` in order: from the cache, from a batch already queued, or computed."""
        self._loop = asyncio.get_running_loop()
        return await self._batcher.get(probes)

    def _lookup(self, key: str, probe: Probe) -> ProbeResult | None:
        assert self.cache is not None
        hit = self.cache.get_probe(key)
        return hit if hit is not None and hit.probe == probe else None

    def _batch_done(self, probes: list[Probe], seconds: float) -> None:
        if self.on_batch is not None:
            self.on_batch(len(probes), sum(p.samples for p in probes), seconds)

    def _run_engine(self, probes: list[Probe],
                    on_result: Callable[[Probe, ProbeResult], None]) -> list[ProbeResult | Exception]:
        """In the engine's thread: run the batch, reporting each result as soon as it exists. With an engine
        that can isolate failures (``run_isolated``), a probe that fails alone comes back as its error."""
        run = getattr(self.engine, "run_isolated", None) or self.engine.run
        self._progress(len(probes), 0)
        finished: dict[Probe, ProbeResult] = {}

        def done(result: ProbeResult) -> None:
            on_result(result.probe, result)
            finished[result.probe] = result
            self._progress(0, 1)
            if self.stop is not None and self.stop():
                raise BatchStopped("the run was cancelled")

        try:
            return list(run(probes, on_result=done))
        except BatchStopped as exc:  # finished probes are stored; the others fail alone, quietly
            return [finished.get(p, exc) for p in probes]

    def _progress(self, queued: int, done: int) -> None:
        """From the engine's thread: report progress in the event loop's thread."""
        if self.on_progress is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.on_progress, queued, done)

