"""How the offline judge's thresholds move its toy-world accuracy and the permuted control.

    python bench/eval_offline_params.py [--model DIR --sae DIR] [--eval-store DIR] [NAME=PARAMS ...]

PARAMS is a Python dict of OfflineParams fields, e.g. 'named4={"max_named": 4}'. Without any, a
few single changes are compared with the defaults. Probes come from (and go to) the evaluation
cache of ``steer-agent eval``, so after one eval each variant takes seconds.
"""

from __future__ import annotations

import argparse
import ast
import sys

from agent.eval import modes as M
from agent.eval.cache import EvalCache
from agent.eval.metrics import derangement, expected_permuted, summarize
from agent.eval.runner import score
from agent.eval.world import families_of, pure_features, truth_for_sae

VARIANTS = {
    "defaults": {},
    "no panel discount": {"panel_weight": 0.0},
    "name up to 4 words": {"max_named": 4},
    "wider ties (0.35)": {"tie_share": 0.35},
    "no dominant window": {"dominant_fraction": 0.0},
    "no panel, 4 words, ties 0.35": {"panel_weight": 0.0, "max_named": 4, "tie_share": 0.35},
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--sae")
    p.add_argument("--eval-store")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("variants", nargs="*", help="NAME={field: value, ...}")
    args = p.parse_args(argv)
    from agent.eval_cmd import eval_store_path
    from agent.judges import OfflineJudge, OfflineParams
    from agent.options import build_engine, resolve_model_and_sae
    from agent.scale import hidden_norm

    ns = argparse.Namespace(model=args.model, sae=args.sae, revision=None, layer=None, dtype="auto", device="cpu",
                            max_new_tokens=None, batch_size=128, eval_store=args.eval_store)
    _model, sae = resolve_model_and_sae(ns)
    truth = truth_for_sae(sae)
    if truth is None:
        sys.exit("no ground truth beside the SAE")
    engine = build_engine(ns)
    feats = pure_features(truth, list(range(engine.sae.d_sae)), 0.9)
    fams = families_of(truth)
    norm = hidden_norm(engine)
    cfg = M.run_config([round(m * norm, 2) for m in M.SweepConfig().multiples], args.seed, 4, 24, rejudge=True)
    perm = derangement(feats, args.seed)
    variants = dict(VARIANTS)
    if args.variants:
        variants = {}
        for item in args.variants:
            name, _, text = item.partition("=")
            variants[name] = ast.literal_eval(text)
    print(f"{len(feats)} pure features; word hits (strict), specific hits (no false claims), the permuted control, "
          "and per family")
    with EvalCache(eval_store_path(ns)) as cache:
        for name, kw in variants.items():
            e = M.pipeline(cache, engine, OfflineJudge(OfflineParams(**kw)), feats, cfg, "variant")
            a = summarize(score(e.texts, feats, truth, fams, None))
            q = summarize(score(e.texts, feats, truth, fams, None, perm))
            exp = expected_permuted(e.texts, feats, truth, fams)
            spec = f"specific {100 * a['specific']['rate']:5.1f}%   " if "specific" in a else ""
            fam = ", ".join(f"{k} {100 * v['word']['rate']:.0f}%" for k, v in a["by_family"].items())
            print(f"{name:<30} {100 * a['word']['rate']:5.1f}%   {spec}permuted {100 * q['word']['rate']:5.1f}% "
                  f"(all derangements {100 * (exp or 0):4.1f}%)   {fam}", flush=True)


if __name__ == "__main__":
    main()
