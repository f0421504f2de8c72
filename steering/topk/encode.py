"""The vision encoder run up to layer L, and the SAE codes of a batch one chunk of latents at a time."""

from __future__ import annotations

import torch
from torch import nn

from steering.hooks import capture
from steering.sae import SAE
from steering.topk.errors import TopKError

# ----------------------------------------------------------------------------- encoder up to layer L


def vision_tower(model: nn.Module) -> nn.Module:
    """The module that maps ``pixel_values`` to vision hidden states (a bare tower is returned as is)."""
    inner = getattr(model, "model", model)
    tower = getattr(inner, "vision_tower", None)
    if tower is None:
        if hasattr(model, "embeddings") and hasattr(model, "encoder"):
            return model
        raise TopKError(f"{type(model).__name__} has no vision_tower: top-k supports tower-based VLMs "
                        "(Gemma-3, PaliGemma, InternVL, LLaVA)")
    return tower


@torch.no_grad()
def layer_output(tower: nn.Module, layers: nn.ModuleList, layer: int, pixel_values: torch.Tensor) -> torch.Tensor:
    """Hidden states at the output of ``layers[layer]`` [images, seq, d]; later layers never run."""
    with capture(layers[layer], stop=True) as captured:
        tower(pixel_values=pixel_values)
    if not captured:
        raise TopKError(f"layer {layer} never ran in {type(tower).__name__}: is it the right tower?")
    return captured[0]


# ----------------------------------------------------------------------------- chunked SAE codes


class ChunkedCodes:
    """SAE codes of one batch [N, d_sae], produced one chunk of latents at a time.

    For TopK SAEs the per-row top-k (values, indices) is found by a streaming merge over latent
    chunks; the dense codes of any chunk are then scattered from it. ReLU/JumpReLU SAEs encode
    each chunk directly. Never more than [N, chunk] pre-activations exist at once.
    """

    def __init__(self, sae: SAE, x: torch.Tensor, chunk: int) -> None:
        if sae.W_enc is None:
            raise TopKError(f"SAE {sae.sae_id} has only a decoder: top-k needs its encoder weights")
        self.sae, self.chunk = sae, chunk
        self.x = sae.encoder_input(x)  # [N, d]
        self.vals = self.idx = None
        if sae.k is not None and not (sae.threshold is not None and sae.threshold.ndim == 1):
            self._sparse_topk(sae.k)

    def _pre(self, c0: int, c1: int) -> torch.Tensor:
        pre = self.x @ self.sae.W_enc[c0:c1].T  # [N, C]
        return pre + self.sae.b_enc[c0:c1] if self.sae.b_enc is not None else pre

    def _sparse_topk(self, k: int) -> None:
        vals = idx = None
        for c0 in range(0, self.sae.d_sae, self.chunk):
            c1 = min(c0 + self.chunk, self.sae.d_sae)
            v, i = self._pre(c0, c1).topk(min(k, c1 - c0), dim=1)
            i = i + c0
            if vals is not None:
                v, j = torch.cat([vals, v], 1).topk(min(k, vals.shape[1] + v.shape[1]), dim=1)
                i = torch.cat([idx, i], 1).gather(1, j)
            vals, idx = v, i
        self.vals, self.idx = torch.relu(vals), idx  # [N, k] each

    def codes(self, c0: int, c1: int) -> torch.Tensor:
        """Dense codes of latents c0..c1-1, [N, C]."""
        if self.vals is not None:
            out = self.x.new_zeros(self.x.shape[0], c1 - c0)
            hit = (self.idx >= c0) & (self.idx < c1)
            rows = torch.arange(self.x.shape[0], device=self.x.device)[:, None].expand_as(self.idx)
            out[rows[hit], self.idx[hit] - c0] = self.vals[hit]
            return out
        pre = self._pre(c0, c1)
        thr = self.sae.threshold
        if thr is not None and thr.ndim == 1:
            return pre * (pre > thr[c0:c1])
        return torch.relu(pre)
