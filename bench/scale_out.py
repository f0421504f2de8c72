"""Scale-out: probe rows/s on 1 and 2 Ray actors (one engine each) in one run, their ratio, the driver's cost per chunk.

    python bench/scale_out.py [--rows 256] [--max-new-tokens 16] [--world toy|tiny] [--repeats 2] [--cpus 2]

A local Ray cluster on this machine, CPU actors of one core each (so 2 actors on 2 cores is the most a
2-core machine can show: expect <= 2x). The driver's overhead is measured with actors whose engine
answers at once: what is left is Ray's round trip and the driver's own work per chunk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class NullEngine:
    """An engine that answers every probe at once (the driver's and Ray's overhead is all that is timed)."""

    sae = SimpleNamespace(d_sae=1 << 16)

    def __init__(self, spec: Any = None) -> None:
        pass

    def fingerprint(self) -> dict[str, Any]:
        return {"model": "null", "sae": "null", "layer": 0}

    def batch_rows(self) -> int:
        return 32

    def run(self, probes: list[Any], on_result: Any = None) -> list[Any]:
        from agent.probes import ProbeResult

        return [ProbeResult(probe=p, texts=("",) * p.samples, n_tokens=(0,) * p.samples) for p in probes]

    run_isolated = run


def null_engine(spec: Any) -> NullEngine:
    return NullEngine(spec)


def world(name: str, max_new_tokens: int, tmp: Path) -> Any:
    from agent.world import WorldSpec

    if name == "tiny":
        from steering.tiny import write_tiny_world

        model, sae = write_tiny_world(tmp / "tiny")
        return WorldSpec(model=str(model), sae=str(sae), max_new_tokens=max_new_tokens)
    return WorldSpec(max_new_tokens=max_new_tokens)


def probes_for(rows: int, strength: float) -> list[Any]:
    """``rows`` greedy probes of distinct features (one row each), so nothing is answered twice."""
    from agent.probes import Probe

    return [Probe(feature=f % 256, strength=strength * (1 + f // 256)) for f in range(rows)]


def timed(pool: Any, probes: list[Any], repeats: int) -> float:
    """Best rows/s of ``repeats`` runs of ``probes`` on ``pool`` (after a warm-up that reaches every actor)."""
    pool.run(probes[: 2 * sum(w.rows for w in pool.workers)])
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        pool.run(probes)
        best = max(best, len(probes) / (time.perf_counter() - t0))
    return best


def overhead(spec: Any, rows: int, repeats: int) -> tuple[float, float]:
    """(wall ms per chunk, driver CPU ms per chunk) with engines that answer at once, 2 actors."""
    from agent.run.ray.actor import RayOptions
    from agent.run.ray.pool import RayEnginePool

    pool = RayEnginePool(spec, RayOptions(workers=2, loader="bench.scale_out:null_engine"))
    try:
        probes = probes_for(rows, 1.0)
        pool.run(probes)
        chunks = repeats * -(-rows // 32)
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(repeats):
            pool.run(probes)
        return (1000 * (time.perf_counter() - t0) / chunks, 1000 * (time.thread_time() - c0) / chunks)
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256, help="probes per run (one row each)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--world", choices=("toy", "tiny"), default="toy")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per pool (best is kept)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local cluster")
    args = parser.parse_args()

    import ray

    from agent.run.ray.actor import RayOptions, connect
    from agent.run.ray.pool import RayEnginePool

    connect(RayOptions(init={"num_cpus": args.cpus, "object_store_memory": 80 * 2**20}))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = world(args.world, args.max_new_tokens, Path(tmp))
            rates: dict[int, float] = {}
            for n in (1, 2):
                pool = RayEnginePool(spec, RayOptions(workers=n))
                try:
                    strength = pool.hidden_norm("white")
                    rates[n] = timed(pool, probes_for(args.rows, strength), args.repeats)
                finally:
                    pool.close()
                print(f"{n} actor{'s' if n > 1 else ''}: {rates[n]:.1f} rows/s", flush=True)
            wall, cpu = overhead(spec, args.rows, args.repeats)
    finally:
        ray.shutdown()
    print(f"ratio 2/1 actors: {rates[2] / rates[1]:.2f}x")
    print(f"driver overhead per chunk of 32 probes: {wall:.1f} ms wall (Ray round trip, engines answering at once), "
          f"{cpu:.2f} ms driver CPU")


if __name__ == "__main__":
    main()
