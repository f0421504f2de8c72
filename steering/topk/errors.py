"""The error every top-k step raises."""

from __future__ import annotations

from steering.errors import SteeringError


class TopKError(SteeringError):
    """A top-k collection cannot run, resume or load (bad source, foreign checkpoint, corrupt files)."""
