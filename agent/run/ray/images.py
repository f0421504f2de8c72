"""Top-k and hybrid descriptions on the engine actors of a RayEnginePool: a run's EvidenceRequests cut into
chunks and sent as its probe batches are (RayActorPool dispatch: the least busy actor first, a dead actor's
chunk sent again to another), each actor describing with its own engine from the collection folder at the
path the driver gives (agent.run.images.TopKDescriber there). The answers equal one process's.

Every actor reads the collection at that path: on one machine it is the driver's; on a cluster of several
machines the store (with its collection, and the images it was collected from) must be on shared storage,
and a run whose actors cannot read it is refused in one line before any description is asked for.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.judges.evidence import ImageEvidence
from agent.run.ray.actor import SHARED
from agent.run.ray.dispatch import PoolClosed, RayActorPool, WorkerStats
from steering.probes import EvidenceRequest


class RayDescriber:
    """The Describer (agent.run.images) of a run on a RayEnginePool (agent.run.ray.pool: its actors are
    EngineActors); ``pictures`` (for a judge that reads images) are drawn by the driver, which needs no
    engine for them."""

    def __init__(self, pool: RayActorPool, root: str | Path) -> None:
        self.pool = pool
        self.root = str(Path(root).expanduser().absolute())  # the actors' working folder is not the driver's
        self._fingerprint: dict[str, Any] | None = None

    def prepare(self) -> dict[str, Any]:
        """Each live actor opens the collection and checks it fits its engine; their shared fingerprint.
        Raises TopKError (one line) when an actor cannot read it or it does not fit."""
        import ray

        if self._fingerprint is None:
            prints: list[dict[str, Any]] = []
            for worker in [w for w in self.pool.workers if w.alive]:
                try:
                    prints.append(ray.get(self.pool.actors[worker.index].prepare_evidence.remote(self.root)))
                except ray.exceptions.RayTaskError as exc:
                    raise _own_error(exc.as_instanceof_cause()) from None
                except ray.exceptions.RayActorError:
                    continue  # died: when Ray restarts it, it opens the collection on its first chunk
            if not prints:
                raise PoolClosed("every Ray engine actor is gone: cannot describe top-k images")
            if any(p != prints[0] for p in prints):
                from steering.topk import TopKError

                raise TopKError(f"the Ray actors read different top-k collections at {self.root}: {SHARED}")
            self._fingerprint = prints[0]
        return self._fingerprint

    def describe(self, requests: Sequence[EvidenceRequest],
                 on_result: Callable[[EvidenceRequest, ImageEvidence], None] | None = None) -> list[ImageEvidence]:
        """ImageEvidence in the order of ``requests``, ``on_result`` called in this thread as each chunk returns."""
        import ray

        self.prepare()
        requests = list(requests)
        live = sum(w.alive for w in self.pool.workers) or 1
        per = math.ceil(len(requests) / (self.pool.options.chunks_per_worker * live)) if requests else 1

        def take(worker: WorkerStats, pending: deque[int]) -> tuple[list[int], int]:
            indices = [pending.popleft() for _ in range(min(len(pending), max(1, min(per, worker.rows))))]
            return indices, len(indices)

        def call(actor: Any, indices: list[int]) -> Any:
            return actor.describe.remote(self.root, [requests[i] for i in indices])

        results: list[Any] = [None] * len(requests)
        try:
            for indices, out in self.pool._dispatch(deque(range(len(requests))), take, call):
                for i, evidence in zip(indices, out):
                    results[i] = evidence
                    if on_result is not None:
                        on_result(requests[i], evidence)
        except ray.exceptions.RayTaskError as exc:  # the pool raised the actor's error as its own class
            raise _own_error(exc) from None
        return results

    def pictures(self, feature: int, n: int) -> list[bytes]:
        from agent.run.images import masked_pngs

        return masked_pngs(self.root, feature, n)


def _own_error(exc: Any) -> Exception:
    """An actor's error as one process raises it where it is a SteeringError (a collection that cannot be
    read or does not fit, a feature out of range: one line), else as the pool raised it."""
    from steering.errors import SteeringError

    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, SteeringError) else exc
