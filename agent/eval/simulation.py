"""Simulation score: the AUROC of a feature's SAE activation separating scenes that satisfy an
explanation's claims from random scenes (the paper's image-generation test made exact)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from steering.toy.claims import Claim

N_SCENES = 24
"""Scenes per side (claimed and random) for each claim set."""


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(a positive outscores a negative), ties counting half (the Mann-Whitney form)."""
    if not pos or not neg:
        return 0.5
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _seed(claims: frozenset[Claim], seed: int) -> int:
    key = f"{seed}|" + "|".join(f"{f}={v}" for f, v in sorted(claims))
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def scenes_with(claims: frozenset[Claim], n: int, seed: int) -> list[Any]:
    """``n`` scenes carrying the claims, every other attribute random; two values claimed in one family
    (a union) are drawn one per scene. Claims of shape or size put an object in every scene."""
    import numpy as np

    from steering.toy import scenes as S

    rng = np.random.default_rng(_seed(claims, seed))
    by_fam: dict[str, list[str]] = {}
    for fam, val in sorted(claims):
        by_fam.setdefault(fam, []).append(val)
    needs_object = bool({"shape", "size"} & set(by_fam))
    out = []
    for _ in range(n):
        kind = "object" if needs_object else str(rng.choice(["object", "field"], p=[0.6, 0.4]))
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


class Simulator:
    """Scores claim sets against features of one engine's SAE; codes are computed once per claim set."""

    def __init__(self, engine: Any, n: int = N_SCENES, seed: int = 0) -> None:
        self.engine, self.n, self.seed = engine, n, seed
        self._codes: dict[frozenset[Claim], Any] = {}
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

    def codes(self, claims: frozenset[Claim]) -> Any:
        if claims not in self._codes:
            self._codes[claims] = self._encoder()(scenes_with(claims, self.n, self.seed))
        return self._codes[claims]

    def __call__(self, feature: int, claims: frozenset[Claim]) -> float | None:
        """The AUROC of ``feature`` on scenes with ``claims`` against random scenes (0.5 for no claim)."""
        if not claims:
            return 0.5
        pos = self.codes(claims)[:, feature].tolist()
        neg = self.codes(frozenset())[:, feature].tolist()
        return round(auroc(pos, neg), 6)
