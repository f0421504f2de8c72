"""CLIP's vision tower from the int8 ONNX export: dequantise its MatMulInteger weights into a CLIPVisionConfig
and a Hugging Face state dict (``vision_model.*`` and ``visual_projection.weight``).

The export keeps Hugging Face names on every float tensor. Each linear layer became a ``MatMulInteger`` node
named ``/<hf module path>/MatMul_quant`` whose weight is int8 ``[in, out]`` with a zero point and a scale per
output column (the scale reaches the node through a ``<node>_scales_mul`` Mul beside it); a torch Linear
holds ``[out, in]``, hence the transpose.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from steering.worlds.clip_smollm2.errors import WorldError, missing_package
from steering.worlds.clip_smollm2.pins import VIT_B16

QUANT_NODE = re.compile(r"^/(?P<module>.+)/MatMul_quant$")
QUICK_GELU = 1.702
"""CLIP's quick_gelu is x * sigmoid(1.702 x): the export writes the constant into the activation's Mul."""
LAYER0 = "/vision_model/encoder/layers.0"


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """The float weight of a MatMulInteger: ``(q - zero_point) * scale`` per output column.

    q: [in, out] int8/uint8; scale, zero_point: [out] (or scalars, per tensor). Returns [in, out] float32.
    """
    if q.ndim != 2:
        raise WorldError(f"a MatMulInteger weight of shape {list(q.shape)} is not a matrix: not the pinned CLIP export")
    for what, value in (("scale", scale), ("zero point", zero_point)):
        if value.size not in (1, q.shape[1]):
            raise WorldError(f"a MatMulInteger {what} of {value.size} values does not fit a weight of "
                             f"{q.shape[1]} output columns: not the pinned CLIP export")
    return (q.astype(np.float32) - zero_point.astype(np.float32).reshape(-1)) * scale.astype(np.float32).reshape(-1)


def parse_onnx(data: bytes) -> Any:
    """The ModelProto of an ONNX file's bytes."""
    try:
        import onnx
    except ImportError as exc:
        raise missing_package(exc) from exc
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:
        raise WorldError(f"cannot parse the CLIP ONNX file ({type(exc).__name__}): fetch the wheel again") from exc


def _arrays(graph: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(initializers, Constant node outputs) of ``graph`` as numpy arrays."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    return inits, consts


def _scalar_input(nodes: dict[str, Any], consts: dict[str, np.ndarray], name: str) -> float | None:
    """The constant scalar operand of the node called ``name`` (None: no such node or no constant)."""
    node = nodes.get(name)
    if node is None:
        return None
    values = [consts[i] for i in node.input if i in consts and consts[i].size == 1]
    return float(values[0].reshape(())) if values else None


def quantized_weights(graph: Any, inits: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """``<hf module>.weight`` -> the dequantised torch weight [out, in], for every MatMulInteger node."""
    nodes = {n.name: n for n in graph.node}
    out: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        match = QUANT_NODE.match(node.name)
        if match is None or node.input[1] not in inits:
            raise WorldError(f"MatMulInteger node {node.name!r} is not named /<module>/MatMul_quant over a stored "
                             "weight: not the pinned CLIP export")
        q = inits[node.input[1]]
        zero = inits[node.input[3]] if len(node.input) > 3 and node.input[3] else np.zeros(1, np.int8)
        scales = nodes.get(f"{node.name}_scales_mul")
        scale_names = [i for i in (scales.input if scales is not None else ()) if i in inits]
        if len(scale_names) != 1:
            raise WorldError(f"cannot find the weight scale of {node.name!r}: not the pinned CLIP export")
        weight = dequantize(q, inits[scale_names[0]], zero)  # [in, out]
        key = match["module"].replace("/", ".") + ".weight"
        out[key] = torch.from_numpy(np.ascontiguousarray(weight.T))  # [out, in], as nn.Linear holds it
    return out


def clip_config(state: dict[str, torch.Tensor], nodes: dict[str, Any], consts: dict[str, np.ndarray]) -> dict[str, Any]:
    """The CLIPVisionConfig fields the graph holds, read from tensor shapes and the constants of layer 0."""
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise WorldError(f"the ONNX graph has no tensor {key!r}: not the pinned CLIP export")
        return state[key]

    patch = need("vision_model.embeddings.patch_embedding.weight")  # [hidden, 3, patch, patch]
    positions = need("vision_model.embeddings.position_embedding.weight").shape[0]  # grid^2 + 1 (class token)
    grid = round((positions - 1) ** 0.5)
    hidden = patch.shape[0]
    layers = {int(m.group(1)) for k in state if (m := re.match(r"vision_model\.encoder\.layers\.(\d+)\.", k))}
    # q and k are each scaled by head_dim ** -0.25 (together the usual 1/sqrt(head_dim)).
    scale = _scalar_input(nodes, consts, f"{LAYER0}/self_attn/Mul")
    head_dim = round(scale ** -4) if scale else None
    act = _scalar_input(nodes, consts, f"{LAYER0}/mlp/activation_fn/Mul")
    eps = _scalar_input(nodes, consts, f"{LAYER0}/layer_norm1/Add")
    return {
        "hidden_size": hidden,
        "intermediate_size": need("vision_model.encoder.layers.0.mlp.fc1.bias").shape[0],
        "num_hidden_layers": len(layers),
        "num_attention_heads": hidden // head_dim if head_dim else None,
        "patch_size": patch.shape[-1],
        "image_size": grid * patch.shape[-1],
        "projection_dim": need("visual_projection.weight").shape[0],
        "hidden_act": "quick_gelu" if act is not None and abs(act - QUICK_GELU) < 1e-4 else f"unknown ({act})",
        "layer_norm_eps": round(eps, 9) if eps is not None else None,
    }


def clip_from_onnx(model: Any, expected: dict[str, Any] = VIT_B16) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(Hugging Face state dict of CLIPVisionModelWithProjection, its config fields) from the ONNX ModelProto;
    raises WorldError when the graph is not the CLIP the world pins (``expected``)."""
    graph = model.graph
    inits, consts = _arrays(graph)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32))
             for k, v in inits.items() if k.startswith(("vision_model.", "visual_projection."))}
    state.update(quantized_weights(graph, inits))
    config = clip_config(state, {n.name: n for n in graph.node}, consts)
    wrong = [f"{k} {config.get(k)} (want {v})" for k, v in expected.items()
             if not (config.get(k) == v or (isinstance(v, float) and abs((config.get(k) or 0) - v) < 1e-9))]
    if wrong:
        raise WorldError(f"the ONNX graph is not CLIP ViT-B/16: {', '.join(wrong)}")
    return state, config


def clip_tower(state: dict[str, torch.Tensor], config: dict[str, Any]) -> Any:
    """A CLIPVisionModelWithProjection holding ``state`` (every weight accounted for, none left over)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WorldError(f"the converted CLIP weights do not fit CLIPVisionModelWithProjection (missing "
                         f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return model.eval()


def at_resolution(state: dict[str, torch.Tensor], config: dict[str, Any],
                  image_size: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tower for ``image_size`` px input: its patch-grid position embeddings resampled bicubically (the
    class token's kept), as transformers' ``interpolate_pos_encoding`` does on the fly, but once and for all,
    so that the folder's config, processor and image-token count all say the same size."""
    patch, size = config["patch_size"], config["image_size"]
    if image_size == size:
        return state, config
    if image_size % patch or image_size < patch:
        raise WorldError(f"image size {image_size} is not a multiple of CLIP's {patch} px patches: use e.g. 112 or 224")
    key = "vision_model.embeddings.position_embedding.weight"
    pos = state[key]  # [1 + grid^2, hidden]
    old, new = size // patch, image_size // patch
    grid = pos[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)  # [1, hidden, old, old]
    grid = torch.nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    resized = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(new * new, -1)])  # [1 + new^2, hidden]
    return {**state, key: resized.contiguous()}, {**config, "image_size": image_size}
