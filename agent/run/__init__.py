"""Running features: the scheduler, the per-feature loop, and the batched probe and image services."""

from __future__ import annotations

from agent.run.scheduler import RunControl, RunSummary, arun_features, run_features, world_of

__all__ = ["RunControl", "RunSummary", "arun_features", "run_features", "world_of"]
