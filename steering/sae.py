"""Load sparse autoencoders (dictionary_learning TopK, SAELens, plain decoder) safely; encode and decode."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from steering.errors import FeatureOutOfRangeError, LayerOutOfRangeError, SAELoadError, ShapeMismatchError
from steering.revisions import content_revision
from steering.sae_checks import (
    as_bool,
    as_int,
    check_finite,
    check_shape,
    dictionary_learning_numbers,
    load_safetensors,
    one_line,
    read_json_object,
    saelens_numbers,
    sub_object,
    tensor,
)

log = logging.getLogger(__name__)

DL_KEYS = {"encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k", "threshold"}
DL_REQUIRED = {"encoder.weight", "encoder.bias", "decoder.weight", "b_dec"}
SAELENS_REQUIRED = {"W_enc", "b_enc", "W_dec", "b_dec"}
SAELENS_OPTIONAL = {"threshold", "log_threshold", "scaling_factor"}
DECODER_KEYS = ("W_dec", "decoder.weight", "decoder", "W_d")


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


def _layer_from_text(text: str | None) -> int | None:
    if not text:
        return None
    match = re.search(r"(?:layer|layers|blocks|block)[._](\d+)", str(text))
    return int(match.group(1)) if match else None


def _check_keys(path: Path, keys: set[Any], required: set[str], allowed: set[str]) -> None:
    missing, extra = required - keys, keys - allowed
    if missing:
        raise SAELoadError(f"{path} lacks keys {sorted(missing)}: is this the right SAE format?")
    if extra:
        raise SAELoadError(f"{path} has unexpected keys {sorted(map(str, extra))}: is this the right SAE format?")


def _load_dictionary_learning(folder: Path) -> SAE:
    ae_path, config_path = folder / "ae.pt", folder / "config.json"
    try:
        state = torch.load(ae_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or pickled-code file: refuse, say why
        raise SAELoadError(f"cannot load {ae_path} safely ({type(exc).__name__}); expected a plain state dict") from exc
    if not isinstance(state, dict):
        raise SAELoadError(f"{ae_path} is not a state dict: expected dictionary_learning's ae.pt")
    _check_keys(ae_path, set(state), DL_REQUIRED, DL_KEYS)
    config = read_json_object(config_path) if config_path.is_file() else {}
    trainer = sub_object(config, "trainer", config_path)
    W_dec = tensor(state, "decoder.weight", ae_path)  # [d_in, d_sae]
    W_enc = tensor(state, "encoder.weight", ae_path)  # [d_sae, d_in]
    if W_dec.ndim != 2 or W_enc.shape != W_dec.T.shape:
        raise SAELoadError(f"{ae_path}: encoder {tuple(W_enc.shape)} and decoder {tuple(W_dec.shape)} disagree")
    k = dictionary_learning_numbers(trainer, config_path, ae_path, (W_dec.shape[0], W_dec.shape[1]), state.get("k"))
    layer = as_int(trainer.get("layer"), "layer", config_path)
    if layer is None:
        layer = _layer_from_text(trainer.get("submodule_name"))
    return SAE(
        W_dec=W_dec, b_dec=tensor(state, "b_dec", ae_path), W_enc=W_enc, b_enc=tensor(state, "encoder.bias", ae_path),
        k=k, layer=layer, meta=config,
    )


def _load_saelens(folder: Path) -> SAE:
    weights_path, cfg_path = folder / "sae_weights.safetensors", folder / "cfg.json"
    state = load_safetensors(weights_path)
    _check_keys(weights_path, set(state), SAELENS_REQUIRED, SAELENS_REQUIRED | SAELENS_OPTIONAL)
    cfg = read_json_object(cfg_path)
    if "scaling_factor" in state and not bool((state["scaling_factor"] == 1).all()):
        # Older SAELens wrote an all-ones scaling_factor that changes nothing; any other value
        # rescales activations in a way this loader does not reproduce.
        raise SAELoadError(
            f"{weights_path}: scaling_factor is not all ones: fold it into W_enc/W_dec (or re-export with SAELens) first"
        )
    W_dec, W_enc = tensor(state, "W_dec", weights_path), tensor(state, "W_enc", weights_path)
    if W_dec.ndim != 2 or W_enc.shape != W_dec.T.shape:
        raise SAELoadError(f"{weights_path}: W_enc {tuple(W_enc.shape)} and W_dec {tuple(W_dec.shape)} disagree")
    threshold = tensor(state, "threshold", weights_path) if "threshold" in state else None
    if threshold is None and "log_threshold" in state:
        threshold = tensor(state, "log_threshold", weights_path).exp()
    k = saelens_numbers(cfg, cfg_path, (W_dec.shape[1], W_dec.shape[0]))  # W_dec is stored [d_sae, d_in]
    layer = as_int(cfg.get("hook_layer"), "hook_layer", cfg_path)
    if layer is None:
        layer = _layer_from_text(cfg.get("hook_name"))
    return SAE(
        W_dec=W_dec.T.contiguous(), W_enc=W_enc.T.contiguous(),  # stored [d_sae, d_in] and [d_in, d_sae]
        b_dec=tensor(state, "b_dec", weights_path), b_enc=tensor(state, "b_enc", weights_path),
        k=k, threshold=threshold, layer=layer, meta=cfg,
        b_dec_on_input=as_bool(cfg.get("apply_b_dec_to_input"), "apply_b_dec_to_input", cfg_path, True),
    )


def _load_decoder_file(path: Path, d_in: int | None) -> SAE:
    state = load_safetensors(path)
    key = next((k for k in DECODER_KEYS if k in state), None)
    if key is None:
        if len(state) != 1:
            raise SAELoadError(
                f"{path} holds {sorted(state)}; a decoder file needs one tensor or a key named {DECODER_KEYS[0]}"
            )
        key = next(iter(state))
    W = tensor(state, key, path)
    if W.ndim != 2:
        raise SAELoadError(f"{path}: decoder {key!r} has shape {tuple(W.shape)}, expected a 2-D matrix")
    # Orientation: match the model width when known, else SAEs are overcomplete (d_sae > d_in).
    if d_in is not None:
        if W.shape[0] == d_in:
            pass
        elif W.shape[1] == d_in:
            W = W.T
        else:
            raise ShapeMismatchError(f"decoder {tuple(W.shape)} in {path} has no side of width {d_in}: wrong SAE?")
    elif W.shape[0] > W.shape[1]:
        W = W.T
    return SAE(W_dec=W.contiguous())


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
    path = Path(spec).expanduser()
    if not path.exists():
        if spec.count("/") >= 2 and not spec.startswith((".", "/", "~")):
            path = _fetch_hub(spec)
        else:
            raise SAELoadError(f"SAE path {spec} does not exist: pass a folder, a .safetensors file or owner/repo/subfolder")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise SAELoadError(f"{path} is not a .safetensors file: pass an SAE folder or a decoder .safetensors")
        sae = _load_decoder_file(path, d_in)
    elif (path / "ae.pt").is_file():
        sae = _load_dictionary_learning(path)
    elif (path / "sae_weights.safetensors").is_file():
        if not (path / "cfg.json").is_file():
            raise SAELoadError(f"{path} has sae_weights.safetensors but no cfg.json: copy the SAELens config beside it")
        sae = _load_saelens(path)
    else:
        raise SAELoadError(
            f"{path} holds no SAE: expected ae.pt + config.json (dictionary_learning) or cfg.json + sae_weights.safetensors (SAELens)"
        )
    _check_consistent(sae, path)
    sae.sae_id = spec
    sae.revision = content_revision(path)
    if layer is not None:
        sae.layer = int(layer)
    log.info("loaded SAE %s: d_in=%d d_sae=%d layer=%s k=%s", spec, sae.d_in, sae.d_sae, sae.layer, sae.k)
    return sae.to(device=device, dtype=dtype)
