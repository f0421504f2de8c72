"""The built-in base images' names (steering.images draws them); any other base image is a path to a file.

A leaf that imports nothing, so the probe seam (steering.probes) and the drawings share the names.
"""

from __future__ import annotations

OBJECT_BASES = ("object-a", "object-b", "object-c")
"""Built-in plain drawn objects (steering.images.OBJECT_DRAWINGS): a judge steers a feature on each to see
which words it causes."""
OUTLINE_BASES = (
    "outline-circle-small", "outline-circle-large", "outline-square-small", "outline-square-large",
    "outline-triangle-small", "outline-triangle-large", "outline-cross-small", "outline-cross-large",
)
"""Built-in colourless test images (steering.images.outline_image): a dark grey outline of one of the toy
vocabulary's shapes, at one of its two sizes, on white, with no fill and no texture. Steering a colour or a
pattern onto them shows what the feature adds without the object's own colour mixing in."""
DRAWN_BASES = (*OBJECT_BASES, *OUTLINE_BASES)
"""Every built-in drawing: their probes' cache keys carry a digest of the drawn pixels."""
BASE_IMAGES = ("white", "black", "noise", *OBJECT_BASES, *OUTLINE_BASES)
"""Base images every engine understands."""


def named_bases() -> str:
    """The built-in base images in a few words (for help texts and errors)."""
    return "white, black, noise, object-a/-b/-c, outline-<circle|square|triangle|cross>-<small|large>"
