"""The LLaVA projector (CLIP width -> SmolLM2 width: linear_1, GELU, linear_2): a seeded untrained init until
a trained ``projector.safetensors`` is given or shipped. Imports torch only when a projector is built."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from steering.worlds.clip_smollm2.errors import WorldError

if TYPE_CHECKING:
    import torch

PROJECTOR_FILE = "projector.safetensors"
SEED = 0
STD = 0.02
"""An untrained projector: N(0, 0.02) weights from a generator seeded with SEED, zero biases (transformers'
own init, made deterministic)."""
PREFIX = "multi_modal_projector."
DEFAULT_IMAGE_SIZE = 224
"""CLIP ViT-B/16's own resolution (14 x 14 = 196 image tokens)."""


def projector_file(path: Path | None) -> Path | None:
    """The trained projector ``path`` names: the file itself, or ``projector.safetensors`` in that folder
    (None: no path, or a folder without one)."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / PROJECTOR_FILE
        return path if path.is_file() else None
    if not path.is_file():
        raise WorldError(f"projector file {path} does not exist: pass a {PROJECTOR_FILE} or leave it out")
    return path


def shapes(vision_width: int, text_width: int) -> dict[str, tuple[int, ...]]:
    """The projector's tensors and their shapes (torch Linear: [out, in])."""
    return {"linear_1.weight": (text_width, vision_width), "linear_1.bias": (text_width,),
            "linear_2.weight": (text_width, text_width), "linear_2.bias": (text_width,)}


def init_projector(vision_width: int, text_width: int, seed: int = SEED) -> dict[str, torch.Tensor]:
    """A deterministic untrained projector."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return {
        "linear_1.weight": torch.randn(text_width, vision_width, generator=gen) * STD,
        "linear_1.bias": torch.zeros(text_width),
        "linear_2.weight": torch.randn(text_width, text_width, generator=gen) * STD,
        "linear_2.bias": torch.zeros(text_width),
    }


def load_projector(path: Path, vision_width: int, text_width: int) -> dict[str, torch.Tensor]:
    """A trained projector from ``path`` (``linear_1.weight`` ..., with or without a ``multi_modal_projector.``
    prefix, as ``save_projector`` or a model's state dict writes it), checked against the widths it joins."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        raw = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise WorldError(f"cannot read projector {path} ({exc}): write it again") from exc
    state = {k.rsplit(PREFIX, 1)[-1]: v.float() for k, v in raw.items()}
    want = shapes(vision_width, text_width)
    wrong = [f"{k} {list(state[k].shape) if k in state else 'missing'} (want {list(v)})"
             for k, v in want.items() if k not in state or tuple(state[k].shape) != v]
    wrong += [f"unexpected {k}" for k in sorted(set(state) - set(want))]
    if wrong:
        raise WorldError(f"projector {path} does not join CLIP ({vision_width}) to SmolLM2 ({text_width}): "
                         f"{', '.join(wrong)}")
    return state


def save_projector(state: dict[str, torch.Tensor], path: Path, image_size: int = DEFAULT_IMAGE_SIZE) -> Path:
    """Write a projector (``linear_1.weight`` ...) where ``load_projector`` and the assembly read it, with the
    image size it was trained at (the assembly builds the folder for that size)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().contiguous() for k, v in state.items()}, str(path),
              metadata={"image_size": str(image_size)})
    return path


def trained_image_size(path: Path) -> int:
    """The image size a projector file says it was trained at (224 where it says nothing)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise WorldError(f"cannot read projector {path} ({exc}): write it again") from exc
    try:
        return int(meta.get("image_size", DEFAULT_IMAGE_SIZE))
    except ValueError:
        raise WorldError(f"projector {path} names image size {meta['image_size']!r}: write it again") from None
