"""Top-k and hybrid describing: the explainer sees a feature's masked top images (and, for the hybrid,
is steered along the feature at exactly the patches where it fired), many features per generate call."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload

import torch
from PIL import Image

import prompts
from steering.engine import SteeringEngine
from steering.probes import EvidenceRequest
from steering.text import strip_answer
from steering.topk.errors import TopKError
from steering.topk.result import TopKResult
from steering.topk.views import masked_image

log = logging.getLogger(__name__)

PROMPT = "vlm_topk"
DEFAULT_HYBRID_STRENGTH = 50.0
"""The reference analysis's hybrid strength for Gemma-3-4B (layer 16); scale it to your model's norms."""


@dataclass(frozen=True)
class EvidenceResult:
    """What the explainer said about one feature's top images."""

    request: EvidenceRequest
    texts: tuple[str, ...]
    """The answers, prefix stripped (one: decoding is greedy); empty if the feature never fired."""
    image_ids: tuple[int, ...]
    """Ids (in the top-k's image list) of the images shown, best first."""
    n_tokens: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.request.mode

    @property
    def feature(self) -> int:
        return self.request.feature

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(texts=list(self.texts), image_ids=list(self.image_ids), n_tokens=list(self.n_tokens))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvidenceResult:
        return cls(EvidenceRequest.from_dict(d["request"]), tuple(d["texts"]), tuple(d["image_ids"]),
                   tuple(d.get("n_tokens", ())), dict(d.get("extra", {})))


def fingerprint(engine: SteeringEngine, topk: TopKResult) -> dict[str, Any]:
    """The engine's fingerprint with the describing prompt and the top-k collection it reads."""
    fp = engine.fingerprint()
    return {**fp, "prompts": [prompts.load(PROMPT).ref], "topk": topk.fingerprint()}


def prompt_text(engine: SteeringEngine, n_images: int) -> tuple[str, str]:
    """(full text for the processor with ``n_images`` image slots, answer prefix)."""
    template = prompts.load(PROMPT)
    user, prefix = template.render(), template.meta.get("answer_prefix", "")
    processor = engine.vlm.processor
    if getattr(processor, "chat_template", None):
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": user}]
        text = processor.apply_chat_template([{"role": "user", "content": content}],
                                             add_generation_prompt=True, tokenize=False)
    else:  # processors without a chat template add the image tokens themselves
        text = user + "\n"
    if prefix and engine.settings.prefill_prefix:
        text += prefix
    return text, prefix


def check_compatible(engine: SteeringEngine, topk: TopKResult) -> None:
    """Refuse a top-k whose maps cannot line up with this engine's layer and SAE."""
    run = topk.meta.get("run", {})
    if run.get("layer") is not None and run["layer"] != engine.layer:
        raise TopKError(f"top-k was collected at layer {run['layer']} but the engine steers layer {engine.layer}")
    if topk.d_sae != engine.sae.d_sae:
        raise TopKError(f"top-k covers {topk.d_sae} latents but the SAE has {engine.sae.d_sae}: wrong SAE")
    grid = engine.vlm.vision.grid
    if grid is not None and tuple(grid) != topk.grid:
        raise TopKError(f"top-k maps are {topk.grid} patches but the encoder's grid is {tuple(grid)}")
    if run.get("model") not in (None, engine.vlm.model_id) or run.get("sae") not in (None, engine.sae.sae_id):
        log.warning("top-k %s was collected with %s / %s; the engine runs %s / %s", topk.root, run.get("model"),
                    run.get("sae"), engine.vlm.model_id, engine.sae.sae_id)


@torch.no_grad()
def _generate(engine: SteeringEngine, text: str, images: list[list[Image.Image]], vectors: torch.Tensor,
              masks: torch.Tensor) -> tuple[list[str], list[int]]:
    """One greedy generate call: row b shows ``images[b]`` and is steered by vectors[b] under ``masks``."""
    vlm, rows = engine.vlm, len(images)
    batch = vlm.processor(text=[text] * rows, images=images, return_tensors="pt")
    batch = {k: v.to(vlm.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if batch["pixel_values"].shape[0] != masks.shape[0]:
        raise TopKError(f"the processor made {batch['pixel_values'].shape[0]} image tiles for "
                        f"{masks.shape[0]} images: turn image tiling (pan and scan) off")
    texts, counts, _ = engine.generate_inputs(batch, vectors, masks=masks)
    return texts, counts


def _rows_per_call(engine: SteeringEngine, text: str, n_images: int) -> int:
    """Rows per generate call: the engine's own sizing for a prompt of this many tokens."""
    batch_rows = getattr(engine, "batch_rows", None)
    if not callable(batch_rows):
        return max(1, engine.settings.batch_size)
    processor = engine.vlm.processor
    tokenizer = getattr(processor, "tokenizer", processor)
    tokens = len(tokenizer(text)["input_ids"]) + n_images * int(getattr(processor, "image_seq_length", 256))
    return max(1, int(batch_rows(prompt_tokens=tokens)))


def describe(engine: SteeringEngine, topk: TopKResult, requests: Sequence[EvidenceRequest],
             on_result: Callable[[EvidenceResult], None] | None = None) -> list[EvidenceResult]:
    """Run top-k and hybrid requests, packing rows that show the same number of images into one call.

    Results come back in the order of ``requests``. A topk row is exactly an unsteered hybrid row.
    """
    check_compatible(engine, topk)
    for r in requests:
        engine.sae.check_feature(r.feature)
    results: dict[int, EvidenceResult] = {}
    groups: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        n = len(topk.top(r.feature, r.n_images))
        if n == 0:  # the feature never fired on the image set: nothing to show
            results[i] = EvidenceResult(r, (), (), (), {"note": "no active images"})
        else:
            groups[n].append(i)
    views: dict[tuple[int, int], Image.Image] = {}
    for n, idx in groups.items():
        text, prefix = prompt_text(engine, n)
        size = _rows_per_call(engine, text, n)
        for start in range(0, len(idx), size):
            chunk = idx[start:start + size]
            t0 = time.perf_counter()
            rows, masks, vectors, shown = [], [], [], []
            for i in chunk:
                r = requests[i]
                items = topk.top(r.feature, n)
                for t in items:
                    if (r.feature, t.id) not in views:
                        views[(r.feature, t.id)] = masked_image(topk.image(t.id), t.map, topk.image_size)
                rows.append([views[(r.feature, t.id)] for t in items])
                masks += [(t.map > 0).flatten().float() for t in items]  # one [P] mask per image tile
                d = engine.sae.direction(r.feature)
                vectors.append(r.strength * d if r.mode == "hybrid" else torch.zeros_like(d))
                shown.append(tuple(t.id for t in items))
            texts, counts = _generate(engine, text, rows, torch.stack(vectors), torch.stack(masks))
            seconds = round((time.perf_counter() - t0) / len(chunk), 4)
            for j, i in enumerate(chunk):
                res = EvidenceResult(requests[i], (strip_answer(texts[j], prefix),), shown[j], (counts[j],),
                                     {"seconds": seconds, "prompt": prompts.load(PROMPT).ref})
                results[i] = res
                if on_result is not None:
                    on_result(res)
    return [results[i] for i in range(len(requests))]


@overload
def describe_topk(engine: SteeringEngine, topk: TopKResult, feature: int, n_images: int = 5) -> EvidenceResult: ...
@overload
def describe_topk(engine: SteeringEngine, topk: TopKResult, feature: Sequence[int],
                  n_images: int = 5) -> list[EvidenceResult]: ...
def describe_topk(engine, topk, feature, n_images=5):
    """The explainer describes what the ``n_images`` masked top images of a feature (or of each) share."""
    features = [feature] if isinstance(feature, int) else list(feature)
    out = describe(engine, topk, [EvidenceRequest(f, "topk", 0.0, n_images) for f in features])
    return out[0] if isinstance(feature, int) else out


@overload
def describe_hybrid(engine: SteeringEngine, topk: TopKResult, feature: int, strength: float = ...,
                    n_images: int = 5) -> EvidenceResult: ...
@overload
def describe_hybrid(engine: SteeringEngine, topk: TopKResult, feature: Sequence[int], strength: float = ...,
                    n_images: int = 5) -> list[EvidenceResult]: ...
def describe_hybrid(engine, topk, feature, strength=DEFAULT_HYBRID_STRENGTH, n_images=5):
    """Top-k describing plus ``strength * W_dec[:, f]`` added where the feature fired, in the same call."""
    features = [feature] if isinstance(feature, int) else list(feature)
    out = describe(engine, topk, [EvidenceRequest(f, "hybrid", float(strength), n_images) for f in features])
    return out[0] if isinstance(feature, int) else out
