"""Training a LLaVA projector alone: frozen CLIP features in, teacher-forced cross-entropy on the answer tokens
out, the language model frozen. Works on any ``LlavaForConditionalGeneration`` (the tests use a tiny random one)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

IGNORE = -100
"""Label of a position the loss leaves out (the prompt, the image tokens, the padding)."""


@dataclass
class TrainConfig:
    """How the projector is trained (everything that changes the weights, the seed included)."""

    steps: int = 300
    """Optimizer steps."""
    batch: int = 8
    """Examples per step."""
    lr: float = 1e-3
    """Peak learning rate of AdamW (LLaVA's stage-1 rate: only the projector learns)."""
    warmup: int = 20
    """Steps of linear warm-up from 0; then a cosine decay to ``lr * min_lr_ratio``."""
    min_lr_ratio: float = 0.1
    """Where the cosine ends, as a share of ``lr``."""
    weight_decay: float = 0.0
    """AdamW weight decay (LLaVA trains its projector without)."""
    grad_clip: float = 1.0
    """Largest gradient norm (0: no clipping)."""
    bf16: bool = False
    """Run the frozen language model under bfloat16 autocast (the projector's weights and AdamW stay float32)."""
    seed: int = 0
    """Seeds the batch order."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Examples:
    """Training examples: one row of cached image features each and the token ids of its answer."""

    features: torch.Tensor
    """[n, image_tokens, vision_width]: the vision tower's selected layer, class token dropped."""
    answers: list[list[int]]
    """Per row, the answer's token ids (end of turn included): what the loss is taken on."""
    head: list[int]
    """The prompt's token ids, the image token repeated once per image token: the same for every row."""

    def __post_init__(self) -> None:
        if len(self.answers) != self.features.shape[0]:
            raise ValueError(f"{len(self.answers)} answers for {self.features.shape[0]} feature rows")


@dataclass
class History:
    """What a training run did, step by step."""

    loss: list[float] = field(default_factory=list)
    """Training loss per step (mean over the answer tokens of the batch)."""
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    """Wall time per step."""
    held_out: list[tuple[int, float]] = field(default_factory=list)
    """(step, teacher-forced loss on held-out rows), when asked for."""


def select_features(hidden_states: Sequence[torch.Tensor], layer: int, strategy: str) -> torch.Tensor:
    """The features LLaVA's projector reads: hidden state ``layer`` of the vision tower, the class token dropped
    under the 'default' strategy (as ``LlavaModel.get_image_features`` selects them)."""
    chosen = hidden_states[layer]  # [b, 1 + patches, vision_width]
    if strategy == "default":
        return chosen[:, 1:]
    if strategy == "full":
        return chosen
    raise ValueError(f"unknown vision_feature_select_strategy {strategy!r}")


@torch.no_grad()
def vision_features(model: Any, pixel_values: torch.Tensor, batch: int = 32,
                    progress: Callable[[int], None] = lambda _: None) -> torch.Tensor:
    """The frozen vision tower's selected features of every image, [n, image_tokens, vision_width], float32."""
    cfg = model.config
    layer = cfg.vision_feature_layer
    if not isinstance(layer, int):
        raise TypeError(f"vision_feature_layer {layer!r}: only one layer is supported")
    out = []
    for i in range(0, pixel_values.shape[0], batch):
        px = pixel_values[i: i + batch].to(model.device, model.model.vision_tower.dtype)
        hidden = model.model.vision_tower(px, output_hidden_states=True).hidden_states
        out.append(select_features(hidden, layer, cfg.vision_feature_select_strategy).float().cpu())
        progress(min(i + batch, pixel_values.shape[0]))
    return torch.cat(out)


def freeze_all_but_projector(model: Any) -> list[torch.nn.Parameter]:
    """Turn off gradients everywhere but ``multi_modal_projector``; returns its parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.model.multi_modal_projector.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def make_batch(examples: Examples, rows: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded inputs for ``rows``: input_ids, attention_mask, labels [b, t] and features [b, n, d]."""
    head = examples.head
    lengths = [len(head) + len(examples.answers[r]) for r in rows]
    t = max(lengths)
    input_ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), t), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    for b, r in enumerate(rows):
        answer = torch.tensor(examples.answers[r], dtype=torch.long)
        input_ids[b, : len(head)] = torch.tensor(head, dtype=torch.long)
        input_ids[b, len(head): lengths[b]] = answer
        labels[b, len(head): lengths[b]] = answer
        mask[b, : lengths[b]] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
            "features": examples.features[list(rows)]}


def answer_loss(model: Any, features: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
    """Teacher-forced cross-entropy of the answer tokens given cached vision features: the projector's output
    takes the image tokens' places (as LlavaModel does), and the vocabulary is scored only where a label is."""
    lm = model.model.language_model
    embeds = lm.embed_tokens(input_ids)  # [b, t, text_width]
    image = model.model.multi_modal_projector(features.to(embeds.device))  # [b, image_tokens, text_width]
    where = (input_ids == model.config.image_token_index).unsqueeze(-1)  # [b, t, 1]
    if int(where.sum()) != image.shape[0] * image.shape[1]:
        raise ValueError(f"{int(where.sum())} image tokens in the batch for {image.shape[0] * image.shape[1]} "
                         "image features")
    embeds = embeds.masked_scatter(where, image.to(embeds.dtype))
    hidden = lm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state  # [b, t, d]
    targets = labels[:, 1:]  # position i predicts token i + 1
    keep = targets != IGNORE
    logits = model.lm_head(hidden[:, :-1][keep])  # [answer tokens, vocab]
    return F.cross_entropy(logits.float(), targets[keep])


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up, then cosine down to ``lr * min_lr_ratio``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)


def batch_order(n: int, cfg: TrainConfig) -> list[list[int]]:
    """Rows of every step: shuffled epochs (seeded), each epoch used up before the next starts."""
    rng = np.random.default_rng(cfg.seed)
    rows: list[int] = []
    need = cfg.steps * cfg.batch
    while len(rows) < need:
        rows += rng.permutation(n).tolist()
    return [rows[i * cfg.batch: (i + 1) * cfg.batch] for i in range(cfg.steps)]


@torch.no_grad()
def held_out_loss(model: Any, examples: Examples, pad_id: int, cfg: TrainConfig, batch: int = 16) -> float:
    """Teacher-forced loss over every row of ``examples`` (weighted by answer tokens)."""
    total, tokens = 0.0, 0
    for i in range(0, examples.features.shape[0], batch):
        rows = list(range(i, min(i + batch, examples.features.shape[0])))
        b = make_batch(examples, rows, pad_id)
        n = int((b["labels"][:, 1:] != IGNORE).sum())
        with _autocast(cfg, model.device):
            loss = answer_loss(model, b["features"], b["input_ids"], b["attention_mask"], b["labels"])
        total, tokens = total + float(loss) * n, tokens + n
    return total / max(tokens, 1)


def train_projector(model: Any, train: Examples, cfg: TrainConfig, pad_id: int, *,
                    held_out: Examples | None = None, eval_every: int = 0,
                    report: Callable[[int, float, float], None] = lambda *_: None) -> History:
    """Train ``model.model.multi_modal_projector`` in place on ``train`` (every other weight frozen).

    held_out/eval_every: the teacher-forced loss on ``held_out`` every ``eval_every`` steps and at the end.
    report(step, loss, seconds) after each step.
    """
    torch.manual_seed(cfg.seed)
    params = freeze_all_but_projector(model)
    model.eval()  # no dropout anywhere: the frozen parts behave as at inference
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = History()
    for step, rows in enumerate(batch_order(train.features.shape[0], cfg)):
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        b = make_batch(train, rows, pad_id)
        with _autocast(cfg, model.device):
            loss = answer_loss(model, b["features"], b["input_ids"], b["attention_mask"], b["labels"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        seconds = time.perf_counter() - t0
        value = loss.item()
        history.loss.append(value)
        history.lr.append(lr)
        history.seconds.append(seconds)
        report(step, value, seconds)
        last = step == cfg.steps - 1
        if held_out is not None and eval_every > 0 and ((step + 1) % eval_every == 0 or last):
            history.held_out.append((step + 1, held_out_loss(model, held_out, pad_id, cfg)))
            log.info("step %d: held-out loss %.4f", step + 1, history.held_out[-1][1])
    for p in params:
        p.requires_grad_(False)
    return history


def projector_state(model: Any) -> dict[str, torch.Tensor]:
    """The projector's weights as ``projector.save_projector`` takes them (``linear_1.weight`` ...)."""
    return {k: v.detach().clone() for k, v in model.model.multi_modal_projector.state_dict().items()}
