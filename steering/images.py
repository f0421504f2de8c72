"""Base images for steering: white (the method's default), black, uniform noise, or a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from steering.errors import SteeringError

DEFAULT_SIZE = 224


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
    if not path.is_file():
        raise SteeringError(f"base image {spec!r} is neither white/black/noise nor an existing image file")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise SteeringError(f"cannot read image {path}: {exc}; pass a PNG or JPEG file") from exc
