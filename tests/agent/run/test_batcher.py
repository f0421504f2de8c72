"""The one micro-batcher under the probe and image services: packing, de-duplication, cache, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent.run.batcher import EngineFailed, MicroBatcher


class Doubler:
    """Computes ``2 * x``; records each batch; fails while ``broken``."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.broken = False

    def __call__(self, requests: list[int], on_result: Callable[[int, int], None]) -> list[int]:
        self.batches.append(list(requests))
        if self.broken:
            raise RuntimeError("boom")
        out = [2 * r for r in requests]
        for r, res in zip(requests, out):
            on_result(r, res)
        return out


async def _with_batcher(body: Callable[[MicroBatcher[int, int], Doubler], Any], **kwargs: Any) -> None:
    executor = ThreadPoolExecutor(max_workers=1)
    compute = Doubler()

    def submit(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    batcher: MicroBatcher[int, int] = MicroBatcher(compute, str, submit, **kwargs)
    try:
        await body(batcher, compute)
    finally:
        await batcher.close()
        executor.shutdown(wait=True)


def test_concurrent_callers_share_one_call_and_duplicates_are_computed_once() -> None:
    async def body(batcher: MicroBatcher[int, int], compute: Doubler) -> None:
        a, b = await asyncio.gather(batcher.get([1, 2, 2]), batcher.get([2, 3]))
        assert (a, b) == ([2, 4, 4], [4, 6]) and compute.batches == [[1, 2, 3]]
        assert await batcher.get([3]) == [6] and compute.batches == [[1, 2, 3]], "no store: remembered"

    asyncio.run(_with_batcher(body))


def test_store_answers_later_requests_and_receives_each_result() -> None:
    stored: dict[str, int] = {}

    async def body(batcher: MicroBatcher[int, int], compute: Doubler) -> None:
        assert await batcher.get([1, 2]) == [2, 4] and stored == {"1": 2, "2": 4}
        assert await batcher.get([2, 5]) == [4, 10] and compute.batches == [[1, 2], [5]]
        assert batcher.cached_hits == 1

    asyncio.run(_with_batcher(body, lookup=lambda key, _r: stored.get(key), store=stored.__setitem__, max_batch=8))


def test_a_failed_batch_reaches_every_waiter_and_is_retried_on_request() -> None:
    async def body(batcher: MicroBatcher[int, int], compute: Doubler) -> None:
        compute.broken = True
        results = await asyncio.gather(batcher.get([1]), batcher.get([2]), return_exceptions=True)
        assert all(isinstance(r, EngineFailed) and str(r) == "the thing failed: boom" for r in results)
        compute.broken = False
        assert await batcher.get([1]) == [2]

    asyncio.run(_with_batcher(body, failure="the thing failed"))


def test_batches_are_cut_at_max_batch() -> None:
    async def body(batcher: MicroBatcher[int, int], compute: Doubler) -> None:
        assert await batcher.get(list(range(5))) == [0, 2, 4, 6, 8]
        assert compute.batches == [[0, 1], [2, 3], [4]]

    asyncio.run(_with_batcher(body, max_batch=2))


@pytest.mark.parametrize("finish_current", [True, False])
def test_close_cancels_what_still_waits(finish_current: bool) -> None:
    async def body(batcher: MicroBatcher[int, int], compute: Doubler) -> None:
        waiting = asyncio.ensure_future(batcher.get([7]))
        await asyncio.sleep(0)
        await batcher.close(finish_current=finish_current)
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(_with_batcher(body))
