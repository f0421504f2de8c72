"""Bounds on user-given steering strengths and finite numbers for JSON output (issue 17 item 9)."""

from __future__ import annotations

import math
from collections.abc import Sequence

MAX_STRENGTH = 1e6
"""Largest accepted strength: far above any useful one (a few times the hidden-state norm, which is
in the hundreds for the supported encoders), far below what overflows bf16/fp16 activations."""


def check_strengths(values: Sequence[float], text: str) -> list[float]:
    """``values`` when every one is finite and within 0..MAX_STRENGTH; else ValueError with a one-line message."""
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"bad --strengths {text!r}: {v} is not a finite number")
        if not 0 <= v <= MAX_STRENGTH:
            raise ValueError(
                f"bad --strengths {text!r}: {v:g} is outside 0..{MAX_STRENGTH:g} (strengths are L2 norms, "
                "a few times the hidden-state norm)"
            )
    return list(values)


def finite_or_none(value: float) -> float | None:
    """``value`` when finite, else None: JSON has no NaN or infinity, and ``json.dumps`` would write them."""
    return value if math.isfinite(value) else None
