"""The opening sweep of a feature: baseline, a strength schedule (fixed or KL-calibrated), controls."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence

from agent.run.config import SweepConfig
from agent.probes import OBJECT_BASES, Probe, ProbeResult
from agent.judges.verdicts import ProbeRequest

RunProbes = Callable[[Sequence[Probe]], Awaitable[list[ProbeResult]]]


def baseline_probe(sweep: SweepConfig) -> Probe:
    n = sweep.samples
    return Probe(feature=None, strength=0.0, samples=n, seed=sweep.seed, base_image=sweep.base_image, greedy=n == 1)


def steered_probe(feature: int, strength: float, sweep: SweepConfig) -> Probe:
    n = sweep.samples
    return Probe(feature=feature, strength=float(strength), samples=n, seed=sweep.seed,
                 base_image=sweep.base_image, greedy=n == 1)


def control_probes(feature: int, strengths: Sequence[float], sweep: SweepConfig) -> list[Probe]:
    """Norm-matched random directions at the top ``sweep.controls`` strengths."""
    top = sorted(strengths, reverse=True)[: max(0, sweep.controls)]
    return [Probe(feature=feature, strength=float(s), seed=sweep.seed, base_image=sweep.base_image,
                  direction="random") for s in sorted(top)]


def sweep_probes(feature: int, strengths: Sequence[float], sweep: SweepConfig) -> list[Probe]:
    return ([baseline_probe(sweep)] + [steered_probe(feature, s, sweep) for s in strengths]
            + control_probes(feature, strengths, sweep))


def panel_features(n: int, d_sae: int) -> list[int]:
    """``n`` feature ids evenly spaced over ``d_sae`` (the same for every run on this SAE)."""
    n = min(max(0, n), d_sae)
    return sorted({(i * d_sae) // n for i in range(n)}) if n else []


def background_probes(strengths: Sequence[float], sweep: SweepConfig, d_sae: int | None = None) -> list[Probe]:
    """Probes shared by every feature of a run: random directions (norm-matched to feature 0's
    column; SAE decoder columns are unit norm, so to all of them) and a panel of reference features."""
    random = [Probe(feature=0, strength=float(s), seed=10_000 + i, base_image=sweep.base_image, direction="random")
              for i in range(max(0, sweep.background)) for s in strengths]
    # The same on each built-in object image (two directions each): the controls of the offline judge's
    # transfer test, which steers the feature on those images.
    random += [Probe(feature=0, strength=float(s), seed=10_000 + i, base_image=b, direction="random")
               for b in OBJECT_BASES for i in range(min(2, max(0, sweep.background))) for s in strengths]
    panel = [steered_probe(f, s, sweep) for f in panel_features(sweep.panel, d_sae or 0) for s in strengths]
    return random + panel


def requested_probe(feature: int, req: ProbeRequest, sweep: SweepConfig, round: int, max_strength: float) -> Probe:
    """Turn a judge's request into a Probe (strength clamped to ``max_strength``)."""
    n = req.samples
    unsteered = float(req.strength) == 0.0 and not req.control
    return Probe(
        # An unsteered request is the same for every feature: one shared probe (and cache entry).
        feature=None if unsteered else feature, strength=min(float(req.strength), max_strength), samples=n,
        seed=sweep.seed + (round if req.control else 0), prompt="ask" if req.question else "describe",
        question=req.question, base_image=req.base_image, direction="random" if req.control else "feature",
        greedy=n == 1,
    )


async def calibrate(feature: int, run: RunProbes, sweep: SweepConfig, s_max: float) -> tuple[list[float], list[ProbeResult]]:
    """Per KL target, the strength reaching it (geometric bisection in [s_max/256, s_max]).

    All targets advance together, so each step is one batch. Returns the chosen strengths (sorted,
    unique) and their results.
    """
    targets = sorted(t for t in sweep.kl_targets if t > 0)
    seen: dict[float, ProbeResult] = {}

    async def measure(strengths: list[float]) -> None:
        todo = sorted({round(s, 4) for s in strengths} - set(seen))
        if todo:
            for r in await run([steered_probe(feature, s, sweep) for s in todo]):
                seen[round(r.probe.strength, 4)] = r

    # Widen the bracket while even its top stays below the highest target (a weak feature).
    await measure([s_max])
    for _ in range(3):
        if seen[round(s_max, 4)].kl_first >= targets[-1]:
            break
        s_max *= 4
        await measure([s_max])
    lo = [s_max / 256] * len(targets)
    hi = [s_max] * len(targets)
    for _ in range(max(0, sweep.calibrate_steps)):
        mids = [math.sqrt(a * b) for a, b in zip(lo, hi)]
        await measure(mids)
        for i, (t, m) in enumerate(zip(targets, mids)):
            if seen[round(m, 4)].kl_first < t:
                lo[i] = m
            else:
                hi[i] = m

    def closeness(s: float, t: float) -> float:
        return abs(math.log(max(seen[s].kl_first, 1e-6)) - math.log(t))

    chosen = {min(seen, key=lambda s: closeness(s, t)) for t in targets}
    # Unreachable targets collapse onto one strength: keep the schedule as wide as asked for by
    # adding the measured strengths farthest (in log scale) from those already chosen.
    while len(chosen) < min(len(targets), len(seen)):
        chosen.add(max((s for s in seen if s not in chosen),
                       key=lambda s: min(abs(math.log(s / c)) for c in chosen)))
    ordered = sorted(chosen)
    return ordered, [seen[s] for s in ordered]
