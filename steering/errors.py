"""User-facing errors: each message is one line naming the problem and the fix."""

from __future__ import annotations


class SteeringError(Exception):
    """Base class for errors a user can fix (bad path, wrong layer, mismatched SAE...)."""


class UnsupportedModelError(SteeringError):
    """The model is not one of the supported VLM families."""


class ModelLoadError(SteeringError):
    """The model or its processor could not be loaded."""


class ChatTemplateError(ModelLoadError):
    """The model's chat template fails to render a probe's prompt."""


class SAELoadError(SteeringError):
    """The SAE files are missing, malformed or of an unknown format."""


class ShapeMismatchError(SteeringError):
    """The SAE does not fit the model (width differs)."""


class LayerOutOfRangeError(SteeringError):
    """The requested layer does not exist in the vision encoder."""


class FeatureOutOfRangeError(SteeringError):
    """The requested feature id does not exist in the SAE."""


class ProbeError(SteeringError):
    """One probe failed on its own (its generate call was retried apart from the others)."""
