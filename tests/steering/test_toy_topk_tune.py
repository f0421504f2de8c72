"""The top-k fine-tuning stage on a tiny toy world: vision frozen, vocabulary kept, deterministic,
and its top-k examples are exactly what the engine's prompt path feeds the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from steering.toy import build, config, scenes, topk_tune

TUNE = topk_tune.TuneConfig(steps=3, warmup=1, batch_size=4, topk_sets=2)
FROZEN = ("vision_tower.", "multi_modal_projector.")


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    src = tmp_path_factory.mktemp("toy")
    build.build(src, seed=0, cfg=config.scale_config("tiny"), threads=1)
    a, b = tmp_path_factory.mktemp("tuned-a"), tmp_path_factory.mktemp("tuned-b")
    topk_tune.run(a, src, TUNE, seed=0, threads=1)
    topk_tune.run(b, src, TUNE, seed=0, threads=1)
    return src, a, b


def _weights(world) -> dict[str, torch.Tensor]:
    return load_file(str(world / "model" / "model.safetensors"))


def test_vision_tower_and_projector_are_bit_identical(worlds):
    src, a, _ = worlds
    before, after = _weights(src), _weights(a)
    assert before.keys() == after.keys()
    frozen = [k for k in before if any(part in k for part in FROZEN)]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    # The language model did train.
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in frozen)
    # The SAE and its ground truth come along unchanged.
    for name in ("ae.pt", "config.json", "ground_truth.json"):
        assert (src / "sae" / name).read_bytes() == (a / "sae" / name).read_bytes()


def test_vocabulary_is_unchanged(worlds):
    from transformers import AutoConfig, AutoProcessor

    src, a, _ = worlds
    old, new = AutoProcessor.from_pretrained(src / "model"), AutoProcessor.from_pretrained(a / "model")
    assert old.tokenizer.get_vocab() == new.tokenizer.get_vocab()
    sizes = [AutoConfig.from_pretrained(w / "model").text_config.vocab_size for w in (src, a)]
    assert sizes[0] == sizes[1] == len(new.tokenizer)


def test_stage_is_deterministic_for_a_seed(worlds):
    _, a, b = worlds
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_topk_example_renders_through_the_engine_prompt_path(worlds):
    from steering.engine import SteeringEngine
    from steering.models import load_vlm
    from steering.modes import prompt_text
    from steering.sae import load_sae

    _, a, _ = worlds
    vlm = load_vlm(a / "model")
    engine = SteeringEngine(vlm, load_sae(a / "sae"))
    text, prefix = prompt_text(engine, TUNE.n_images)
    assert prefix and text.endswith(prefix)
    images, answer = topk_tune.topk_example(np.random.default_rng(3), 64, 8, TUNE)
    assert len(images) == TUNE.n_images
    # The ids the engine's processor call makes are the head of the training example, token for token.
    ids, start = topk_tune.HeadEncoder(vlm.processor).encode(text, answer)
    served = vlm.processor(text=[text], images=[images], return_tensors="pt")["input_ids"][0].tolist()
    assert served == ids[:start]
    tok = vlm.processor.tokenizer
    assert tok.unk_token_id in served  # the prompt's words outside the toy vocabulary
    assert tok.unk_token_id not in ids[start:]  # the target uses only known words
    assert tok.decode(ids[start:], skip_special_tokens=True) == answer
    # The training pixels are the processor's.
    pixels = vlm.processor(text=[text], images=[images], return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixels, topk_tune.image_pixels(images), atol=1e-5)


def test_answer_names_shared_values_in_caption_order():
    def obj(colour, shape, size, pattern="solid"):
        return scenes.Scene("object", colour, shape, pattern, size, extent=0.4)

    group = [obj("red", "cross", "small"), obj("red", "cross", "small", "dotted")]
    assert topk_tune.shared_answer(group, topk_tune.CAPTION_ORDER) == " small red cross."
    assert topk_tune.shared_answer(group, ("colour", "pattern")) == " red."
    mixed = [obj("blue", "square", "large", "striped"), scenes.Scene("field", "blue", pattern="striped")]
    assert topk_tune.shared_answer(mixed, topk_tune.CAPTION_ORDER) == " blue striped."
