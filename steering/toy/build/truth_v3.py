"""Regenerate a toy world's ground truth (version 3) from its shipped model and SAE, without retraining.

    python -m steering.toy.build.truth_v3 [--source DIR] [--out DIR] [--threads 1]

Encodes the build's ground-truth scenes (the same ``gt_scenes`` scenes of the seed stream ``seed + GT_SCENES``
that steering.toy.build.pipeline draws) with the world's model and SAE, derives the truth with
steering.toy.truth.derive (the version-2 keys over the build's ``top_scenes``, the version-3 counts over
TOP_SCENES_V3, the kind mix over KIND_MIX_SCENES) and writes ``ground_truth.json`` beside the SAE. The file
is not part of the SAE's content fingerprint (steering.revisions), so stores made on the world stay valid.
Deterministic for a fixed thread count; prints what changed (scored and excluded features, true claims per
feature).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path
from typing import Any

import torch

from steering.toy import DATA_DIR, activations, scenes, truth
from steering.toy.build.pipeline import GT_SCENES
from steering.toy.claims import (KIND_MIX_SCENES, MIN_SUPPORT, TOP_SCENES_V3, pure_features, scored_features,
                                 share_claims, truth_claims, why_excluded)

log = logging.getLogger(__name__)
OLD_KEYS = ("family", "value", "purity", "n_active_scenes", "top_kinds", "shares")
"""The version-2 keys, which the regenerated file keeps as they were (over the build's top_scenes)."""


def regenerate(source: Path = DATA_DIR, out: Path | None = None) -> dict[int, dict[str, Any]]:
    """Derive the version-3 truth of the world at ``source`` and write it to ``out`` (default: its SAE folder)."""
    from steering.models import load_vlm
    from steering.sae import load_sae

    sae_dir = Path(source) / "sae"
    meta = truth.load_meta(sae_dir)
    vlm = load_vlm(Path(source) / "model")
    sae = load_sae(sae_dir)
    size = vlm.vision.grid[0] * vlm.model.config.vision_config.patch_size
    scene_list = scenes.rng_scenes(int(meta["gt_scenes"]), int(meta["seed"]) + GT_SCENES)
    acts = activations.collect(vlm.model, scene_list, sae.layer, size).float()  # [S, P, d]
    with torch.no_grad():
        codes = sae.encode(acts)  # [S, P, n]
    gt = truth.derive(codes, scene_list, int(meta["top_scenes"]), TOP_SCENES_V3, KIND_MIX_SCENES)
    truth.save(gt, Path(out or sae_dir),
               {**meta, "truth_version": truth.TRUTH_VERSION, "top_scenes_v3": TOP_SCENES_V3,
                "kind_mix_scenes": KIND_MIX_SCENES})
    return gt


def compare(old: dict[int, dict[str, Any]], new: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """What the version-3 rule changes: the old keys kept, features scored and excluded, claims per feature."""
    old_scored = pure_features(old, sorted(old), 0.9)
    scored, excluded = scored_features(new, sorted(new), MIN_SUPPORT)
    changed = [f for f in sorted(old) if any(old[f].get(k) != new.get(f, {}).get(k) for k in OLD_KEYS)]
    claims_old = [len(share_claims(old[f])) for f in old_scored]
    claims_old_here = [len(share_claims(old[f])) for f in scored]
    claims_new = [len(truth_claims(new[f])) for f in scored]
    no_kind = [len({c for c in truth_claims(new[f]) if c[0] != "kind"}) for f in scored]
    return {
        "old_keys_changed": changed,
        "old_scored": len(old_scored),
        "scored": len(scored),
        "excluded": excluded,
        "excluded_why": {f: why_excluded(new[f]) for f in excluded},
        "claims_per_feature_old": round(statistics.fmean(claims_old), 3) if claims_old else None,
        "claims_per_feature_old_on_scored": round(statistics.fmean(claims_old_here), 3) if claims_old_here else None,
        "claims_per_feature_new": round(statistics.fmean(claims_new), 3) if claims_new else None,
        "claims_per_feature_new_without_kind": round(statistics.fmean(no_kind), 3) if no_kind else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.toy.build.truth_v3", description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DATA_DIR, help=f"toy world folder (default {DATA_DIR})")
    parser.add_argument("--out", type=Path, default=None, help="folder for ground_truth.json (default: SOURCE/sae)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the figures are reproducible "
                                                               "for a fixed count)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    old = truth.load(args.source / "sae")
    new = regenerate(args.source, args.out)
    print(json.dumps(compare(old, new), indent=1))


if __name__ == "__main__":
    main()
