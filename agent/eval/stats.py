"""Bootstrap confidence intervals clustered by true value: means and paired differences."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Any

N_BOOT = 2000


def _clusters(keys: Sequence[str]) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return [groups[k] for k in sorted(groups)]


def cluster_ci(values: Sequence[float], keys: Sequence[str], seed: int = 0, n_boot: int = N_BOOT,
               level: float = 0.95) -> dict[str, Any]:
    """{"mean", "ci": [lo, hi]} of ``values``; the bootstrap resamples whole clusters (features sharing a key)."""
    if len(values) != len(keys):
        raise ValueError("one cluster key per value")
    if not values:
        return {"mean": None, "ci": [None, None], "n": 0}
    groups = _clusters(keys)
    rng = random.Random(seed)
    sums = [(sum(values[i] for i in g), len(g)) for g in groups]
    means = []
    for _ in range(n_boot):
        pick = [sums[rng.randrange(len(sums))] for _ in sums]
        means.append(sum(s for s, _ in pick) / sum(n for _, n in pick))
    means.sort()
    lo = means[int((1 - level) / 2 * n_boot)]
    hi = means[min(n_boot - 1, int((1 + level) / 2 * n_boot))]
    return {"mean": round(statistics.fmean(values), 6), "ci": [round(lo, 6), round(hi, 6)], "n": len(values),
            "clusters": len(groups)}


def paired_diff(a: Sequence[float], b: Sequence[float], keys: Sequence[str], seed: int = 0,
                n_boot: int = N_BOOT) -> dict[str, Any]:
    """a - b per feature, with a clustered bootstrap CI, wins/losses and a plain verdict."""
    if len(a) != len(b):
        raise ValueError("paired values must line up")
    d = [x - y for x, y in zip(a, b)]
    out = cluster_ci(d, keys, seed, n_boot)
    out["wins"] = sum(x > 1e-12 for x in d)
    out["losses"] = sum(x < -1e-12 for x in d)
    lo, hi = out["ci"]
    out["verdict"] = ("no data" if lo is None else "wins" if lo > 0 else "loses" if hi < 0 else "no clear difference")
    return out
