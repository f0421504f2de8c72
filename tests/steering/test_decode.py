"""The fast decode path gives HF generate's answers: same tokens, same seeded samples, same first-step KL."""

from __future__ import annotations

import pytest
import torch

from steering import decode, toy
from steering.engine import GenerationSettings, SteeringEngine
from steering.errors import UnsupportedModelError
from steering.hooks import hook_count
from steering.probes import Probe

TOY = pytest.mark.skipif(not toy.is_available(), reason="toy world not built (python -m steering.toy.build)")


@pytest.fixture(scope="module")
def toy_world():
    from steering.models import load_vlm
    from steering.sae import load_sae

    return load_vlm(toy.model_dir()), load_sae(toy.sae_dir())


def _pair(vlm, sae, **settings) -> tuple[SteeringEngine, SteeringEngine]:
    """(HF-generate engine, fast-decode engine) with otherwise equal settings."""
    return (SteeringEngine(vlm, sae, settings=GenerationSettings(decode="hf", **settings)),
            SteeringEngine(vlm, sae, settings=GenerationSettings(decode="fast", **settings)))


def _assert_same(hf_results, fast_results) -> None:
    for a, b in zip(hf_results, fast_results, strict=True):
        assert b.texts == a.texts, a.probe
        assert b.n_tokens == a.n_tokens, a.probe
        assert b.kl_first == pytest.approx(a.kl_first, abs=1e-4, rel=1e-4), a.probe


def _toy_probes() -> list[Probe]:
    """Features, strengths, base images, prompts, greedy rows and sampled rows, mixed in one list."""
    ask = "What colour is the highlighted element?"
    return ([Probe(None), Probe(56, 260.0), Probe(8, 0.0), Probe(14, 390.0, base_image="black")]
            + [Probe(f, s) for f in (13, 35, 42) for s in (130.0, 260.0)]
            + [Probe(38, 200.0, samples=3, seed=1, greedy=False), Probe(None, samples=2, seed=2, greedy=False),
               Probe(8, 260.0, samples=4, seed=3, greedy=False), Probe(42, 150.0, direction="random"),
               Probe(14, 260.0, prompt="ask", question=ask), Probe(35, 260.0, samples=2, seed=5, greedy=False,
                                                                     prompt="ask", question=ask)])


@TOY
def test_steering_changes_the_toy_answer_on_the_fast_path(toy_world) -> None:
    vlm, sae = toy_world
    engine = SteeringEngine(vlm, sae, settings=GenerationSettings(decode="fast", max_new_tokens=24))
    base, steered = engine.run([Probe(None), Probe(56, 260.0)])
    assert base.texts != steered.texts
    assert steered.kl_first > 1.0
    assert engine._decoder is not None, "the fast path was not taken"


@TOY
@pytest.mark.parametrize("min_new", [0, 6])
def test_toy_fast_equals_hf(toy_world, min_new) -> None:
    vlm, sae = toy_world
    # temperature 1.5: the toy model is confident, and at 0.7 every sample of a row is the same text
    hf, fast = _pair(vlm, sae, max_new_tokens=20, min_new_tokens=min_new, batch_size=8, temperature=1.5)
    probes = _toy_probes()
    expected, got = hf.run(probes), fast.run(probes)
    assert fast._decoder is not None and hf._decoder is None
    _assert_same(expected, got)
    # the setup exercises what it claims: steering, live sampling, rows of different lengths
    assert len({r.texts for r in expected}) > 5
    sampled = [t for r in expected if not r.probe.greedy for t in r.texts]
    assert len(set(sampled)) > 3
    lengths = {n for r in expected for n in r.n_tokens}
    assert len(lengths) > 2 and max(lengths) < 20, lengths
    assert min(lengths) >= min_new
    if min_new:
        assert all(r.kl_first == r.kl_first for r in got), "NaN KL: the minimum length leaked into the recorder"


@TOY
def test_toy_samples_do_not_depend_on_packing_on_the_fast_path(toy_world) -> None:
    vlm, sae = toy_world
    engine = SteeringEngine(vlm, sae, settings=GenerationSettings(decode="fast", max_new_tokens=16, temperature=1.5))
    target = Probe(8, 260.0, samples=4, seed=3, greedy=False)
    alone = engine.run([target])[0]
    packed = engine.run([Probe(56, 260.0), Probe(14, 200.0, samples=2, seed=9, greedy=False), target])[2]
    assert packed.texts == alone.texts


@TOY
def test_left_padded_batch_matches_hf_generate(toy_world, monkeypatch) -> None:
    """Rows of different prompt lengths: every step's logits equal HF generate's (padding, positions, mask)."""
    from steering.decode import FastDecoder
    from steering.hooks import steer
    from steering.images import base_image

    vlm, sae = toy_world
    engine = SteeringEngine(vlm, sae)
    texts = [engine.prompt_text(Probe(None))[0],
             engine.prompt_text(Probe(None, prompt="ask", question="What colour is it?"))[0],
             engine.prompt_text(Probe(None, prompt="ask", question="Is it a square?"))[0]]
    picture = base_image("white", engine.settings.image_size)
    monkeypatch.setattr(vlm.processor.tokenizer, "padding_side", "left")
    batch = vlm.processor(text=texts, images=[[picture]] * 3, padding=True, return_tensors="pt")
    batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    assert int((batch["attention_mask"] == 0).sum()) > 20, "the test needs well left-padded rows"
    vectors = torch.stack([engine.vector(Probe(56, 260.0)), engine.vector(Probe(14, 390.0)), engine.vector(Probe(8, 0.0))])
    eos, pad = engine._stop_ids()
    n = 12
    with torch.no_grad(), steer(vlm.vision, engine.layer, vectors):
        expected = vlm.model.generate(**batch, max_new_tokens=n, do_sample=False, pad_token_id=pad,
                                      output_logits=True, return_dict_in_generate=True)
        got = FastDecoder(vlm.model).generate(batch, max_new_tokens=n, eos=eos, pad=pad, keep_logits=True)
    new = expected.sequences[:, batch["input_ids"].shape[1]:]
    assert torch.equal(got.tokens, new)
    hf_logits = torch.stack(expected.logits, dim=1)  # [rows, steps, vocab]
    live = torch.ones(new.shape, dtype=torch.bool)  # a row's steps up to and including its eos
    live[:, 1:] = ~torch.isin(new[:, :-1], torch.tensor(eos)).cummax(-1).values
    torch.testing.assert_close(got.logits[live], hf_logits[live].float(), atol=1e-4, rtol=1e-4)
    assert len({tuple(row.tolist()) for row in new}) == 3


def test_tiny_gemma3_fast_equals_hf(tiny_world) -> None:
    """Tiny Gemma-3: both layers slide over a 64-token window, shorter than prompt + answer."""
    from steering.models import load_vlm
    from steering.sae import load_sae

    model_dir, sae_dir = tiny_world
    vlm, sae = load_vlm(model_dir), load_sae(sae_dir)
    hf, fast = _pair(vlm, sae, max_new_tokens=12, min_new_tokens=2, batch_size=4)
    probes = ([Probe(None), Probe(0, 32.0), Probe(1, 8.0), Probe(3, 32.0, base_image="black")]
              + [Probe(2, 16.0, samples=3, seed=4, greedy=False), Probe(5, 32.0, direction="random")])
    prompt_len = fast.inputs(fast.prompt_text(probes[0])[0], "white", 1)["input_ids"].shape[1]
    assert prompt_len + 12 > vlm.model.config.text_config.sliding_window
    expected, got = hf.run(probes), fast.run(probes)
    assert expected[0].texts != expected[1].texts, "steering changed nothing: the test model's image path is dead"
    assert fast._decoder is not None
    _assert_same(expected, got)
    assert hook_count(vlm.model) == 0


def test_unsupported_models_fall_back_to_hf_generate(tiny_world, monkeypatch) -> None:
    from steering.models import load_vlm
    from steering.sae import load_sae

    model_dir, sae_dir = tiny_world
    vlm, sae = load_vlm(model_dir), load_sae(sae_dir)
    hf, fast = _pair(vlm, sae, max_new_tokens=8)
    probes = [Probe(0, 32.0), Probe(1, 16.0)]
    monkeypatch.setattr(decode, "FAST_FAMILIES", ())
    auto = SteeringEngine(vlm, sae, settings=GenerationSettings(decode="auto", max_new_tokens=8))
    assert [r.texts for r in auto.run(probes)] == [r.texts for r in hf.run(probes)]
    assert auto._decoder is None
    with pytest.raises(UnsupportedModelError, match="fast decode"):
        fast.run(probes)


def test_unsupported_reasons() -> None:
    from steering import tiny

    llava = tiny.tiny_model("llava")
    assert "llava" in decode.unsupported_reason(llava, 10, 10)
    gemma = tiny.tiny_model("gemma3")
    assert decode.unsupported_reason(gemma, 30, 20) is None
    gemma.config.text_config._attn_implementation = "flex_attention"
    assert "attention implementation" in decode.unsupported_reason(gemma, 30, 20)
    gemma.config.text_config._attn_implementation = "sdpa"
    gemma.generation_config.repetition_penalty = 1.3
    assert "repetition_penalty" in decode.unsupported_reason(gemma, 30, 20)


def test_decode_path_is_not_part_of_the_cache_key(tiny_engine) -> None:
    a = SteeringEngine(tiny_engine.vlm, tiny_engine.sae, settings=GenerationSettings(decode="hf"))
    b = SteeringEngine(tiny_engine.vlm, tiny_engine.sae, settings=GenerationSettings(decode="fast", compile_decode=False))
    assert a.fingerprint() == b.fingerprint()


def test_compiled_step_traces_and_agrees(tiny_engine, monkeypatch) -> None:
    """The step torch.compile sees (here with dynamo's eager backend: no C++ or GPU needed) gives the same tokens."""
    compiled: list[object] = []
    real = torch.compile

    def eager_compile(fn, **kwargs):
        compiled.append(fn)
        return real(fn, backend="eager", dynamic=False)

    monkeypatch.setattr(torch, "compile", eager_compile)
    torch._dynamo.reset()
    # 5 rows: the compiled step runs on 8 (padded with greedy copies that are dropped again)
    probes = [Probe(0, 32.0), Probe(2, 16.0, samples=3, seed=4, greedy=False), Probe(None)]
    plain = SteeringEngine(tiny_engine.vlm, tiny_engine.sae,
                           settings=GenerationSettings(decode="fast", compile_decode=False, max_new_tokens=10))
    engine = SteeringEngine(tiny_engine.vlm, tiny_engine.sae,
                            settings=GenerationSettings(decode="fast", compile_decode=True, max_new_tokens=10))
    expected = plain.run(probes)
    got = engine.run(probes)
    assert compiled, "compile_decode=True did not compile the step"
    assert engine._decoder._cache_shape == (8, 128)
    _assert_same(expected, got)
    assert [r.texts for r in engine.run(probes)] == [r.texts for r in got]  # the reused cache is reset
