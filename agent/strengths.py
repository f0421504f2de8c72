"""A world's default strength schedule: multiples of the hidden-state norm at the layer, or the toy world's."""

from __future__ import annotations

import logging
from typing import Any

from agent.config import SweepConfig

log = logging.getLogger(__name__)


def toy_schedule(fingerprint: dict[str, Any]) -> list[float] | None:
    """The strength schedule the toy world's build recorded, when the engine runs the toy SAE."""
    try:
        from pathlib import Path

        from steering import toy

        if not toy.is_available():
            return None
        if Path(str(fingerprint.get("sae", ""))).resolve() != toy.sae_dir().resolve():
            return None
        meta = toy.ground_truth_meta()
    except Exception as exc:  # noqa: BLE001 - the toy world is optional
        log.debug("no toy schedule: %s", exc)
        return None
    strengths = meta.get("strengths") or meta.get("strength_schedule")
    if isinstance(strengths, (list, tuple)) and strengths:
        return sorted(float(s) for s in strengths if float(s) > 0)
    return None


def hidden_norm(engine: Any, base_image: str = "white") -> float:
    """Median L2 norm of the hidden states at the engine's hooked layer, on ``base_image`` [scalar]."""
    return float(engine.hidden_norm(base_image))


def schedule_from_norm(norm: float, sweep: SweepConfig) -> list[float]:
    return [round(m * norm, 2) for m in sweep.multiples if m > 0]


def resolve_strengths(engine: Any, sweep: SweepConfig, measured: float | None = None) -> tuple[list[float], dict[str, Any]]:
    """(strengths, how they were chosen). ``measured`` is a known hidden-state norm (from the store).

    Multiples of the norm make a denser ladder than the toy world's recorded [1, 2, 3] x norm; its
    schedule is used only where the norm cannot be measured.
    """
    if sweep.strengths:
        return sorted(float(s) for s in sweep.strengths if s > 0), {"source": "fixed"}
    try:
        norm = measured if measured is not None else hidden_norm(engine, sweep.base_image)
    except Exception as exc:  # noqa: BLE001 - an engine without the hook path: fall back
        toy = toy_schedule(engine.fingerprint())
        if toy:
            return toy, {"source": "toy world schedule"}
        raise RuntimeError(f"cannot choose default strengths ({exc}): pass --strengths") from exc
    return schedule_from_norm(norm, sweep), {"source": "hidden-state norm", "norm": round(norm, 4),
                                             "multiples": list(sweep.multiples)}
