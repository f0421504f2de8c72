"""Checks of an assembled folder: the CLIP tower against the ONNX graph's own output (when onnxruntime is
installed), sanity without it, and a short answer from the language model."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steering.worlds.clip_smollm2 import clip_onnx
from steering.worlds.clip_smollm2.errors import WorldError
from steering.worlds.clip_smollm2.folder import image_processor

log = logging.getLogger(__name__)

PHOTOS = (("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"), ("sklearn", "datasets/images/china.jpg"),
          ("sklearn", "datasets/images/flower.jpg"), ("skimage", "data/astronaut.png"),
          ("skimage", "data/coffee.png"), ("skimage", "data/chelsea.png"))
"""Real photos that ship inside common packages (whichever are installed)."""
MAX_LAYER_ERROR = 1e-4
"""Largest error of one linear layer against the graph, given the same input, relative to its output's range."""
MIN_COSINE_ONNX = 0.9
"""Per-image cosine the float tower must reach end to end against the int8 graph: the graph quantises every
activation to 8 bits per tensor (and CLIP's residual has channels near 80 where most are near 1), so its
output drifts from the float tower's layer by layer (cosines of 0.95-0.98 are its noise, not an error)."""
MAX_COSINE_APART = 0.98
"""Two different photos whose embeddings are closer than this mean the tower ignores its input."""
ONNX_IMAGE_SIZE = 224
"""The size the graph's input takes."""
LM_QUESTION = "What is the capital of France?"


def sample_images(limit: int = 4) -> list[tuple[str, Any]]:
    """(name, RGB image): photos shipped in installed packages, else synthetic pictures (a colour gradient,
    a checkerboard, a disc)."""
    from PIL import Image, ImageDraw

    found: list[tuple[str, Any]] = []
    for package, rel in PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        if path.is_file() and len(found) < limit:
            found.append((path.name, Image.open(path).convert("RGB")))
    if len(found) >= 2:
        return found
    ramp = np.linspace(0, 255, 224, dtype=np.uint8)
    gradient = Image.fromarray(np.stack([np.tile(ramp, (224, 1)), np.tile(ramp[:, None], (1, 224)),
                                         np.full((224, 224), 128, np.uint8)], -1))
    board = Image.fromarray((((np.indices((224, 224)) // 28).sum(0) % 2) * 255).astype(np.uint8)).convert("RGB")
    disc = Image.new("RGB", (224, 224), "skyblue")
    ImageDraw.Draw(disc).ellipse((40, 40, 184, 184), fill="orange")
    return [("gradient", gradient), ("checkerboard", board), ("disc", disc)][:limit]


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row cosine of two [rows, ...] tensors, flattened."""
    return torch.nn.functional.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1)


def tower_outputs(model: Any, projection: torch.Tensor, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The converted tower's outputs named as the ONNX graph names them: last_hidden_state [b, 197, 768]
    (before post_layernorm, as CLIP's is) and image_embeds [b, 512] (the pooled class token, projected)."""
    with torch.no_grad():
        out = model.model.vision_tower(pixel_values=pixels)
    return {"last_hidden_state": out.last_hidden_state, "image_embeds": out.pooler_output @ projection.T}


def quantize_dynamic(x: torch.Tensor) -> torch.Tensor:
    """ONNX DynamicQuantizeLinear then back: per-tensor uint8 over [min(x, 0), max(x, 0)], rounding half to even."""
    lo, hi = x.min().clamp(max=0.0), x.max().clamp(min=0.0)
    scale = (hi - lo) / 255.0
    zero = torch.round(-lo / scale).clamp(0, 255)
    return (torch.round(x / scale) + zero).clamp(0, 255).sub(zero).mul(scale)


def linear_taps(graph: Any) -> list[tuple[str, str, str]]:
    """(weight key, float input, float output before the bias) of every MatMulInteger node: the input is what
    its DynamicQuantizeLinear reads, the output what the Mul after its Cast writes."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    taps = []
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        match = clip_onnx.QUANT_NODE.match(node.name)
        quant = producer.get(node.input[0])
        cast = next((c for c in consumers.get(node.output[0], []) if c.op_type == "Cast"), None)
        scaled = next((c for c in consumers.get(cast.output[0], []) if c.op_type == "Mul"), None) if cast else None
        if match is None or quant is None or quant.op_type != "DynamicQuantizeLinear" or scaled is None:
            continue
        taps.append((match["module"].replace("/", ".") + ".weight", quant.input[0], scaled.output[0]))
    return taps


def against_onnx(onnx_bytes: bytes, weight: Callable[[str], torch.Tensor], ours: dict[str, torch.Tensor] | None,
                 pixels: torch.Tensor) -> dict[str, Any] | None:
    """Our tower against the ONNX graph run by onnxruntime (None: onnxruntime is not installed).

    Two comparisons. Each linear layer alone: given the graph's own input to it, our weight (with the
    graph's activation quantization) must give the graph's output to float precision; this checks every
    weight, scale, zero point and orientation. End to end: the float tower's outputs against the graph's,
    which differ by the int8 noise the graph adds to every activation (reported; refused only when far off).
    ours: None where the folder takes another size than the graph's 224 px (pixels: 224 px): no end to end.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import onnx

    model = onnx.load_model_from_string(onnx_bytes)
    taps = linear_taps(model.graph)
    if len(taps) != sum(n.op_type == "MatMulInteger" for n in model.graph.node):
        raise WorldError("cannot follow every MatMulInteger node of the ONNX graph: not the pinned CLIP export")
    finals = [o.name for o in model.graph.output]
    for name in dict.fromkeys(n for _, x, y in taps for n in (x, y)):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in session.get_outputs()],
                      session.run(None, {session.get_inputs()[0].name: pixels.numpy()})))
    worst, where = 0.0, ""
    with torch.no_grad():
        for key, x, y in taps:
            theirs = torch.from_numpy(values[y])
            mine = quantize_dynamic(torch.from_numpy(values[x])) @ weight(key).T
            error = float((mine - theirs).abs().max() / theirs.abs().max().clamp(min=1e-12))
            if error > worst:
                worst, where = error, key
    report: dict[str, Any] = {"linear_layers": len(taps), "worst_relative_error": worst, "worst_layer": where}
    if worst > MAX_LAYER_ERROR:
        raise WorldError(f"the converted weight {where} disagrees with the ONNX graph (relative error {worst:.2g}): "
                         "the conversion is wrong; please report it")
    if ours is None:
        report["end_to_end"] = "not compared: the folder's tower takes another image size than the graph"
        return report
    for name in finals:  # image_embeds, and the encoder's output (an anonymous name)
        key = "image_embeds" if name == "image_embeds" else "last_hidden_state"
        theirs = torch.from_numpy(values[name])
        report[key] = {"max_abs_diff": round(float((ours[key] - theirs).abs().max()), 4),
                       "max_abs": round(float(theirs.abs().max()), 4),
                       "cosine_per_image": [round(float(c), 4) for c in _cosines(ours[key], theirs)]}
    low = min(min(report[k]["cosine_per_image"]) for k in ("image_embeds", "last_hidden_state"))
    if low < MIN_COSINE_ONNX:
        raise WorldError(f"the converted CLIP tower disagrees with the ONNX graph (cosine {low:.3f} < "
                         f"{MIN_COSINE_ONNX}): the conversion is wrong; please report it")
    return report


def sanity(ours: dict[str, torch.Tensor], names: list[str]) -> dict[str, Any]:
    """Without onnxruntime: the embeddings are finite and different photos embed apart."""
    embeds = ours["image_embeds"]
    if not torch.isfinite(embeds).all() or not torch.isfinite(ours["last_hidden_state"]).all():
        raise WorldError("the converted CLIP tower gives NaN or inf: the conversion is wrong; please report it")
    unit = torch.nn.functional.normalize(embeds.double(), dim=1)
    cos = unit @ unit.T
    apart = cos[~torch.eye(len(names), dtype=torch.bool)]
    if len(names) > 1 and float(apart.max()) > MAX_COSINE_APART:
        raise WorldError(f"the converted CLIP tower embeds different photos alike (cosine {float(apart.max()):.3f}): "
                         "the conversion is wrong; please report it")
    return {"images": names, "embed_norms": [round(float(n), 3) for n in embeds.norm(dim=1)],
            "max_cosine_between_images": round(float(apart.max()), 4) if len(names) > 1 else None}


def lm_answer(model: Any, tokenizer: Any, question: str = LM_QUESTION, max_new_tokens: int = 12) -> str:
    """The language model's greedy answer to a text-only chat turn (no image)."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def check_folder(folder: Path, onnx_bytes: bytes, projection: torch.Tensor) -> dict[str, Any]:
    """Load ``folder`` as transformers would offline and check it; the facts go into the manifest."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder)
    model, info = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    loose = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if loose:
        raise WorldError(f"the written folder does not load cleanly ({loose}): please report it")
    model.eval()
    names, images = zip(*sample_images())
    pixels = processor.image_processor(list(images), return_tensors="pt")["pixel_values"]  # [b, 3, size, size]
    ours = tower_outputs(model, projection, pixels)
    same = model.config.vision_config.image_size == ONNX_IMAGE_SIZE
    onnx_pixels = (pixels if same else
                   image_processor(ONNX_IMAGE_SIZE)(list(images), return_tensors="pt")["pixel_values"])
    checks: dict[str, Any] = {"sanity": sanity(ours, list(names))}
    tower = dict(model.model.vision_tower.state_dict())

    def weight(key: str) -> torch.Tensor:
        return projection if key == "visual_projection.weight" else tower[key.removeprefix("vision_model.")]

    onnx = against_onnx(onnx_bytes, weight, ours if same else None, onnx_pixels)
    checks["against_onnx"] = onnx if onnx is not None else "onnxruntime not installed: not compared"
    checks["lm_answer"] = {"question": LM_QUESTION, "answer": lm_answer(model, processor.tokenizer)}
    return checks
