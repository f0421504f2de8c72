"""Cheap checks of a model and an SAE from their configs and file headers, before any weights load."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from steering.errors import ModelLoadError, UnsupportedModelError
from steering.sae_checks import one_line, safetensors_shapes
from steering.sae_formats import SAE_FORMATS, SAEFacts, local_sae_path, sae_format

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
    """The SAE's sizes, layer and k from its config and file headers, by its format in steering.sae_formats
    (``layer`` overrides the config's); None for a hub SAE, which only the loader fetches. Raises
    SAELoadError for files the loader refuses."""
    path = local_sae_path(spec)
    if path is None:
        return None
    facts = SAE_FORMATS[sae_format(path)].facts(path)
    return facts if layer is None else replace(facts, layer=layer)
