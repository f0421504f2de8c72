"""Forward hooks, always through context managers: steer a layer's output, or capture a module's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from steering.models import VisionInfo


def _row_index(n: int, rows: int, device: torch.device) -> torch.Tensor:
    """Map the layer's leading dimension (tiles or flat tokens) to batch rows, in order."""
    if n % rows:
        raise RuntimeError(f"steering hook: {n} image tiles/tokens do not split evenly over {rows} rows")
    return torch.arange(n, device=device) // (n // rows)


def steering_delta(
    hidden: torch.Tensor, vectors: torch.Tensor, vision: VisionInfo, masks: torch.Tensor | None = None
) -> torch.Tensor:
    """The tensor to add to ``hidden`` (the layer's output) so row b moves along ``vectors[b]``.

    hidden: [tiles, seq, d] (or [tokens, d] for flat encoders); vectors: [rows, d];
    masks: [rows, patches] or [tiles, patches] (one per image when rows hold several images),
    values in 0..1, patches in the encoder's order, no class token.
    """
    rows = vectors.shape[0]
    vectors = vectors.to(device=hidden.device, dtype=hidden.dtype)
    if hidden.ndim == 2:  # flat: [tokens, d]
        if masks is not None:
            raise NotImplementedError("position masks are not supported for flat (Qwen2.5-VL) encoders")
        return vectors[_row_index(hidden.shape[0], rows, hidden.device)]
    index = _row_index(hidden.shape[0], rows, hidden.device)
    delta = vectors[index][:, None, :].expand(hidden.shape)  # [tiles, seq, d]
    if masks is None:
        return delta
    masks = masks.to(device=hidden.device, dtype=hidden.dtype)
    if masks.shape[0] != hidden.shape[0]:
        masks = masks[index]  # one mask per row, shared by its tiles -> [tiles, patches]
    if vision.has_cls:  # the class token is not a patch: a masked (hybrid) probe leaves it alone
        masks = torch.cat([masks.new_zeros(masks.shape[0], 1), masks], dim=1)
    if masks.shape[1] != hidden.shape[1]:
        raise ValueError(f"mask covers {masks.shape[1]} positions but the layer has {hidden.shape[1]}")
    return delta * masks[:, :, None]


@contextmanager
def steer(
    vision: VisionInfo, layer: int, vectors: torch.Tensor, masks: torch.Tensor | None = None
) -> Iterator[None]:
    """Within the block, layer ``layer``'s output gets ``vectors[b]`` added at row b's image positions.

    vectors: [rows, d]; a zero row leaves that row exactly unsteered. The hook is removed on exit,
    also when the block raises.
    """
    if vectors.ndim != 2 or vectors.shape[1] != vision.width:
        raise ValueError(f"steering vectors must be [rows, {vision.width}], got {tuple(vectors.shape)}")
    module: nn.Module = vision.layers[layer]

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor | tuple) -> torch.Tensor | tuple:
        hidden = output[0] if isinstance(output, tuple) else output
        steered = hidden + steering_delta(hidden, vectors, vision, masks)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    # prepend: transformers records hidden states (e.g. LLaVA's vision_feature_layer) with its own
    # forward hooks; ours must fire first so what they record is the steered state.
    handle = module.register_forward_hook(hook, prepend=True)
    try:
        yield
    finally:
        handle.remove()


class StopForward(Exception):
    """Raised by a ``capture(..., stop=True)`` hook once it has recorded: later modules need not run."""


def output_tensor(output: torch.Tensor | tuple | object) -> torch.Tensor:
    """A module's main output: the tensor itself, else the first element of a tuple or ModelOutput."""
    return output if isinstance(output, torch.Tensor) else output[0]  # type: ignore[index]


@contextmanager
def capture(module: nn.Module, *, detach: bool = False, stop: bool = False) -> Iterator[list[torch.Tensor]]:
    """Within the block, ``module``'s output tensor is appended to the yielded list on every forward.

    ``detach``: record without the autograd graph. ``stop``: the hook raises StopForward right after
    recording, so nothing after ``module`` runs; the block swallows it. The hook is removed on exit,
    also when the block raises.
    """
    seen: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor | tuple) -> None:
        hidden = output_tensor(output)
        seen.append(hidden.detach() if detach else hidden)
        if stop:
            raise StopForward

    handle = module.register_forward_hook(hook)
    try:
        yield seen
    except StopForward:
        pass
    finally:
        handle.remove()


def hook_count(model: nn.Module) -> int:
    """Forward hooks currently attached anywhere in ``model`` (tests use it to prove cleanup)."""
    return sum(len(m._forward_hooks) for m in model.modules())
