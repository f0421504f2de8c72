"""The paper's CLIP similarity: cosine similarity between a feature's masked top-k images and its
explanation, under any transformers model with ``get_image_features`` / ``get_text_features``
(CLIP ViT-L/14 in the paper; SigLIP works too). Loaded only when the user names a model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def load_clip(name: str, device: str = "cpu", revision: str | None = None) -> tuple[Any, Any]:
    """(model, processor) of a CLIP-like model: a local folder or a hub id already in the cache."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(name, revision=revision).to(device).eval()
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ValueError(f"{name} is not a CLIP-like model (it lacks get_image_features / get_text_features)")
    return model, AutoProcessor.from_pretrained(name, revision=revision)


def _features(out: Any) -> Any:
    """Projected embeddings from get_*_features (a tensor, or an output whose pooler_output holds them)."""
    return getattr(out, "pooler_output", None) if not hasattr(out, "norm") else out


def _text_limit(model: Any) -> int | None:
    cfg = getattr(model.config, "text_config", model.config)
    return getattr(cfg, "max_position_embeddings", None)


def clip_similarity(model: Any, processor: Any, image_sets: Sequence[Sequence[Any]], texts: Sequence[str],
                    batch_size: int = 32) -> list[float | None]:
    """For each i, the mean cosine similarity of ``texts[i]`` to each image of ``image_sets[i]``.

    None where a set has no image or the text is empty. Texts longer than the model's context are
    truncated (CLIP reads 77 tokens).
    """
    import torch

    device = next(model.parameters()).device
    tokenizer = getattr(processor, "tokenizer", processor)
    image_processor = getattr(processor, "image_processor", processor)
    limit = _text_limit(model)
    keep = [i for i, (imgs, t) in enumerate(zip(image_sets, texts)) if imgs and t]
    out: list[float | None] = [None] * len(texts)
    if not keep:
        return out
    with torch.no_grad():
        text_emb = []
        for start in range(0, len(keep), batch_size):
            chunk = [texts[i] for i in keep[start:start + batch_size]]
            enc = tokenizer(chunk, padding=True, truncation=limit is not None, max_length=limit, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            text_emb.append(_features(model.get_text_features(**enc)).float())
        t = torch.nn.functional.normalize(torch.cat(text_emb), dim=-1)  # [n_keep, dim]
        flat = [(j, img) for j, i in enumerate(keep) for img in image_sets[i]]
        sums = torch.zeros(len(keep))
        counts = torch.zeros(len(keep))
        for start in range(0, len(flat), batch_size):
            chunk = flat[start:start + batch_size]
            pv = image_processor(images=[img for _j, img in chunk], return_tensors="pt")["pixel_values"].to(device)
            v = torch.nn.functional.normalize(_features(model.get_image_features(pixel_values=pv)).float(), dim=-1)
            rows = torch.tensor([j for j, _img in chunk])
            sims = (v * t[rows]).sum(-1).cpu()  # [chunk]
            sums.index_add_(0, rows, sims)
            counts.index_add_(0, rows, torch.ones(len(chunk)))
    for j, i in enumerate(keep):
        out[i] = round(float(sums[j] / counts[j]), 6)
    return out


def masked_top_images(topk: Any, feature: int, n_images: int) -> list[Any]:
    """The feature's top images at the model's resolution, inactive patches blacked out."""
    from steering.topk.views import masked_image

    return [masked_image(topk.image(t.id), t.map, topk.image_size) for t in topk.top(feature, n_images)]
