"""One micro-batcher for every engine-side service: cache look-up, de-duplication, shared blocking calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
Req = TypeVar("Req")
Res = TypeVar("Res")

Submit = Callable[..., "asyncio.Future[Any]"]
"""Runs a blocking function with its arguments in the engine's thread; returns the future of its result."""
Compute = Callable[[list[Req], Callable[[Req, Res], None]], list[Res]]
"""Blocking: the results for a batch in order, calling ``on_result(request, result)`` as each one exists."""


class EngineFailed(RuntimeError):
    """The engine raised while running a batch that held this request."""


class BatchCut(Exception):
    """The batch in progress was cut short at shutdown (its finished rows are stored)."""


class MicroBatcher(Generic[Req, Res]):
    """Packs the requests of many feature loops into shared engine calls, one call at a time.

    A request is answered, in this order, by the same request already queued or in flight (or, when
    no ``lookup`` can answer later, already finished), by ``lookup`` (the store), or by the next
    batch: requests gather for ``gather_s`` so that one call serves every loop. Each result is stored
    (``store``) as soon as the engine has it, so a batch cut short still saves its finished rows.
    """

    def __init__(self, compute: Compute[Req, Res], key: Callable[[Req], str], submit: Submit, *,
                 lookup: Callable[[str, Req], Res | None] | None = None,
                 store: Callable[[str, Res], None] | None = None, failure: str = "the engine failed",
                 max_batch: int = 256, gather_s: float = 0.02,
                 on_batch: Callable[[list[Req], float], None] | None = None, name: str = "batcher") -> None:
        self.compute = compute
        self.key = key
        self.submit = submit
        self.lookup = lookup
        self.store = store
        self.failure = failure
        """Start of the EngineFailed message each waiting loop gets when a batch raises."""
        self.max_batch = max(1, max_batch)
        self.gather_s = gather_s
        self.on_batch = on_batch
        self.name = name
        self.cached_hits = 0
        self._pending: dict[str, tuple[Req, asyncio.Future[Res]]] = {}
        self._known: dict[str, asyncio.Future[Res]] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Future[list[Res]] | None = None
        self._cut = False
        """Set by close(cut=True): the engine call in progress stops at its next finished result."""

    async def get(self, requests: Sequence[Req]) -> list[Res]:
        """Results for ``requests`` in order."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._dispatch(), name=self.name)
        return list(await asyncio.gather(*(asyncio.shield(self._future(r)) for r in requests)))

    def _future(self, request: Req) -> asyncio.Future[Res]:
        key = self.key(request)
        fut = self._known.get(key)
        if fut is not None and not (fut.done() and (fut.cancelled() or fut.exception() is not None)):
            return fut
        fut = asyncio.get_running_loop().create_future()
        hit = self.lookup(key, request) if self.lookup is not None else None
        if hit is not None:
            self.cached_hits += 1
            fut.set_result(hit)
            return fut
        self._known[key] = fut
        self._pending[key] = (request, fut)
        assert self._wake is not None
        self._wake.set()
        return fut

    async def close(self, finish_current: bool = True, cut: bool = False) -> None:
        """Stop dispatching and cancel what waits. ``finish_current``: wait for the engine call in
        progress (its results are stored) instead of cancelling it; ``cut``: only until the engine
        finishes its current generate call (a stopped run need not wait for a whole batch)."""
        self._cut = cut
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._current is not None and not self._current.done():
            if not finish_current:
                self._current.cancel()
            else:
                try:
                    await asyncio.shield(self._current)
                except BaseException:  # noqa: BLE001 - a failed batch at shutdown changes nothing
                    pass
        for fut in [*self._known.values(), *(f for _r, f in self._pending.values())]:
            if not fut.done():
                fut.cancel()
        self._pending.clear()

    async def _dispatch(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.gather_s)  # let the other loops queue theirs: one call serves them all
            while self._pending:
                keys = list(self._pending)[: self.max_batch]
                await self._run_batch(keys, [self._pending.pop(k) for k in keys])

    async def _run_batch(self, keys: list[str], batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        requests = [r for r, _ in batch]
        t0 = time.perf_counter()
        self._current = self.submit(self._compute, requests, keys)
        try:
            results = await asyncio.shield(self._current)
        except BatchCut:
            for _r, fut in batch:
                if not fut.done():
                    fut.cancel()
            return
        except Exception as exc:  # noqa: BLE001 - reported to each waiting loop
            log.error("%s on a batch of %d: %s", self.failure, len(requests), exc)
            for _r, fut in batch:
                if not fut.done():
                    fut.set_exception(EngineFailed(f"{self.failure}: {exc}"))
            return
        seconds = time.perf_counter() - t0
        for key, (_r, fut), result in zip(keys, batch, results):
            if fut.done():
                pass
            elif isinstance(result, Exception):  # this request failed alone (the engine isolated it)
                error = EngineFailed(f"{self.failure}: {result}")
                error.__cause__ = result
                fut.set_exception(error)
            else:
                fut.set_result(result)
            if self.lookup is not None:
                self._known.pop(key, None)  # the store answers later requests
        if self.on_batch is not None:
            self.on_batch(requests, seconds)

    def _compute(self, requests: list[Req], keys: list[str]) -> list[Res]:
        """In the engine's thread: run the batch, storing each result as soon as it exists."""
        by_request = dict(zip(requests, keys))

        def on_result(request: Req, result: Res) -> None:
            if self.store is not None:
                try:
                    self.store(by_request.get(request) or self.key(request), result)
                except Exception as exc:  # noqa: BLE001 - a full disk must not lose the batch
                    log.error("%s: could not store a result: %s", self.name, exc)
            if self._cut:
                raise BatchCut  # out of the engine's call, between two generate calls

        return self.compute(requests, on_result)
