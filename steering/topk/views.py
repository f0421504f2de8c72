"""Pictures of top-k evidence at the model's resolution: masked images and activation heatmaps (PIL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from steering.topk.result import TopKResult

# An inferno-like ramp (dark purple -> red -> yellow), interpolated; no matplotlib needed.
_RAMP = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float32)


def _array(amap: torch.Tensor | np.ndarray) -> np.ndarray:
    a = amap.detach().float().cpu().numpy() if isinstance(amap, torch.Tensor) else np.asarray(amap, np.float32)
    if a.ndim != 2:
        raise ValueError(f"activation map must be [grid_h, grid_w], got shape {a.shape}")
    return a


def upsample(amap: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A patch-grid map [gh, gw] -> [h, w] by nearest neighbour, each patch a block of pixels."""
    a = _array(amap)
    h, w = size
    rows = np.minimum(np.arange(h) * a.shape[0] // h, a.shape[0] - 1)
    cols = np.minimum(np.arange(w) * a.shape[1] // w, a.shape[1] - 1)
    return a[rows][:, cols]


def model_view(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image as the model sees its geometry: RGB, resized to (height, width) = ``size``."""
    image = image.convert("RGB")
    h, w = size
    return image if image.size == (w, h) else image.resize((w, h), Image.Resampling.BICUBIC)


def masked_image(image: Image.Image, amap: torch.Tensor | np.ndarray, size: tuple[int, int],
                 threshold: float = 0.0) -> Image.Image:
    """The image at the model's resolution with every patch where the latent did not fire set to black."""
    pixels = np.asarray(model_view(image, size)).copy()  # [h, w, 3]
    pixels[upsample(amap, size) <= threshold] = 0
    return Image.fromarray(pixels, "RGB")


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in 0..1 -> uint8 RGB [..., 3] along the ramp."""
    x = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_RAMP) - 2)
    t = (x - lo)[..., None]
    return ((1 - t) * _RAMP[lo] + t * _RAMP[lo + 1]).round().astype(np.uint8)


def heatmap(image: Image.Image, amap: torch.Tensor | np.ndarray, size: tuple[int, int],
            vmax: float | None = None, alpha: float = 0.55) -> Image.Image:
    """The image at the model's resolution under a heat overlay of the map (0..vmax, default its max).

    Patches where the latent is silent keep the plain image, so the overlay marks only where it fired.
    """
    base = np.asarray(model_view(image, size)).astype(np.float32)
    a = upsample(amap, size)
    top = float(a.max()) if vmax is None else float(vmax)
    norm = a / top if top > 0 else np.zeros_like(a)
    weight = (alpha * (a > 0))[..., None]
    out = (1 - weight) * base + weight * colormap(norm).astype(np.float32)
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8), "RGB")


def feature_views(topk: TopKResult, feature: int, n: int = 5, kind: str = "masked") -> list[Image.Image]:
    """The ``n`` best images of ``feature`` as ``masked`` images, ``heatmap`` overlays or ``plain`` views."""
    items = topk.top(feature, n)
    size = topk.image_size
    vmax = max((float(t.map.max()) for t in items), default=0.0)
    views = []
    for t in items:
        img = topk.image(t.id)
        if kind == "masked":
            views.append(masked_image(img, t.map, size))
        elif kind == "heatmap":
            views.append(heatmap(img, t.map, size, vmax=vmax))
        elif kind == "plain":
            views.append(model_view(img, size))
        else:
            raise ValueError(f"unknown view {kind!r}: use masked, heatmap or plain")
    return views


def montage(images: Sequence[Image.Image], cols: int = 5, gap: int = 4,
            background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Images of one size side by side in rows of ``cols`` (for reports, the TUI or a judge)."""
    if not images:
        raise ValueError("montage needs at least one image")
    w, h = images[0].size
    cols = min(cols, len(images))
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), background)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        sheet.paste(img.resize((w, h)) if img.size != (w, h) else img, (c * (w + gap), r * (h + gap)))
    return sheet
