"""Each SAE feature's ground-truth attribute, from the attributes of its top-activating scenes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from steering.toy import scenes

# When two attribute values are equally pure, the earlier family wins (colour is the most visible).
FAMILY_ORDER = ("colour", "pattern", "shape", "size")
GROUND_TRUTH_FILE = "ground_truth.json"


def derive(codes: torch.Tensor, scene_list: list[scenes.Scene], top: int) -> dict[int, dict]:
    """Ground truth per feature from codes [S, P, n] of ``scene_list``'s patches.

    A scene's score for a feature is its mean activation over the patch grid (as top-k explaining
    does); the feature's value is the attribute value most shared by its ``top`` best scenes, and
    its purity is the share of those scenes that carry it. ``shares`` keeps, per family, the share of
    those scenes carrying each value: a feature can be pure in more than one family (its top scenes
    all "small red crosses"), and an explanation's other claims are checked against it. A feature that
    never fires gets purity 0.
    """
    score = codes.mean(dim=1)  # [S, n]
    out: dict[int, dict] = {}
    for f in range(score.shape[1]):
        col = score[:, f]
        n_pos = int((col > 0).sum())
        if n_pos == 0:
            out[f] = {"family": None, "value": None, "purity": 0.0, "n_active_scenes": 0, "top_kinds": {},
                      "shares": {}}
            continue
        idx = col.topk(min(top, n_pos)).indices.tolist()
        best = (None, None, -1.0)
        shares: dict[str, dict[str, float]] = {}
        for family in FAMILY_ORDER:
            counts = Counter(scene_list[i].attributes().get(family) for i in idx)
            counts.pop(None, None)
            shares[family] = {v: round(c / len(idx), 4) for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
            if counts:
                value, c = counts.most_common(1)[0]
                if c / len(idx) > best[2]:
                    best = (family, value, c / len(idx))
        kinds = Counter(scene_list[i].kind for i in idx)
        out[f] = {
            "family": best[0],
            "value": best[1],
            "purity": round(max(best[2], 0.0), 4),
            "n_active_scenes": n_pos,
            "top_kinds": dict(kinds),
            "shares": shares,
        }
    return out


def save(gt: dict[int, dict], sae_dir: Path, meta: dict | None = None) -> Path:
    path = Path(sae_dir) / GROUND_TRUTH_FILE
    payload = {"meta": meta or {}, "features": {str(f): v for f, v in sorted(gt.items())}}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def load(sae_dir: Path) -> dict[int, dict]:
    """feature -> {"family", "value", "purity", ...} from ``sae_dir/ground_truth.json``."""
    payload = json.loads((Path(sae_dir) / GROUND_TRUTH_FILE).read_text())
    return {int(f): v for f, v in payload["features"].items()}


def load_meta(sae_dir: Path) -> dict:
    return json.loads((Path(sae_dir) / GROUND_TRUTH_FILE).read_text()).get("meta", {})
