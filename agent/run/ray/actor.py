"""The Ray side of scale-out: joining or starting a cluster, and the actor that holds one engine (a leaf of
agent.run.ray: it imports none of its siblings, which Ray's workers load it without)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.world import SteeringError, WorldSpec

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
"""The checkout the driver runs from; actors import the same code (PYTHONPATH), not an installed copy."""
LOCAL = "local"
"""The address that starts a new local cluster on this machine (what a bare ``--ray`` means)."""
RAY_MISSING = "--ray needs Ray: pip install -e '.[ray]' (ray>=2.50)"
SHARED = ("a cluster of several machines needs the store, and the images it was collected from, on shared storage "
          "at the same path on every node")


@dataclass(frozen=True)
class RayOptions:
    """Where the engines run and how many there are."""

    address: str = LOCAL
    """``local`` (a new cluster on this machine), ``auto`` (the cluster ``ray start`` made here) or
    ``ray://host:10001`` / ``host:6379``: as ``ray.init`` takes it."""
    workers: int | None = None
    """Engine actors. None: one per GPU of the cluster (``num_gpus=1`` each), or one CPU actor without GPUs."""
    cpus_per_worker: float = 1.0
    """CPUs each CPU actor reserves (and torch threads it uses)."""
    chunks_per_worker: int = 2
    """Chunks queued on one actor at a time: the next one waits there while the current one runs."""
    loader: str | None = None
    """``module:function`` that builds an engine from a WorldSpec in each actor (None: agent.world.load_engine;
    benches and tests swap in others)."""
    max_restarts: int = 2
    """Times Ray restarts an actor that died (a replacement: the model loaded again), before it is dropped."""
    init: dict[str, Any] = field(default_factory=dict)
    """Extra ``ray.init`` keywords (tests: ``num_cpus``, ``object_store_memory``, ``include_dashboard``)."""


class EngineActor:
    """One engine (model + SAE) in one Ray actor; stateless apart from the model and its caches."""

    def __init__(self, spec: WorldSpec, threads: int | None = None, loader: str | None = None) -> None:
        set_threads(threads)
        self.engine = load_with(spec, loader)
        self._describers: dict[str, Any] = {}
        """Top-k describers by collection folder (agent.run.images.TopKDescriber), opened on first use."""

    def info(self) -> dict[str, Any]:
        """What the driver needs to know of this actor: its engine's identity and size, where it runs."""
        import socket

        d_sae = getattr(getattr(self.engine, "sae", None), "d_sae", None)
        rows = self.engine.batch_rows() if hasattr(self.engine, "batch_rows") else 32
        return {"fingerprint": self.engine.fingerprint(), "d_sae": d_sae, "rows": int(rows), "pid": os.getpid(),
                "host": socket.gethostname()}

    def run(self, probes: list[Any], isolate: bool) -> list[Any]:
        """Results for a chunk of probes in order (``isolate``: a failing probe comes back as its error)."""
        if isolate and hasattr(self.engine, "run_isolated"):
            return list(self.engine.run_isolated(probes))
        return list(self.engine.run(probes))

    def call(self, method: str, *args: Any) -> Any:
        """Another engine method (``hidden_norm``), run in this actor."""
        return getattr(self.engine, method)(*args)

    def prepare_evidence(self, root: str) -> dict[str, Any]:
        """Open the top-k collection at ``root`` (this node's path to it), check it fits this engine; the
        describing fingerprint (agent.run.images.TopKDescriber.prepare)."""
        return self._describer(root).prepare()

    def describe(self, root: str, requests: list[Any]) -> list[Any]:
        """ImageEvidence for a chunk of EvidenceRequests in order, from the collection at ``root``."""
        return self._describer(root).describe(requests)

    def _describer(self, root: str) -> Any:
        if root not in self._describers:
            self._describers[root] = actor_describer(self.engine, root)
        return self._describers[root]


def actor_describer(engine: Any, root: str) -> Any:
    """An engine actor's TopKDescriber of the collection at ``root``, once this node has read it (its files
    and one of its images); else a TopKError that names the node and shared storage."""
    import socket

    from agent.run.images import TopKDescriber
    from agent.topk import open_topk
    from steering.topk import TopKError

    try:
        topk = open_topk(root)
        kept = topk.ids[topk.ids >= 0]
        if kept.numel():
            topk.image(int(kept[0]))
    except Exception as exc:  # noqa: BLE001 - whatever stops this node reading it, said in one line
        raise TopKError(f"Ray node {socket.gethostname()} cannot read the top-k collection {root}: "
                        f"{first_line(exc)} ({SHARED})") from None
    return TopKDescriber(engine, root)


def set_threads(threads: int | None) -> None:
    """Torch threads of this actor (its CPUs; None: torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


ENGINE_LOADER = "agent.world:load_engine"
"""What an actor builds its engine with when no loader is given: the world module's loader, as the driver's
Session loads its engine."""


def load_with(spec: WorldSpec, loader: str | None) -> Any:
    """What ``loader`` (``module:function``; None: ENGINE_LOADER, the engine) builds from a spec."""
    import importlib

    module, _, name = (loader or ENGINE_LOADER).partition(":")
    return getattr(importlib.import_module(module), name)(spec)


def connect(options: RayOptions) -> bool:
    """Join or start the cluster (``ray`` imported here only); True when this call started Ray.
    Raises SteeringError (a one-line message) when Ray is missing or the cluster cannot be reached."""
    try:
        import ray
    except ImportError:
        raise SteeringError(RAY_MISSING) from None
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if options.address == LOCAL:
        # a cluster of this machine alone: no probe of the route to a public address to learn our own
        # (Ray itself turns 127.0.0.1 into this machine's address, where its services listen)
        kwargs.update(address="local", _node_ip_address="127.0.0.1", include_dashboard=False)
    else:
        kwargs["address"] = options.address
    kwargs["runtime_env"] = {"env_vars": _actor_env()}
    kwargs.update(options.init)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SteeringError(f"cannot reach the Ray cluster at {options.address}: {first_line(exc)}") from None
    return True


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _actor_env() -> dict[str, str]:
    """Environment of every actor: this checkout first on the path, the driver's engine loader and hub settings."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "STEER_INTERP_CACHE"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def start_actors(spec: WorldSpec, options: RayOptions, actor_class: type = EngineActor) -> list[Any]:
    """The handles of actors of ``actor_class`` (built from spec, threads, loader): one per GPU
    (``num_gpus=1``), else ``workers`` CPU actors."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    remote = ray.remote(actor_class)
    if gpus:
        count = options.workers or gpus
        opts: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
        threads = None
    else:
        count = options.workers or 1
        opts = {"num_cpus": options.cpus_per_worker}
        threads = max(1, int(options.cpus_per_worker))
        spec = _on_cpu(spec)
    log.info("starting %d %s actors (%s)", count, actor_class.__name__, "one GPU each" if gpus else "CPU")
    actor = remote.options(max_restarts=options.max_restarts, max_task_retries=0, **opts)
    return [actor.remote(spec, threads, options.loader) for _ in range(count)]


def _on_cpu(spec: WorldSpec) -> WorldSpec:
    """A spec for CPU actors: ``auto`` must not pick a GPU the actor has not reserved."""
    from dataclasses import replace

    return replace(spec, device="cpu") if spec.device == "auto" else spec
