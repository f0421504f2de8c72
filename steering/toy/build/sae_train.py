"""Train a TopK SAE on the toy VLM's vision residual stream and save it in dictionary_learning format."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from transformers import Gemma3ForConditionalGeneration

from steering.toy import activations, scenes
from steering.toy.build.config import SAEConfig

log = logging.getLogger(__name__)


def encode(state: dict[str, torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    """TopK codes [N, n] of raw activations x [N, d] with a saved ``ae.pt`` state dict."""
    pre = torch.relu((x - state["b_dec"]) @ state["encoder.weight"].T + state["encoder.bias"])  # [N, n]
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter_(-1, top.indices, top.values)


def decode(state: dict[str, torch.Tensor], f: torch.Tensor) -> torch.Tensor:
    return f @ state["decoder.weight"].T + state["b_dec"]  # [N, d]


def train_sae(acts: torch.Tensor, cfg: SAEConfig, seed: int, centre: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Train on activations [N, d]; returns the ``ae.pt`` state dict acting on raw activations.

    One training loop in one function (as nanoGPT and sparsify write theirs): its schedule, dead-latent
    revival and logging share the loop's state.

    ``centre`` [d], when given, is the frozen decoder bias: the toy centres its SAE on the blank
    white canvas, so every latent is a departure from the empty image (the very image steering
    starts from) instead of from the middle of the data cloud, where a latent's direction added to
    white would point at no real scene. Without it, b_dec starts at the median and is learned.

    Training runs on activations divided by their mean norm (so one learning rate fits any model);
    the scale is folded back into the biases at the end, which leaves the codes' top-k choice and
    the unit-norm decoder unchanged. Latents that stay dead are re-seeded on badly reconstructed
    examples during the first half of training, and an AuxK loss keeps the rest alive.
    """
    g = torch.Generator().manual_seed(seed)
    N, d = acts.shape
    n, k = cfg.dict_size, cfg.k
    scale = acts.norm(dim=-1).mean().item()
    x_all = acts / scale
    if centre is None:
        b_dec = x_all.median(dim=0).values.clone().requires_grad_()
    else:
        b_dec = (centre.float() / scale).clone()
    # Start every latent on a real example (as k-means++ seeding would), so that each one
    # begins by winning the examples near it instead of dying before it learns anything.
    offsets = x_all - b_dec.detach()  # [N, d]
    norms = offsets.norm(dim=-1)
    candidates = (norms > norms.median()).nonzero().flatten()
    picks = candidates[torch.randperm(len(candidates), generator=g)[:n]]
    W_dec = offsets[picks].T.clone()  # [d, n]
    if W_dec.shape[1] < n:  # fewer distinct examples than latents: fill with random directions
        W_dec = torch.cat([W_dec, torch.randn(d, n - W_dec.shape[1], generator=g)], dim=1)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    W_dec = W_dec.requires_grad_()
    W_enc = W_dec.detach().T.clone().requires_grad_()  # [n, d]
    b_enc = torch.zeros(n, requires_grad=True)
    params = [W_enc, b_enc, W_dec] + ([b_dec] if centre is None else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
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
            if dead.any() and step < cfg.steps * 4 // 5 and (step + 1) % cfg.dead_after == 0:
                _reseed(dead, err.detach(), W_enc, b_enc, W_dec, opt, g)
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


def _reseed(dead: torch.Tensor, err: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor,
            W_dec: torch.Tensor, opt: torch.optim.Optimizer, g: torch.Generator) -> None:
    """Point dead latents at the worst-reconstructed examples of the batch and reset their Adam state."""
    idx = dead.nonzero().flatten()
    worst = err.pow(2).sum(-1).topk(min(len(idx), err.shape[0])).indices
    idx = idx[torch.randperm(len(idx), generator=g)[: len(worst)]]
    directions = err[worst] / err[worst].norm(dim=-1, keepdim=True).clamp_min(1e-8)  # [m, d]
    W_dec[:, idx] = directions.T
    W_enc[idx] = directions * W_enc.norm(dim=-1).mean()
    b_enc[idx] = 0.0
    for p, dim in ((W_enc, 0), (b_enc, 0), (W_dec, 1)):
        state = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].index_fill_(dim, idx, 0.0)


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


def white_state(model: Gemma3ForConditionalGeneration, layer: int, image_size: int) -> torch.Tensor:
    """The white image's patch hidden states at ``layer``: [P, d]."""
    white = scenes.render(scenes.Scene(kind="empty"), image_size)
    return activations.layer_output(model, activations.pixels([white]), layer)[0]


def patch_norm(model: Gemma3ForConditionalGeneration, layer: int, image_size: int) -> float:
    """Mean L2 norm of the white image's patch hidden states at ``layer`` (the strength scale)."""
    return float(white_state(model, layer, image_size).norm(dim=-1).mean())


def as_rows(acts: torch.Tensor) -> torch.Tensor:
    """[S, P, d] -> [S*P, d]."""
    return acts.reshape(-1, acts.shape[-1])
