"""Train the toy VLM from scratch on freshly drawn scenes (describe captions and targeted Q&A)."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from transformers import Gemma3ForConditionalGeneration, Gemma3Processor

from steering.hooks import capture
from steering.toy import activations, scenes
from steering.toy.build import data, topk_data
from steering.toy.build.config import ToyConfig
from steering.toy.build.processor import build_processor
from steering.toy.build.vlm import build_model

log = logging.getLogger(__name__)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


class AttributeHeads(torch.nn.Module):
    """Training-only linear probes on the mean-pooled vision output, one per attribute family.

    They give the vision encoder a direct signal about scene kind, colour, shape, pattern and size
    (deep supervision), which the caption loss alone delivers slowly through the language model.
    They are not part of the saved model.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleDict(
            {"kind": torch.nn.Linear(width, len(scenes.KINDS))}
            | {fam: torch.nn.Linear(width, len(vals)) for fam, vals in scenes.FAMILIES.items()}
        )

    def loss(self, pooled: torch.Tensor, batch_scenes: list[scenes.Scene]) -> torch.Tensor:
        """pooled: [B, width]; mean cross-entropy over the families each scene has."""
        total = pooled.new_zeros(())
        for fam, head in self.heads.items():
            if fam == "kind":
                target = [scenes.KINDS.index(s.kind) for s in batch_scenes]
            else:
                values = scenes.FAMILIES[fam]
                target = [values.index(s.attributes()[fam]) if fam in s.attributes() else -100 for s in batch_scenes]
            t = torch.tensor(target)
            if (t >= 0).any():
                total = total + torch.nn.functional.cross_entropy(head(pooled), t, ignore_index=-100)
        return total / len(self.heads)


def train_vlm(cfg: ToyConfig, seed: int) -> tuple[Gemma3ForConditionalGeneration, Gemma3Processor, dict]:
    """Build the processor and model, train, and return them with a few training figures."""
    tc, vc = cfg.train, cfg.vlm
    grid = vc.image_size // vc.patch_size
    assert grid * grid % vc.mm_tokens_per_image == 0
    processor = build_processor(data.vocabulary_texts(), vc.image_size, vc.mm_tokens_per_image)
    model = build_model(vc, processor, seed)
    encoder = data.Encoder(processor)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    heads = AttributeHeads(vc.vision_hidden)
    named = list(model.named_parameters()) + list(heads.named_parameters())
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr, betas=(0.9, 0.98),
    )
    model.train()
    t0, running = time.time(), []
    # The attribute heads read the vision tower's output of the same forward pass.
    with capture(model.model.vision_tower) as captured:
        for step in range(tc.steps):
            captured.clear()
            loss = _step(model, heads, encoder, opt, rng, cfg, step, captured)
            running.append(loss)
            if (step + 1) % 50 == 0 or step + 1 == tc.steps:
                log.info("vlm step %d/%d loss %.4f (%.0fs)", step + 1, tc.steps, float(np.mean(running)),
                         time.time() - t0)
                running = []
    model.eval()
    return model, processor, {"train_seconds": time.time() - t0, "final_loss": float(loss)}


def _step(model: Gemma3ForConditionalGeneration, heads: AttributeHeads, encoder: data.Encoder,
          opt: torch.optim.Optimizer, rng: np.random.Generator, cfg: ToyConfig, step: int,
          captured: list[torch.Tensor]) -> float:
    """One optimisation step on a batch of fresh scenes; returns the caption loss."""
    tc, vc = cfg.train, cfg.vlm
    for group in opt.param_groups:
        group["lr"] = lr_at(step, tc.steps, tc.lr, tc.warmup)
    if rng.random() < tc.topk_share:
        return _topk_step(model, encoder, opt, rng, cfg)
    batch_scenes = [scenes.sample_scene(rng) for _ in range(tc.batch_size)]
    # A whole batch shares one prompt kind, so short question prompts are not padded to describe length.
    ask = rng.random() < tc.ask_share
    batch = encoder.batch([data.example(s, rng, 1.0 if ask else 0.0) for s in batch_scenes])
    px = activations.pixels([scenes.render(s, vc.image_size) for s in batch_scenes])  # [B, 3, H, W]
    loss = model(pixel_values=px, **batch).loss
    aux = heads.loss(captured[-1].mean(dim=1), batch_scenes)  # [B, P, width] -> [B, width]
    (loss + tc.aux_weight * aux).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def _topk_step(model: Gemma3ForConditionalGeneration, encoder: data.Encoder, opt: torch.optim.Optimizer,
               rng: np.random.Generator, cfg: ToyConfig) -> float:
    """One step on top-k examples (sets of masked scenes under the top-k prompt); returns its loss."""
    vc = cfg.vlm
    grid = vc.image_size // vc.patch_size
    sets = [topk_data.topk_example(rng, vc.image_size, grid) for _ in range(cfg.train.topk_sets)]
    batch = encoder.batch([(topk_data.topk_prompt(), answer) for _, answer in sets], n_images=topk_data.N_IMAGES)
    px = activations.pixels([im for images, _ in sets for im in images])  # [sets * N_IMAGES, 3, H, W]
    loss = model(pixel_values=px, **batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()
