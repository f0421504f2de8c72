"""Running features: the scheduler, the per-feature loop, and the batched probe and image services."""

from __future__ import annotations

from agent.run.scheduler import arun_features, run_features
from agent.run.state import RunControl, RunSummary

__all__ = ["RunControl", "RunSummary", "arun_features", "run_features"]
