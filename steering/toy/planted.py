"""Planted features: a second dictionary in the SAE format, built in seconds from class-mean
differences of the toy VLM's layer activations, with ground truth by construction.

Built where a command asks for it (``steer-agent eval --planted-seed N``, ``python -m agent.cli.ceiling
--planted-seed N``), or from the command line: ``python -m steering.toy.build.planted --out DIR``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from steering.revisions import content_revision
from steering.toy import DATA_DIR, activations, scenes, truth

log = logging.getLogger(__name__)

DIRECTION_SCENES = 1500
SCENE_SEED = 7_000
"""Seed stream of the scenes the class means come from (apart from every build stream); the planted
seed only chooses which values are combined and how."""
COUNTS = {"single": 12, "conjunction": 8, "union": 8, "context": 4, "scaled": 8}
SCALES = (0.3, 3.0)
PLANTED_VERSION = 2
"""The planted truth's format: version 2 adds each feature's ``kind_mix``; ``ensure`` rebuilds older ones."""
Claim = tuple[str, str]


def foreground(scene_list: list[scenes.Scene], grid: int, side: int = 64) -> torch.Tensor:
    """[S, grid*grid] bool: the patches an object covers (every patch of a field, none of an empty image)."""
    cell = side // grid
    rows = []
    for s in scene_list:
        if s.kind == "field":
            rows.append(torch.ones(grid * grid, dtype=torch.bool))
        elif s.kind == "empty":
            rows.append(torch.zeros(grid * grid, dtype=torch.bool))
        else:
            m = torch.from_numpy(scenes.shape_mask(str(s.shape), side, s.cx, s.cy, s.extent)).float()
            rows.append(m.reshape(grid, cell, grid, cell).mean(dim=(1, 3)).flatten() > 0.3)
    return torch.stack(rows)


class Means:
    """Class means of foreground patch activations, per attribute predicate."""

    def __init__(self, acts: torch.Tensor, scene_list: list[scenes.Scene]) -> None:
        s, p, d = acts.shape
        fg = foreground(scene_list, int(math.isqrt(p)))
        self.x = acts[fg]  # [N, d]
        owner = torch.arange(s).unsqueeze(1).expand(s, p)[fg]
        self.attrs = [scene_list[i].attributes() for i in owner.tolist()]
        self.objects = torch.tensor([scene_list[i].kind == "object" for i in owner.tolist()])

    def direction(self, claims: list[Claim], objects_only: bool = False) -> torch.Tensor:
        """Unit mean(patches carrying every claim) - mean(the other patches)."""
        has = torch.tensor([all(a.get(f) == v for f, v in claims) for a in self.attrs])
        keep = self.objects if objects_only else torch.ones_like(has)
        d = self.x[has & keep].mean(0) - self.x[~has & keep].mean(0)
        return d / d.norm()


def _pairs(rng: random.Random, vocab: list[Claim], n: int) -> list[list[Claim]]:
    pairs = [[a, b] for i, a in enumerate(vocab) for b in vocab[i + 1:] if a[0] != b[0]]
    return rng.sample(pairs, n)


def plan(seed: int) -> list[dict[str, Any]]:
    """Which features to plant: claims, kind, scale; ``seed`` picks the values, pairs and scales."""
    rng = random.Random(seed)
    vocab = [(f, v) for f, vals in scenes.FAMILIES.items() for v in vals]
    out = [{"kind": "single", "claims": [c], "scale": 1.0} for c in rng.sample(vocab, COUNTS["single"])]
    out += [{"kind": "conjunction", "claims": p, "scale": 1.0} for p in _pairs(rng, vocab, COUNTS["conjunction"])]
    out += [{"kind": "union", "claims": p, "scale": 1.0} for p in _pairs(rng, vocab, COUNTS["union"])]
    out += [{"kind": "context", "claims": [("pattern", p)], "scale": 1.0}
            for p in rng.sample(scenes.PATTERNS, COUNTS["context"])]
    lo, hi = math.log(SCALES[0]), math.log(SCALES[1])
    out += [{"kind": "scaled", "claims": [c], "scale": round(math.exp(rng.uniform(lo, hi)), 3)}
            for c in rng.sample(vocab, COUNTS["scaled"])]
    rng.shuffle(out)
    return out


def directions(means: Means, spec: dict[str, Any]) -> torch.Tensor:
    """A planted feature's unit direction: a class-mean difference (a conjunction's of its joint class,
    a union's the sum of its parts', a context feature's on object patches only)."""
    claims = [tuple(c) for c in spec["claims"]]
    if spec["kind"] == "union":
        d = sum(means.direction([c]) for c in claims)
        return d / d.norm()
    return means.direction(claims, objects_only=spec["kind"] == "context")


def build(out: Path, seed: int = 0, source: Path = DATA_DIR, n_scenes: int = DIRECTION_SCENES) -> Path:
    """Write ``ae.pt``, ``config.json`` and ``ground_truth.json`` of the planted dictionary to ``out``."""
    from steering.models import load_vlm
    from steering.sae import load_sae

    t0 = time.time()
    vlm = load_vlm(source / "model")
    toy = load_sae(source / "sae")
    scene_list = scenes.rng_scenes(n_scenes, SCENE_SEED)
    size = vlm.vision.grid[0] * vlm.model.config.vision_config.patch_size
    acts = activations.collect(vlm.model, scene_list, toy.layer, size).float()  # [S, P, d]
    means = Means(acts, scene_list)
    specs = plan(seed)
    units = torch.stack([directions(means, s) for s in specs])  # [n, d]
    scales = torch.tensor([float(s["scale"]) for s in specs])
    state = {"encoder.weight": units.clone(), "encoder.bias": torch.zeros(len(specs)),
             "decoder.weight": (units * scales[:, None]).T.contiguous(), "b_dec": toy.b_dec.float().clone()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "ae.pt")
    config = json.loads((source / "sae" / "config.json").read_text())
    config["trainer"] = {**config.get("trainer", {}), "dict_size": len(specs), "k": len(specs)}
    config["planted"] = {"seed": seed, "counts": COUNTS, "direction_scenes": n_scenes}
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    # Each feature's mix of fields and objects among its top direction scenes, as the SAE loader encodes
    # them (the simulator draws a feature's claimed scenes in it); no n_active_scenes: planted features are
    # true by construction and scored without support.
    with torch.no_grad():
        scores = load_sae(out).encode(acts).mean(dim=1)  # [S, n]
    gt = {i: {"family": s["claims"][0][0], "value": s["claims"][0][1], "purity": 1.0,
              "claims": [list(c) for c in s["claims"]], "kind": s["kind"], "scale": s["scale"],
              "kind_mix": truth.kind_mix(scores[:, i], scene_list)}
          for i, s in enumerate(specs)}
    # The source's truth-rule keys describe its SAE features' records, not these (claims by construction).
    meta = {k: v for k, v in truth.load_meta(source / "sae").items()
            if k not in ("truth_version", "top_scenes_v3", "kind_mix_scenes")}
    meta |= {"planted_seed": seed, "source_world": source_world(source), "planted_version": PLANTED_VERSION}
    truth.save(gt, out, meta)
    log.info("planted %d features (seed %d) in %.1f s", len(specs), seed, time.time() - t0)
    return out


def source_world(source: Path) -> str:
    """The toy world the directions come from (content fingerprints of its model and SAE): a planted
    dictionary built on another world is built again (its directions would be another model's activations)."""
    return f"{content_revision(Path(source) / 'model')}/{content_revision(Path(source) / 'sae')}"


def ensure(out: Path, seed: int = 0, source: Path = DATA_DIR) -> Path:
    """The planted dictionary at ``out``, built there unless one of the same seed, source world and
    PLANTED_VERSION already is."""
    gt = Path(out) / truth.GROUND_TRUTH_FILE
    if gt.is_file() and (Path(out) / "ae.pt").is_file():
        meta = truth.load_meta(Path(out))
        if (meta.get("planted_seed") == seed and meta.get("source_world") == source_world(source)
                and meta.get("planted_version") == PLANTED_VERSION):
            return Path(out)
    if Path(out).exists():
        shutil.rmtree(out)
    return build(Path(out), seed, source)
