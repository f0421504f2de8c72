"""clip-smollm2 world, the parts that need no download: dequantising a tiny int8 CLIP graph built with
onnx.helper, and writing a tiny LLaVA folder that transformers and the project's loader take."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from steering.worlds.clip_smollm2 import clip_onnx
from steering.worlds.clip_smollm2.errors import WorldError

HAS_ONNX = importlib.util.find_spec("onnx") is not None
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx not installed (pip install -e '.[world]')")

TINY = {"hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 2,
        "patch_size": 4, "image_size": 8, "projection_dim": 6, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
"""A CLIP small enough to build by hand: 2 x 2 patches of 4 px, 8 wide, two heads of 4."""
LINEARS = [(f"vision_model/encoder/layers.{i}/{m}", n_in, n_out) for i in range(2) for m, n_in, n_out in (
    ("self_attn/q_proj", 8, 8), ("self_attn/k_proj", 8, 8), ("self_attn/v_proj", 8, 8),
    ("self_attn/out_proj", 8, 8), ("mlp/fc1", 8, 12), ("mlp/fc2", 12, 8))] + [("visual_projection", 8, 6)]


def _tiny_graph(seed: int = 0):
    """An ONNX model laid out as the pinned export is: float tensors under Hugging Face names, each linear a
    DynamicQuantizeLinear -> MatMulInteger (`/<module>/MatMul_quant`, int8 [in, out] weight, a zero point and a
    scale per output column, the scale through `<node>_scales_mul`) -> Cast -> Mul, and layer 0's constants
    (attention scale, quick_gelu, layer-norm eps). Returns (model, {module: (q, zero, scale)})."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, inter, grid, patch = 8, 12, 2, 4
    floats = {"vision_model.embeddings.class_embedding": (h,),
              "vision_model.embeddings.patch_embedding.weight": (h, 3, patch, patch),
              "vision_model.embeddings.position_embedding.weight": (grid * grid + 1, h),
              "vision_model.pre_layrnorm.weight": (h,), "vision_model.pre_layrnorm.bias": (h,),
              "vision_model.post_layernorm.weight": (h,), "vision_model.post_layernorm.bias": (h,)}
    for i in range(2):
        p = f"vision_model.encoder.layers.{i}."
        floats.update({p + f"self_attn.{m}_proj.bias": (h,) for m in "qkv"})
        floats.update({p + "self_attn.out_proj.bias": (h,), p + "mlp.fc1.bias": (inter,), p + "mlp.fc2.bias": (h,)})
        floats.update({p + f"layer_norm{n}.{w}": (h,) for n in (1, 2) for w in ("weight", "bias")})
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), k) for k, s in floats.items()]
    nodes, inputs, outputs, quant = [], [], [], {}
    for j, (module, n_in, n_out) in enumerate(LINEARS):
        q = rng.integers(-128, 128, size=(n_in, n_out)).astype(np.int8)
        zero = rng.integers(-5, 6, size=n_out).astype(np.int8)
        scale = rng.uniform(0.001, 0.01, size=n_out).astype(np.float32)
        quant[module] = (q, zero, scale)
        w = f"onnx::MatMul_{100 + j}"
        inits += [numpy_helper.from_array(q, f"{w}_quantized"), numpy_helper.from_array(zero, f"{w}_zero_point"),
                  numpy_helper.from_array(scale, f"{w}_scale")]
        name, x = f"/{module}/MatMul_quant", f"x{j}"
        inputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, [3, n_in]))
        outputs.append(helper.make_tensor_value_info(f"y{j}", TensorProto.FLOAT, [3, n_out]))
        nodes += [helper.make_node("DynamicQuantizeLinear", [x], [f"{x}_q", f"{x}_s", f"{x}_z"], name=f"{x}_quant"),
                  helper.make_node("Mul", [f"{x}_s", f"{w}_scale"], [f"{name}_scales_mul:0"],
                                   name=f"{name}_scales_mul"),
                  helper.make_node("MatMulInteger", [f"{x}_q", f"{w}_quantized", f"{x}_z", f"{w}_zero_point"],
                                   [f"{name}_int"], name=name),
                  helper.make_node("Cast", [f"{name}_int"], [f"{name}_f"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [f"{name}_f", f"{name}_scales_mul:0"], [f"y{j}"])]
    inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1]))
    layer0 = "/vision_model/encoder/layers.0"
    for k, (node, op, value) in enumerate(((f"{layer0}/self_attn/Mul", "Mul", 4 ** -0.25),
                                            (f"{layer0}/mlp/activation_fn/Mul", "Mul", 1.702),
                                            (f"{layer0}/layer_norm1/Add", "Add", 1e-5))):
        constant = numpy_helper.from_array(np.array(value, np.float32))
        nodes += [helper.make_node("Constant", [], [f"c{k}"], value=constant),
                  helper.make_node(op, ["z", f"c{k}"], [f"k{k}"], name=node)]
        outputs.append(helper.make_tensor_value_info(f"k{k}", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(nodes, "tiny-clip", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), quant


def test_dequantize_is_per_output_column() -> None:
    q = np.array([[1, -2, 3], [4, 5, -6]], np.int8)  # [in 2, out 3]
    zero = np.array([1, 0, -1], np.int8)
    scale = np.array([0.5, 2.0, 0.25], np.float32)
    want = np.array([[0.0, -4.0, 1.0], [1.5, 10.0, -1.25]], np.float32)
    np.testing.assert_array_equal(clip_onnx.dequantize(q, scale, zero), want)
    with pytest.raises(WorldError, match="does not fit"):
        clip_onnx.dequantize(q, scale[:2], zero)


def test_a_smaller_image_size_resamples_the_position_grid_and_keeps_the_class_token() -> None:
    config = dict(TINY, image_size=16)  # 4 x 4 patches of 4 px
    rows = torch.arange(4.0)[:, None, None].expand(4, 4, 8)  # [row, col, hidden]: varies down the rows only
    pos = torch.cat([torch.full((1, 8), -7.0), rows.reshape(16, 8)])  # [1 + 16, hidden]
    state = {"vision_model.embeddings.position_embedding.weight": pos, "other": torch.ones(2)}
    assert clip_onnx.at_resolution(state, config, 16) == (state, config)
    small, small_config = clip_onnx.at_resolution(state, config, 8)  # 2 x 2 patches
    got = small["vision_model.embeddings.position_embedding.weight"]
    assert got.shape == (5, 8) and small_config["image_size"] == 8 and config["image_size"] == 16
    assert torch.equal(got[0], pos[0]) and small["other"] is state["other"]
    grid = got[1:].reshape(2, 2, 8)
    assert torch.allclose(grid[:, 0], grid[:, 1]) and bool((grid[1] > grid[0]).all())  # rows stay rows
    with pytest.raises(WorldError, match="not a multiple of CLIP's 4 px patches"):
        clip_onnx.at_resolution(state, config, 10)


@needs_onnx
def test_quantized_weights_are_named_and_transposed_as_torch_linear_holds_them() -> None:
    model, quant = _tiny_graph()
    inits, _ = clip_onnx._arrays(model.graph)
    weights = clip_onnx.quantized_weights(model.graph, inits)
    assert set(weights) == {m.replace("/", ".") + ".weight" for m, _, _ in LINEARS}
    q, zero, scale = quant["vision_model/encoder/layers.1/mlp/fc1"]  # [in 8, out 12]
    got = weights["vision_model.encoder.layers.1.mlp.fc1.weight"]
    assert got.shape == (12, 8)  # nn.Linear: [out, in]
    want = (q.astype(np.float32) - zero.astype(np.float32)) * scale
    np.testing.assert_allclose(got.numpy(), want.T, rtol=0, atol=1e-7)


@needs_onnx
def test_tiny_graph_becomes_a_clip_tower_with_every_weight_accounted_for() -> None:
    model, quant = _tiny_graph()
    state, config = clip_onnx.clip_from_onnx(model, expected=TINY)
    assert config == TINY  # read from shapes and layer 0's constants
    tower = clip_onnx.clip_tower(state, config)  # strict: a missing or misnamed weight fails
    q, zero, scale = quant["visual_projection"]
    want = ((q.astype(np.float32) - zero.astype(np.float32)) * scale).T
    np.testing.assert_allclose(tower.visual_projection.weight.detach().numpy(), want, atol=1e-7)
    with torch.no_grad():
        out = tower(pixel_values=torch.randn(2, 3, 8, 8))
    assert out.last_hidden_state.shape == (2, 5, 8) and out.image_embeds.shape == (2, 6)


@needs_onnx
def test_a_graph_that_is_not_vit_b16_is_refused_in_one_line() -> None:
    model, _ = _tiny_graph()
    with pytest.raises(WorldError) as info:
        clip_onnx.clip_from_onnx(model)  # the pinned ViT-B/16
    message = str(info.value)
    assert "\n" not in message and "not CLIP ViT-B/16" in message and "hidden_size 8 (want 768)" in message


@needs_onnx
@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_each_linear_reproduces_onnxruntime_given_the_same_input() -> None:
    import onnxruntime as ort

    from steering.worlds.clip_smollm2.checks import linear_taps, quantize_dynamic

    model, _ = _tiny_graph()
    inits, _ = clip_onnx._arrays(model.graph)
    weights = clip_onnx.quantized_weights(model.graph, inits)
    taps = linear_taps(model.graph)
    assert len(taps) == len(LINEARS)
    rng = np.random.default_rng(1)
    feed = {f"x{j}": rng.normal(size=(3, n_in)).astype(np.float32) for j, (_, n_in, _) in enumerate(LINEARS)}
    feed["z"] = np.ones(1, np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    for key, x, y in taps:
        mine = quantize_dynamic(torch.from_numpy(feed[x])) @ weights[key].T
        np.testing.assert_allclose(mine.numpy(), values[y], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the LLaVA folder


def _tiny_language_model():
    """A random 1-layer Llama with a ChatML word-level tokenizer, as smollm2.load_gguf returns SmolLM2."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from steering.worlds.clip_smollm2.smollm2 import LanguageModel

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    words = [*specials, "system", "user", "assistant", "You", "are", "a", "helpful", "AI", "named", "SmolLM",
             "trained", "by", "Hugging", "Face", "describe", "the", "image"]
    words += list(".,\n") + [f"w{i}" for i in range(40)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(words), tie_word_embeddings=True, bos_token_id=1,
                         eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    lm = LlamaForCausalLM(config)
    state = {k: v.detach() for k, v in lm.state_dict().items() if k != "lm_head.weight"}
    return LanguageModel(state=state, config=config.to_dict(), tokenizer=fast)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LLaVA folder of a random tiny CLIP (as clip_from_onnx returns it) and a random tiny Llama."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from steering.worlds.clip_smollm2.folder import write_folder
    from steering.worlds.clip_smollm2.projector import init_projector

    torch.manual_seed(0)
    state = dict(CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY)).state_dict())
    state.pop("visual_projection.weight")
    config = dict(TINY)
    out = tmp_path_factory.mktemp("tiny-llava") / "model"
    write_folder(out, state, config, _tiny_language_model(), init_projector(8, 16))
    return out


def test_the_folder_loads_offline_with_image_tokens_the_processor_and_model_agree_on(tiny_folder: Path) -> None:
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_folder)
    model = LlavaForConditionalGeneration.from_pretrained(tiny_folder).eval()
    config = model.config
    words = len(processor.tokenizer) - 1  # the tiny vocabulary; <image> comes after it
    assert (config.image_token_index, config.text_config.vocab_size) == (processor.image_token_id, words + 1) == (
        words, words + 1)
    assert config.image_seq_length == 4 and config.vision_feature_select_strategy == "default"
    assert processor.tokenizer.padding_side == "left"
    embed = model.model.language_model.embed_tokens.weight
    assert embed[config.image_token_index].abs().sum() == 0  # the grown row: logit 0 for <image>
    assert model.lm_head.weight.data_ptr() == embed.data_ptr()  # tied, as SmolLM2's are
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe the image"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI") and text.endswith("<|im_start|>assistant\n")
    batch = processor(text=[text], images=[Image.new("RGB", (32, 20), "white")], return_tensors="pt")
    assert int((batch["input_ids"] == config.image_token_index).sum()) == 4  # 2 x 2 patches, no class token
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[-1] == words + 1 and torch.isfinite(logits).all()


def test_the_projector_in_the_folder_is_the_one_given(tiny_folder: Path) -> None:
    from safetensors import safe_open

    from steering.worlds.clip_smollm2.projector import init_projector

    want = init_projector(8, 16)
    with safe_open(str(tiny_folder / "model.safetensors"), "pt") as f:
        got = {k.rsplit("multi_modal_projector.", 1)[-1]: f.get_tensor(k) for k in f.keys()  # noqa: SIM118
               if "multi_modal_projector" in k}
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k])


def test_the_projects_loader_takes_the_folder_as_a_llava(tiny_folder: Path) -> None:
    from steering.models import load_vlm

    vlm = load_vlm(tiny_folder, device="cpu")
    assert vlm.vision.family == "llava" and vlm.vision.n_layers == 2
    assert (vlm.vision.width, vlm.vision.grid, vlm.vision.has_cls) == (8, (2, 2), True)
