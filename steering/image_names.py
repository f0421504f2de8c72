"""The built-in base images' names (steering.images draws them); any other base image is a path to a file.

A leaf that imports nothing, so the probe seam (steering.probes) and the drawings share the names.
"""

from __future__ import annotations

OBJECT_BASES = ("object-a", "object-b", "object-c")
"""Built-in plain drawn objects (steering.images.OBJECT_DRAWINGS): a judge steers a feature on each to see
which words it causes."""
BASE_IMAGES = ("white", "black", "noise", *OBJECT_BASES)
"""Base images every engine understands."""
