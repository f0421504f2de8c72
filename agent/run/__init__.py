"""Running features: the scheduler, the per-feature loop, the batched probe and image services, and what a
run is told and tells (its config, feature lists, strengths, events, scale-out options).

The scheduler is imported on first use of ``run_features`` and friends, so the run's light modules
(config, events, strengths) load without the loop and the judges behind it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["RunControl", "RunSummary", "arun_features", "run_features"]

_HOMES = {"arun_features": "agent.run.scheduler", "run_features": "agent.run.scheduler",
          "RunControl": "agent.run.state", "RunSummary": "agent.run.state"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'agent.run' has no attribute {name!r}")
