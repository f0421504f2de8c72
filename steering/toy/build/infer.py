"""Batched greedy answers of the toy VLM, for building and measuring (its activations: steering.toy.activations).

Steering itself always goes through the product's core (steering.hooks / steering.engine).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers import Gemma3ForConditionalGeneration, Gemma3Processor

from steering.toy import scenes
from steering.toy.build import data


@torch.no_grad()
def generate(
    model: Gemma3ForConditionalGeneration,
    processor: Gemma3Processor,
    images: list[np.ndarray],
    prompt: str | None = None,
    answer_prefix: str = scenes.ANSWER_PREFIX,
    max_new_tokens: int = 24,
) -> list[str]:
    """Greedy answers (answer prefix included) for uint8 [H, W, 3] images, one generate call."""
    prompt = data.describe_prompt() if prompt is None else prompt
    head = data.chat_text(processor, prompt) + answer_prefix
    enc = processor(text=[head] * len(images), images=[[Image.fromarray(im)] for im in images], return_tensors="pt")
    n_in = enc["input_ids"].shape[1]
    out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens)
    texts = processor.tokenizer.batch_decode(out[:, n_in:], skip_special_tokens=True)
    return [(answer_prefix + t).strip() for t in texts]
