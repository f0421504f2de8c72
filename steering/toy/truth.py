"""Each SAE feature's ground-truth attribute, from the attributes of its top-activating scenes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from steering.toy import scenes
from steering.toy.claims import KIND_FAMILY, KIND_MIX_SCENES, TOP_SCENES_V3

# When two attribute values are equally pure, the earlier family wins (colour is the most visible).
FAMILY_ORDER = ("colour", "pattern", "shape", "size")
GROUND_TRUTH_FILE = "ground_truth.json"
TRUTH_VERSION = 3
"""Version 3: ``n_top`` and ``counts`` (the kind family included) over the top TOP_SCENES_V3 scenes, read by
steering.toy.claims.truth_claims with a Wilson bound, and ``kind_mix`` over the top KIND_MIX_SCENES; the
version-2 keys stay as they were."""


def derive(codes: torch.Tensor, scene_list: list[scenes.Scene], top: int,
           top_v3: int = TOP_SCENES_V3, top_mix: int = KIND_MIX_SCENES) -> dict[int, dict]:
    """Ground truth per feature from codes [S, P, n] of ``scene_list``'s patches.

    A scene's score for a feature is its mean activation over the patch grid (as top-k explaining
    does); the feature's value is the attribute value most shared by its ``top`` best scenes, and
    its purity is the share of those scenes that carry it. ``shares`` keeps, per family, the share of
    those scenes carrying each value: a feature can be pure in more than one family (its top scenes
    all "small red crosses"), and an explanation's other claims are checked against it. A feature that
    never fires gets purity 0.

    Version 3 adds, over its ``top_v3`` best scenes (``n_top``: fewer when fewer scenes are active),
    ``counts`` (family -> value -> scenes carrying it; the "kind" family counts field, object and empty
    scenes), from which steering.toy.claims takes the true claims (a Wilson lower bound), and over its
    ``top_mix`` best ``kind_mix`` (the share of each scene kind), in which agent.eval.simulation draws
    the scenes it scores the feature's claims on.
    """
    score = codes.mean(dim=1)  # [S, n]
    out: dict[int, dict] = {}
    for f in range(score.shape[1]):
        col = score[:, f]
        n_pos = int((col > 0).sum())
        if n_pos == 0:
            out[f] = {"family": None, "value": None, "purity": 0.0, "n_active_scenes": 0, "top_kinds": {},
                      "shares": {}, "n_top": 0, "counts": {}, "kind_mix": {}}
            continue
        out[f] = (_top_scenes(col, n_pos, scene_list, top) | _top_scenes_v3(col, n_pos, scene_list, top_v3)
                  | {"kind_mix": kind_mix(col, scene_list, top_mix)})
    return out


def _top_scenes(col: torch.Tensor, n_pos: int, scene_list: list[scenes.Scene], top: int) -> dict:
    """The version-2 keys: value, purity, shares and kinds over the ``top`` best scenes."""
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
    return {
        "family": best[0],
        "value": best[1],
        "purity": round(max(best[2], 0.0), 4),
        "n_active_scenes": n_pos,
        "top_kinds": dict(kinds),
        "shares": shares,
    }


def _top_scenes_v3(col: torch.Tensor, n_pos: int, scene_list: list[scenes.Scene], top: int) -> dict:
    """``n_top`` and ``counts`` over the ``top`` best scenes."""
    idx = col.topk(min(top, n_pos)).indices.tolist()
    counts: dict[str, dict[str, int]] = {}
    for family in FAMILY_ORDER:
        c = Counter(scene_list[i].attributes().get(family) for i in idx)
        c.pop(None, None)
        counts[family] = dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
    kinds = Counter(scene_list[i].kind for i in idx)
    counts[KIND_FAMILY] = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"n_top": len(idx), "counts": counts}


def kind_mix(scores: torch.Tensor, scene_list: list[scenes.Scene], top: int = KIND_MIX_SCENES) -> dict[str, float]:
    """The share of each scene kind (field, object, empty) among the ``top`` best of the scenes a feature's
    ``scores`` [S] activate ({} when none does): where agent.eval.simulation draws its claimed scenes."""
    n_pos = int((scores > 0).sum())
    if n_pos == 0:
        return {}
    idx = scores.topk(min(top, n_pos)).indices.tolist()
    kinds = Counter(scene_list[i].kind for i in idx)
    return {k: round(kinds.get(k, 0) / len(idx), 4) for k in ("field", "object", "empty")}


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
