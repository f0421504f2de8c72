"""Activation tests for the loop: steering.activation_tests' tester in the engine's thread, cached in the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agent.run.batcher import Submit
from steering.activation_tests import ActivationTest, ActivationTestResult, Tester


class ActivationCache(Protocol):
    def get_activation_test(self, key: str) -> ActivationTestResult | None: ...

    def put_activation_test(self, key: str, result: ActivationTestResult) -> None: ...


class ActivationService:
    """Runs the tests feature loops ask for. A render pool is encoded once for every feature (the tester keeps
    it), so the tests of many features cost one encoder pass per family and held hypothesis; results are
    cached in the store under the world's identity, like probes."""

    def __init__(self, tester: Tester, fingerprint: dict[str, Any], submit: Submit,
                 cache: ActivationCache | None = None, *, read_cache: bool = True,
                 on_done: Callable[[int], None] | None = None) -> None:
        self.tester, self.submit = tester, submit
        self.fingerprint = {**fingerprint, "tests": tester.settings()}
        self.cache, self.read_cache, self.on_done = cache, read_cache, on_done
        self.cached_hits = 0

    def kinds(self) -> list[str]:
        return self.tester.kinds()

    async def run(self, tests: Sequence[ActivationTest]) -> list[ActivationTestResult]:
        """Results in order: from the store, or computed in the engine's thread (never racing a generate call)."""
        out: list[ActivationTestResult | None] = [None] * len(tests)
        keys = [t.key(self.fingerprint) for t in tests]
        if self.cache is not None and self.read_cache:
            for i, key in enumerate(keys):
                hit = self.cache.get_activation_test(key)
                if hit is not None and hit.test == tests[i]:
                    out[i] = hit
                    self.cached_hits += 1
        todo = [i for i, r in enumerate(out) if r is None]
        if todo:
            results = await self.submit(self.tester.run, [tests[i] for i in todo])
            for i, r in zip(todo, results):
                out[i] = r
                if self.cache is not None and r.error is None:
                    self.cache.put_activation_test(keys[i], r)
        if self.on_done is not None:
            self.on_done(len(tests))
        return [r for r in out if r is not None]
