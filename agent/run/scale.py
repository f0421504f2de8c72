"""Scale-out options (where probe batches run: this process or a pool of Ray actors) and the engines they open;
Ray is imported only when an address is given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.world import Engines

if TYPE_CHECKING:
    from agent.run.ray.actor import RayOptions

Report = Callable[[str], None]
"""Where a line for the user goes (a Ray pool's per-actor lines when it stops)."""


@dataclass(frozen=True)
class ScaleOut:
    """Where a session's engines run."""

    ray: str | None = None
    """The Ray cluster whose actors run the engines (``local``: a new one on this machine, ``auto``, ``host:6379``
    or ``ray://host:10001``); None: this process."""
    workers: int | None = None
    """Engine actors (None: one per GPU of the cluster, or one CPU actor on a cluster without GPUs)."""
    model_here: bool = False
    """With ``ray``: keep the model in this process too and send only the probes to the actors (steer-agent
    eval's top-k collection, simulation and CLIP use the model itself)."""

    def problem(self) -> str | None:
        """A one-line complaint about these options, or None (ray_problem)."""
        return ray_problem(self.ray, self.workers)

    def options(self) -> RayOptions:
        """The Ray options of ``ray`` and ``workers`` (only with an address)."""
        from agent.run.ray.actor import RayOptions

        return RayOptions(address=self.ray, workers=self.workers)  # type: ignore[arg-type]


def ray_problem(address: str | None, workers: int | None) -> str | None:
    """A one-line complaint about the Ray options (--ray ADDRESS, --ray-workers N; None where not given):
    workers without an address, or an address without Ray installed; else None."""
    if address is None:
        return "--ray-workers goes with --ray [ADDRESS]" if workers is not None else None
    import importlib.util

    from agent.run.ray.actor import RAY_MISSING

    return RAY_MISSING if importlib.util.find_spec("ray") is None else None


def engines_on(address: str | None, workers: int | None = None) -> Engines:
    """Engines in this process (no address), or a pool of Ray actors on the cluster at ``address``
    (``local``: a new one on this machine); ray is imported only then."""
    if address is None:
        return Engines()
    from agent.run.ray.actor import RayOptions
    from agent.run.ray.pool import RayEngines

    return RayEngines(RayOptions(address=address, workers=workers))


def close_engines(engines: Any, report: Report | None = None) -> None:
    """Stop what the engines (or an engine) hold outside this process (a Ray pool's actors), after handing
    ``report`` a line per actor."""
    for line in getattr(engines, "worker_lines", list)() if report is not None else ():
        report(line)
    close = getattr(engines, "close", None)
    if close is not None:
        close()
