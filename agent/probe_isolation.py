"""Run a batch of probes so that one that fails fails alone (issue 17 item 4), for the probe service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from steering.probes import Probe, ProbeResult


def run_probes(engine: Any, probes: Sequence[Probe],
               on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult | Exception]:
    """``engine.run_isolated`` where the engine has it (a failed probe's entry is its error), else ``engine.run``."""
    isolated = getattr(engine, "run_isolated", None)
    if callable(isolated):
        return list(isolated(probes, on_result=on_result))
    return list(engine.run(probes, on_result=on_result))


def settle(future: asyncio.Future, outcome: ProbeResult | Exception, failed: type[Exception]) -> None:
    """Resolve one waiting probe: its result, or ``failed`` (the service's error type) naming its own error."""
    if future.done():
        return
    if isinstance(outcome, Exception):
        error = failed(f"the engine failed: {outcome}")
        error.__cause__ = outcome
        future.set_exception(error)
    else:
        future.set_result(outcome)
