"""The toy VLM's vision-layer activations on rendered scenes: the build trains its SAE on them and the
planted dictionary (steering.toy.planted) takes its class means from them."""

from __future__ import annotations

import numpy as np
import torch
from transformers import Gemma3ForConditionalGeneration

from steering.topk import encode
from steering.toy import scenes


def pixels(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 [H, W, 3] images already at the model's size -> normalised [B, 3, H, W], as the processor does."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


@torch.no_grad()
def layer_output(model: Gemma3ForConditionalGeneration, pixel_values: torch.Tensor, layer: int) -> torch.Tensor:
    """Hidden states [B, P, d] at the output of vision layer ``layer`` (later layers never run)."""
    tower = model.model.vision_tower
    return encode.layer_output(tower, tower.encoder.layers, layer, pixel_values)


@torch.no_grad()
def collect(model: Gemma3ForConditionalGeneration, scene_list: list[scenes.Scene], layer: int,
            image_size: int, batch: int = 256) -> torch.Tensor:
    """Layer-``layer`` activations of every patch of every scene: [n_scenes, P, d]."""
    chunks = []
    for i in range(0, len(scene_list), batch):
        px = pixels([scenes.render(s, image_size) for s in scene_list[i : i + batch]])
        chunks.append(layer_output(model, px, layer))
    return torch.cat(chunks)
