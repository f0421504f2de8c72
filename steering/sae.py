"""Sparse autoencoders: load one safely (in any format of steering.sae_formats), encode and decode."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from steering.errors import FeatureOutOfRangeError, LayerOutOfRangeError, SAELoadError, ShapeMismatchError
from steering.revisions import content_revision
from steering.sae_checks import check_finite, check_shape, one_line
from steering.sae_formats import SAE_FORMATS, local_sae_path, sae_format

log = logging.getLogger(__name__)


@dataclass
class SAE:
    """A sparse autoencoder on one layer's residual stream; all weights act on raw activations."""

    W_dec: torch.Tensor
    """Decoder, [d_in, d_sae]: column i is latent i's direction."""
    b_dec: torch.Tensor | None = None
    """Decoder bias [d_in] (added after decoding; subtracted before encoding when ``b_dec_on_input``)."""
    W_enc: torch.Tensor | None = None
    """Encoder, [d_sae, d_in]; None for a decoder-only SAE."""
    b_enc: torch.Tensor | None = None
    """Encoder bias [d_sae]."""
    k: int | None = None
    """Top-k sparsity; None for ReLU (or JumpReLU) SAEs."""
    threshold: torch.Tensor | None = None
    """JumpReLU thresholds [d_sae], where the SAE has them."""
    layer: int | None = None
    """Encoder layer whose output the SAE was trained on (from its config, or given)."""
    sae_id: str = ""
    """Where it came from (path or hub spec), as given."""
    revision: str | None = None
    """What it holds: a fingerprint of its files (steering.revisions), for stores and cache keys."""
    meta: dict[str, Any] = field(default_factory=dict)
    """The SAE's own config, as read."""
    b_dec_on_input: bool = True
    """Whether encoding subtracts b_dec from the input first (SAELens' ``apply_b_dec_to_input``)."""

    @property
    def d_in(self) -> int:
        return int(self.W_dec.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_dec.shape[1])

    def check_feature(self, feature: int) -> int:
        if not 0 <= int(feature) < self.d_sae:
            raise FeatureOutOfRangeError(
                f"feature {feature} is out of range: this SAE has features 0-{self.d_sae - 1}"
            )
        return int(feature)

    def direction(self, feature: int) -> torch.Tensor:
        """Decoder column of ``feature``, [d_in]."""
        return self.W_dec[:, self.check_feature(feature)]

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d_in] -> [..., d_sae] before the sparsity nonlinearity."""
        if self.W_enc is None:
            raise SAELoadError(f"SAE {self.sae_id} has only a decoder: encoding needs encoder weights")
        pre = self.encoder_input(x) @ self.W_enc.T
        return pre + self.b_enc if self.b_enc is not None else pre

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d_in] raw activations -> what the encoder multiplies (centred by b_dec where the SAE says so)."""
        assert self.W_enc is not None
        x = x.to(self.W_enc.dtype)
        return x - self.b_dec if self.b_dec is not None and self.b_dec_on_input else x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f = TopK_k(ReLU(W_enc (x - b_dec) + b_enc)); JumpReLU or ReLU where there is no k."""
        pre = self.pre_activations(x)
        if self.threshold is not None and self.threshold.ndim == 1:
            return pre * (pre > self.threshold)
        acts = torch.relu(pre)
        if self.k is None:
            return acts
        top = acts.topk(self.k, dim=-1)
        return torch.zeros_like(acts).scatter_(-1, top.indices, top.values)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x_hat = W_dec f + b_dec; [..., d_sae] -> [..., d_in]."""
        out = f.to(self.W_dec.dtype) @ self.W_dec.T
        return out + self.b_dec if self.b_dec is not None else out

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SAE:
        for name in ("W_dec", "b_dec", "W_enc", "b_enc", "threshold"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device=device, dtype=dtype if t.is_floating_point() else None))
        return self

    def check_fits(self, width: int, n_layers: int, layer: int) -> None:
        """Raise a one-line error if this SAE cannot steer a model of this width at this layer."""
        if self.d_in != width:
            raise ShapeMismatchError(
                f"SAE width {self.d_in} != vision encoder width {width}: use an SAE trained on this model"
            )
        check_layer(layer, n_layers)


def check_layer(layer: int | None, n_layers: int) -> int:
    if layer is None:
        raise LayerOutOfRangeError("no layer given and the SAE config names none: pass --layer")
    if not 0 <= layer < n_layers:
        raise LayerOutOfRangeError(f"layer {layer} is out of range: the vision encoder has layers 0-{n_layers - 1}")
    return layer


# ----------------------------------------------------------------------------- loading


def _check_consistent(sae: SAE, where: Path) -> None:
    """Every tensor fits the decoder's shape, k fits the dictionary, and no weight is NaN or infinite."""
    d_in, d_sae = sae.d_in, sae.d_sae
    check_shape(sae.b_dec, (d_in,), "b_dec", where)
    check_shape(sae.b_enc, (d_sae,), "the encoder bias", where)
    if sae.threshold is not None and sae.threshold.ndim != 0:
        check_shape(sae.threshold, (d_sae,), "threshold", where)
    if sae.k is not None and sae.k > d_sae:
        raise SAELoadError(f"{where}: k={sae.k} exceeds the {d_sae} features of this SAE: fix the SAE config")
    for name in ("W_dec", "b_dec", "W_enc", "b_enc", "threshold"):
        check_finite(getattr(sae, name), name, str(where))


def _fetch_hub(spec: str) -> Path:
    """``owner/repo/subfolder`` -> a local folder in the huggingface_hub cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    owner, repo, sub = spec.split("/", 2)
    try:
        root = snapshot_download(f"{owner}/{repo}", allow_patterns=[f"{sub}/*"])
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise SAELoadError(f"cannot download SAE {spec!r} from the hub ({one_line(exc)}): check the id or go online") from exc
    folder = Path(root) / sub
    if not folder.is_dir():
        raise SAELoadError(f"hub repo {owner}/{repo} has no folder {sub!r}: check the SAE subfolder name")
    return folder


def load_sae(
    spec: str | Path,
    *,
    layer: int | None = None,
    d_in: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SAE:
    """Load an SAE from a folder, a safetensors decoder file, or ``hub-owner/repo/subfolder``.

    ``layer`` overrides the layer named in the SAE's config; ``d_in`` orients a bare decoder matrix.
    """
    spec = str(spec)
    path = local_sae_path(spec)
    if path is None:
        path = _fetch_hub(spec)
    sae = SAE(**SAE_FORMATS[sae_format(path)].load(path, d_in))
    _check_consistent(sae, path)
    sae.sae_id = spec
    sae.revision = content_revision(path)
    if layer is not None:
        sae.layer = int(layer)
    log.info("loaded SAE %s: d_in=%d d_sae=%d layer=%s k=%s", spec, sae.d_in, sae.d_sae, sae.layer, sae.k)
    return sae.to(device=device, dtype=dtype)
