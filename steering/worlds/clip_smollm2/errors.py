"""The one error fetching and assembling a world raises: one line naming the problem and the fix."""

from __future__ import annotations

from steering.errors import SteeringError

EXTRA = "pip install -e '.[world]'"
"""How to install what assembling needs (EXTRA_PACKAGES)."""
EXTRA_PACKAGES = ("onnx", "gguf", "accelerate")
"""The ``world`` extra of pyproject.toml, as import names."""


class WorldError(SteeringError):
    """A world cannot be fetched or assembled (no network, a changed hash, no space, a missing package)."""


def check_extra() -> None:
    """Raise WorldError naming every package of the extra that is not installed (before any download)."""
    import importlib.util

    missing = [p for p in EXTRA_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise WorldError(f"assembling the world needs {', '.join(missing)}, not installed: {EXTRA}")


def missing_package(exc: ImportError) -> WorldError:
    """The one line for a package of the ``world`` extra that is not installed."""
    name = (getattr(exc, "name", None) or str(exc)).split(".")[0]
    return WorldError(f"assembling the world needs the Python package {name!r}, which is not installed: {EXTRA}")
