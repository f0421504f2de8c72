"""Base images for steering: white (the method's default), black, uniform noise, three plain drawn
objects (``object-a``, ``object-b``, ``object-c``), eight colourless outline shapes (``outline-circle-small``
... ``outline-cross-large``), or a file."""

from __future__ import annotations

import difflib
import functools
import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from steering.errors import SteeringError
from steering.image_names import BASE_IMAGES, OBJECT_BASES, OUTLINE_BASES

DEFAULT_SIZE = 224
MAX_PIXELS = 64_000_000
"""Largest base image accepted (64 megapixels): it is resized to the processor's size anyway."""
OBJECT_DRAWINGS: dict[str, tuple[str, str, str, str, float]] = {
    "object-a": ("green", "triangle", "dotted", "small", 0.35),
    "object-b": ("yellow", "square", "striped", "large", 0.6),
    "object-c": ("blue", "circle", "solid", "large", 0.6),
}
"""Built-in object base images: one plain shape (colour, shape, texture, size, side as a share of the
image) centred on white. They differ in every attribute, so steering that turns each of them red (and
keeps its shape) shows that the feature causes "red" and not the shape; a judge compares the steered
description on each with the same image's unsteered one."""
assert tuple(OBJECT_DRAWINGS) == OBJECT_BASES, "every built-in object base image needs a drawing"
OUTLINE_GREY = (64, 64, 64)
"""The outlines' colour: a dark grey, no hue. The toy model reads every outline at this grey as black;
lighter greys (100 to 128) read blue or purple on some shapes, which would hide those colours there (a claim
an image's own caption names does not count on that image)."""
OUTLINE_DRAWINGS: dict[str, tuple[str, str]] = {
    f"outline-{shape}-{size}": (shape, size)
    for shape in ("circle", "square", "triangle", "cross") for size in ("small", "large")
}
"""Built-in outline base images: (shape, size) of one outline centred on white, its side the middle of the
toy scenes' extent range for that size (steering.toy.scenes.SIZE_EXTENT)."""
assert tuple(OUTLINE_DRAWINGS) == OUTLINE_BASES, "every built-in outline base image needs a drawing"


def base_image(spec: str = "white", size: int = DEFAULT_SIZE, seed: int = 0) -> Image.Image:
    """An RGB image: ``white``, ``black`` (real black pixels), ``noise`` (uniform, seeded), one of
    ``OBJECT_DRAWINGS`` or ``OUTLINE_DRAWINGS``, or a path."""
    if spec == "white":
        return Image.new("RGB", (size, size), (255, 255, 255))
    if spec == "black":
        return Image.new("RGB", (size, size), (0, 0, 0))
    if spec == "noise":
        rng = np.random.default_rng(seed)
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
    if spec in OBJECT_DRAWINGS:
        return object_image(spec, size)
    if spec in OUTLINE_DRAWINGS:
        return outline_image(spec, size)
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
    if spec in BASE_IMAGES:
        return
    path = Path(spec).expanduser()
    if not path.is_file():
        near = difflib.get_close_matches(spec, BASE_IMAGES, n=1, cutoff=0.6)
        if near:
            raise SteeringError(f"base image {spec!r} is neither a built-in base image nor an existing image file: "
                                f"did you mean {near[0]}?")
        raise SteeringError(f"base image {spec!r} is neither one of {', '.join(BASE_IMAGES)} nor an existing image file")
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


@functools.lru_cache(maxsize=None)
def object_digest(name: str) -> str:
    """A digest of a built-in drawing's pixels, an object's or an outline's (part of its probes' cache keys)."""
    draw = outline_image if name in OUTLINE_DRAWINGS else object_image
    return hashlib.sha256(np.asarray(draw(name, 64)).tobytes()).hexdigest()


def object_image(name: str, size: int = DEFAULT_SIZE) -> Image.Image:
    """A built-in object base image (``OBJECT_DRAWINGS``), drawn at 64 px and scaled to ``size``."""
    from steering.toy.scenes import Scene, render

    colour, shape, pattern, scale, extent = OBJECT_DRAWINGS[name]
    pixels = render(Scene("object", colour, shape, pattern, scale, 0.5, 0.5, extent), 64)
    img = Image.fromarray(pixels, "RGB")
    return img if size == 64 else img.resize((size, size), Image.Resampling.NEAREST)


def outline_image(name: str, size: int = DEFAULT_SIZE) -> Image.Image:
    """A built-in outline base image (``OUTLINE_DRAWINGS``), drawn at 64 px and scaled to ``size``: the
    outline the toy scenes draw around an object (two pixels wide at 64 px), in ``OUTLINE_GREY``, nothing
    inside it."""
    from steering.toy.scenes import SIZE_EXTENT, WHITE, shape_mask
    from steering.toy.scenes import _erode as erode  # the scenes' own outline, not a look-alike

    shape, scale = OUTLINE_DRAWINGS[name]
    lo, hi = SIZE_EXTENT[scale]
    mask = shape_mask(shape, 64, 0.5, 0.5, (lo + hi) / 2)  # [64, 64] bool
    pixels = np.empty((64, 64, 3), dtype=np.uint8)
    pixels[:] = WHITE
    pixels[mask & ~erode(erode(mask))] = OUTLINE_GREY
    img = Image.fromarray(pixels, "RGB")
    return img if size == 64 else img.resize((size, size), Image.Resampling.NEAREST)
