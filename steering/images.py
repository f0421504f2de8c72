"""Base images for steering: white (the method's default), black, uniform noise, or a file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from steering.errors import SteeringError

DEFAULT_SIZE = 224
MAX_PIXELS = 64_000_000
"""Largest base image accepted (64 megapixels): it is resized to the processor's size anyway."""


def base_image(spec: str = "white", size: int = DEFAULT_SIZE, seed: int = 0) -> Image.Image:
    """An RGB image: ``white``, ``black`` (real black pixels), ``noise`` (uniform, seeded) or a path."""
    if spec == "white":
        return Image.new("RGB", (size, size), (255, 255, 255))
    if spec == "black":
        return Image.new("RGB", (size, size), (0, 0, 0))
    if spec == "noise":
        rng = np.random.default_rng(seed)
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
    path = Path(spec).expanduser()
    check_base_image(spec)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SteeringError(f"cannot read image {path}: {exc}; pass a PNG or JPEG file") from exc


def check_base_image(spec: str) -> None:
    """Refuse a base image that cannot be used, before a run starts: a missing, unreadable or oversized
    file (a decompression bomb); reads the header only, plus PIL's cheap integrity check."""
    if spec in ("white", "black", "noise"):
        return
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SteeringError(f"base image {spec!r} is neither white/black/noise nor an existing image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_size(path, img.size)
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SteeringError(f"base image {path} is too large ({exc}): pass an image of a few megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SteeringError(f"cannot read image {path}: {exc}; pass a PNG or JPEG file") from None


def _check_size(path: Path, size: tuple[int, int]) -> None:
    limit = Image.MAX_IMAGE_PIXELS or MAX_PIXELS
    if size[0] * size[1] > min(limit, MAX_PIXELS):
        raise SteeringError(f"base image {path} has {size[0]}x{size[1]} pixels: pass an image of at most "
                            f"{MAX_PIXELS // 1_000_000} megapixels")
