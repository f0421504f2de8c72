"""Feature leases: concurrent runs on one store share the work instead of computing the same features twice."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from agent.store.store import RecordUnreadable, Store, StoreUnwritable

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
"""How long a claim binds without renewal: a holder that dies frees its features after at most this."""
POLL_SECONDS = 0.25
"""How soon a run with nothing else to do looks again at features another run holds (doubling to
MAX_POLL_SECONDS while nothing frees up, so a long wait does not hammer the store's lock)."""
MAX_POLL_SECONDS = 5.0


class FeatureLeases:
    """One run's claims on a store's features (one asyncio loop; not shared across threads).

    A run claims a feature in the store before explaining it (agent.store.store.Store.claim), renews its leases
    while it works, and releases each one once the record is stored. Another run that finds a feature
    claimed puts it aside and comes back to it when its own queue is empty: by then the holder has either
    stored it (skipped as done) or died (its lease lapses and this run takes the feature over).
    """

    def __init__(self, store: Store, run_id: str, *, ttl: float = LEASE_SECONDS, poll: float = POLL_SECONDS,
                 on_done_elsewhere: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.holder = f"{run_id}-{uuid.uuid4().hex[:8]}"
        """Unique per run, even for two runs in one process started in the same second."""
        self.ttl, self.poll = ttl, poll
        self.on_done_elsewhere = on_done_elsewhere
        self.started_at = time.time()
        self.held: set[int] = set()
        self.deferred: list[int] = []
        self._wait = poll

    async def next(self, queue: list[int], stop: asyncio.Event) -> int | None:
        """The next feature of ``queue`` (popped from its end) this run now holds; None when none is left.

        Features another run holds wait until the queue is empty, then are polled until they are free.
        """
        while not stop.is_set():
            if queue:
                f = queue.pop()
                if self._take(f):
                    return f
                continue
            if not self.deferred:
                return None
            waiting, self.deferred = self.deferred, []
            for i, f in enumerate(waiting):
                if self._take(f):  # a feature still held elsewhere goes back to self.deferred
                    self.deferred += waiting[i + 1:]
                    self._wait = self.poll
                    return f
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._wait)
            except asyncio.TimeoutError:
                self._wait = min(MAX_POLL_SECONDS, self._wait * 2)
        return None

    def _take(self, f: int) -> bool:
        """Claim ``f``: True when this run should explain it; otherwise set aside (or done by another run)."""
        if not self.store.claim(f, self.holder, self.ttl):
            self.deferred.append(f)
            return False
        self.held.add(f)
        if self._done_since_start(f):
            self.release(f)
            if self.on_done_elsewhere is not None:
                self.on_done_elsewhere(f)
            return False
        return True

    def _done_since_start(self, f: int) -> bool:
        try:
            rec = self.store.get_record(f)
        except RecordUnreadable:
            return False
        stored_at = self.store.record_stored_at(f) if rec is not None and rec.status == "done" else None
        return stored_at is not None and stored_at >= self.started_at

    def release(self, f: int) -> None:
        if f in self.held:
            self.held.discard(f)
            try:
                self.store.release(f, self.holder)
            except StoreUnwritable as exc:  # a full disk: the run reports it once; the lease lapses by itself
                log.debug("could not release feature %d: %s", f, exc)
            except Exception as exc:  # noqa: BLE001 - the lease lapses by itself
                log.warning("could not release feature %d: %s", f, exc)

    def release_all(self) -> None:
        for f in list(self.held):
            self.release(f)

    async def keep_alive(self) -> None:
        """Renew this run's leases until cancelled (run it as a task beside the workers)."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            for f in list(self.held):
                try:
                    self.store.claim(f, self.holder, self.ttl)
                except StoreUnwritable as exc:  # a full disk: the workers' own writes stop the run
                    log.debug("could not renew the leases: %s", exc)
                    break
                except Exception as exc:  # noqa: BLE001 - renewal is retried on the next tick
                    log.warning("could not renew the lease on feature %d: %s", f, exc)
