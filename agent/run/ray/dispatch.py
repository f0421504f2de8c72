"""Ray actors of one kind and the driver's dispatch to them: work cut into chunks sized per actor, each sent
to the least busy, a dead actor's chunks sent again to another."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agent.run.ray.actor import EngineActor, RayOptions, connect, first_line, start_actors
from agent.world import WorldSpec

log = logging.getLogger(__name__)

class PoolClosed(RuntimeError):
    """The pool was closed (Ctrl-C, the end of the run) while a batch waited for it, or every actor is gone."""


@dataclass
class WorkerStats:
    """One actor as the driver sees it."""

    index: int
    pid: int | None = None
    host: str = ""
    rows: int = 32
    """Rows per chunk sent to it (its engine's rows per generate call)."""
    alive: bool = True
    in_flight: int = 0
    """Chunks queued or running on it now."""
    rows_done: int = 0
    seconds: float = 0.0
    """Wall seconds it was busy: each finished chunk from its sending (or the previous result) to its result."""
    last_done: float = 0.0
    deaths: int = 0
    restarting: bool = False
    """Died, and Ray is starting it again."""

    @property
    def rows_per_s(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Chunk:
    indices: list[int]
    rows: int
    worker: int
    sent: float = field(default_factory=time.perf_counter)


_LOST = object()
"""A chunk whose actor died (its tasks are queued again)."""


class RayActorPool:
    """Ray actors of one kind (``actor_class``, built from a WorldSpec) and the driver's dispatch to them:
    tasks cut into chunks per actor, sent to the least busy, a dead actor's chunks sent again to another
    (Ray restarts it, up to ``max_restarts``, with its model loaded again); a chunk delivers its result
    once, when it succeeded."""

    def __init__(self, spec: WorldSpec, options: RayOptions | None = None, actor_class: type = EngineActor) -> None:
        import ray

        self.options = options or RayOptions()
        self.spec = spec
        """The world the actors load (the driver loads the toy world itself for activation tests)."""
        self.started_ray = connect(self.options)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.actors = start_actors(spec, self.options, actor_class)
        infos = ray.get([a.info.remote() for a in self.actors])
        self.workers = [WorkerStats(i, pid=x["pid"], host=x["host"], rows=x["rows"]) for i, x in enumerate(infos)]
        prints = {repr(sorted(x["fingerprint"].items())) for x in infos}
        if len(prints) > 1:
            self.close()
            raise RuntimeError("the Ray actors loaded different engines (dtype or device differ): their answers "
                               "would not share one store")
        self.info: dict[str, Any] = infos[0]
        self.retried_chunks = 0

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, pending: deque[int], take: Callable[[WorkerStats, deque[int]], tuple[list[int], int] | None],
                  call: Callable[[Any, list[int]], Any]) -> Iterator[tuple[list[int], Any]]:
        """(task indices, result) of each chunk as it finishes, until ``pending`` is done. ``take`` pops the
        next chunk for an actor from ``pending`` as (indices, rows), or None to send nothing now; ``call``
        sends one chunk to an actor (its handle) and returns the result's ref. The first error an actor's
        code raises is raised here."""
        import ray

        chunks: dict[Any, _Chunk] = {}
        try:
            while pending or chunks:
                self._check_open()
                self._fill(pending, chunks, take, call)
                if not chunks and any(w.restarting for w in self.workers):
                    time.sleep(0.1)  # every actor is being restarted: wait for one
                    continue
                if not chunks:
                    raise PoolClosed("every Ray actor is gone: nothing can run the remaining work")
                ready, _ = ray.wait(list(chunks), num_returns=1, timeout=0.5)
                for ref in ready:
                    chunk = chunks.pop(ref)
                    out = self._collect(ref, chunk, pending)
                    if out is not _LOST:
                        yield chunk.indices, out
        finally:
            with self._lock:
                for chunk in chunks.values():
                    self.workers[chunk.worker].in_flight -= 1

    def _fill(self, pending: deque[int], chunks: dict[Any, _Chunk],
              take: Callable[[WorkerStats, deque[int]], tuple[list[int], int] | None],
              call: Callable[[Any, list[int]], Any]) -> None:
        """Send chunks to the least busy actors until each has ``chunks_per_worker`` or nothing is left."""
        while pending:
            worker = self._least_busy()
            if worker is None:
                return
            chunk = take(worker, pending)
            if chunk is None:
                return
            indices, rows = chunk
            ref = call(self.actors[worker.index], indices)
            with self._lock:
                worker.in_flight += 1
            chunks[ref] = _Chunk(indices, rows, worker.index)

    def _least_busy(self) -> WorkerStats | None:
        """The live actor with the fewest chunks queued (the fastest on a tie), or None when all are full."""
        free = [w for w in self.workers if w.alive and w.in_flight < self.options.chunks_per_worker]
        return min(free, key=lambda w: (w.in_flight, -w.rows_per_s, w.index)) if free else None

    def _collect(self, ref: Any, chunk: _Chunk, pending: deque[int]) -> Any:
        """One finished chunk's result, or (its actor died) _LOST with its tasks queued again."""
        import ray

        worker = self.workers[chunk.worker]
        with self._lock:
            worker.in_flight -= 1
        try:
            out = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as exc:
            self._lost(worker, chunk, pending, exc)
            return _LOST
        except ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None  # the actor code's own error, as in one process
        with self._lock:
            now = time.perf_counter()
            worker.rows_done += chunk.rows
            worker.seconds += now - max(chunk.sent, worker.last_done)  # a queued chunk waited for the one before
            worker.last_done = now
        return out

    def _lost(self, worker: WorkerStats, chunk: _Chunk, pending: deque[int], exc: Exception) -> None:
        """An actor died under a chunk: send its tasks again, and keep the actor while Ray restarts it."""
        pending.extendleft(reversed(chunk.indices))
        self.retried_chunks += 1
        if not worker.alive:  # another chunk queued on the same dead process
            return
        worker.deaths += 1
        worker.alive = False  # out of the rotation until Ray has restarted it
        restarts = worker.restarting = worker.deaths <= self.options.max_restarts
        log.warning("Ray actor %d (pid %s) died under a chunk of %d tasks; sending them again%s: %s",
                    worker.index, worker.pid, len(chunk.indices), "" if restarts else " (actor dropped)",
                    first_line(exc))
        if restarts:
            threading.Thread(target=self._await_restart, args=(worker,), daemon=True).start()

    def _await_restart(self, worker: WorkerStats) -> None:
        """Put the actor back in the rotation once Ray has restarted it (or leave it out)."""
        import ray

        deadline = time.monotonic() + 600
        info = None
        while info is None and time.monotonic() < deadline and not self._closed.is_set():
            try:
                info = ray.get(self.actors[worker.index].info.remote(), timeout=60)
            except ray.exceptions.ActorUnavailableError:
                time.sleep(0.5)  # still restarting
            except Exception as exc:  # noqa: BLE001 - restarts exhausted, node lost: the others carry on
                log.warning("Ray actor %d did not come back: %s", worker.index, first_line(exc))
                break
        if info is not None:
            worker.pid, worker.alive = info["pid"], True
            log.info("Ray actor %d is back (pid %s)", worker.index, worker.pid)
        worker.restarting = False

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise PoolClosed("the Ray actor pool was closed")

    # ------------------------------------------------------------------ lifetime

    def stats(self) -> list[WorkerStats]:
        """A snapshot of each actor's numbers (rows/s, chunks queued)."""
        with self._lock:
            return [WorkerStats(**vars(w)) for w in self.workers]

    unit = "rows"
    """What the actors' chunks count (``WorkerStats.rows_done``)."""

    def worker_lines(self) -> list[str]:
        """One line per actor: where it ran, how much it did and how fast, its chunk size, deaths."""
        return [f"ray worker {w.index} (pid {w.pid} on {w.host}): {w.rows_done} {self.unit}, "
                f"{w.rows_per_s:.1f} {self.unit}/s" + (f", {w.rows} rows per chunk" if w.rows else "")
                + (f", died {w.deaths}x" if w.deaths else "") + ("" if w.alive else ", dropped") for w in self.stats()]

    def close(self) -> None:
        """Stop the actors (a batch still waiting raises PoolClosed); shut Ray down if this pool started it."""
        if self._closed.is_set():
            return
        self._closed.set()
        import ray

        if not ray.is_initialized():
            return
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.started_ray:
            ray.shutdown()
