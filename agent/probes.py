"""Probe and ProbeResult, re-exported from the seam in steering.probes (which imports no torch), with the
built-in base images' names (steering.image_names)."""

from __future__ import annotations

from steering.image_names import BASE_IMAGES, OBJECT_BASES
from steering.probes import DIRECTIONS, Probe, ProbeResult

__all__ = ["BASE_IMAGES", "DIRECTIONS", "OBJECT_BASES", "Probe", "ProbeResult", "describe_probe"]


def describe_probe(probe: Probe) -> str:
    """A short human-readable name for a probe, e.g. ``f12 s=100 x3 control``."""
    if probe.is_baseline:
        head = "baseline"
    else:
        head = f"f{probe.feature} s={probe.strength:g}"
    parts = [head]
    if probe.samples > 1:
        parts.append(f"x{probe.samples}")
    if probe.direction == "random" and not probe.is_baseline:
        parts.append(f"control(seed {probe.seed})")
    if probe.base_image != "white":
        parts.append(f"on {probe.base_image}")
    if probe.prompt == "ask":
        parts.append(f"asks {probe.question!r}")
    return " ".join(parts)
