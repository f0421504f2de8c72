"""Cheap checks of a model and an SAE from their configs and file headers, before any weights load."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steering.errors import ModelLoadError, SAELoadError, UnsupportedModelError
from steering.sae_checks import (
    as_int,
    dictionary_learning_numbers,
    one_line,
    read_json_object,
    saelens_numbers,
    sub_object,
)

MAX_HEADER = 100 << 20
"""Largest safetensors header (JSON) read: real ones are kilobytes to a few megabytes."""
MAX_LAYERS = 1024
"""Deepest vision encoder or language model a config may name: real VLMs have at most a couple of hundred
layers; building a million from a damaged or hostile config takes minutes and gigabytes before it fails."""
WEIGHT_BYTES_PER_PARAM = 1 / 8
"""Fewest bytes of weight files a parameter may take (4-bit quantised files take 1/2; 8x slack for safety)."""
LOAD_BYTES_PER_PARAM = 2
"""Fewest bytes a loaded parameter takes (bf16 / fp16, the smallest dtypes the loader takes)."""


@dataclass(frozen=True)
class ModelFacts:
    """What a model's config says before its weights load."""

    model_type: str
    """The config's ``model_type``."""
    n_layers: int | None
    """Depth of the vision encoder (None where the config leaves it to transformers' defaults)."""


@dataclass(frozen=True)
class SAEFacts:
    """What an SAE's config and file headers say before its weights load."""

    d_sae: int | None
    """Number of latents (None: unknown until loaded)."""
    layer: int | None
    """Layer the SAE names (None: it names none, --layer is needed)."""


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


def _model_config(model_id: str, revision: str | None) -> tuple[dict[str, Any], Path | None] | None:
    """(the model's config.json, its local folder or None for a cached hub copy); None: a hub id not cached."""
    folder = Path(model_id).expanduser()
    if model_id.startswith((".", "/", "~")) and not folder.exists():
        raise ModelLoadError(f"model folder {model_id} does not exist: pass a hub id or an existing folder")
    if folder.is_dir():
        path = folder / "config.json"
        if not path.is_file():
            raise ModelLoadError(f"model folder {model_id} has no config.json: pass a folder written by "
                                 "save_pretrained, or a hub id")
    elif folder.exists():
        raise ModelLoadError(f"{model_id} is a file: pass the model's folder or a hub id")
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model_id, "config.json", revision=revision)
        except Exception:  # an id the hub client refuses is reported by the loader itself
            return None
        if not isinstance(cached, str):
            return None
        path, folder = Path(cached), None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path} ({one_line(exc)}): the model's config.json is damaged") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} holds a JSON {type(config).__name__}, not a model config: check the folder")
    return config, folder


def _check_weights(folder: Path) -> None:
    """Every local weight file readable in full (headers only), and at least one present."""
    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise ModelLoadError(f"cannot read {index}: the weight index is damaged; download the model "
                                 "again") from None
        missing = sorted(s for s in shards if not (folder / str(s)).is_file())
        if missing:
            raise ModelLoadError(f"model folder {folder} lacks weight files {missing[:3]}: download the model again")
    if not files and not any(folder.glob("*.bin")):
        raise ModelLoadError(f"model folder {folder} holds no weights (model.safetensors): download or save it again")
    for path in files:
        try:
            safetensors_shapes(path)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{exc}: download or save the model again") from None


def inspect_model(model_id: str, revision: str | None = None) -> ModelFacts | None:
    """The model's type and vision depth from its config (a local folder, or a hub id already cached;
    None for one that is not), local weight files checked by their headers. Raises ModelLoadError or
    UnsupportedModelError in one line."""
    found = _model_config(str(model_id), revision)
    if found is None:
        return None
    config, folder = found
    model_type, vision = config.get("model_type"), config.get("vision_config")
    if not isinstance(model_type, str):
        raise ModelLoadError(f"the config.json of {model_id} names no model_type: is this a transformers model?")
    if not isinstance(vision, dict):
        raise UnsupportedModelError(f"{model_id} ({model_type}) is not a vision-language model (no vision_config)")
    depth = _depth(vision, "vision_config.", model_id)
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    _depth(text, "text_config." if text is not config else "", model_id)  # old Qwen2.5-VL: text fields at the top
    params = min_parameters(vision, text)
    if folder is not None:
        _check_weights(folder)
        held = sum(f.stat().st_size for pattern in ("*.safetensors", "*.bin") for f in folder.glob(pattern))
        if params * WEIGHT_BYTES_PER_PARAM > held:
            raise ModelLoadError(f"the config.json of {model_id} describes at least {_count(params)} parameters but "
                                 f"its weight files hold {_bytes(held)}: the config does not match the weights; "
                                 "fix config.json or download the model again")
    memory = _physical_memory()
    if memory is not None and params * LOAD_BYTES_PER_PARAM > memory:
        raise ModelLoadError(f"{model_id} has at least {_count(params)} parameters "
                             f"({_bytes(params * LOAD_BYTES_PER_PARAM)} in bf16), more than this machine's "
                             f"{_bytes(memory)} of memory: pick a smaller model or a bigger machine")
    return ModelFacts(model_type, depth)


def min_parameters(vision: dict[str, Any], text: dict[str, Any]) -> int:
    """A lower bound on the parameters of a VLM whose vision and text configs these are (sizes a config
    leaves to transformers' defaults count as 0): each vision block's square attention projections and
    two-matrix MLP, each text block's two-matrix MLP (attention widths vary too much to bound), the
    text embedding."""
    width = _whole(vision.get("embed_dim", vision.get("hidden_size")))  # Qwen2-VL: hidden_size is the merger's
    mlp = _whole(vision.get("intermediate_size"))
    depth = _whole(vision.get("num_hidden_layers", vision.get("depth")))
    params = depth * (2 * width * width + 2 * width * mlp)
    width, mlp, depth = (_whole(text.get(k)) for k in ("hidden_size", "intermediate_size", "num_hidden_layers"))
    return params + depth * 2 * width * mlp + _whole(text.get("vocab_size")) * width


def _depth(config: dict[str, Any], prefix: str, model_id: str) -> int | None:
    """The number of layers ``config`` (at ``prefix`` in config.json) names (None: left to the defaults);
    refused unless it is 1 to MAX_LAYERS."""
    key = "depth" if "depth" in config and "num_hidden_layers" not in config else "num_hidden_layers"
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LAYERS:
        raise ModelLoadError(f"the config.json of {model_id} gives {prefix}{key} = {value!r}, expected a whole "
                             f"number of layers from 1 to {MAX_LAYERS}: fix config.json or download the model again")
    return value


def _whole(value: Any) -> int:
    """``value`` if it is a whole number >= 0, else 0 (unknown)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _physical_memory() -> int | None:
    """This machine's RAM in bytes (None where the OS does not say): the loader builds the model there."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _count(n: float) -> str:
    for unit, size in (("trillion", 1e12), ("billion", 1e9), ("million", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n):,}"


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} bytes"


def inspect_sae(spec: str, layer: int | None = None) -> SAEFacts | None:
    """The SAE's size and layer from its config and file headers (``layer`` overrides the config's);
    None for a hub SAE, which only the loader fetches. Raises SAELoadError for files the loader refuses."""
    from steering.sae import _layer_from_text

    path = Path(spec).expanduser()
    if not path.exists():
        if spec.count("/") >= 2 and not spec.startswith((".", "/", "~")):
            return None
        raise SAELoadError(f"SAE path {spec} does not exist: pass a folder, a .safetensors file or "
                           "owner/repo/subfolder")
    d_sae, named = None, None
    if path.is_file():
        shapes = _shapes(path)
        matrix = next((s for s in shapes.values() if len(s) == 2), None)
        d_sae = max(matrix) if matrix else None
    elif (path / "ae.pt").is_file():
        config_path = path / "config.json"
        config = read_json_object(config_path) if config_path.is_file() else {}
        trainer = sub_object(config, "trainer", config_path)
        shape, state_k = _ae_header(path / "ae.pt")
        dictionary_learning_numbers(trainer, config_path, path / "ae.pt", shape, state_k)
        d_sae = shape[1] if shape else as_int(trainer.get("dict_size"), "dict_size", config_path, minimum=1)
        named = as_int(trainer.get("layer"), "layer", config_path)
        named = named if named is not None else _layer_from_text(trainer.get("submodule_name"))
    elif (path / "sae_weights.safetensors").is_file():
        if not (path / "cfg.json").is_file():
            raise SAELoadError(f"{path} has sae_weights.safetensors but no cfg.json: copy the SAELens config beside it")
        cfg = read_json_object(path / "cfg.json")
        w_dec = _shapes(path / "sae_weights.safetensors").get("W_dec")  # [d_sae, d_in]
        shape = (w_dec[1], w_dec[0]) if w_dec and len(w_dec) == 2 else None
        saelens_numbers(cfg, path / "cfg.json", shape)
        d_sae = shape[1] if shape else None
        named = as_int(cfg.get("hook_layer"), "hook_layer", path / "cfg.json")
        named = named if named is not None else _layer_from_text(cfg.get("hook_name"))
    else:
        raise SAELoadError(f"{path} holds no SAE: expected ae.pt + config.json (dictionary_learning) or "
                           "cfg.json + sae_weights.safetensors (SAELens)")
    return SAEFacts(d_sae, layer if layer is not None else named)


def _shapes(path: Path) -> dict[str, list[int]]:
    if path.suffix != ".safetensors":
        raise SAELoadError(f"{path} is not a .safetensors file: pass an SAE folder or a decoder .safetensors")
    try:
        return safetensors_shapes(path)
    except (OSError, ValueError) as exc:
        raise SAELoadError(f"cannot read {path} ({exc}): the file is damaged or not safetensors") from None


def _ae_header(path: Path) -> tuple[tuple[int, int] | None, Any]:
    """(the decoder's (d_in, d_sae), the state's k) from ae.pt (memory-mapped where the file allows: no
    weights read; weights only, so no code runs). Raises SAELoadError for a file the loader would refuse;
    None for what it does not hold."""
    import torch

    state: Any = None
    for mmap in (True, False):  # legacy (non-zip) files cannot be memory-mapped
        try:
            with warnings.catch_warnings():  # a pickle-protocol note would add lines to a one-line refusal
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception as exc:  # a corrupt or pickled-code file: refuse, say why (as the loader does)
            if not mmap:
                raise SAELoadError(f"cannot load {path} safely ({type(exc).__name__}); expected a plain "
                                   "state dict") from None
    if not isinstance(state, dict):
        return None, None
    shape = tuple(getattr(state.get("decoder.weight"), "shape", ()))
    return ((int(shape[0]), int(shape[1])) if len(shape) == 2 else None), state.get("k")
