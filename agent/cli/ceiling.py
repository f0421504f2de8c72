"""python -m agent.cli.ceiling: how far a claim filter over the steering evidence, fitted on the truth, gets
against one-shot steering on the benchmark (agent.eval.ceiling)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from agent.eval.ceiling import auroc_oracle, collect, image_texts, measure, summary


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.cli.ceiling", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("--planted-seed", type=int, default=None, metavar="N",
                        help="planted features of seed N instead of the toy world's SAE features")
    parser.add_argument("--split-seed", type=int, default=0, help="the benchmark's dev/test split seed (default 0)")
    parser.add_argument("--purity", type=float, default=0.9, help="in a truth file without version-3 counts: features at least this pure (default 0.9)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=Path, default=None, metavar="METRICS_JSON",
                        help="also read the top-k and hybrid descriptions of this eval's metrics.json (e.g. "
                             "docs/eval/metrics.json for SAE features) as signals")
    parser.add_argument("--auroc-oracle", action="store_true",
                        help="also report the simulation AUROC of the true claims and of the best claim sets a greedy "
                             "search finds with the features' own activations (test split; about 15 s more)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 0.0 <= args.purity <= 1.0:
        print(f"error: --purity must lie in 0..1, got {args.purity}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print(f"error: --threads must be at least 1, got {args.threads}", file=sys.stderr)
        return 2
    images = None
    if args.images is not None:
        try:
            images = image_texts(args.images)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    import torch

    from agent.eval.world import load_truth
    from agent.session import Session
    from agent.world import WorldSpec
    from steering.toy import DATA_DIR
    from steering.toy.claims import pure_enough, scored_features
    from steering.toy.gates import split

    torch.set_num_threads(args.threads)
    sae_dir = DATA_DIR / "sae"
    world = "the toy world's SAE features"
    if args.planted_seed is not None:
        from agent.store.store import cache_root
        from steering.toy.planted import ensure

        sae_dir = ensure(cache_root() / "planted" / f"seed-{args.planted_seed}", args.planted_seed)
        world = f"planted features, seed {args.planted_seed}"
    truth = load_truth(sae_dir)
    features = [f for f in scored_features(truth, sorted(truth))[0]
                if pure_enough(truth[f], args.purity)]
    if images is not None and not set(features) <= set().union(*(set(t) for t in images.values())):
        print(f"error: {args.images} has no image descriptions for some of these features: pass the metrics of "
              "an eval of the same world (docs/eval/metrics.json for SAE features)", file=sys.stderr)
        return 2
    spec = WorldSpec(model=str(DATA_DIR / "model"), sae=str(sae_dir), device="cpu", dtype="fp32")
    with Session(spec) as session:  # the toy world's model on the CPU, no store
        engine = session.engine()
        ev = collect(engine, features, session.hidden_norm())
        splits = split(features, truth, args.split_seed)
        r = measure(ev, truth, splits, args.split_seed, images)
        if args.auroc_oracle:
            from agent.eval.simulation import Simulator
            from steering.toy.claims import CLAIM_FAMILIES

            values = [(fam, v) for fam, vs in CLAIM_FAMILIES.items() for v in vs]
            simulator = Simulator(engine, mix_of=lambda f: (truth.get(f) or {}).get("kind_mix"))
            r["auroc_oracle"] = auroc_oracle(simulator, list(splits["test"]), truth, values)
    out(json.dumps(r, indent=1) if args.json else summary(r, world))
    from agent.cli.eval import TEST_REMINDER

    print(TEST_REMINDER.replace("these are test-split figures", "the filter's figures are on the test split"),
          file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
