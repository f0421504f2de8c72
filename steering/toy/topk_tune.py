"""Fine-tune the toy VLM's language model on the top-k prompt (5 masked scenes that share a value).

    python -m steering.toy.topk_tune --out DIR [--steps N] [--seed S] [--src DIR]

Starts from a finished toy world (default the shipped ``steering/toy/data``), freezes the vision tower
and the multimodal projector, so the SAE, its activations and the ground truth stay exactly valid, and
trains only the language model on a mixture of the original single-image examples (describe and ask,
from ``steering.toy.data``) and top-k examples: ``n_images`` scenes sharing one attribute value, each
masked as the top-k view masks a feature's images (``steering.views.masked_image`` on a synthetic
patch-grid activation map), under the ``vlm_topk`` prompt rendered by the engine's own prompt path
(``steering.modes.prompt_text``: same chat template, same prefilled answer prefix). The target names
the values all images visibly share, in caption word order (" small red cross."), using only words
of the toy vocabulary; the vocabulary itself does not change.

Writes ``DIR/model`` (model + processor), ``DIR/sae`` (a copy of the source SAE and ground truth) and
``DIR/tune.json`` (config and training figures), so ``DIR`` is a complete toy world.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from steering.toy import DATA_DIR, data, scenes
from steering.toy.processor import END_TURN
from steering.toy.train_vlm import lr_at
from steering.views import masked_image, upsample

log = logging.getLogger(__name__)

# Order in which a caption names values: "a large red striped circle".
CAPTION_ORDER = ("size", "colour", "pattern", "shape")
# How often each family is the shared one (the toy SAE's pure features are mostly colour and pattern).
FAMILY_WEIGHTS = {"colour": 0.35, "pattern": 0.35, "shape": 0.15, "size": 0.15}
# How the synthetic activation maps of an object set look (see ``activation_map``).
MAP_STYLES = {"surround": 0.45, "object": 0.3, "partial": 0.25}
# Texture pixels (inside the outline) a masked object must show for its pattern to count as visible;
# the edges a "surround" map leaves carry a few (16 taught the model to leave the pattern out there).
PATTERN_PIXELS = 4


@dataclass(frozen=True)
class TuneConfig:
    """Schedule and data mixture of the top-k fine-tuning stage."""

    steps: int = 1200
    """Optimiser steps; each sees one batch of original examples and one batch of top-k sets."""
    lr: float = 3e-4
    """Peak AdamW learning rate (linear warm-up, cosine decay to 5%)."""
    warmup: int = 20
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay on matrices (not on embeddings, norms and biases)."""
    batch_size: int = 32
    """Original single-image examples per step (0: top-k examples only)."""
    ask_share: float = 0.2
    """Share of original batches that are targeted questions, as in the build."""
    topk_sets: int = 8
    """Top-k examples (sets of ``n_images`` masked scenes) per step."""
    n_images: int = 5
    """Images per top-k example (the evaluation shows 5)."""
    topk_weight: float = 1.0
    """Weight of the top-k loss against the original examples' loss."""
    second_share: float = 0.3
    """Share of top-k sets whose scenes share a second family's value as well."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- top-k examples


def _matches(scene: scenes.Scene, fixed: dict[str, str]) -> bool:
    return all(scene.attributes().get(fam) == val for fam, val in fixed.items())


def sample_matching(rng: np.random.Generator, kind: str, fixed: dict[str, str]) -> scenes.Scene:
    """A random scene of ``kind`` carrying the ``fixed`` values (rejection keeps the build's distribution)."""
    for _ in range(10_000):
        scene = scenes.sample_scene(rng, kind)
        if _matches(scene, fixed):
            return scene
    raise RuntimeError(f"no {kind} scene carries {fixed}")


def object_cover(scene: scenes.Scene, side: int, grid: int) -> np.ndarray:
    """Float [grid, grid]: the share of each patch's pixels the scene's shape covers."""
    assert scene.shape is not None
    mask = scenes.shape_mask(scene.shape, side, scene.cx, scene.cy, scene.extent)  # [side, side]
    p = side // grid
    return mask.reshape(grid, p, grid, p).mean(axis=(1, 3))


def activation_map(scene: scenes.Scene, side: int, grid: int, rng: np.random.Generator, style: str) -> np.ndarray:
    """A synthetic float [grid, grid] map (> 0 where the 'feature fired'), shaped like real top-k maps.

    The toy SAE's object features mostly fire around the object, not on it: their masked images show
    the white background with a black hole where the shape is and its coloured edges (``surround``).
    Others fire on the object (``object``, sometimes with background) or on part of it (``partial``).
    Fields: every patch, or a random subset (real maps range from one patch to all 64).
    """
    n = grid * grid
    if scene.kind == "field":
        keep = np.arange(n) if rng.random() < 0.5 else rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)
        visible = np.zeros(n, dtype=bool)
        visible[keep] = True
    else:
        cover = object_cover(scene, side, grid).flatten()  # [n]
        obj = cover > 0
        if style == "partial":
            idx = np.flatnonzero(obj)
            visible = np.zeros(n, dtype=bool)
            visible[rng.choice(idx, size=int(rng.integers(1, len(idx) + 1)), replace=False)] = True
        elif style == "object":
            visible = obj | (rng.random(n) < (rng.uniform(0, 1) if rng.random() < 0.5 else 0.0))
        elif style == "surround":
            hidden = (cover >= 0.5) | (obj & (rng.random(n) < rng.uniform(0, 1)))
            far = ~obj & (rng.random(n) < (rng.uniform(0, 0.25) if rng.random() < 0.3 else 0.0))
            visible = ~hidden & ~far
        else:
            raise ValueError(f"unknown map style {style!r}")
    amap = np.where(visible, rng.uniform(0.5, 2.0, size=n), 0.0).astype(np.float32)
    return amap.reshape(grid, grid)


def visible_families(scene: scenes.Scene, amap: np.ndarray, side: int, style: str) -> set[str]:
    """The families whose value a masked scene shows: colour from a few shape pixels, pattern from its
    texture (inside the outline), shape and size from the whole object or the hole it leaves."""
    shown = upsample(amap, (side, side)) > 0  # [side, side]
    if scene.kind == "field":
        return {"colour", "pattern"} if shown.any() else set()
    assert scene.shape is not None
    shape = scenes.shape_mask(scene.shape, side, scene.cx, scene.cy, scene.extent)
    inner = shape & scenes._erode(scenes._erode(shape))  # pixels with texture, not outline
    out = set()
    if (shown & shape).sum() >= 6:
        out.add("colour")
    if (shown & inner).sum() >= PATTERN_PIXELS:
        out.add("pattern")
    if style in ("object", "surround"):
        out |= {"shape", "size"}
    return out


def shared_answer(group: list[scenes.Scene], visible: tuple[str, ...] | set[str]) -> str:
    """" small red cross.": the values of ``visible`` families all scenes carry, in caption order."""
    values = []
    for fam in CAPTION_ORDER:
        vals = {s.attributes().get(fam) for s in group}
        if fam in visible and len(vals) == 1 and None not in vals:
            values.append(vals.pop())
    return " " + " ".join(values) + "." if values else ""


def _group(rng: np.random.Generator, cfg: TuneConfig) -> tuple[list[scenes.Scene], str]:
    """``n_images`` scenes sharing one value (sometimes two), and the style of their maps."""
    families = list(FAMILY_WEIGHTS)
    family = str(rng.choice(families, p=list(FAMILY_WEIGHTS.values())))
    fixed = {family: str(rng.choice(scenes.FAMILIES[family]))}
    kinds = str(rng.choice(["object", "field", "mixed"], p=[0.4, 0.4, 0.2])) if family in ("colour", "pattern") \
        else "object"
    style = str(rng.choice(list(MAP_STYLES), p=list(MAP_STYLES.values())))
    if rng.random() < cfg.second_share:
        others = [f for f in families if f != family and (kinds == "object" or f in ("colour", "pattern"))]
        second = str(rng.choice(others))
        fixed[second] = str(rng.choice(scenes.FAMILIES[second]))
    group = []
    for _ in range(cfg.n_images):
        kind = kinds if kinds != "mixed" else str(rng.choice(["object", "field"]))
        group.append(sample_matching(rng, kind, fixed))
    return group, style


def topk_example(rng: np.random.Generator, side: int, grid: int, cfg: TuneConfig) -> tuple[list[Image.Image], str]:
    """One top-k example: ``n_images`` masked scenes sharing a value, and the answer naming the values
    they all share and all show (drawn again in the rare case where the masks hide every shared value)."""
    for _ in range(100):
        group, style = _group(rng, cfg)
        maps = [activation_map(s, side, grid, rng, style) for s in group]
        visible = set(CAPTION_ORDER)
        for s, amap in zip(group, maps):
            visible &= visible_families(s, amap, side, style)
        answer = shared_answer(group, visible)
        if answer:
            images = [masked_image(Image.fromarray(scenes.render(s, side)), amap, (side, side))
                      for s, amap in zip(group, maps)]
            return images, answer
    raise RuntimeError("no top-k example with a visible shared value in 100 draws")


class HeadEncoder(data.Encoder):
    """``data.Encoder`` for prompts that are already the full processor text (chat template, answer prefix)."""

    def encode(self, prompt: str, answer: str) -> tuple[list[int], int]:
        key = (prompt, answer)
        if key not in self._cache:
            tok = self.processor.tokenizer
            head = prompt.replace(tok.boi_token, self.processor.full_image_sequence)
            head_ids = tok(head, add_special_tokens=False)["input_ids"]
            full_ids = tok(head + answer + END_TURN, add_special_tokens=False)["input_ids"]
            assert full_ids[: len(head_ids)] == head_ids, "answer tokenisation leaks into the prompt"
            self._cache[key] = (full_ids, len(head_ids))
        return self._cache[key]


def image_pixels(images: list[Image.Image]) -> torch.Tensor:
    """PIL images at the model's size -> normalised [B, 3, H, W] (as the processor does)."""
    return data.pixels([np.asarray(im.convert("RGB")) for im in images])


# ----------------------------------------------------------------------------- training


def freeze_vision(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Freeze the vision tower and the projector; return the language model's trainable parameters."""
    for part in (model.model.vision_tower, model.model.multi_modal_projector):
        part.requires_grad_(False)
        part.eval()
    return [p for p in model.parameters() if p.requires_grad]


def tune(src: Path, cfg: TuneConfig, seed: int) -> tuple[Any, dict]:
    """Fine-tune the world at ``src`` in memory; returns (the engine's LoadedVLM, training figures)."""
    from steering.engine import SteeringEngine
    from steering.models import load_vlm
    from steering.modes import prompt_text
    from steering.sae import load_sae

    vlm = load_vlm(src / "model")
    engine = SteeringEngine(vlm, load_sae(src / "sae"))
    model, processor = vlm.model, vlm.processor
    side = int(model.config.vision_config.image_size)
    grid = side // int(model.config.vision_config.patch_size)
    topk_text, _ = prompt_text(engine, cfg.n_images)  # exactly what the evaluation feeds the processor
    encoder, head_encoder = data.Encoder(processor), HeadEncoder(processor)

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model.train()
    trainable = freeze_vision(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    t0, running, losses = time.time(), [], (0.0, 0.0)
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.lr, cfg.warmup)
        total = torch.zeros(())
        orig_loss = torch.zeros(())
        if cfg.batch_size:
            batch_scenes = [scenes.sample_scene(rng) for _ in range(cfg.batch_size)]
            ask = rng.random() < cfg.ask_share
            batch = encoder.batch([data.example(s, rng, 1.0 if ask else 0.0) for s in batch_scenes])
            px = data.pixels([scenes.render(s, side) for s in batch_scenes])  # [B, 3, H, W]
            orig_loss = model(pixel_values=px, **batch).loss
            total = total + orig_loss
        sets = [topk_example(rng, side, grid, cfg) for _ in range(cfg.topk_sets)]
        batch = head_encoder.batch([(topk_text, answer) for _, answer in sets])
        px = image_pixels([im for images, _ in sets for im in images])  # [sets * n_images, 3, H, W]
        topk_loss = model(pixel_values=px, **batch).loss
        total = total + cfg.topk_weight * topk_loss
        total.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses = (orig_loss.item(), topk_loss.item())
        running.append(losses)
        if (step + 1) % 25 == 0 or step + 1 == cfg.steps:
            mean = np.mean(running, axis=0)
            log.info("topk-tune step %d/%d loss original %.4f top-k %.4f (%.0fs)", step + 1, cfg.steps,
                     mean[0], mean[1], time.time() - t0)
            running = []
    model.eval()
    figures = {"train_seconds": round(time.time() - t0, 1), "final_loss_original": losses[0],
               "final_loss_topk": losses[1], "topk_prompt": topk_text}
    return vlm, figures


def run(out: Path, src: Path = DATA_DIR, cfg: TuneConfig | None = None, seed: int = 0,
        threads: int | None = 2) -> dict:
    """Tune the world at ``src`` and write a complete world to ``out``; returns the figures."""
    cfg = cfg or TuneConfig()
    if threads:
        torch.set_num_threads(threads)
    out, src = Path(out), Path(src)
    vlm, figures = tune(src, cfg, seed)
    (out / "model").mkdir(parents=True, exist_ok=True)
    vlm.model.save_pretrained(out / "model")
    vlm.processor.save_pretrained(out / "model")
    if (out / "sae").exists():
        shutil.rmtree(out / "sae")
    shutil.copytree(src / "sae", out / "sae")
    info = {"seed": seed, "src": str(src), "threads": threads, "config": cfg.to_dict()} | figures
    (out / "tune.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.toy.topk_tune", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the tuned world (model/, sae/)")
    parser.add_argument("--src", type=Path, default=DATA_DIR, help=f"world to start from (default {DATA_DIR})")
    parser.add_argument("--steps", type=int, default=TuneConfig.steps)
    parser.add_argument("--lr", type=float, default=TuneConfig.lr)
    parser.add_argument("--topk-sets", type=int, default=TuneConfig.topk_sets, help="top-k examples per step")
    parser.add_argument("--batch-size", type=int, default=TuneConfig.batch_size,
                        help="original single-image examples per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (figures reproducible per count)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = TuneConfig(steps=args.steps, lr=args.lr, topk_sets=args.topk_sets, batch_size=args.batch_size)
    info = run(args.out, args.src, cfg, args.seed, args.threads)
    print(json.dumps({k: v for k, v in info.items() if k != "topk_prompt"}, indent=2))


if __name__ == "__main__":
    main()
