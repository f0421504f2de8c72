"""The SAE formats this package reads, in one registry: each one's detector, cheap facts and loader.

Like SAELens' ``pretrained_sae_loaders``, ``SAE_FORMATS`` maps a format's name to how it is read; the
checks before loading (steering.preflight) and the loader (steering.sae) both go through it, so a format
registered here is recognised, checked and loaded alike, with the same one-line refusals.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steering.errors import SAELoadError, ShapeMismatchError
from steering.sae_checks import (
    as_bool,
    as_int,
    dictionary_learning_numbers,
    load_safetensors,
    read_json_object,
    saelens_numbers,
    safetensors_shapes,
    sub_object,
    tensor,
)

DL_KEYS = {"encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k", "threshold"}
DL_REQUIRED = {"encoder.weight", "encoder.bias", "decoder.weight", "b_dec"}
SAELENS_REQUIRED = {"W_enc", "b_enc", "W_dec", "b_dec"}
SAELENS_OPTIONAL = {"threshold", "log_threshold", "scaling_factor"}
DECODER_KEYS = ("W_dec", "decoder.weight", "decoder", "W_d")

SAEParts = dict[str, Any]
"""What a format's loader reads: keyword arguments for ``steering.sae.SAE`` (``W_dec`` [d_in, d_sae], and
where the format has them ``W_enc`` [d_sae, d_in], ``b_enc``, ``b_dec``, ``k``, ``threshold``, ``layer``,
``meta``, ``b_dec_on_input``)."""


@dataclass(frozen=True)
class SAEFacts:
    """What an SAE's config and file headers say before its weights load."""

    d_sae: int | None
    """Number of latents (None: unknown until loaded)."""
    layer: int | None
    """Layer the SAE names (None: it names none, --layer is needed)."""
    d_in: int | None = None
    """Input width, the activations it reads (None: unknown until loaded)."""
    k: int | None = None
    """Top-k sparsity its config or header states (None: states none)."""
    n_bytes: int = 0
    """Bytes of the weight files its loader reads."""


@dataclass(frozen=True)
class SAEFormat:
    """One way an SAE is stored: how to recognise it, what its configs and headers say, how to load it."""

    detect: Callable[[Path], bool]
    """Whether this file or folder holds the format (looks at file names, reads nothing)."""
    facts: Callable[[Path], SAEFacts]
    """Its facts from configs and file headers, no weights read; refuses in one line what ``load`` refuses
    for its config's numbers."""
    load: Callable[[Path, int | None], SAEParts]
    """(its path, the model's width or None) -> its weights and config; refuses in one line."""
    holds: str | None = None
    """A folder format's files, as a folder that holds no SAE is told (None: a single-file format)."""


def local_sae_path(spec: str) -> Path | None:
    """The local file or folder ``spec`` names; None for ``owner/repo/subfolder`` on the hub. A local
    path that does not exist is refused."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if spec.count("/") >= 2 and not spec.startswith((".", "/", "~")):
        return None
    raise SAELoadError(f"SAE path {spec} does not exist: pass a folder, a .safetensors file or owner/repo/subfolder")


def sae_format(path: Path) -> str:
    """The name of the first registered format that ``path`` holds; refused in one line if none."""
    for name, fmt in SAE_FORMATS.items():
        if fmt.detect(path):
            return name
    if path.is_file():
        raise SAELoadError(f"{path} is not a .safetensors file: pass an SAE folder or a decoder .safetensors")
    expected = " or ".join(fmt.holds for fmt in SAE_FORMATS.values() if fmt.holds)
    raise SAELoadError(f"{path} holds no SAE: expected {expected}")


# ----------------------------------------------------------------------------- shared readers


def _layer_from_text(text: str | None) -> int | None:
    if not text:
        return None
    match = re.search(r"(?:layer|layers|blocks|block)[._](\d+)", str(text))
    return int(match.group(1)) if match else None


def _named_layer(config: dict[str, Any], key: str, text_key: str, where: Path) -> int | None:
    """The layer ``config`` gives under ``key``, else the one named in its ``text_key`` (a hook or module name)."""
    layer = as_int(config.get(key), key, where)
    return layer if layer is not None else _layer_from_text(config.get(text_key))


def _header_shapes(path: Path) -> dict[str, list[int]]:
    try:
        return safetensors_shapes(path)
    except (OSError, ValueError) as exc:
        raise SAELoadError(f"cannot read {path} ({exc}): the file is damaged or not safetensors") from None


def _check_keys(path: Path, keys: set[Any], required: set[str], allowed: set[str]) -> None:
    missing, extra = required - keys, keys - allowed
    if missing:
        raise SAELoadError(f"{path} lacks keys {sorted(missing)}: is this the right SAE format?")
    if extra:
        raise SAELoadError(f"{path} has unexpected keys {sorted(map(str, extra))}: is this the right SAE format?")


# ----------------------------------------------------------------------------- a bare decoder file


def _decoder_facts(path: Path) -> SAEFacts:
    matrix = next((s for s in _header_shapes(path).values() if len(s) == 2), None)
    return SAEFacts(max(matrix) if matrix else None, None, min(matrix) if matrix else None,
                    n_bytes=path.stat().st_size)


def _load_decoder_file(path: Path, d_in: int | None) -> SAEParts:
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
    return {"W_dec": W.contiguous()}


# ----------------------------------------------------------------------------- dictionary_learning (ae.pt)


def _dl_config(folder: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(config.json, its ``trainer`` object, its path); a folder without one has an empty config."""
    config_path = folder / "config.json"
    config = read_json_object(config_path) if config_path.is_file() else {}
    return config, sub_object(config, "trainer", config_path), config_path


def _refuse_unsafe(path: Path, exc: BaseException) -> SAELoadError:
    return SAELoadError(f"cannot load {path} safely ({type(exc).__name__}); expected a plain state dict")


def _ae_header(path: Path) -> tuple[tuple[int, int] | None, Any]:
    """(the decoder's (d_in, d_sae), the state's k) from ae.pt (memory-mapped where the file allows: no
    weights read; weights only, so no code runs). Raises SAELoadError for a file the loader would refuse;
    None for what it does not hold."""
    state: Any = None
    for mmap in (True, False):  # legacy (non-zip) files cannot be memory-mapped
        try:
            with warnings.catch_warnings():  # a pickle-protocol note would add lines to a one-line refusal
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception as exc:  # a corrupt or pickled-code file: refuse, say why (as the loader does)
            if not mmap:
                raise _refuse_unsafe(path, exc) from None
    if not isinstance(state, dict):
        return None, None
    shape = tuple(getattr(state.get("decoder.weight"), "shape", ()))
    return ((int(shape[0]), int(shape[1])) if len(shape) == 2 else None), state.get("k")


def _dictionary_learning_facts(folder: Path) -> SAEFacts:
    _, trainer, config_path = _dl_config(folder)
    shape, state_k = _ae_header(folder / "ae.pt")
    d_in, d_sae, k = dictionary_learning_numbers(trainer, config_path, folder / "ae.pt", shape, state_k)
    return SAEFacts(d_sae, _named_layer(trainer, "layer", "submodule_name", config_path), d_in, k,
                    (folder / "ae.pt").stat().st_size)


def _load_dictionary_learning(folder: Path, d_in: int | None) -> SAEParts:
    ae_path = folder / "ae.pt"
    try:
        state = torch.load(ae_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or pickled-code file: refuse, say why
        raise _refuse_unsafe(ae_path, exc) from exc
    if not isinstance(state, dict):
        raise SAELoadError(f"{ae_path} is not a state dict: expected dictionary_learning's ae.pt")
    _check_keys(ae_path, set(state), DL_REQUIRED, DL_KEYS)
    config, trainer, config_path = _dl_config(folder)
    W_dec = tensor(state, "decoder.weight", ae_path)  # [d_in, d_sae]
    W_enc = tensor(state, "encoder.weight", ae_path)  # [d_sae, d_in]
    if W_dec.ndim != 2 or W_enc.shape != W_dec.T.shape:
        raise SAELoadError(f"{ae_path}: encoder {tuple(W_enc.shape)} and decoder {tuple(W_dec.shape)} disagree")
    numbers = dictionary_learning_numbers(trainer, config_path, ae_path, (W_dec.shape[0], W_dec.shape[1]),
                                          state.get("k"))
    layer = _named_layer(trainer, "layer", "submodule_name", config_path)
    return {
        "W_dec": W_dec, "b_dec": tensor(state, "b_dec", ae_path), "W_enc": W_enc,
        "b_enc": tensor(state, "encoder.bias", ae_path), "k": numbers.k, "layer": layer, "meta": config,
    }


# ----------------------------------------------------------------------------- SAELens (cfg.json + safetensors)


def _saelens_files(folder: Path) -> tuple[Path, Path]:
    """(sae_weights.safetensors, cfg.json); weights without their config are refused."""
    if not (folder / "cfg.json").is_file():
        raise SAELoadError(f"{folder} has sae_weights.safetensors but no cfg.json: copy the SAELens config beside it")
    return folder / "sae_weights.safetensors", folder / "cfg.json"


def _saelens_facts(folder: Path) -> SAEFacts:
    weights_path, cfg_path = _saelens_files(folder)
    cfg = read_json_object(cfg_path)
    w_dec = _header_shapes(weights_path).get("W_dec")  # [d_sae, d_in]
    shape = (w_dec[1], w_dec[0]) if w_dec and len(w_dec) == 2 else None
    d_in, d_sae, k = saelens_numbers(cfg, cfg_path, shape)
    return SAEFacts(d_sae, _named_layer(cfg, "hook_layer", "hook_name", cfg_path), d_in, k,
                    weights_path.stat().st_size)


def _load_saelens(folder: Path, d_in: int | None) -> SAEParts:
    weights_path, cfg_path = _saelens_files(folder)
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
    numbers = saelens_numbers(cfg, cfg_path, (W_dec.shape[1], W_dec.shape[0]))  # W_dec is stored [d_sae, d_in]
    layer = _named_layer(cfg, "hook_layer", "hook_name", cfg_path)
    return {
        "W_dec": W_dec.T.contiguous(), "W_enc": W_enc.T.contiguous(),  # stored [d_sae, d_in] and [d_in, d_sae]
        "b_dec": tensor(state, "b_dec", weights_path), "b_enc": tensor(state, "b_enc", weights_path),
        "k": numbers.k, "threshold": threshold, "layer": layer, "meta": cfg,
        "b_dec_on_input": as_bool(cfg.get("apply_b_dec_to_input"), "apply_b_dec_to_input", cfg_path, True),
    }


SAE_FORMATS: dict[str, SAEFormat] = {
    "decoder_file": SAEFormat(
        detect=lambda path: path.is_file() and path.suffix == ".safetensors",
        facts=_decoder_facts, load=_load_decoder_file,
    ),
    "dictionary_learning": SAEFormat(
        detect=lambda path: (path / "ae.pt").is_file(),
        facts=_dictionary_learning_facts, load=_load_dictionary_learning,
        holds="ae.pt + config.json (dictionary_learning)",
    ),
    "saelens": SAEFormat(
        detect=lambda path: (path / "sae_weights.safetensors").is_file(),
        facts=_saelens_facts, load=_load_saelens,
        holds="cfg.json + sae_weights.safetensors (SAELens)",
    ),
}
"""Every SAE format, by name, tried in this order (a folder with ae.pt and SAELens files is dictionary_learning)."""
