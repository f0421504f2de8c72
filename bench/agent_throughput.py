"""Agent throughput: packing probes of many feature loops into shared engine batches vs one loop at a
time, and a resumed run served from the store. Prints seconds and ratios (not a test).

    python bench/agent_throughput.py [--features 0-31] [--max-new-tokens 24] [--world toy|tiny]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def engine_for(world: str, max_new_tokens: int | None, tmp: Path):
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    if world == "toy":
        from steering import toy

        if not toy.is_available():
            raise SystemExit("the toy world is not built yet: use --world tiny")
        model, sae = toy.model_dir(), toy.sae_dir()
    else:
        from steering.tiny import write_tiny_world

        model, sae = write_tiny_world(tmp / "tiny")
    vlm = load_vlm(str(model), dtype="fp32", device="cpu")
    sae_obj = load_sae(str(sae), d_in=vlm.vision.width)
    settings = GenerationSettings()
    if max_new_tokens:
        settings.max_new_tokens = max_new_tokens
    return SteeringEngine(vlm, sae_obj, settings=settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="0-31")
    parser.add_argument("--world", choices=("toy", "tiny"), default=None, help="default: toy when built, else tiny")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    args = parser.parse_args()

    from agent.run.config import RunConfig
    from agent.run.features import parse_features
    from agent.judges import OfflineJudge
    from agent.run import run_features
    from agent.store.store import Store

    world = args.world
    if world is None:
        from steering import toy

        world = "toy" if toy.is_available() else "tiny"
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        engine = engine_for(world, args.max_new_tokens, tmp)
        features = parse_features(args.features, engine.sae.d_sae)
        rows = []
        for name, in_flight in (("one loop at a time", 1), ("64 loops, shared batches", 64)):
            with Store(tmp / f"store-{in_flight}") as store:
                t0 = time.perf_counter()
                s = run_features(engine, OfflineJudge(), store, features, RunConfig(in_flight=in_flight))
                seconds = time.perf_counter() - t0
                rows.append((name, seconds, s.stats.probes_run, s.stats.probe_rows))
                if in_flight == 64:
                    t0 = time.perf_counter()
                    run_features(engine, OfflineJudge(), store, features, RunConfig())
                    rows.append(("resumed from the store", time.perf_counter() - t0, 0, 0))
        print(f"world: {world}, {len(features)} features, offline judge, "
              f"max_new_tokens {engine.settings.max_new_tokens}, batch {engine.settings.batch_size or 'auto'}")
        base = rows[0][1]
        for name, seconds, probes, n_rows in rows:
            print(f"  {name:28s} {seconds:7.2f} s  {probes:4d} probes {n_rows:4d} rows  x{base / seconds:6.1f}")


if __name__ == "__main__":
    main()
