"""A world's strengths: the bounds on a given strength, the hidden-state norm at the layer (measured once,
remembered in the store) and the default schedules built on it (a run's sweep, a probe's short look, the toy
world's recorded one)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from agent.run.config import SweepConfig

log = logging.getLogger(__name__)

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


PROBE_MULTIPLES = (0.0, 0.5, 1.0, 2.0, 3.0)
"""`steer-agent probe`'s strengths without --strengths, as multiples of the hidden-state norm at the layer: a
short look from unsteered (0) to strong, where a run's sweep uses the denser steering.probes.SWEEP_MULTIPLES."""


class Memo(Protocol):
    """Where a norm is remembered across processes (agent.store.store.Store's meta)."""

    def get_meta(self, name: str, default: Any = None) -> Any: ...

    def set_meta(self, name: str, value: Any) -> None: ...


def norm_key(engine: Any, base_image: str) -> str:
    """Where the store remembers the engine's hidden-state norm on ``base_image``."""
    fp_hash = hashlib.sha256(json.dumps(engine.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]
    return f"hidden_norm/{fp_hash}/{base_image}"


class Norms:
    """The one place a world's hidden-state norm is measured and remembered: the store's meta
    (``norm_key``) when there is a store, this object otherwise. Thread-safe; measuring runs on the
    caller's thread (a run's engine thread)."""

    def __init__(self, store: Memo | None = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._here: dict[str, float] = {}

    def known(self, engine: Any, base_image: str = "white") -> float | None:
        """The remembered norm of ``engine``'s world on ``base_image`` (rounded as stored), or None."""
        key = norm_key(engine, base_image)
        if self.store is None:
            return self._here.get(key)
        value = self.store.get_meta(key)
        return None if value is None else float(value)

    def norm(self, engine: Any, base_image: str = "white") -> float:
        """The median L2 norm of the hidden states at the engine's hooked layer on ``base_image`` [scalar]:
        the remembered one, else measured now (and remembered, rounded to 4 places, in the store)."""
        with self._lock:
            known = self.known(engine, base_image)
            if known is not None:
                return known
            norm = hidden_norm(engine, base_image)
            key = norm_key(engine, base_image)
            if self.store is None:
                self._here[key] = norm
            else:
                self.store.set_meta(key, round(norm, 4))
            return norm


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


def probe_schedule(norm: float) -> list[float]:
    """`steer-agent probe`'s default strengths: PROBE_MULTIPLES of the norm, unsteered first."""
    return [round(m * norm, 1) for m in PROBE_MULTIPLES]


def resolve_strengths(engine: Any, sweep: SweepConfig, norms: Norms | None = None) -> tuple[list[float], dict[str, Any]]:
    """(strengths, how they were chosen); the norm comes from ``norms`` (None: measured, not remembered).

    Multiples of the norm make a denser ladder than the toy world's recorded [1, 2, 3] x norm; its
    schedule is used only where the norm cannot be measured.
    """
    if sweep.strengths:
        return sorted(float(s) for s in sweep.strengths if s > 0), {"source": "fixed"}
    try:
        norm = (norms or Norms()).norm(engine, sweep.base_image)
    except Exception as exc:  # noqa: BLE001 - an engine without the hook path: fall back
        toy = toy_schedule(engine.fingerprint())
        if toy:
            return toy, {"source": "toy world schedule"}
        raise RuntimeError(f"cannot choose default strengths ({exc}): pass --strengths") from exc
    return schedule_from_norm(norm, sweep), {"source": "hidden-state norm", "norm": round(norm, 4),
                                             "multiples": list(sweep.multiples)}
