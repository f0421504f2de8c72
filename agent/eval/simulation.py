"""Simulation score: the AUROC of a feature's SAE activation separating scenes that satisfy an
explanation's claims from random scenes (the paper's image-generation test made exact).

A feature's claimed scenes are drawn in its own mix of full fields and objects (its truth's ``kind_mix``,
over its top scenes) unless the claims fix the kind; the random scenes are the world's standard draw."""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from steering.toy.claims import KIND_FAMILY, Claim, truth_claims

N_SCENES = 64
"""Scenes per side (claimed and random) for each claim set."""
DEFAULT_MIX = {"object": 0.6, "field": 0.4}
"""The claimed scenes' kinds when a feature has no kind mix (the simulator before truth version 3)."""
MIX_STEP = 8
"""Kind mixes are rounded to eighths, so that features of about the same mix share their scenes' codes."""
TRUTH_AUROC_GATE = 0.85
"""The world gate on the ruler itself (issue 29): the true claims' mean simulation AUROC (``truth_auroc``)
over the scored SAE features, and over the planted ones."""

Mix = Mapping[str, float]


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(a positive outscores a negative), ties counting half (the Mann-Whitney form)."""
    if not pos or not neg:
        return 0.5
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _seed(claims: frozenset[Claim], seed: int) -> int:
    key = f"{seed}|" + "|".join(f"{f}={v}" for f, v in sorted(claims))
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def forced_kind(claims: Iterable[Claim]) -> str | None:
    """The scene kind the claims fix: ``object`` for a shape, a size or ("kind", "object"); ``field`` for
    ("kind", "field") alone; None when they leave it open (or claim both kinds, a union)."""
    claims = set(claims)
    kinds = {v for f, v in claims if f == KIND_FAMILY}
    if {f for f, _ in claims} & {"shape", "size"} or kinds == {"object"}:
        return "object"
    return "field" if kinds == {"field"} else None


def object_share(mix: Mix | None) -> float:
    """The share of objects among a kind mix's field and object scenes (empty ones left out, the rest
    renormalised); DEFAULT_MIX's for no mix or one without fields and objects."""
    obj, field = (float((mix or {}).get(k, 0.0)) for k in ("object", "field"))
    if obj + field <= 0:
        return DEFAULT_MIX["object"]
    return obj / (obj + field)


def rounded_mix(mix: Mix | None) -> dict[str, float] | None:
    """``mix`` as object and field shares in eighths (None stays None: the default mix)."""
    if mix is None:
        return None
    obj = round(object_share(mix) * MIX_STEP) / MIX_STEP
    return {"object": obj, "field": 1.0 - obj}


def scenes_with(claims: frozenset[Claim], n: int, seed: int, mix: Mix | None = None) -> list[Any]:
    """``n`` scenes carrying the claims, every other attribute random; two values claimed in one family
    (a union) are drawn one per scene. Claims of shape, size or ("kind", "object") put an object in every
    scene, ("kind", "field") a full field; otherwise each scene is an object with ``mix``'s object share
    (empty scenes ignored; DEFAULT_MIX when None), else a field."""
    import numpy as np

    from steering.toy import scenes as S

    rng = np.random.default_rng(_seed(claims, seed))
    by_fam: dict[str, list[str]] = {}
    for fam, val in sorted(claims):
        if fam != KIND_FAMILY:
            by_fam.setdefault(fam, []).append(val)
    forced = forced_kind(claims)
    p_obj = object_share(mix)
    out = []
    for _ in range(n):
        kind = forced or str(rng.choice(["object", "field"], p=[p_obj, 1.0 - p_obj]))
        s = S.sample_scene(rng, kind)
        pick = {fam: str(rng.choice(vals)) for fam, vals in by_fam.items() if kind == "object" or fam in ("colour", "pattern")}
        if "size" in pick and pick["size"] != s.size:
            lo, hi = S.SIZE_EXTENT[pick["size"]]
            extent = float(rng.uniform(lo, hi))
            margin = extent / 2 + 0.02
            pick_xy = {"cx": float(rng.uniform(margin, 1 - margin)), "cy": float(rng.uniform(margin, 1 - margin))}
            s = replace(s, extent=extent, **pick_xy)
        out.append(replace(s, **pick))
    return out


def random_scenes(n: int, seed: int) -> list[Any]:
    """``n`` scenes of the world's standard draw (steering.toy.scenes.sample_scene: objects, fields and empty
    images in its KIND_WEIGHTS), the negatives every claim set is scored against."""
    import numpy as np

    from steering.toy import scenes as S

    rng = np.random.default_rng(_seed(frozenset(), seed))
    return [S.sample_scene(rng) for _ in range(n)]


class Simulator:
    """Scores claim sets against features of one engine's SAE; codes are computed once per claim set and
    rounded kind mix (``mix_of(feature)``: the feature's kind mix, e.g. its truth's ``kind_mix``; None or no
    ``mix_of``: DEFAULT_MIX)."""

    def __init__(self, engine: Any, n: int = N_SCENES, seed: int = 0,
                 mix_of: Callable[[int], Mix | None] | None = None) -> None:
        self.engine, self.n, self.seed, self.mix_of = engine, n, seed, mix_of
        self._codes: dict[tuple[frozenset[Claim], tuple[float, ...] | None], Any] = {}
        self._negatives: Any = None
        self._encode: Callable[[list[Any]], Any] | None = None

    def _encoder(self) -> Callable[[list[Any]], Any]:
        if self._encode is None:
            import torch
            from PIL import Image

            from steering.topk.collect import EncoderSpec
            from steering.topk.encode import layer_output
            from steering.toy.scenes import render

            e = self.engine
            spec = EncoderSpec.from_vlm(e.vlm, e.sae, e.layer)

            @torch.no_grad()
            def encode(scene_list: list[Any]) -> Any:
                pv = spec.preprocess([Image.fromarray(render(s)) for s in scene_list])
                h = layer_output(spec.tower, spec.layers, spec.layer, pv.to(e.vlm.device, e.vlm.dtype))
                h = h[:, 1:] if spec.has_cls else h
                return e.sae.encode(h.float().to(e.sae.W_dec.device)).mean(dim=1).cpu()  # [B, d_sae]

            self._encode = encode
        return self._encode

    def codes(self, claims: frozenset[Claim], mix: Mix | None = None) -> Any:
        """[n, d_sae] mean codes of scenes with ``claims`` in ``mix`` (rounded to eighths; ignored where the
        claims fix the kind)."""
        mix = None if forced_kind(claims) else rounded_mix(mix)
        key = (claims, None if mix is None else (mix["object"], mix["field"]))
        if key not in self._codes:
            self._codes[key] = self._encoder()(scenes_with(claims, self.n, self.seed, mix))
        return self._codes[key]

    def negatives(self) -> Any:
        """[n, d_sae] mean codes of the random scenes."""
        if self._negatives is None:
            self._negatives = self._encoder()(random_scenes(self.n, self.seed))
        return self._negatives

    def __call__(self, feature: int, claims: frozenset[Claim]) -> float | None:
        """The AUROC of ``feature`` on scenes with ``claims`` (in the feature's kind mix) against random
        scenes (0.5 for no claim)."""
        if not claims:
            return 0.5
        mix = self.mix_of(feature) if self.mix_of is not None else None
        pos = self.codes(claims, mix)[:, feature].tolist()
        neg = self.negatives()[:, feature].tolist()
        return round(auroc(pos, neg), 6)


def truth_auroc(simulator: Callable[[int, frozenset[Claim]], float | None],
                truth: Mapping[int, Mapping[str, Any]], features: Iterable[int]) -> dict[str, Any]:
    """The mean simulation AUROC of each feature's true claims (features without any are skipped):
    ``{"mean", "n", "gate", "met", "per_feature": [{"feature", "auroc"}, ...]}``; the world gate is met at
    TRUTH_AUROC_GATE or above."""
    rows = []
    for f in features:
        claims = truth_claims(truth[f]) if f in truth else frozenset()
        value = simulator(f, claims) if claims else None
        if value is not None:
            rows.append({"feature": f, "auroc": round(float(value), 6)})
    mean = round(statistics.fmean(r["auroc"] for r in rows), 6) if rows else None
    return {"mean": mean, "n": len(rows), "gate": TRUTH_AUROC_GATE,
            "met": None if mean is None else mean >= TRUTH_AUROC_GATE - 1e-9, "per_feature": rows}
