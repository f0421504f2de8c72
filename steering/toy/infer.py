"""Greedy describing with the toy VLM, optionally steered by a vector added at one vision layer.

This is the toy world's own minimal path, used while building (before the shipped files exist
anywhere else); the product's steering core (steering.engine) is the path the measurements use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from transformers import Gemma3ForConditionalGeneration, Gemma3Processor

from steering.toy import data, scenes


def vision_layers(model: Gemma3ForConditionalGeneration) -> torch.nn.ModuleList:
    return model.model.vision_tower.encoder.layers


@contextmanager
def add_at_layer(model: Gemma3ForConditionalGeneration, layer: int, vectors: torch.Tensor) -> Iterator[None]:
    """Add ``vectors`` [B, d] to every position of vision layer ``layer``'s output while inside."""

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output  # [B, P, d]
        hidden = hidden + vectors[:, None, :].to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = vision_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def layer_output(model: Gemma3ForConditionalGeneration, pixel_values: torch.Tensor, layer: int) -> torch.Tensor:
    """Hidden states [B, P, d] at the output of vision layer ``layer``."""
    out = model.model.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
    return out.hidden_states[layer + 1]  # hidden_states[0] is the embedding output


@torch.no_grad()
def generate(
    model: Gemma3ForConditionalGeneration,
    processor: Gemma3Processor,
    images: list[np.ndarray],
    prompt: str | None = None,
    answer_prefix: str = scenes.ANSWER_PREFIX,
    steer: tuple[int, torch.Tensor] | None = None,
    max_new_tokens: int = 24,
) -> list[str]:
    """Greedy answers for uint8 images at the model's size; ``steer`` = (layer, vectors [B, d])."""
    prompt = data.describe_prompt() if prompt is None else prompt
    head = data.chat_text(processor, prompt) + answer_prefix
    enc = processor(text=[head] * len(images), images=[[Image.fromarray(im)] for im in images], return_tensors="pt")
    n_in = enc["input_ids"].shape[1]
    if steer is None:
        out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens)
    else:
        with add_at_layer(model, steer[0], steer[1]):
            out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens)
    texts = processor.tokenizer.batch_decode(out[:, n_in:], skip_special_tokens=True)
    return [(answer_prefix + t).strip() for t in texts]
