"""The toy world's build runs end to end at tiny scale and writes files the real loaders accept."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from steering.toy import naming, scenes, truth
from steering.toy.build import config, pipeline


@pytest.fixture(scope="module")
def toy_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    figures = pipeline.build(out, seed=0, cfg=config.scale_config("tiny"), threads=1)
    return out, figures


def test_model_loads_through_auto_classes(toy_build):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out, _ = toy_build
    model = AutoModelForImageTextToText.from_pretrained(out / "model")
    processor = AutoProcessor.from_pretrained(out / "model")
    assert type(model).__name__ == "Gemma3ForConditionalGeneration"
    assert type(processor).__name__ == "Gemma3Processor"
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.image_token_id
    assert model.config.boi_token_index == tok.boi_token_id
    # The projector is not the all-zero Gemma-3 default: the image reaches the language model.
    assert model.model.multi_modal_projector.mm_input_projection_weight.abs().sum() > 0
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<start_of_turn>model\n")


def test_sae_files_have_dictionary_learning_layout(toy_build):
    out, _ = toy_build
    cfg = config.scale_config("tiny")
    state = torch.load(out / "sae" / "ae.pt", weights_only=True)
    n, d = cfg.sae.dict_size, cfg.vlm.vision_hidden
    assert set(state) == {"encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k", "threshold"}
    assert state["encoder.weight"].shape == (n, d)
    assert state["encoder.bias"].shape == (n,)
    assert state["decoder.weight"].shape == (d, n)
    assert state["b_dec"].shape == (d,)
    assert int(state["k"]) == cfg.sae.k
    assert torch.allclose(state["decoder.weight"].norm(dim=0), torch.ones(n), atol=1e-5)
    trainer = json.loads((out / "sae" / "config.json").read_text())["trainer"]
    assert trainer["dict_class"] == "AutoEncoderTopK"
    assert (trainer["activation_dim"], trainer["dict_size"], trainer["k"]) == (d, n, cfg.sae.k)
    assert trainer["submodule_name"] == f"enc_res_out_layer_{cfg.sae.layer}"
    assert trainer["layer"] == cfg.sae.layer


def test_ground_truth_covers_every_feature(toy_build):
    out, _ = toy_build
    gt = truth.load(out / "sae")
    assert sorted(gt) == list(range(config.scale_config("tiny").sae.dict_size))
    for v in gt.values():
        assert 0.0 <= v["purity"] <= 1.0
        assert v["family"] is None or v["value"] in scenes.FAMILIES[v["family"]]
    assert truth.load_meta(out / "sae")["strengths"]


def test_ground_truth_shares_count_every_family_of_the_top_scenes():
    # Three scenes; feature 0 fires most on the two red crosses, feature 1 on nothing.
    sc = [scenes.Scene("object", "red", "cross", "solid", "small"), scenes.Scene("object", "red", "cross", "dotted", "large"),
          scenes.Scene("field", "blue", pattern="dotted")]
    codes = torch.zeros(3, 4, 2)
    codes[0, :, 0], codes[1, :, 0], codes[2, :, 0] = 3.0, 2.0, 1.0
    gt = truth.derive(codes, sc, top=2)
    assert (gt[0]["family"], gt[0]["value"], gt[0]["purity"]) == ("colour", "red", 1.0)
    assert gt[0]["shares"] == {"colour": {"red": 1.0}, "pattern": {"dotted": 0.5, "solid": 0.5},
                               "shape": {"cross": 1.0}, "size": {"large": 0.5, "small": 0.5}}
    assert gt[1]["shares"] == {} and gt[1]["purity"] == 0.0
    # The shipped truth keeps the shares of every pure feature.
    from steering import toy

    shipped = toy.ground_truth()
    pure = [v for v in shipped.values() if v["purity"] >= 0.9]
    assert pure and all(v["shares"][v["family"]][v["value"]] == v["purity"] for v in pure)


def test_build_is_deterministic(toy_build, tmp_path):
    out, _ = toy_build
    pipeline.build(tmp_path, seed=0, cfg=config.scale_config("tiny"), threads=1)
    a = torch.load(out / "sae" / "ae.pt", weights_only=True)
    b = torch.load(tmp_path / "sae" / "ae.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert truth.load(out / "sae") == truth.load(tmp_path / "sae")


def test_loads_through_steering_core(toy_build):
    from steering.models import load_vlm
    from steering.sae import load_sae

    out, _ = toy_build
    vlm = load_vlm(out / "model")
    sae = load_sae(out / "sae")
    cfg = config.scale_config("tiny")
    assert sae.layer == cfg.sae.layer
    assert sae.W_dec.shape == (vlm.vision.width, cfg.sae.dict_size)
    assert vlm.vision.n_layers == cfg.vlm.vision_layers


def test_captions_come_from_attributes():
    obj = scenes.Scene(kind="object", colour="red", shape="circle", pattern="striped", size="large", extent=0.7)
    assert obj.caption() == "The highlighted element is a large red striped circle."
    assert scenes.Scene(kind="field", colour="blue", pattern="solid").caption() == (
        "The highlighted element is the colour blue filling the whole image."
    )
    assert "empty" in scenes.Scene(kind="empty").caption()
    img = scenes.render(obj)
    assert img.shape == (64, 64, 3) and (img == 255).all(-1).any() and (img != 255).any()
    assert (scenes.render(scenes.Scene(kind="empty")) == 255).all()


@pytest.mark.parametrize(
    ("text", "value", "family", "expected"),
    [
        ("a large red striped circle.", "red", "colour", True),
        ("a large red striped circle.", "blue", "colour", False),
        ("red stripes filling the whole image.", "striped", "pattern", True),
        ("the colour green filling the whole image.", "solid", "pattern", True),
        ("nothing, the image is empty and white.", "large", "size", False),
        ("some circles", "circle", "shape", True),
        ("a checkered pattern", "checkered", None, True),
        ("the highlighted element is nothing", "dotted", "pattern", False),
    ],
)
def test_names_value(text, value, family, expected):
    assert naming.names_value(text, value, family) is expected


def test_config_round_trips():
    for scale in ("tiny", "full"):
        cfg = config.scale_config(scale)
        assert config.ToyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("module", ["steering.toy.build", "steering.toy.measure"])
def test_documented_commands_start(module: str) -> None:
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"python -m {module}" in out.stdout


def test_topk_examples_name_what_every_masked_image_shares():
    """A top-k training set: five masked scenes and an answer naming only values of the vocabulary,
    encoded with five image slots, which one training step accepts."""
    import numpy as np

    from steering.toy.build import data, topk_data
    from steering.toy.build.processor import build_processor
    from steering.toy.build.train_vlm import _topk_step
    from steering.toy.build.vlm import build_model

    rng = np.random.default_rng(3)
    values = {v for vals in scenes.FAMILIES.values() for v in vals}
    for _ in range(20):
        images, answer = topk_data.topk_example(rng, 64, 8)
        assert len(images) == topk_data.N_IMAGES and images[0].shape == (64, 64, 3)
        assert answer.startswith(topk_data.ANSWER_PREFIX + " ") and answer.endswith(".")
        named = answer.removeprefix(topk_data.ANSWER_PREFIX).strip(" .").split()
        assert named and set(named) <= values
    cfg = config.scale_config("tiny")
    processor = build_processor(data.vocabulary_texts(), 64, cfg.vlm.mm_tokens_per_image)
    assert processor.tokenizer.unk_token_id not in data.Encoder(processor).encode(
        topk_data.topk_prompt(), answer, topk_data.N_IMAGES)[0]
    model = build_model(cfg.vlm, processor, 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    loss = _topk_step(model, data.Encoder(processor), opt, rng, cfg)
    assert np.isfinite(loss) and loss > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # lr 0: the step ran, changed nothing
