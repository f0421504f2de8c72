"""How often each kind of steering evidence names a toy feature's ground truth at all: the ceiling a
judge reading that evidence could reach (any description that names the value counts).

    python bench/eval_evidence_ceiling.py [--model DIR --sae DIR] [--eval-store DIR] [--samples 3]

Kinds: the greedy sweep (the agent's opening schedule), a denser ladder, sampled descriptions,
targeted questions per attribute family, other base images (black, noise). Probes go through the
evaluation cache (steer-agent eval's), so a later eval reuses them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from agent.eval.cache import EvalCache
from agent.eval.metrics import rate, word_hit
from agent.eval.world import families_of, pure_features, truth_for_sae
from agent.probes import Probe


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--sae")
    p.add_argument("--eval-store", default=None)
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--purity", type=float, default=0.9)
    args = p.parse_args(argv)
    from agent.options import build_engine, resolve_model_and_sae
    from agent.scale import hidden_norm
    from steering.toy.scenes import QUESTIONS

    ns = argparse.Namespace(model=args.model, sae=args.sae, revision=None, layer=None, dtype="auto", device="cpu",
                            max_new_tokens=None, batch_size=128)
    model, sae = resolve_model_and_sae(ns)
    truth = truth_for_sae(sae)
    if truth is None:
        sys.exit("no ground truth beside the SAE")
    engine = build_engine(ns)
    feats = pure_features(truth, list(range(engine.sae.d_sae)), args.purity)
    fams = families_of(truth)
    norm = hidden_norm(engine)
    sweep = [round(m * norm, 2) for m in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)]
    dense = [round(m * norm, 2) for m in (0.75, 1.25, 1.75, 2.25, 2.75, 3.5, 5.0, 6.0)]
    kinds: dict[str, Callable[[int], list[Probe]]] = {
        "greedy sweep (0.5-4 x norm)": lambda f: [Probe(f, s) for s in sweep],
        "denser ladder (0.75-6 x norm)": lambda f: [Probe(f, s) for s in dense],
        f"{args.samples} sampled per sweep strength": lambda f: [Probe(f, s, samples=args.samples, seed=1, greedy=False)
                                                            for s in sweep],
        "targeted questions, every family": lambda f: [Probe(f, s, prompt="ask", question=q)
                                                       for s in sweep for q in QUESTIONS.values()],
        "black base image": lambda f: [Probe(f, s, base_image="black") for s in sweep],
        "noise base image": lambda f: [Probe(f, s, base_image="noise") for s in sweep],
    }
    root = args.eval_store or str(__import__("agent.eval_cmd", fromlist=["x"]).eval_store_path(
        argparse.Namespace(eval_store=None, model=model, sae=sae, layer=None)))
    seen: dict[int, list[str]] = {f: [] for f in feats}
    print(f"{len(feats)} pure features; hidden-state norm {norm:.1f}; cache {root}")
    with EvalCache(root) as cache:
        for name, make in kinds.items():
            t0 = time.perf_counter()
            probes = [q for f in feats for q in make(f)]
            texts: dict[int, list[str]] = {f: [] for f in feats}
            for r in cache.run_probes(engine, probes):
                texts[int(r.probe.feature)].extend(r.texts)  # type: ignore[arg-type]
            hits = []
            for f in feats:
                fam, val = truth[f]["family"], truth[f]["value"]
                rivals = [v for v in fams[fam] if v != val]
                hits.append(any(word_hit(t, val, fam, rivals) for t in texts[f]))
                seen[f] += texts[f]
            print(f"{name:<36} {rate(hits).fmt():<24} {time.perf_counter() - t0:6.1f} s")
    union = []
    for f in feats:
        fam, val = truth[f]["family"], truth[f]["value"]
        union.append(any(word_hit(t, val, fam, [v for v in fams[fam] if v != val]) for t in seen[f]))
    print(f"{'all of the above':<36} {rate(union).fmt()}")


if __name__ == "__main__":
    main()
