"""The random-direction control for the agent loop: an engine wrapper that steers a norm-matched
random direction wherever the loop asks for one of the target features."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

from agent.probes import Probe, ProbeResult

SEED_OFFSET = 7_919_000
"""Added to a probe's seed for the control's direction, so it differs from the loop's own random
control probes (seeded with the sweep seed): a judge that saw the same direction as "steered" and
as "control" would discount every word, and the control would fail for the wrong reason."""


class RandomDirectionEngine:
    """Runs the loop's probes for ``targets`` along random directions of the same norm.

    Probes of other features (the offline judge's reference panel), baselines and the loop's own
    random controls pass through unchanged. Results come back under the probe the loop asked for,
    so the loop and the judge see an ordinary feature. The fingerprint differs from the inner
    engine's, so the control's results never share a cache key with real steering.
    """

    def __init__(self, engine: Any, targets: Collection[int], seed_offset: int = SEED_OFFSET) -> None:
        self.engine = engine
        self.targets = frozenset(int(f) for f in targets)
        self.seed_offset = seed_offset
        self.sae = getattr(engine, "sae", None)

    def fingerprint(self) -> dict[str, Any]:
        return {**self.engine.fingerprint(), "eval_control": {"kind": "random-direction",
                                                              "seed_offset": self.seed_offset}}

    def swap(self, probe: Probe) -> Probe:
        if probe.is_baseline or probe.direction != "feature" or probe.feature not in self.targets:
            return probe
        return replace(probe, direction="random", seed=probe.seed + self.seed_offset)

    def run(self, probes: Sequence[Probe],
            on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        swapped = [self.swap(p) for p in probes]
        back: dict[Probe, list[Probe]] = {}
        for original, s in zip(probes, swapped):
            back.setdefault(s, []).append(original)

        def relabel(result: ProbeResult, original: Probe) -> ProbeResult:
            if result.probe == original:
                return result
            return replace(result, probe=original, extra={**result.extra, "control_of": original.feature,
                                                          "direction": "random"})

        def forward(result: ProbeResult) -> None:
            if on_result is not None:
                for original in back.get(result.probe, [result.probe]):
                    on_result(relabel(result, original))

        results = self.engine.run(swapped, on_result=forward if on_result is not None else None)
        return [relabel(r, o) for r, o in zip(results, probes)]
