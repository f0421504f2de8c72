"""The fast decode path gives HF generate's answers: same tokens, same seeded samples, same first-step KL."""

from __future__ import annotations

import pytest
import torch

from steering import decode, tiny, toy
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
@pytest.mark.slow  # the longest of the fast-path checks (the default suite keeps fast_equals_hf): CI's second stage
def test_toy_repetition_penalty_fast_equals_hf(toy_world, monkeypatch) -> None:
    """A checkpoint's repetition penalty (Qwen2.5-VL's ship one): both paths apply it, after the KL's recorder."""
    vlm, sae = toy_world
    probes = _toy_probes()
    plain = SteeringEngine(vlm, sae, settings=GenerationSettings(decode="hf", max_new_tokens=20, batch_size=8,
                                                                 temperature=1.5)).run(probes)
    monkeypatch.setattr(vlm.model.generation_config, "repetition_penalty", 3.0)
    hf, fast = _pair(vlm, sae, max_new_tokens=20, min_new_tokens=3, batch_size=8, temperature=1.5)
    expected, got = hf.run(probes), fast.run(probes)
    assert fast._decoder is not None, "the penalty sent the model back to HF generate"
    _assert_same(expected, got)
    # the penalty acts (the toy's answers repeat "the", "colour", ... words of the prompt) ...
    changed = sum(a.texts != b.texts for a, b in zip(plain, expected))
    assert changed >= 3, changed
    # ... but not on the first-step distribution the KL reads (the unsteered baseline has no penalty)
    for a, b in zip(plain, got):
        assert b.kl_first == pytest.approx(a.kl_first, abs=1e-4, rel=1e-4), a.probe


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


def test_unsupported_reasons(monkeypatch) -> None:
    llava = tiny.tiny_model("llava")
    assert decode.unsupported_reason(llava, 10, 10) is None
    monkeypatch.setattr(decode, "FAST_FAMILIES", ("gemma3",))
    assert "llava" in decode.unsupported_reason(llava, 10, 10)
    gemma = tiny.tiny_model("gemma3")
    assert decode.unsupported_reason(gemma, 30, 20) is None
    gemma.config.text_config._attn_implementation = "flex_attention"
    assert "attention implementation" in decode.unsupported_reason(gemma, 30, 20)
    gemma.config.text_config._attn_implementation = "sdpa"
    gemma.generation_config.repetition_penalty = 1.3  # reimplemented: stays on the fast path
    assert decode.unsupported_reason(gemma, 30, 20) is None
    gemma.generation_config.no_repeat_ngram_size = 3
    assert "no_repeat_ngram_size" in decode.unsupported_reason(gemma, 30, 20)


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
    # 5 rows: the compiled step runs on the engine's 32 rows per call (padded with greedy copies that are
    # dropped again), whatever the chunk, so a run compiles one shape per cache length
    probes = [Probe(0, 32.0), Probe(2, 16.0, samples=3, seed=4, greedy=False), Probe(None)]
    plain = SteeringEngine(tiny_engine.vlm, tiny_engine.sae,
                           settings=GenerationSettings(decode="fast", compile_decode=False, max_new_tokens=10))
    engine = SteeringEngine(tiny_engine.vlm, tiny_engine.sae,
                            settings=GenerationSettings(decode="fast", compile_decode=True, max_new_tokens=10))
    expected = plain.run(probes)
    got = engine.run(probes)
    assert compiled, "compile_decode=True did not compile the step"
    assert engine._decoder._cache_shape == (32, 128)
    _assert_same(expected, got)
    assert [r.texts for r in engine.run(probes)] == [r.texts for r in got]  # the reused cache is reset
    more = probes + [Probe(1, 24.0, samples=6, seed=9, greedy=False)]  # 11 rows: the same compiled shape
    _assert_same(plain.run(more), engine.run(more))
    assert engine._decoder._cache_shape == (32, 128) and engine.batch_rows() == 32


# ----------------------------------------------------------------------------- every family's tiny model

_MARKERS = {"gemma3": ([2], [6], [8]), "qwen2_5_vl": ([], [tiny.VOCAB - 3], [])}
"""(bos, before the image, after the image) tokens a family's processor would write around its image tokens."""


class _IdTokenizer:
    """Decodes ids to their numbers: equal texts are equal tokens (the tiny models have no processor)."""

    pad_token_id = 0

    def batch_decode(self, ids: torch.Tensor, skip_special_tokens: bool = True) -> list[str]:
        return [" ".join(map(str, row.tolist())) for row in ids]


class _IdProcessor:
    tokenizer = _IdTokenizer()


def _prompt(family: str, model, words: int, seed: int) -> list[int]:
    """One prompt's ids: text around the image tokens the model expects, laid out as its processor does."""
    features = tiny.image_features(model, tiny.tiny_image_inputs(family, model, 1))
    n_image = features.numel() // model.config.get_text_config().hidden_size
    text = torch.randint(10, 300, (words,), generator=torch.Generator().manual_seed(seed)).tolist()
    bos, before, after = _MARKERS.get(family, ([], [], []))
    image = before + [tiny.IMAGE_TOKEN] * int(n_image) + after
    if family == "paligemma":  # image first, then <bos> and the prompt: all of it the bidirectional prefix
        return image + [2] + text
    return bos + text[:2] + image + text[2:]


def _family_batch(family: str, model, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
    """Left-padded processor-like outputs for ``prompts`` on the same random image."""
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    batch = {"input_ids": ids, "attention_mask": attention, **tiny.tiny_image_inputs(family, model, len(prompts))}
    image = ids == tiny.IMAGE_TOKEN
    if family == "gemma3":
        batch["token_type_ids"] = image.long()
    elif family == "paligemma":
        batch["token_type_ids"] = torch.zeros_like(ids)  # no suffix: the whole prompt is the prefix
    elif family == "qwen2_5_vl":
        batch["mm_token_type_ids"] = image.int()
    return batch


_STEPS = 12
"""Answer tokens of the family tests."""


def _family_vectors(sae, strengths: list[float]) -> torch.Tensor:
    """[rows, d]: row i steers feature i at strengths[i] (0 = unsteered)."""
    return torch.stack([s * sae.direction(i) for i, s in enumerate(strengths)])


def _mixed_rows(family: str, model, prompts: list[list[int]], sae):
    """A packed batch: four prompts of different lengths (the first twice: unsteered, then steered),
    fanned out to greedy and seeded rows. Returns (unique batch, vectors [unique, d], rows_of [rows],
    the batch HF generate runs [rows, ...], uniforms [rows, steps])."""
    from steering.sampling import uniform_stream

    unique = prompts + [prompts[0]]
    vectors = _family_vectors(sae, [0.0, 32.0, 16.0, 24.0, 32.0])
    rows_of = torch.tensor([0, 1, 1, 1, 2, 3, 3, 4, 4])
    seeds = [None, None, 3, 4, None, 5, None, None, 6]  # None: greedy
    uniforms = torch.stack([torch.full((_STEPS,), float("nan"), dtype=torch.float64) if s is None
                            else uniform_stream(s, 0, _STEPS) for s in seeds])
    return (_family_batch(family, model, unique), vectors, rows_of,
            _family_batch(family, model, [unique[i] for i in rows_of]), uniforms)


_LOGIT_SCALE = 4.0
"""How much the family tests sharpen a tiny model's next-token distribution (see ``_peaked``)."""


def _peaked(model):
    """``model`` with its LM head scaled by _LOGIT_SCALE (untied from the input embeddings first).

    A random tiny model's logits are flat (320 tokens within about one logit), so two tokens can tie to
    within float noise and different CPU kernels then pick different ones: a test of "fast == HF" would
    test the kernels, not the decoding. Sharper logits spread the candidates apart; `_decision_margins`
    checks that every decision the tests compare is far from a tie.
    """
    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(head.weight.detach().clone() * _LOGIT_SCALE)
    return model


_MIN_MARGIN = 1e-5
"""The closest call a compared decision may be: about 10x the float noise between CPU kernels here."""


class _Decisions:
    """Records what the seeded sampler saw at each step of a run (a spy on SeededSampler.choose)."""

    def __init__(self, monkeypatch) -> None:
        from steering import sampling

        self.seen: list[tuple[object, torch.Tensor, int]] = []
        real = sampling.SeededSampler.choose

        def spy(sampler, scores, step):
            self.seen.append((sampler, scores.detach().float().clone(), step))
            return real(sampler, scores, step)

        monkeypatch.setattr(sampling.SeededSampler, "choose", spy)

    def closest(self, lengths: list[int]) -> tuple[float, int, int]:
        """(margin, row, step) of the nearest tie among the live steps: for a greedy row the gap between
        its top two logits; for a sampled row the smaller of the pick's logit gap to its neighbours in
        the sampler's sorted order (a swap changes the pick) and the distance of its uniform number to
        the pick's CDF segment ends."""
        closest = (float("inf"), -1, -1)
        for sampler, scores, step in self.seen:
            for row in range(scores.shape[0]):
                if step < lengths[row]:
                    closest = min(closest, (_margin(sampler, scores[row], step, row), row, step))
        return closest


def _margin(sampler, scores: torch.Tensor, step: int, row: int) -> float:
    logits = scores / max(sampler.temperature, 1e-6)
    u = float(sampler.uniforms[row, step])
    if u != u:  # NaN: a greedy row
        top = logits.topk(2).values
        return float(top[0] - top[1])
    k = min(sampler.top_k, logits.shape[-1]) if sampler.top_k else logits.shape[-1]
    values = logits.topk(k).values
    probs = torch.softmax(values, -1)
    probs = probs * ((probs.cumsum(-1) - probs) < sampler.top_p)
    cum = probs.cumsum(-1)
    target = u * float(cum[-1])
    pick = int(torch.searchsorted(cum, torch.tensor([target])))
    gaps = [float(values[pick - 1] - values[pick])] if pick else []
    gaps += [float(values[pick] - values[pick + 1])] if pick + 1 < k else []
    return min(*gaps, float(cum[pick]) - target, target - (float(cum[pick - 1]) if pick else 0.0))


def _answer_lengths(texts: list[str], eos: list[int]) -> list[int]:
    """Tokens up to and including the first eos (all of them where none), from _IdTokenizer texts."""
    lengths = []
    for text in texts:
        ids = list(map(int, text.split()))
        lengths.append(next((i + 1 for i, t in enumerate(ids) if t in eos), len(ids)))
    return lengths


@pytest.fixture(scope="module", params=[f if f == "gemma3" else pytest.param(f, marks=pytest.mark.slow)
                                        for f in tiny.FAMILIES])  # one family by default, all under -m slow
def family_world(request, tmp_path_factory):
    """(family, LoadedVLM, SAE, prompts) with end-of-sequence ids that end rows at different steps."""
    from steering.models import LoadedVLM, inspect_vision
    from steering.sae import load_sae

    family = request.param
    model = _peaked(tiny.tiny_model(family))
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    vision = inspect_vision(model)
    sae = load_sae(tiny.write_tiny_sae(tmp_path_factory.mktemp(f"sae-{family}"), d_in=vision.width, layer=1))
    vlm = LoadedVLM(model=model, processor=_IdProcessor(), vision=vision, model_id=f"tiny-{family}")
    prompts = [_prompt(family, model, words, seed) for seed, words in enumerate((5, 9, 3, 7))]
    # Random tiny models have no end-of-sequence habit: make eos ids of tokens the mixed batch's rows
    # write a few steps in, adding them one by one until rows stop at three or more lengths. (Each
    # try reruns the batch: a sampled row's draws move once min_new_tokens masks the eos ids.)
    _, vectors, rows_of, batch, uniforms = _mixed_rows(family, model, prompts, sae)
    engine = SteeringEngine(vlm, sae, settings=GenerationSettings(decode="hf", max_new_tokens=_STEPS,
                                                                  min_new_tokens=2, temperature=1.0))
    texts, _, _ = engine.generate_inputs(batch, vectors[rows_of], uniforms=uniforms)
    tokens = [list(map(int, t.split())) for t in texts]
    candidates = [tokens[r][s] for r, s in ((0, 3), (1, 5), (4, 7), (6, 4), (7, 6), (2, 5), (5, 8), (3, 9))]
    eos: list[int] = []
    for token in candidates:
        if token == 0 or token in eos:
            continue
        eos.append(token)
        model.generation_config.eos_token_id = list(eos)
        texts, _, _ = engine.generate_inputs(batch, vectors[rows_of], uniforms=uniforms)
        if len(set(_answer_lengths(texts, eos))) > 2:
            break
    return family, vlm, sae, prompts


def test_every_family_is_on_the_fast_path() -> None:
    assert set(tiny.FAMILIES) <= set(decode.FAST_FAMILIES)


def test_family_fast_equals_hf(family_world, monkeypatch) -> None:
    """A packed batch: prompts of different lengths, greedy and seeded rows fanned out from shared prefills."""
    family, vlm, sae, prompts = family_world
    hooks = hook_count(vlm.model)  # transformers' own output recorders on some vision towers
    hf, fast = _pair(vlm, sae, max_new_tokens=_STEPS, min_new_tokens=2, temperature=1.0)
    unique, vectors, rows_of, rows, uniforms = _mixed_rows(family, vlm.model, prompts, sae)
    decisions = _Decisions(monkeypatch)
    texts, counts, logp = hf.generate_inputs(rows, vectors[rows_of], uniforms=uniforms)
    # no token is decided by a near-tie, which float noise could flip on another CPU (see _peaked)
    margin, row, step = decisions.closest(_answer_lengths(texts, vlm.model.generation_config.eos_token_id))
    assert margin > _MIN_MARGIN, f"{family}: row {row} step {step} is a near-tie ({margin:.1e})"
    fast_texts, fast_counts, fast_logp = fast.generate_inputs(unique, vectors, uniforms=uniforms, rows_of=rows_of)
    assert fast._decoder is not None and hf._decoder is None
    # the setup exercises what it claims: steering acts, rows stop at different lengths, samples differ
    assert texts[7] != texts[0], f"{family}: steering changed nothing (the image path is dead)"
    kl = (logp.exp() * (logp - logp[0])).sum(-1)  # first-step KL from the unsteered first prompt
    assert kl[7] > 1e-2, kl
    lengths = _answer_lengths(texts, vlm.model.generation_config.eos_token_id)
    assert len(set(lengths)) > 2 and min(lengths) > 2, lengths
    assert len(set(texts[1:4])) == 3, "the seeded samples of a row should differ from its greedy answer and each other"
    assert fast_texts == texts
    assert fast_counts == counts
    torch.testing.assert_close(fast_logp, logp, atol=1e-5, rtol=1e-5)
    fast_kl = (fast_logp.exp() * (fast_logp - fast_logp[0])).sum(-1)
    torch.testing.assert_close(fast_kl, kl, atol=1e-5, rtol=1e-4)
    assert hook_count(vlm.model) == hooks


def test_family_repetition_penalty_fast_equals_hf(family_world, monkeypatch) -> None:
    """The penalty over each row's own prompt (left padding excluded) and answer, fanned-out rows included."""
    family, vlm, sae, prompts = family_world
    unique, vectors, rows_of, rows, uniforms = _mixed_rows(family, vlm.model, prompts, sae)
    plain, _ = _pair(vlm, sae, max_new_tokens=_STEPS, min_new_tokens=2, temperature=1.0)
    before, _, _ = plain.generate_inputs(rows, vectors[rows_of], uniforms=uniforms)
    monkeypatch.setattr(vlm.model.generation_config, "repetition_penalty", 4.0)
    hf, fast = _pair(vlm, sae, max_new_tokens=_STEPS, min_new_tokens=2, temperature=1.0)
    decisions = _Decisions(monkeypatch)
    texts, counts, logp = hf.generate_inputs(rows, vectors[rows_of], uniforms=uniforms)
    margin, row, step = decisions.closest(_answer_lengths(texts, vlm.model.generation_config.eos_token_id))
    assert margin > _MIN_MARGIN, f"{family}: row {row} step {step} is a near-tie ({margin:.1e})"
    fast_texts, fast_counts, fast_logp = fast.generate_inputs(unique, vectors, uniforms=uniforms, rows_of=rows_of)
    assert sum(a != b for a, b in zip(before, texts)) >= 2, f"{family}: the penalty changed nothing"
    assert fast_texts == texts
    assert fast_counts == counts
    torch.testing.assert_close(fast_logp, logp, atol=1e-5, rtol=1e-5)


def test_family_step_logits_match_hf(family_world) -> None:
    """Every step's raw logits equal HF generate's (positions, masks, logit softcapping), rows left-padded."""
    from steering.decode import FastDecoder
    from steering.hooks import steer

    family, vlm, sae, prompts = family_world
    batch = _family_batch(family, vlm.model, prompts)
    vectors = _family_vectors(sae, [32.0, 0.0, 16.0, 24.0])
    eos = list(vlm.model.generation_config.eos_token_id)
    with torch.no_grad(), steer(vlm.vision, 1, vectors):
        expected = vlm.model.generate(**batch, max_new_tokens=10, do_sample=False, pad_token_id=0,
                                      output_logits=True, return_dict_in_generate=True)
        got = FastDecoder(vlm.model).generate(batch, max_new_tokens=10, eos=eos, pad=0, keep_logits=True)
    new = expected.sequences[:, batch["input_ids"].shape[1]:]
    assert torch.equal(got.tokens, new)
    live = torch.ones(new.shape, dtype=torch.bool)  # a row's steps up to and including its eos
    live[:, 1:] = ~torch.isin(new[:, :-1], torch.tensor(eos)).cummax(-1).values
    assert int(live.sum()) > 2 * new.shape[0]
    hf_logits = torch.stack(expected.logits, dim=1)  # [rows, steps, vocab]
    top = hf_logits[live].float().topk(2).values
    assert float((top[:, 0] - top[:, 1]).min()) > _MIN_MARGIN, "a greedy step is a near-tie (see _peaked)"
    torch.testing.assert_close(got.logits[live], hf_logits[live].float(), atol=1e-5, rtol=1e-5)


def test_a_failing_compiled_step_falls_back_to_the_uncompiled_one(tiny_engine, monkeypatch, caplog) -> None:
    """No C compiler, an op this torch cannot compile: the run goes on uncompiled, with a warning."""
    def broken_compile(fn, **kwargs):
        def step(*args):
            raise RuntimeError("inductor: no working C compiler\nlong traceback")
        return step

    monkeypatch.setattr(torch, "compile", broken_compile)
    probes = [Probe(0, 32.0), Probe(2, 16.0, samples=3, seed=4, greedy=False), Probe(None)]
    plain = SteeringEngine(tiny_engine.vlm, tiny_engine.sae,
                           settings=GenerationSettings(decode="fast", compile_decode=False, max_new_tokens=10))
    engine = SteeringEngine(tiny_engine.vlm, tiny_engine.sae,
                            settings=GenerationSettings(decode="fast", compile_decode=True, max_new_tokens=10))
    with caplog.at_level("WARNING", logger="steering.decode"):
        got = engine.run(probes)
    _assert_same(plain.run(probes), got)
    assert engine._decoder._step == engine._decoder._forward
    warnings = [r.getMessage() for r in caplog.records if "compiled decode step failed" in r.getMessage()]
    assert len(warnings) == 1 and "no working C compiler" in warnings[0] and "traceback" not in warnings[0]
