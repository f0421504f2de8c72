"""Vision prefix cache: compute encoder layers 0..L once for the shared base image, replay after.

Every steering probe of a run feeds the same base image, so the vision encoder's state at the
output of layer L is the same for every row until the steering vector is added there. While
``replay_prefix`` is active, layers 0..L-1 pass their input through untouched and layer L returns
the cached state (repeated over the batch); the steering hook then adds each row's vector, and the
remaining layers, the projector and the language model run as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from steering.models import VisionInfo


def _passthrough(hidden_states: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    """Stands in for the forward of a layer whose work is already in the cache."""
    return hidden_states


def _replay(cached: torch.Tensor):  # type: ignore[no-untyped-def]
    """A forward for layer L that returns the cached output [per-row tiles/tokens, ...], once per row."""

    def forward(hidden_states: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        n = hidden_states.shape[0]
        if n % cached.shape[0]:
            raise RuntimeError(f"prefix cache holds {cached.shape[0]} tiles/tokens per row, batch has {n}")
        reps = n // cached.shape[0]
        out = cached.to(hidden_states.dtype)
        return out.repeat(reps, *([1] * (out.ndim - 1))) if reps > 1 else out

    return forward


@contextmanager
def replay_prefix(vision: VisionInfo, layer: int, cached: torch.Tensor) -> Iterator[None]:
    """Within the block, layers 0..layer replay ``cached`` instead of computing (always restored).

    The modules stay in place (only their ``forward`` is shadowed on the instance), so hooks that
    transformers or the steering code attach to them keep firing.
    """
    modules = [vision.layers[i] for i in range(layer + 1)]
    try:
        for module in modules[:-1]:
            module.forward = _passthrough
        modules[-1].forward = _replay(cached)
        yield
    finally:
        for module in modules:
            module.__dict__.pop("forward", None)
