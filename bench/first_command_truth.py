"""The README's first command against one-shot steering on the same features: how many pure features each names.

    python bench/first_command_truth.py STORE [--strength S]

STORE is the store a run of ``steer-agent --features 0-63`` wrote. For every feature of it whose ground truth is
at least 0.9 pure (as the run's summary counts them), one-shot steering describes the white image once at the
strength the benchmark chose on its dev split (385.58 on the toy world: docs/eval/report.md), and both texts
are checked with the same rule (agent.groundtruth.names_truth). Also counts labels that name a word their own
explanation does not (agent.judges.labels.contradicts).
"""

from __future__ import annotations

import argparse

from agent.groundtruth import PURE, ground_truth_for, names_truth
from agent.judges.labels import contradicts
from agent.store.store import Store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--strength", type=float, default=385.58)
    args = p.parse_args()
    from steering import toy
    from steering.engine import SteeringEngine
    from steering.models import load_vlm
    from steering.probes import Probe
    from steering.sae import load_sae

    with Store(args.store, create=False) as s:
        records = [r for r in s.list_records() if r.status == "done"]
    table = (ground_truth_for(records[0].world) if records else None) or {}
    truth = {r.feature: table.get(r.feature) for r in records}
    pure = [r for r in records if truth[r.feature] and truth[r.feature].get("value") is not None
            and float(truth[r.feature].get("purity", 0)) >= PURE]
    engine = SteeringEngine(load_vlm(toy.model_dir()), load_sae(toy.sae_dir()))
    shots = engine.run([Probe(r.feature, args.strength) for r in pure])
    agent = sum(bool(names_truth(r.explanation, truth[r.feature])) for r in pure)
    oneshot = sum(bool(names_truth(res.texts[0], truth[r.feature])) for r, res in zip(pure, shots))
    bad = [r.feature for r in records if contradicts(r.label, r.explanation)]
    print(f"pure features: {len(pure)}; named by the run: {agent}; by one-shot at strength {args.strength:g}: {oneshot}")
    print(f"labels that name a word their explanation does not: {len(bad)} {bad if bad else ''}")


if __name__ == "__main__":
    main()
