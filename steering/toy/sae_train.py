"""Train a TopK SAE on the toy VLM's vision residual stream and save it in dictionary_learning format."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Gemma3ForConditionalGeneration

from steering.toy import data, infer, scenes
from steering.toy.config import SAEConfig

log = logging.getLogger(__name__)


@torch.no_grad()
def collect(model: Gemma3ForConditionalGeneration, scene_list: list[scenes.Scene], layer: int,
            image_size: int, batch: int = 256) -> torch.Tensor:
    """Layer-``layer`` activations of every patch of every scene: [n_scenes, P, d]."""
    chunks = []
    for i in range(0, len(scene_list), batch):
        px = data.pixels([scenes.render(s, image_size) for s in scene_list[i : i + batch]])
        chunks.append(infer.layer_output(model, px, layer))
    return torch.cat(chunks)


def encode(state: dict[str, torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    """TopK codes [N, n] of raw activations x [N, d] with a saved ``ae.pt`` state dict."""
    pre = torch.relu((x - state["b_dec"]) @ state["encoder.weight"].T + state["encoder.bias"])  # [N, n]
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter_(-1, top.indices, top.values)


def decode(state: dict[str, torch.Tensor], f: torch.Tensor) -> torch.Tensor:
    return f @ state["decoder.weight"].T + state["b_dec"]  # [N, d]


def train_sae(acts: torch.Tensor, cfg: SAEConfig, seed: int) -> dict[str, torch.Tensor]:
    """Train on activations [N, d]; returns the ``ae.pt`` state dict acting on raw activations.

    Training runs on activations divided by their mean norm (so one learning rate fits any model);
    the scale is folded back into the biases at the end, which leaves the codes' top-k choice and
    the unit-norm decoder unchanged.
    """
    g = torch.Generator().manual_seed(seed)
    N, d = acts.shape
    n, k = cfg.dict_size, cfg.k
    scale = acts.norm(dim=-1).mean().item()
    x_all = acts / scale
    W_dec = torch.randn(d, n, generator=g)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    W_dec = W_dec.requires_grad_()
    W_enc = W_dec.detach().T.clone().requires_grad_()  # [n, d]
    b_enc = torch.zeros(n, requires_grad=True)
    b_dec = x_all.median(dim=0).values.clone().requires_grad_()
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=cfg.lr)
    since_fired = torch.zeros(n, dtype=torch.long)
    t0 = time.time()
    for step in range(cfg.steps):
        idx = torch.randint(0, N, (cfg.batch_size,), generator=g)
        x = x_all[idx]  # [B, d]
        pre = torch.relu((x - b_dec) @ W_enc.T + b_enc)  # [B, n]
        top = pre.topk(k, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        x_hat = f @ W_dec.T + b_dec
        err = x - x_hat
        loss = err.pow(2).sum(-1).mean()
        fired = torch.zeros(n, dtype=torch.bool)
        fired[top.indices.flatten()] = True
        since_fired = torch.where(fired, 0, since_fired + 1)
        dead = since_fired > cfg.dead_after
        if dead.any():
            # AuxK: let the most active dead latents explain what the live ones miss.
            aux_pre = pre.masked_fill(~dead, 0.0)
            aux_top = aux_pre.topk(min(cfg.aux_k, int(dead.sum())), dim=-1)
            f_aux = torch.zeros_like(pre).scatter(-1, aux_top.indices, aux_top.values)
            aux = (err.detach() - f_aux @ W_dec.T).pow(2).sum(-1).mean() / err.detach().pow(2).sum(-1).mean()
            loss = loss + cfg.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # keep decoder columns unit norm: drop the gradient along each column
            W_dec.grad -= (W_dec.grad * W_dec).sum(0, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=0, keepdim=True)
        if (step + 1) % 500 == 0 or step + 1 == cfg.steps:
            fvu = (err.pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
            log.info("sae step %d/%d fvu %.4f dead %d (%.0fs)", step + 1, cfg.steps, fvu, int(dead.sum()), time.time() - t0)
    with torch.no_grad():
        codes = encode({"encoder.weight": W_enc, "encoder.bias": b_enc, "b_dec": b_dec}, x_all[:20000], k)
        threshold = codes.masked_fill(codes <= 0, float("inf")).min(-1).values
        threshold = threshold[torch.isfinite(threshold)].mean().item() * scale
    return {
        "encoder.weight": W_enc.detach().clone(),
        "encoder.bias": (b_enc.detach() * scale).clone(),
        "decoder.weight": W_dec.detach().clone(),
        "b_dec": (b_dec.detach() * scale).clone(),
        "k": torch.tensor(k, dtype=torch.int),
        "threshold": torch.tensor(threshold, dtype=torch.float32),
    }


def sae_metrics(state: dict[str, torch.Tensor], acts: torch.Tensor) -> dict[str, float]:
    """Fraction of variance unexplained and share of latents alive on held-out activations [N, d]."""
    k = int(state["k"])
    f = encode(state, acts, k)
    x_hat = decode(state, f)
    fvu = ((acts - x_hat).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()).item()
    alive = (f > 0).any(0).float().mean().item()
    return {"fvu": fvu, "alive": alive, "n_eval": int(acts.shape[0])}


def save_sae(state: dict[str, torch.Tensor], out: Path, cfg: SAEConfig, d: int, lm_name: str) -> None:
    """Write ``ae.pt`` and ``config.json`` as dictionary_learning's AutoEncoderTopK does."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "ae.pt")
    config = {
        "trainer": {
            "dict_class": "AutoEncoderTopK",
            "trainer_class": "TopKTrainer",
            "activation_dim": d,
            "dict_size": cfg.dict_size,
            "k": cfg.k,
            "layer": cfg.layer,
            "lm_name": lm_name,
            "submodule_name": f"enc_res_out_layer_{cfg.layer}",
            "lr": cfg.lr,
            "steps": cfg.steps,
            "auxk_alpha": cfg.aux_coef,
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def patch_norm(model: Gemma3ForConditionalGeneration, layer: int, image_size: int) -> float:
    """Mean L2 norm of the white image's patch hidden states at ``layer`` (the strength scale)."""
    white = scenes.render(scenes.Scene(kind="empty"), image_size)
    h = infer.layer_output(model, data.pixels([white]), layer)  # [1, P, d]
    return float(h.norm(dim=-1).mean())


def as_rows(acts: torch.Tensor) -> torch.Tensor:
    """[S, P, d] -> [S*P, d]."""
    return acts.reshape(-1, acts.shape[-1])


def rng_scenes(n: int, seed: int) -> list[scenes.Scene]:
    return [scenes.sample_scene(np.random.default_rng([seed, i])) for i in range(n)]
