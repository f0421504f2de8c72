"""Checks on untrusted SAE files: JSON configs, safetensors, numbers and tensor shapes (one-line errors)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import torch

from steering.errors import SAELoadError

MAX_HEADER = 100 << 20
"""Largest safetensors header (JSON) read: real ones are kilobytes to a few megabytes."""


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a file that is not valid JSON, or not an object, is refused."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON and bad UTF-8 alike
        raise SAELoadError(f"cannot read {path}: {one_line(exc)}; check the file is valid JSON") from exc
    if not isinstance(data, dict):
        raise SAELoadError(f"{path} holds a JSON {type(data).__name__}, not an object: is this the SAE's config?")
    return data


def sub_object(config: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """``config[key]`` when it is an object (missing means empty); anything else is refused."""
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SAELoadError(f"{path}: {key!r} is a {type(value).__name__}, expected an object: fix the SAE config")
    return value


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file; a truncated or garbage file is refused (safetensors runs no code)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, ...: whatever the bytes, one line
        raise SAELoadError(
            f"cannot read {path} ({type(exc).__name__}: {one_line(exc)}): the file is damaged or not safetensors"
        ) from exc


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a .safetensors header, checking the file holds every byte the header promises
    (a truncated download is caught here, not after seconds of loading). Raises ValueError saying what is wrong."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is empty or truncated ({size} bytes)")
        n = int.from_bytes(head, "little")
        if n > min(size - 8, MAX_HEADER):
            raise ValueError(f"{path} has a damaged header (it claims {n} header bytes of {size})")
        try:
            header = json.loads(fh.read(n))
            entries = {k: v for k, v in header.items() if k != "__metadata__"}
            end = max((int(v["data_offsets"][1]) for v in entries.values()), default=0)
            shapes = {k: [int(d) for d in v["shape"]] for k, v in entries.items()}
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise ValueError(f"{path} has a damaged header: it is not a safetensors file") from None
    if 8 + n + end > size:
        raise ValueError(f"{path} is truncated ({size} of {8 + n + end} bytes)")
    return shapes


def as_int(value: Any, what: str, where: Path, *, minimum: int = 0) -> int | None:
    """``value`` as a whole number >= ``minimum`` (None stays None); text, fractions and bools are refused."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value, ok = int(value), True
    if not ok or value < minimum:
        shown = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else repr(value)
        raise SAELoadError(f"{where}: {what} is {shown[:100]}, expected a whole number >= {minimum}: "
                           "fix the SAE config")
    return int(value)


def check_widths(config: dict[str, Any], names: tuple[str, str], shape: tuple[int, int] | None,
                 where: Path) -> tuple[int | None, int | None]:
    """The input width and latent count a config declares (under ``names``): whole numbers >= 1 that match the
    decoder's (d_in, d_sae) ``shape`` where it is known. Returns (d_in, d_sae): the weights' where known, else
    the config's (None: neither says)."""
    widths: list[int | None] = []
    for name, actual in zip(names, shape or (None, None)):
        value = as_int(config.get(name), name, where, minimum=1)
        if value is not None and actual is not None and value != actual:
            raise SAELoadError(f"{where}: {name} is {value} but the SAE's weights have {actual}: the config "
                               "describes another SAE; fix the SAE config")
        widths.append(actual if actual is not None else value)
    return widths[0], widths[1]


class Numbers(NamedTuple):
    """An SAE's sizes as its config and weights agree on them (None: neither says)."""

    d_in: int | None
    """Input width: the activations it reads."""
    d_sae: int | None
    """Number of latents."""
    k: int | None
    """Top-k sparsity (None: not a TopK SAE)."""


def top_k(stated: list[tuple[Any, str, Path]], d_sae: int | None) -> int | None:
    """The SAE's k from every place that states it ((value, name, file); value None: not stated there):
    each a whole number from 1 to ``d_sae``, all of them equal. None: no place states one."""
    found: list[tuple[int, str]] = []
    for value, what, where in stated:
        k = as_int(value, what, where, minimum=1)
        if k is None:
            continue
        if d_sae is not None and k > d_sae:
            raise SAELoadError(f"{where}: k={k} exceeds the {d_sae} features of this SAE: fix the SAE config")
        found.append((k, f"{what} in {where.name}"))
    if len({k for k, _ in found}) > 1:
        (a, first), (b, other) = found[0], next(f for f in found if f[0] != found[0][0])
        raise SAELoadError(f"{stated[0][2].parent}: {first} is {a} but {other} is {b}: fix the SAE config")
    return found[0][0] if found else None


def dictionary_learning_numbers(trainer: dict[str, Any], config_path: Path, ae_path: Path,
                                shape: tuple[int, int] | None, state_k: Any) -> Numbers:
    """Check a dictionary_learning config's numbers against ae.pt's decoder (d_in, d_sae) ``shape`` and its
    own ``state_k``; return them (k None: a plain ReLU SAE)."""
    d_in, d_sae = check_widths(trainer, ("activation_dim", "dict_size"), shape, config_path)
    return Numbers(d_in, d_sae, top_k([(state_k, "k", ae_path), (trainer.get("k"), "k", config_path)], d_sae))


def saelens_numbers(cfg: dict[str, Any], cfg_path: Path, shape: tuple[int, int] | None) -> Numbers:
    """Check a SAELens cfg.json's numbers against W_dec's (d_in, d_sae) ``shape``; return them (k None: not TopK)."""
    d_in, d_sae = check_widths(cfg, ("d_in", "d_sae"), shape, cfg_path)
    kwargs = sub_object(cfg, "activation_fn_kwargs", cfg_path)
    stated = [(kwargs.get("k"), "activation_fn_kwargs.k", cfg_path), (cfg.get("k"), "k", cfg_path)]
    return Numbers(d_in, d_sae, top_k(stated, d_sae))


def as_bool(value: Any, what: str, where: Path, default: bool) -> bool:
    """``value`` as a JSON boolean (None gives ``default``)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SAELoadError(f"{where}: {what} is {value!r}, expected true or false: fix the SAE config")
    return value


def tensor(state: dict[str, Any], key: str, where: Path) -> torch.Tensor:
    """``state[key]`` as a float32 tensor; a non-tensor or non-numeric entry is refused."""
    value = state[key]
    if not isinstance(value, torch.Tensor) or value.dtype == torch.bool or value.dtype.is_complex:
        raise SAELoadError(f"{where}: {key!r} is not a real-valued tensor: is this the right SAE file?")
    return value.float()


def check_shape(t: torch.Tensor | None, shape: tuple[int, ...], name: str, where: Path) -> None:
    """Refuse ``t`` unless it has exactly ``shape`` (None passes)."""
    if t is not None and tuple(t.shape) != shape:
        raise SAELoadError(
            f"{where}: {name} has shape {tuple(t.shape)}, expected {shape} for this decoder: the SAE file is inconsistent"
        )


def check_finite(t: torch.Tensor | None, name: str, where: str) -> None:
    """Refuse NaN or infinite values: steering with them gives empty answers and NaN measurements."""
    if t is None or bool(torch.isfinite(t).all()):
        return
    bad = int((~torch.isfinite(t)).sum())
    raise SAELoadError(
        f"{where}: {name} holds {bad} NaN or infinite values: the SAE is damaged, retrain or re-download it"
    )


def one_line(exc: BaseException) -> str:
    """First line of an exception's message (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
