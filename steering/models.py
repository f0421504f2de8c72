"""Load a supported VLM and its processor, and find its vision encoder by structure."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steering.errors import ModelLoadError, UnsupportedModelError
from steering.processors import check_chat_template, load_processor
from steering.revisions import content_revision

log = logging.getLogger(__name__)

SUPPORTED_FAMILIES = "Gemma-3, PaliGemma 2, InternVL 3, LLaVA, LLaVA-OneVision, Qwen2.5-VL"
FLAT_MODEL_TYPES = ("qwen2_5_vl",)
"""Model types whose flat ``visual.blocks`` encoder is supported (Qwen2-VL, Qwen3-VL... share the
structure but not the decode rules and image layout checked in tests/steering/test_decode.py)."""

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


@dataclass(frozen=True)
class VisionInfo:
    """What the steering hook needs to know about a vision encoder."""

    family: str
    """The config's declared model type, a label for logs (dispatch is by structure)."""
    layers: nn.ModuleList
    """The encoder's transformer blocks; the hook sits on the output of ``layers[L]``."""
    width: int
    """Hidden size of the residual stream at every layer."""
    grid: tuple[int, int] | None
    """Patch grid (rows, cols) of one image tile; None where it depends on the image (Qwen2.5-VL)."""
    has_cls: bool
    """Whether position 0 of every tile is a class token."""
    flat: bool
    """Whether the layers see one flat [tokens, width] sequence for the whole batch (Qwen2.5-VL)."""

    @property
    def n_layers(self) -> int:
        return len(self.layers)


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _grid(vision_config: Any) -> tuple[int, int] | None:
    size, patch = getattr(vision_config, "image_size", None), getattr(vision_config, "patch_size", None)
    if size is None or patch is None:
        return None
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    patch = tuple(patch) if isinstance(patch, (list, tuple)) else (patch, patch)
    return (size[0] // patch[0], size[1] // patch[1])


def _has_cls(tower: nn.Module) -> bool:
    """A class token shows up as a learned embedding parameter beside the patch embedding."""
    for name, _ in tower.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("class_embedding", "cls_token"):
            return True
    return False


def inspect_vision(model: nn.Module) -> VisionInfo:
    """Find the vision encoder's layer list, width, grid and class token by inspecting ``model``."""
    config = model.config
    vision_config = getattr(config, "vision_config", None)
    inner = getattr(model, "model", model)
    # Qwen2.5-VL style: a `visual` module whose `blocks` run on one flat token sequence.
    visual = getattr(inner, "visual", None)
    if visual is not None and isinstance(getattr(visual, "blocks", None), nn.ModuleList):
        model_type = getattr(config, "model_type", type(model).__name__)
        if model_type not in FLAT_MODEL_TYPES:
            raise UnsupportedModelError(
                f"{type(model).__name__} ({model_type}) is not supported (of the Qwen VLMs only Qwen2.5-VL is); "
                f"supported families: {SUPPORTED_FAMILIES}"
            )
        return VisionInfo("Qwen2.5-VL", visual.blocks, block_width(visual.blocks), None, False, True)
    tower = getattr(inner, "vision_tower", None)
    if tower is None or vision_config is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no vision encoder we recognise; supported families: {SUPPORTED_FAMILIES}"
        )
    # transformers 5 keeps layers at encoder.layers (encoder.layer for InternViT);
    # transformers 4 nested them under vision_model.
    for path in ("encoder.layers", "encoder.layer", "vision_model.encoder.layers"):
        layers = _get(tower, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            break
    else:
        raise UnsupportedModelError(
            f"cannot find the encoder layers of {type(tower).__name__}; supported families: {SUPPORTED_FAMILIES}"
        )
    has_cls = _has_cls(tower)
    family = getattr(model.config, "model_type", type(model).__name__)
    return VisionInfo(family, layers, block_width(layers), _grid(vision_config), has_cls, False)


def block_width(layers: nn.ModuleList) -> int:
    """Residual width of an encoder, read from its first block's own weights.

    The config's ``hidden_size`` is not it everywhere (Qwen2-VL's names the merger's output); the
    block's norms act on the residual stream, and its last linear layer writes back into it.
    """
    block = layers[0]
    norms = {p.shape[0] for name, p in block.named_parameters() if p.ndim == 1 and "norm" in name.lower()}
    if len(norms) == 1:
        return int(norms.pop())
    linears = [m for m in block.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UnsupportedModelError(
            f"cannot read the width of {type(block).__name__} blocks; supported families: {SUPPORTED_FAMILIES}"
        )
    return int(linears[-1].out_features)


@dataclass
class LoadedVLM:
    """A VLM with its processor and the facts about its vision encoder."""

    model: nn.Module
    processor: Any
    vision: VisionInfo
    model_id: str
    """Hub id or local path the model was loaded from."""
    revision: str | None = None
    """Hub revision (commit) where known; for local folders a content hash of the config."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype.lower()]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use one of bf16, fp16, fp32") from None


def resolve_device(device: str | None) -> str:
    """``device`` checked against this machine (auto: cuda when available); raises ModelLoadError in one line."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", device)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ModelLoadError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} asked for but CUDA is not available: use --device cpu")
        index, count = int(match.group(2) or 0), torch.cuda.device_count()
        if index >= count:
            raise ModelLoadError(f"device {device!r} asked for but this machine has {count} CUDA device(s): "
                                 f"use cuda:0-{count - 1}")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' asked for but MPS is not available: use --device cpu")
    return device


def load_vlm(
    model_id: str | Path,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | None = "cpu",
    revision: str | None = None,
    attn_implementation: str | None = None,
) -> LoadedVLM:
    """Load a supported VLM and its processor from a hub id or a local folder."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model_id = str(model_id)
    torch_dtype = resolve_dtype(dtype)
    device = resolve_device(device)
    local = Path(model_id).expanduser()
    if model_id.startswith((".", "/", "~")) and not local.exists():
        raise ModelLoadError(f"model folder {model_id} does not exist: pass a hub id or an existing folder")
    try:
        config = AutoConfig.from_pretrained(model_id, revision=revision)
    except (OSError, ValueError, KeyError, TypeError, StrictDataclassError) as exc:  # ValueError: no model_type
        cause = exc.__cause__ if isinstance(exc, StrictDataclassError) and exc.__cause__ else exc  # the failed check
        raise ModelLoadError(
            f"cannot load model config for {model_id!r} ({_first_line(cause)}): check the id or folder"
        ) from exc
    if getattr(config, "vision_config", None) is None:
        raise UnsupportedModelError(
            f"{model_id} ({config.model_type}) is not a vision-language model; supported families: {SUPPORTED_FAMILIES}"
        )
    # The processor first: it loads in a moment, and a missing package or a broken chat template is
    # then refused before the weights load.
    processor = load_processor(model_id, config.model_type, revision)
    check_chat_template(processor, model_id)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "revision": revision}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForImageTextToText.from_pretrained(model_id, **kwargs)
    except ValueError as exc:
        raise UnsupportedModelError(
            f"{model_id} ({config.model_type}) is not supported; supported families: {SUPPORTED_FAMILIES}"
        ) from exc
    except ImportError:
        raise
    except Exception as exc:  # OSError, SafetensorError, ...: damaged or partial weight files
        raise ModelLoadError(f"cannot load model weights for {model_id!r} ({type(exc).__name__}: "
                             f"{_first_line(exc)}): download or save the model again") from exc
    model.to(device).eval()
    vision = inspect_vision(model)
    if revision is None:
        revision = content_revision(local) if local.is_dir() else getattr(config, "_commit_hash", None)
    log.info("loaded %s (%s, %d vision layers, width %d)", model_id, vision.family, vision.n_layers, vision.width)
    return LoadedVLM(model=model, processor=processor, vision=vision, model_id=model_id, revision=revision)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
