"""How often each mode (steering, top-k, hybrid) names a toy feature's ground-truth value.

    python bench/topk_modes.py [--scenes 1000] [--features 64] [--strength S] [--hybrid-strength S]

Needs the built toy world (python -m steering.toy.build). Collects the toy top-k over freshly
rendered scenes, describes every feature with a ground truth in each mode, and counts the answers
that name the feature's value (steering.toy.names_value).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from steering.engine import SteeringEngine
from steering.modes import EvidenceRequest, describe
from steering.probes import Probe
from steering.topk import TopKResult


def mode_hits(engine: SteeringEngine, topk: TopKResult, truth: dict[int, dict], features: Sequence[int],
              strength: float, hybrid_strength: float, n_images: int = 5) -> dict[str, dict[str, Any]]:
    """mode -> {"hits", "n", "seconds"} over ``features`` (each one row per mode, batched)."""
    from steering.toy import names_value

    out: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    steered = engine.run([Probe(f, strength) for f in features])
    out["steering"] = {"texts": [r.texts[0] for r in steered], "seconds": time.perf_counter() - t0}
    for mode, s in (("topk", 0.0), ("hybrid", hybrid_strength)):
        t0 = time.perf_counter()
        res = describe(engine, topk, [EvidenceRequest(f, mode, s, n_images) for f in features])
        out[mode] = {"texts": [r.texts[0] if r.texts else "" for r in res], "seconds": time.perf_counter() - t0}
    for mode, d in out.items():
        d["hits"] = sum(names_value(t, truth[f]["value"], truth[f]["family"]) for f, t in zip(features, d["texts"]))
        d["n"] = len(features)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=1000, help="scenes in the top-k image set")
    parser.add_argument("--features", type=int, default=64, help="features with a ground truth to describe")
    parser.add_argument("--strength", type=float, help="plain steering strength (default: the toy's middle one)")
    parser.add_argument("--hybrid-strength", type=float, help="hybrid strength (default: half the steering one)")
    parser.add_argument("--n-images", type=int, default=5)
    args = parser.parse_args(argv)
    import steering.toy as toy

    if not toy.is_available():
        sys.exit("the toy world is not built: run python -m steering.toy.build")
    from steering.engine import GenerationSettings
    from steering.models import load_vlm
    from steering.sae import load_sae
    from steering.topk import build_toy_topk

    truth = toy.ground_truth()
    strengths = toy.ground_truth_meta().get("strengths") or [64.0]
    strength = args.strength or float(strengths[len(strengths) // 2])
    hybrid = args.hybrid_strength if args.hybrid_strength is not None else strength / 2
    engine = SteeringEngine(load_vlm(toy.model_dir()), load_sae(toy.sae_dir()), settings=GenerationSettings(max_new_tokens=24))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        topk = build_toy_topk(tmp, n_scenes=args.scenes)
        collect_s = time.perf_counter() - t0
        features = [f for f in sorted(truth) if topk.ids[f, 0] >= 0][: args.features]
        hits = mode_hits(engine, topk, truth, features, strength, hybrid, args.n_images)
    print(f"toy top-k over {args.scenes} scenes in {collect_s:.1f}s; {len(features)} features; "
          f"steering strength {strength:g}, hybrid strength {hybrid:g}")
    for mode, d in hits.items():
        print(f"{mode:<10} names the ground truth {d['hits']:>4}/{d['n']:<4} ({d['hits'] / max(d['n'], 1):.0%})"
              f"  {d['seconds']:.1f}s")


if __name__ == "__main__":
    main()
