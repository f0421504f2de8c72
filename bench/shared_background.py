"""What the shared background costs: a run of the offline agent with the background it had before the dev
split chose a larger one (16 reference features, 4 random directions) and with today's defaults, each on a
fresh store, in one process. Prints seconds, probes and the ratio (not a test).

    python bench/shared_background.py [--features 0-63] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="0-63")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating (the best counts)")
    args = parser.parse_args()

    import torch

    from agent.run.config import RunConfig, SweepConfig
    from agent.run.features import parse_features
    from agent.judges import OfflineJudge
    from agent.run import run_features
    from agent.store.store import Store
    from steering import toy
    from steering.engine import SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    if not toy.is_available():
        raise SystemExit("the toy world is not built: python -m steering.toy.build --seed 0")
    torch.set_num_threads(2)
    engine = SteeringEngine(load_vlm(str(toy.model_dir()), dtype="fp32", device="cpu"), load_sae(str(toy.sae_dir())))
    features = parse_features(args.features, engine.sae.d_sae)
    today = SweepConfig()
    configs = {"before (panel 16, background 4)": replace(today, panel=16, background=4),
               f"today (panel {today.panel}, background {today.background})": today}
    best: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with Store(tmp / "warm") as store:  # the engine's per-image caches, filled once for both
            run_features(engine, OfflineJudge(), store, features[:2], RunConfig(sweep=today))
        for i in range(max(1, args.repeats)):
            for j, (name, sweep) in enumerate(configs.items()):
                with Store(tmp / f"store-{i}-{j}") as store:
                    t0 = time.perf_counter()
                    s = run_features(engine, OfflineJudge(), store, features, RunConfig(sweep=sweep))
                    seconds = time.perf_counter() - t0
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, s.stats.probes_run)
    print(f"toy world, {len(features)} features, offline judge, 2 threads, best of {max(1, args.repeats)}")
    base = next(iter(best.values()))[0]
    for name, (seconds, probes) in best.items():
        print(f"  {name:36s} {seconds:7.2f} s  {probes:5d} probes  x{seconds / base:5.2f} the time before")


if __name__ == "__main__":
    main()
