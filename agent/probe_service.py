"""Runs probes for many feature loops at once: cache look-up, de-duplication, and packing into
shared engine calls executed one at a time in a worker thread."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from agent.probe_isolation import run_probes, settle
from agent.probes import Probe, ProbeResult

log = logging.getLogger(__name__)
T = TypeVar("T")


class Engine(Protocol):
    """What the agent needs from a steering engine (steering.engine.SteeringEngine has it)."""

    def run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        ...

    def fingerprint(self) -> dict[str, Any]:
        ...


class ProbeCache(Protocol):
    def get_probe(self, key: str) -> ProbeResult | None: ...

    def put_probe(self, key: str, result: ProbeResult) -> None: ...


class EngineFailed(RuntimeError):
    """The engine raised while running a batch that held this probe."""


class ProbeService:
    """Async front of the engine shared by every feature loop of a run."""

    def __init__(self, engine: Engine, cache: ProbeCache | None = None, *, read_cache: bool = True,
                 max_batch: int = 256, gather_s: float = 0.02,
                 on_batch: Callable[[int, int, float], None] | None = None) -> None:
        self.engine = engine
        self.cache = cache
        self.read_cache = read_cache
        self.max_batch = max(1, max_batch)
        self.gather_s = gather_s
        self.on_batch = on_batch
        self.fingerprint = engine.fingerprint()
        self.cached_hits = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="steer-engine")
        self._pending: dict[str, tuple[Probe, asyncio.Future[ProbeResult]]] = {}
        self._known: dict[str, asyncio.Future[ProbeResult]] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Future[Any] | None = None

    # ------------------------------------------------------------------ lifecycle

    def _ensure_started(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._dispatch(), name="probe-dispatch")

    async def close(self) -> None:
        """Stop dispatching; wait for the engine call in progress (its results are stored)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._current is not None and not self._current.done():
            try:
                await asyncio.shield(self._current)
            except BaseException:  # noqa: BLE001 - a failed batch at shutdown changes nothing
                pass
        for _probe, fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the engine's thread (torch work that must not race a generate call)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------ requests

    def key(self, probe: Probe) -> str:
        return probe.key(self.fingerprint)

    async def run(self, probes: Sequence[Probe]) -> list[ProbeResult]:
        """Results for ``probes`` in order: from the cache, from a batch already queued, or computed."""
        self._ensure_started()
        futures: list[asyncio.Future[ProbeResult]] = []
        loop = asyncio.get_running_loop()
        for probe in probes:
            key = self.key(probe)
            fut = self._known.get(key)
            if fut is None or (fut.done() and (fut.cancelled() or fut.exception() is not None)):
                fut = loop.create_future()
                hit = self.cache.get_probe(key) if (self.cache is not None and self.read_cache) else None
                if hit is not None and hit.probe == probe:
                    self.cached_hits += 1
                    fut.set_result(hit)
                else:
                    self._known[key] = fut
                    self._pending[key] = (probe, fut)
                    assert self._wake is not None
                    self._wake.set()
            futures.append(fut)
        return list(await asyncio.gather(*(asyncio.shield(f) for f in futures)))

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Let the other loops queue their probes so one engine call serves them all.
            await asyncio.sleep(self.gather_s)
            while self._pending:
                keys = list(self._pending)[: self.max_batch]
                batch = [self._pending.pop(k) for k in keys]
                probes = [p for p, _ in batch]
                t0 = time.perf_counter()
                self._current = loop.run_in_executor(self._executor, self._run_engine, probes, keys)
                try:
                    results = await asyncio.shield(self._current)
                except asyncio.CancelledError:
                    for p, fut in batch:  # put them back: close() settles them
                        self._pending.setdefault(self.key(p), (p, fut))
                    raise
                except Exception as exc:  # noqa: BLE001 - reported to each waiting loop
                    log.error("engine failed on a batch of %d probes: %s", len(probes), exc)
                    for _p, fut in batch:
                        if not fut.done():
                            fut.set_exception(EngineFailed(f"the engine failed: {exc}"))
                    continue
                seconds = time.perf_counter() - t0
                for key, (_p, fut), result in zip(keys, batch, results):
                    settle(fut, result, EngineFailed)  # a probe that failed alone gets its own error
                    if self.cache is not None and self.read_cache:
                        self._known.pop(key, None)  # the store answers later requests
                if self.on_batch is not None:
                    self.on_batch(len(probes), sum(p.samples for p in probes), seconds)

    def _run_engine(self, probes: list[Probe], keys: list[str]) -> list[ProbeResult]:
        """In the worker thread: run the batch, storing each result as soon as it exists."""
        by_probe: dict[Probe, str] = dict(zip(probes, keys))

        def on_result(result: ProbeResult) -> None:
            if self.cache is not None:
                key = by_probe.get(result.probe) or self.key(result.probe)
                try:
                    self.cache.put_probe(key, result)
                except Exception as exc:  # noqa: BLE001 - a full disk must not lose the batch
                    log.error("could not store probe result: %s", exc)

        return run_probes(self.engine, probes, on_result=on_result)
