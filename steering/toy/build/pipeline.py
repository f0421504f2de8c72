"""Rebuild the toy world from a seed: train the VLM, train the SAE, derive the ground truth, save all.

    python -m steering.toy.build --seed 0 [--out DIR] [--scale tiny|full]

Writes ``DIR/model`` (save_pretrained model + processor), ``DIR/sae`` (``ae.pt``, ``config.json``,
``ground_truth.json``) and ``DIR/build.json`` (the config and training figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import torch

from steering.toy import DATA_DIR, MODEL_ID, activations, scenes, truth
from steering.toy.build import sae_train
from steering.toy.build.config import ToyConfig, scale_config
from steering.toy.build.train_vlm import train_vlm
from steering.toy.claims import KIND_MIX_SCENES, TOP_SCENES_V3

log = logging.getLogger(__name__)

# Steering strengths as multiples of the white image's mean patch norm at the SAE layer:
# the range where toy models name concepts without their text degenerating.
STRENGTH_MULTIPLES = (1.0, 2.0, 3.0)
# Separate seed streams, so that no scene set overlaps another.
SAE_SCENES, SAE_EVAL_SCENES, GT_SCENES = 1_000, 2_000, 3_000


def build(out: Path, seed: int = 0, cfg: ToyConfig | None = None, threads: int | None = 1,
          reuse_model: bool = False) -> dict:
    """Run the whole pipeline into ``out``; returns the figures written to ``build.json``.

    A straight sequence of stages (data, VLM, SAE, ground truth, figures), kept together so the build
    reads top to bottom; each stage is its own module.

    ``reuse_model`` skips VLM training and takes the model already in ``out/model`` (to redo
    only the SAE and the ground truth).
    """
    cfg = cfg or scale_config("full")
    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    out = Path(out)
    model_out, sae_out = out / "model", out / "sae"

    if reuse_model:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(model_out).eval()
        previous = out / "build.json"
        train_info = json.loads(previous.read_text())["vlm"] if previous.is_file() else {"reused": True}
    else:
        model, processor, train_info = train_vlm(cfg, seed)
        model_out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(model_out)
        processor.save_pretrained(model_out)

    sc, vc = cfg.sae, cfg.vlm
    t1 = time.time()
    acts = activations.collect(model, scenes.rng_scenes(sc.n_scenes, seed + SAE_SCENES), sc.layer, vc.image_size)
    centre = None
    if sc.centre == "white":
        centre = sae_train.white_state(model, sc.layer, vc.image_size).mean(0)  # [d]
    state = sae_train.train_sae(sae_train.as_rows(acts), sc, seed, centre)
    eval_acts = activations.collect(
        model, scenes.rng_scenes(max(sc.n_scenes // 6, 8), seed + SAE_EVAL_SCENES), sc.layer, vc.image_size
    )
    sae_figures = sae_train.sae_metrics(state, sae_train.as_rows(eval_acts))
    sae_train.save_sae(state, sae_out, sc, d=vc.vision_hidden, lm_name=MODEL_ID)
    sae_seconds = time.time() - t1

    gt_list = scenes.rng_scenes(cfg.gt_scenes, seed + GT_SCENES)
    gt_acts = activations.collect(model, gt_list, sc.layer, vc.image_size)  # [S, P, d]
    codes = sae_train.encode(state, sae_train.as_rows(gt_acts), int(state["k"])).reshape(
        gt_acts.shape[0], gt_acts.shape[1], -1
    )  # [S, P, n]
    gt = truth.derive(codes, gt_list, cfg.top_scenes)
    norm = sae_train.patch_norm(model, sc.layer, vc.image_size)
    meta = {
        "layer": sc.layer,
        "white_patch_norm": round(norm, 4),
        "strength_multiples": list(STRENGTH_MULTIPLES),
        "strengths": [round(m * norm, 3) for m in STRENGTH_MULTIPLES],
        "top_scenes": cfg.top_scenes,
        "gt_scenes": cfg.gt_scenes,
        "seed": seed,
        "truth_version": truth.TRUTH_VERSION,
        "top_scenes_v3": TOP_SCENES_V3,
        "kind_mix_scenes": KIND_MIX_SCENES,
    }
    truth.save(gt, sae_out, meta)
    figures = {
        "seed": seed,
        "config": cfg.to_dict(),
        "vlm": train_info,
        "vlm_params": sum(p.numel() for p in model.parameters()),
        "sae": sae_figures | {"train_seconds": sae_seconds},
        "pure_features": sum(1 for v in gt.values() if v["purity"] >= 0.9),
        "total_seconds": time.time() - t0,
    } | {"ground_truth_meta": meta}
    (out / "build.json").write_text(json.dumps(figures, indent=2) + "\n")
    log.info("built toy world in %s: %s", out, json.dumps({k: figures[k] for k in ("vlm", "sae", "pure_features")}))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.toy.build", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA_DIR, help=f"output folder (default {DATA_DIR})")
    parser.add_argument("--scale", choices=("tiny", "full"), default="full")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default); the figures are reproducible for a fixed count, "
                             "and one thread is also the fastest on a machine shared with other jobs")
    parser.add_argument("--reuse-model", action="store_true", help="keep OUT/model, redo only SAE and ground truth")
    parser.add_argument("--dc-scale", type=float, default=0.0,
                        help="experiment: a frozen constant component in every patch, this many times the patch "
                             "embedding's norm at init (0, the shipped world: none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = scale_config(args.scale)
    if args.dc_scale:
        cfg = replace(cfg, vlm=replace(cfg.vlm, dc_scale=args.dc_scale))
    figures = build(args.out, args.seed, cfg, args.threads, args.reuse_model)
    print(json.dumps({k: figures[k] for k in ("vlm", "vlm_params", "sae", "pure_features", "total_seconds")}, indent=2))

