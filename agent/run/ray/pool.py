"""An Engine over a pool of Ray actors: each batch split into chunks sized per actor, sent to the least busy."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agent.probes import Probe, ProbeResult
from agent.run.ray.actor import EngineActor, RayOptions
from agent.run.ray.dispatch import PoolClosed, RayActorPool, WorkerStats
from agent.world import Engines, SteeringError, WorldSpec

log = logging.getLogger(__name__)


class RayEnginePool(RayActorPool):
    """What the probe service needs of an engine (``run``, ``run_isolated``, ``fingerprint``, ``sae.d_sae``,
    ``hidden_norm``), answered by Ray actors that each hold one engine.

    The driver keeps the store: results come back to the thread that called ``run`` and go to
    ``on_result`` there.
    """

    def __init__(self, spec: WorldSpec, options: RayOptions | None = None) -> None:
        super().__init__(spec, options, EngineActor)
        self._fingerprint: dict[str, Any] = self.info["fingerprint"]
        self.sae = SimpleNamespace(d_sae=self.info["d_sae"])

    # ------------------------------------------------------------------ the Engine interface

    def fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    def run(self, probes: Sequence[Probe],
            on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        """Results in the order of ``probes``; the first error an engine raises is raised here."""
        return self._run(list(probes), on_result, isolate=False)

    def run_isolated(self, probes: Sequence[Probe],
                     on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult | Exception]:
        """Like ``run``, but a probe that fails alone comes back as its error (the engines' run_isolated)."""
        return self._run(list(probes), on_result, isolate=True)

    def hidden_norm(self, base_image: str = "white") -> float:
        return float(self._call("hidden_norm", base_image))

    def batch_rows(self) -> int:
        return sum(w.rows for w in self.workers if w.alive)

    def evidence_describer(self, root: str | Path) -> Any:
        """The run's top-k / hybrid describer: its requests go to these actors as probe batches do, each
        actor reading the collection at ``root`` (agent.run.ray.images)."""
        from agent.run.ray.images import RayDescriber

        return RayDescriber(self, root)

    @property
    def batch_probes(self) -> int:
        """Probes per batch that fill every actor's queue (the scheduler's batches grow to it)."""
        return self.options.chunks_per_worker * sum(w.rows for w in self.workers)

    def _run(self, probes: list[Probe], on_result: Callable[[ProbeResult], None] | None,
             isolate: bool) -> list[Any]:
        """Chunks of each actor's rows per generate call; results delivered in the driver's thread."""

        def take(worker: WorkerStats, pending: deque[int]) -> tuple[list[int], int]:
            indices, rows = [], 0
            while pending and (not indices or rows + probes[pending[0]].samples <= worker.rows):
                i = pending.popleft()
                indices.append(i)
                rows += probes[i].samples
            return indices, rows

        results: list[Any] = [None] * len(probes)
        for indices, out in self._dispatch(deque(range(len(probes))), take,
                                           lambda actor, ix: actor.run.remote([probes[i] for i in ix], isolate)):
            for i, result in zip(indices, out):
                results[i] = result
                if on_result is not None and not isinstance(result, Exception):
                    on_result(result)
        return results

    def _call(self, method: str, *args: Any) -> Any:
        """One engine method on a live actor, moving on to another if it dies."""
        import ray

        for worker in [w for w in self.workers if w.alive]:
            try:
                return ray.get(self.actors[worker.index].call.remote(method, *args))
            except ray.exceptions.RayActorError as exc:
                log.warning("Ray engine actor %d died during %s: %s", worker.index, method, exc)
            except ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None
        raise PoolClosed(f"every Ray engine actor is gone: cannot run {method}")


class RayProbeEngine:
    """An engine whose probes (``run``, ``run_isolated``, the hidden-state norm) run on a RayEnginePool, and
    whose other uses (the model and SAE themselves: top-k collection, descriptions from images, the
    simulation) go to the engine in this process. Both must answer alike (one fingerprint)."""

    def __init__(self, pool: RayEnginePool, local: Any) -> None:
        if pool.fingerprint() != local.fingerprint():
            raise SteeringError("the Ray actors loaded another engine than this process (dtype or settings "
                                "differ): pass --dtype so both load the same")
        self.pool, self.local = pool, local

    def fingerprint(self) -> dict[str, Any]:
        return self.pool.fingerprint()

    def run(self, probes: Sequence[Probe],
            on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        return self.pool.run(probes, on_result)

    def run_isolated(self, probes: Sequence[Probe],
                     on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult | Exception]:
        return self.pool.run_isolated(probes, on_result)

    def hidden_norm(self, base_image: str = "white") -> float:
        return self.pool.hidden_norm(base_image)

    @property
    def batch_probes(self) -> int:
        """The pool's (the scheduler's batches fill every actor); ``batch_rows`` is this process's engine's."""
        return self.pool.batch_probes

    def worker_lines(self) -> list[str]:
        return self.pool.worker_lines()

    def close(self) -> None:
        self.pool.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.local, name)


class RayEngines(Engines):
    """Engines whose engine for a world is a RayEnginePool; ``close`` stops it."""

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        super().__init__(factory=lambda spec: RayEnginePool(spec, self.options))

    def worker_lines(self) -> list[str]:
        """One line per actor of the pool this run used (none: no pool)."""
        pool = self._engine
        return pool.worker_lines() if isinstance(pool, RayEnginePool) else []

    def live_line(self) -> str:
        """Each actor's rows/s and chunks queued, for a live display."""
        pool = self._engine
        if not isinstance(pool, RayEnginePool):
            return "ray: starting the engine actors"
        return "ray: " + " | ".join(f"w{w.index} {w.rows_per_s:.1f} rows/s q{w.in_flight}"
                                    + ("" if w.alive else " (restarting)" if w.restarting else " (dropped)")
                                    for w in pool.stats())

    def close(self) -> None:
        with self._lock:
            pool, self._engine, self._key = self._engine, None, None
        if pool is not None:
            pool.close()
