"""Top-k collection on Ray actors: the images cut into pieces of whole batches, each collected by an actor
holding the encoder and SAE, the pieces merged exactly on the driver (RunningTopK.merge) in image order.

The driver writes the collection and its checkpoints as one process does (steering.topk.run_collection):
a checkpoint covers the images before the first piece not yet merged, so an interrupted collection
resumes from it, with or without Ray, to the same result.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.run.ray.actor import RayOptions, load_with, set_threads
from agent.run.ray.dispatch import RayActorPool, WorkerStats
from agent.world import WorldSpec

ENGINE_ENCODER = "agent.run.ray.topk:engine_encoder"
"""The encoder and SAE of the world a spec names, as ``steer-agent topk`` collects with them."""
TOY_ENCODER = "steering.topk.collect:toy_encoder"
"""The toy world's, as its scenes' collection uses them (steering.topk.build_toy_topk)."""


def engine_encoder(spec: WorldSpec) -> tuple[Any, Any]:
    """(EncoderSpec, SAE) of the engine ``spec`` names (the actor's default loader, agent.world.load_engine)."""
    from steering.topk import EncoderSpec

    engine = load_with(spec, None)
    return EncoderSpec.from_vlm(engine.vlm, engine.sae, engine.layer), engine.sae


class EncoderActor:
    """One vision encoder + SAE in one Ray actor; collects the running top-k of a range of images."""

    def __init__(self, spec: WorldSpec, threads: int | None = None, loader: str | None = None) -> None:
        set_threads(threads)
        self.encoder, self.sae = load_with(spec, loader or ENGINE_ENCODER)
        self._sources: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        import socket

        return {"fingerprint": self.encoder.identity, "d_sae": self.sae.d_sae, "rows": 0, "pid": os.getpid(),
                "host": socket.gethostname()}

    def collect(self, source: dict[str, Any], names: str, start: int, stop: int,
                config: Any) -> tuple[dict[str, Any], tuple[int, int]]:
        """(the state of images ``start``..``stop`` of the source ``source`` describes, the input image size);
        ``names``: the hash of the driver's image list, which this machine's source must match."""
        from steering.topk import TopKError, collect_shard, open_source
        from steering.topk.collect import _names_hash

        key = json.dumps(source, sort_keys=True)
        if key not in self._sources:
            opened = open_source(source)
            if _names_hash(opened.names) != names:
                raise TopKError(f"the images of {source} differ on this Ray node: give every node the same images")
            self._sources[key] = opened
        state, size = collect_shard(self.encoder, self.sae, self._sources[key], start, stop, config)
        return {k: v.cpu() for k, v in state.state_dict().items()}, size


def pieces(start: int, n: int, config: Any, workers: int) -> list[tuple[int, int]]:
    """Image ranges from ``start`` to ``n`` of whole batches (as one pass cuts them): at most
    ``checkpoint_every`` batches each, and about two per actor when there are fewer."""
    batches = math.ceil((n - start) / config.batch_size)
    per = max(1, min(config.checkpoint_every or batches, math.ceil(batches / (2 * workers))))
    step = per * config.batch_size
    return [(a, min(a + step, n)) for a in range(start, n, step)]


class RayTopKPool(RayActorPool):
    """Encoder actors and the driver's side of a collection over them."""

    def __init__(self, spec: WorldSpec, options: RayOptions | None = None, loader: str | None = None) -> None:
        super().__init__(spec, replace(options or RayOptions(), loader=loader or ENGINE_ENCODER), EncoderActor)
        self.identity: dict[str, Any] = self.info["fingerprint"]
        self.d_sae = int(self.info["d_sae"])

    def steps(self, source: Any, config: Any) -> Any:
        """steering.topk's Steps over ``source``: pieces collected by the actors, merged in image order."""
        from steering.topk import Absorbed, RunningTopK
        from steering.topk.collect import _names_hash

        desc, names = source.describe(), _names_hash(source.names)
        limit = 2 * self.options.chunks_per_worker * len(self.workers)

        def steps(start: int, state: RunningTopK | None) -> Iterator[Absorbed]:
            bounds = pieces(start, len(source), config, len(self.workers))
            held: dict[int, tuple[RunningTopK, tuple[int, int]]] = {}
            merged = 0

            def take(worker: WorkerStats, pending: deque[int]) -> tuple[list[int], int] | None:
                if len(held) >= limit and pending[0] != merged:  # pieces wait for an earlier one: hold off
                    return None
                i = pending.popleft()
                return [i], bounds[i][1] - bounds[i][0]

            def call(actor: Any, indices: list[int]) -> Any:
                return actor.collect.remote(desc, names, *bounds[indices[0]], config)

            for (i,), (tensors, size) in self._dispatch(deque(range(len(bounds))), take, call):
                held[i] = RunningTopK.from_state_dict(tensors), tuple(size)
                while merged in held:
                    piece, size = held.pop(merged)
                    if state is None:
                        state = piece
                    else:
                        state.merge(piece)
                    a, b = bounds[merged]
                    merged += 1
                    yield Absorbed(state, size, b - a, math.ceil((b - a) / config.batch_size))

        return steps

    unit = "images"


def collect_on_ray(spec: WorldSpec, options: RayOptions, source: Any, out: str | Path, config: Any, *,
                   loader: str | None = None, restart: bool = False, progress: bool = True,
                   max_batches: int | None = None, report: Callable[[str], None] | None = None) -> Any:
    """steering.topk.collect_topk's collection, its images collected by Ray actors that each load the
    encoder ``loader`` builds (default: the engine of ``spec``); the same files, byte for byte, apart from
    the timings. ``max_batches`` as in run_collection; ``report``: called with each actor's line at the end."""
    from steering.topk import run_collection

    pool = RayTopKPool(spec, options, loader)
    try:
        return run_collection(pool.identity, pool.d_sae, source, out, config, pool.steps(source, config),
                              restart=restart, progress=progress, max_batches=max_batches)
    finally:
        for line in pool.worker_lines() if report else ():
            report(line)
        pool.close()
