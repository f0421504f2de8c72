"""Measure the toy world against its bar and print every figure.

    python -m steering.toy.measure [--dir DIR] [--scenes 500] [--json OUT] [--no-gates]

Everything loads through the steering core (load_vlm, load_sae, SteeringEngine), so the figures
prove the shipped files work on the product's own path.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from pathlib import Path

import torch

from steering.toy import DATA_DIR, activations, naming, scenes, truth
from steering.toy.build import sae_train
from steering.toy.build.infer import generate

log = logging.getLogger(__name__)

HELD_OUT_SCENES = 4_000  # seed stream of the caption test set (apart from every build stream)
SAE_TEST_SCENES = 5_000
PURITY_MIN = 0.9
# The bar from the issue.
BAR = {"caption_accuracy": 0.90, "fvu": 0.05, "alive": 0.70, "feature_hit_rate": 0.60, "random_hit_rate": 0.25}


def caption_accuracy(vlm, n: int, seed: int, batch: int = 50) -> dict:
    """Greedy exact-match accuracy of describe captions on ``n`` held-out scenes."""
    test = scenes.rng_scenes(n, seed + HELD_OUT_SCENES)
    size = vlm.vision.grid[0] * vlm.model.config.vision_config.patch_size
    preds: list[str] = []
    for i in range(0, n, batch):
        preds += generate(vlm.model, vlm.processor, [scenes.render(s, size) for s in test[i : i + batch]])
    right = [p == s.caption() for p, s in zip(preds, test)]
    by_kind: dict[str, list[bool]] = {}
    for ok, s in zip(right, test):
        by_kind.setdefault(s.kind, []).append(ok)
    errors = [(s.caption(), p) for ok, p, s in zip(right, preds, test) if not ok]
    return {
        "caption_accuracy": sum(right) / n,
        "by_kind": {k: round(sum(v) / len(v), 4) for k, v in by_kind.items()},
        "n": n,
        "examples_wrong": errors[:8],
    }


def sae_figures(vlm, sae, n: int, seed: int) -> dict:
    """FVU and share of alive latents of the SAE (through the core's encode/decode) on held-out scenes."""
    size = vlm.vision.grid[0] * vlm.model.config.vision_config.patch_size
    acts = sae_train.as_rows(activations.collect(vlm.model, scenes.rng_scenes(n, seed + SAE_TEST_SCENES),
                                               sae.layer, size))  # [N, d]
    with torch.no_grad():
        f = sae.encode(acts)
        x_hat = sae.decode(f)
    fvu = ((acts - x_hat).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()).item()
    return {"fvu": fvu, "alive": (f > 0).any(0).float().mean().item(), "n_activations": int(acts.shape[0])}


def steering_figures(engine, gt: dict[int, dict], strengths: list[float]) -> dict:
    """Hit rates of pure features and of norm-matched random directions, over the strength schedule."""
    from steering.probes import Probe

    pure = sorted(f for f, v in gt.items() if v["purity"] >= PURITY_MIN and v["value"] is not None)
    probes = [Probe(feature=None)]
    for f in pure:
        for s in strengths:
            probes += [Probe(feature=f, strength=s), Probe(feature=f, strength=s, direction="random")]
    t0 = time.time()
    results = engine.run(probes)
    seconds = time.time() - t0
    baseline = results[0].texts[0]
    texts: dict[tuple[int, str], list[str]] = {}
    for r in results[1:]:
        texts.setdefault((r.probe.feature, r.probe.direction), []).append(r.texts[0])

    def hit(f: int, direction: str) -> bool:
        fam, val = gt[f]["family"], gt[f]["value"]
        if naming.names_value(baseline, val, fam):  # a word the baseline says proves nothing
            return False
        return any(naming.names_value(t, val, fam) for t in texts[(f, direction)])

    feat_hits = [f for f in pure if hit(f, "feature")]
    rand_hits = [f for f in pure if hit(f, "random")]
    by_family: dict[str, list[int]] = {}
    for f in pure:
        fam = gt[f]["family"]
        by_family.setdefault(fam, [0, 0, 0])
        by_family[fam][0] += 1
        by_family[fam][1] += f in feat_hits
        by_family[fam][2] += f in rand_hits
    return {
        "baseline": baseline,
        "baseline_is_empty": "nothing" in baseline.lower() or "empty" in baseline.lower(),
        "strengths": strengths,
        "n_pure": len(pure),
        "feature_hit_rate": len(feat_hits) / max(1, len(pure)),
        "random_hit_rate": len(rand_hits) / max(1, len(pure)),
        "by_family": {k: {"n": v[0], "feature_hits": v[1], "random_hits": v[2]} for k, v in by_family.items()},
        "pure_values": dict(Counter(f"{gt[f]['family']}={gt[f]['value']}" for f in pure)),
        "examples": {
            str(f): {"truth": f"{gt[f]['family']}={gt[f]['value']}", "feature": texts[(f, "feature")],
                     "random": texts[(f, "random")]}
            for f in pure[:12]
        },
        "probe_seconds": seconds,
    }


def gate_figures(engine, gt: dict[int, dict], seed: int) -> dict:
    """The benchmark's gates (issue 15) on this world, computed by the code the evaluation reports them with."""
    from steering.toy.gates import world_gates

    return world_gates(engine, gt, PURITY_MIN, seed)


def measure(root: Path, n_scenes: int = 500, seed: int = 0, multiples: list[float] | None = None,
            with_gates: bool = True) -> dict:
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    vlm = load_vlm(root / "model")
    sae = load_sae(root / "sae")
    gt = truth.load(root / "sae")
    meta = truth.load_meta(root / "sae")
    engine = SteeringEngine(vlm, sae, settings=GenerationSettings(max_new_tokens=24))
    out: dict = {"model": str(root / "model"), "sae": str(root / "sae"), "layer": sae.layer,
                 "white_patch_norm": meta.get("white_patch_norm")}
    out["captions"] = caption_accuracy(vlm, n_scenes, seed) if n_scenes else {"caption_accuracy": float("nan"), "n": 0, "by_kind": {}}
    out["sae_figures"] = sae_figures(vlm, sae, 1000, seed)
    strengths = meta["strengths"] if multiples is None else [m * meta["white_patch_norm"] for m in multiples]
    out["steering"] = steering_figures(engine, gt, strengths)
    if with_gates:
        out["gates"] = gate_figures(engine, gt, seed)
    files = [p for p in root.rglob("*") if p.is_file()]
    out["artifact_mb"] = round(sum(p.stat().st_size for p in files) / 2**20, 2)
    out["bar"] = {
        "caption_accuracy": out["captions"]["caption_accuracy"] >= BAR["caption_accuracy"],
        "fvu": out["sae_figures"]["fvu"] <= BAR["fvu"],
        "alive": out["sae_figures"]["alive"] >= BAR["alive"],
        "feature_hit_rate": out["steering"]["feature_hit_rate"] >= BAR["feature_hit_rate"],
        "random_hit_rate": out["steering"]["random_hit_rate"] <= BAR["random_hit_rate"],
        "baseline_is_empty": out["steering"]["baseline_is_empty"],
        "artifact_mb": out["artifact_mb"] <= 30,
    }
    return out


def format_gates(g: dict) -> str:
    """The gates, one line each: value, bar, PASS/FAIL."""
    from steering.toy.gates import GATES

    lines = [f"gates over {g['n']} features (strengths {g.get('strengths')}):"]
    for name, (op, bar) in GATES.items():
        v, ok = g.get(name), g.get("met", {}).get(name)
        shown = "n/a" if v is None else f"{v:.3f}"
        lines.append(f"  {name}: {shown} (bar {op} {bar:g}) {'n/a' if ok is None else 'PASS' if ok else 'FAIL'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m steering.toy.measure") -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=DATA_DIR, help=f"toy world folder (default {DATA_DIR})")
    parser.add_argument("--scenes", type=int, default=500, help="held-out scenes for caption accuracy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-gates", action="store_true", help="skip the benchmark's gates (their sweep takes minutes)")
    parser.add_argument("--multiples", type=float, nargs="+",
                        help="override the build's strength schedule (multiples of the white patch norm)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = measure(args.dir, args.scenes, args.seed, args.multiples, with_gates=not args.no_gates)
    c, s, st = out["captions"], out["sae_figures"], out["steering"]
    print(f"caption exact-match accuracy ({c['n']} held-out scenes): {c['caption_accuracy']:.3f}  by kind {c['by_kind']}")
    print(f"SAE (layer {out['layer']}): FVU {s['fvu']:.4f}  alive {s['alive']:.3f}")
    print(f"baseline (strength 0): {st['baseline']!r}")
    print(f"strengths {st['strengths']} (white patch norm {out['white_patch_norm']})")
    print(f"features with purity >= {PURITY_MIN}: {st['n_pure']}  {st['pure_values']}")
    print(f"named by steering: {st['feature_hit_rate']:.3f}   by norm-matched random directions: {st['random_hit_rate']:.3f}")
    for fam, v in st["by_family"].items():
        print(f"  {fam}: {v}")
    print(f"artifacts: {out['artifact_mb']} MB")
    if "gates" in out:
        print(format_gates(out["gates"]))
    print("bar: " + "  ".join(f"{k}={'PASS' if ok else 'FAIL'}" for k, ok in out["bar"].items()))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
