"""The probe engine: turn lists of Probes into ProbeResults with batched, steered generation."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

import prompts
from steering.decode import FastDecoder, model_inputs, unsupported_reason
from steering.errors import ProbeError, UnsupportedModelError
from steering.hooks import capture, steer
from steering.images import DEFAULT_SIZE, base_image
from steering.models import LoadedVLM
from steering.prefix import replay_prefix
from steering.probes import Probe, ProbeResult, image_identity
from steering.processors import render_chat
from steering.run_state import RunState, first_line
from steering.sae import SAE, check_layer
from steering.sampling import (
    FirstStepLogProbs,
    MinNewTokens,
    SeededSampler,
    repetition_penalty,
    uniform_stream,
)
from steering.special_tokens import special_tokens, strip_special_tokens
from steering.text import strip_answer

log = logging.getLogger(__name__)


@dataclass
class GenerationSettings:
    """How the steered VLM writes its answers; every field is part of the cache key."""

    max_new_tokens: int = 48
    """Upper bound on answer length (the reference allows 200; one sentence rarely needs 48)."""
    min_new_tokens: int = 0
    """Lower bound on answer length (benchmarks pin min = max to time a fixed length)."""
    temperature: float = 0.7
    """Sampling temperature when a probe samples (Gemma-3's recommended 0.7)."""
    top_p: float = 0.95
    """Nucleus sampling mass when sampling."""
    top_k: int = 64
    """Top-k cut-off when sampling."""
    prefill_prefix: bool = True
    """Write the answer prefix into the model's turn so it continues from it (and the first
    generated token is the first content word, which is where the KL is measured)."""
    image_size: int = DEFAULT_SIZE
    """Side of the generated base image before the processor resizes it."""
    batch_size: int = 0
    """Rows per generate call; 0 sizes it from free GPU memory (32 on CPU). Not part of the answer."""
    prefix_cache: bool = True
    """Run vision layers 0..L once per base image and replay them for every batch (same answers,
    checked against the plain path when the engine first uses it; turned off where they differ)."""
    decode: str = "auto"
    """``hf``: HF generate; ``fast``: one multimodal prefill, then the language model alone on a static
    KV cache (steering.decode; an error where the model is not supported); ``auto``: fast where
    supported, HF generate elsewhere. Both give the same tokens (tests/steering/test_decode.py)."""
    compile_decode: bool | None = None
    """torch.compile (CUDA graphs) the fast path's decode step; None = on CUDA only."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerationSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def random_direction(d: int, feature: int | None, seed: int) -> torch.Tensor:
    """A unit random direction [d], reproducible from (feature, seed)."""
    digest = hashlib.sha256(f"random-control:{feature}:{seed}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    v = torch.randn(d, generator=gen)
    return v / v.norm()


class SteeringEngine:
    """Runs probes against one (VLM, SAE, layer) on the real transformers generate path."""

    def __init__(self, vlm: LoadedVLM, sae: SAE, layer: int | None = None,
                 settings: GenerationSettings | None = None) -> None:
        self.vlm = vlm
        self.sae = sae
        self.layer = check_layer(layer if layer is not None else sae.layer, vlm.vision.n_layers)
        sae.check_fits(vlm.vision.width, vlm.vision.n_layers, self.layer)
        self.sae.to(device=vlm.device)
        self.settings = settings or GenerationSettings()
        self._inputs: dict[tuple[str, str], Any] = {}
        self._base_logprobs: dict[tuple[str, str], torch.Tensor] = {}
        self._prompts: dict[tuple[str, str | None], tuple[str, str]] = {}
        self._prefix: dict[str, torch.Tensor] = {}  # base image -> layer-L state of one row
        self._image_ids: dict[str, str | None] = {}  # base image -> the identity its cached state was made from
        self._prefix_ok: bool | None = None  # self-check result, once per engine
        self._decoder: FastDecoder | None = None

    # ------------------------------------------------------------------ identity

    def fingerprint(self) -> dict[str, Any]:
        """Everything about this engine that changes an answer (for cache keys)."""
        s = self.settings.to_dict()
        # Execution choices that give the same answers stay out of the key, so a store filled on
        # one path is reused by the other: the batch size, the prefix cache (self-checked), and the
        # decode path and its compilation (same tokens as HF generate: tests/steering/test_decode.py).
        # Like batch size, they can move logits by float rounding only.
        for name in ("batch_size", "prefix_cache", "decode", "compile_decode"):
            s.pop(name)
        return {
            "model": self.vlm.model_id, "revision": self.vlm.revision, "dtype": str(self.vlm.dtype),
            "sae": self.sae.sae_id, "sae_revision": self.sae.revision, "layer": self.layer,
            "prompts": [prompts.load("vlm_describe").ref, prompts.load("vlm_ask").ref],
            "generation": s,
        }

    # ------------------------------------------------------------------ prompts and inputs

    def prompt_text(self, probe: Probe) -> tuple[str, str]:
        """(full text fed to the processor, answer prefix) for a probe's prompt."""
        key = (probe.prompt, probe.question)
        if key not in self._prompts:
            self._prompts[key] = self._render_prompt(probe)
        return self._prompts[key]

    def _render_prompt(self, probe: Probe) -> tuple[str, str]:
        template = prompts.load("vlm_describe" if probe.prompt == "describe" else "vlm_ask")
        if probe.prompt == "ask":
            # The question is judge-written: a special token in it (the image token above all) would
            # make the processor count placeholders wrong and refuse the whole batch.
            question = strip_special_tokens(probe.question or "", special_tokens(self.vlm.processor))
            user = template.render(question=question)
        else:
            user = template.render()
        prefix = template.meta.get("answer_prefix", "")
        processor = self.vlm.processor
        if getattr(processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]}]
            text = render_chat(processor, messages, self.vlm.model_id)
        else:  # e.g. PaliGemma: the processor adds the image tokens itself
            text = user + "\n"
        if prefix and self.settings.prefill_prefix:
            text = text + prefix
        return text, prefix

    def _forget_if_changed(self, image_spec: str) -> None:
        """Drop what this engine keeps of a base image (processor inputs, unsteered logits, the vision
        prefix) when the image changed since (a file rewritten in place): its probes' cache keys already
        carry the new identity, and the pixels they run on must be the new ones too."""
        now = image_identity(image_spec)
        if image_spec in self._image_ids and self._image_ids[image_spec] != now:
            for cache in (self._inputs, self._base_logprobs):
                for key in [k for k in cache if k[1] == image_spec]:
                    del cache[key]
            self._prefix.pop(image_spec, None)
        self._image_ids[image_spec] = now

    def inputs(self, text: str, image_spec: str, rows: int) -> dict[str, torch.Tensor]:
        """Processor outputs for ``rows`` identical rows (prepared once, then repeated)."""
        key = (text, image_spec)
        if key not in self._inputs:
            image = base_image(image_spec, self.settings.image_size)
            enc = self.vlm.processor(text=[text], images=[[image]], return_tensors="pt")
            self._inputs[key] = {k: v.to(self.vlm.device) for k, v in model_inputs(enc).items()
                                 if isinstance(v, torch.Tensor)}
        one = self._inputs[key]
        # Concatenating the one-row tensors `rows` times is what batching identical rows gives,
        # whatever the layout (per-image pixel tensors, flat patch lists, grid descriptors).
        return {k: torch.cat([v] * rows) if rows > 1 else v for k, v in one.items()}

    def vector(self, probe: Probe) -> torch.Tensor:
        """The vector a probe adds, [d] (zeros for the baseline)."""
        d = self.vlm.vision.width
        if probe.is_baseline:
            return torch.zeros(d, device=self.vlm.device)
        direction = self.sae.direction(probe.feature)
        if probe.direction == "random":
            direction = random_direction(d, probe.feature, probe.seed).to(direction) * direction.norm()
        return probe.strength * direction

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(self, text: str, image_spec: str, vectors: torch.Tensor, *,
                 uniforms: torch.Tensor | None = None,
                 masks: torch.Tensor | None = None) -> tuple[list[str], list[int], torch.Tensor]:
        """One generate call on the base image ``image_spec``, row b steered by vectors[b] [rows, d]."""
        rows_of = None
        prompt_len = self.inputs(text, image_spec, 1)["input_ids"].shape[1]
        if masks is None and self._fast(prompt_len):
            # Rows with equal vectors (the samples of one probe) differ only after the prefill:
            # run it once per distinct vector and let the decoder fan the rows out.
            vectors, rows_of = torch.unique(vectors, dim=0, return_inverse=True)
        batch = self.inputs(text, image_spec, vectors.shape[0])
        with self._prefix_context(text, image_spec):
            return self.generate_inputs(batch, vectors, uniforms=uniforms, masks=masks, rows_of=rows_of)

    @torch.no_grad()
    def generate_inputs(self, batch: dict[str, torch.Tensor], vectors: torch.Tensor, *,
                        uniforms: torch.Tensor | None = None,
                        masks: torch.Tensor | None = None,
                        rows_of: torch.Tensor | None = None) -> tuple[list[str], list[int], torch.Tensor]:
        """One generate call on ready processor outputs, row b steered by vectors[b] [rows, d].

        uniforms: [rows, max_new_tokens] per-row random streams for sampled rows (NaN = greedy row).
        masks: optional per-row or per-tile position masks for the hook.
        rows_of: [out_rows] the batch row each output row continues (fast decode only; None = one
        output row per batch row); uniforms are then per output row.
        Returns raw continuation texts, their token counts, and first-step log-probs [rows, vocab].
        """
        batch = model_inputs(batch)
        prompt_len = batch["input_ids"].shape[1]
        if self._fast(prompt_len):
            return self._generate_fast(batch, vectors, uniforms=uniforms, masks=masks, rows_of=rows_of)
        if rows_of is not None:
            batch = {k: v[rows_of.to(v.device)] if v.shape[0] == vectors.shape[0] else v for k, v in batch.items()}
            vectors = vectors[rows_of.to(vectors.device)]
        return self._generate_hf(batch, vectors, uniforms=uniforms, masks=masks)

    def _stop_ids(self) -> tuple[list[int], int]:
        """(end-of-sequence ids, pad id) as HF generate uses them for this model and processor."""
        tokenizer = getattr(self.vlm.processor, "tokenizer", self.vlm.processor)
        config = self.vlm.model.generation_config
        eos = config.eos_token_id
        eos = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = config.pad_token_id if config.pad_token_id is not None else (eos[0] if eos else 0)
        return eos, pad

    def _fast(self, prompt_len: int) -> bool:
        """Whether this call takes the fast decode path (settings.decode and model support)."""
        mode = self.settings.decode
        if mode == "hf":
            return False
        if mode not in ("auto", "fast"):
            raise ValueError(f"unknown decode path {mode!r}: use auto, hf or fast")
        reason = unsupported_reason(self.vlm.model, prompt_len, self.settings.max_new_tokens)
        if reason is not None and mode == "fast":
            raise UnsupportedModelError(f"fast decode cannot run {self.vlm.model_id}: {reason}")
        return reason is None

    def _generate_fast(self, batch: dict[str, torch.Tensor], vectors: torch.Tensor, *,
                       uniforms: torch.Tensor | None, masks: torch.Tensor | None,
                       rows_of: torch.Tensor | None) -> tuple[list[str], list[int], torch.Tensor]:
        s = self.settings
        if self._decoder is None:
            # Compiled steps pad every call to the rows per call fixed now (free memory changes later,
            # a recompile per new batch size would cost more than the padding).
            self._decoder = FastDecoder(self.vlm.model, compile=s.compile_decode, rows=self.batch_rows())
        sampler = None
        if uniforms is not None and not bool(torch.isnan(uniforms[:, 0]).all()):
            sampler = SeededSampler(uniforms.to(self.vlm.device), batch["input_ids"].shape[1], s.temperature,
                                    s.top_k, s.top_p)
        eos, pad = self._stop_ids()
        with steer(self.vlm.vision, self.layer, vectors, masks):
            out = self._decoder.generate(batch, max_new_tokens=s.max_new_tokens, min_new_tokens=s.min_new_tokens,
                                         eos=eos, pad=pad, sampler=sampler, rows_of=rows_of,
                                         repetition_penalty=repetition_penalty(self.vlm.model.generation_config))
        return self._texts(out.tokens, eos, pad) + (out.first_logprobs,)

    def _texts(self, new: torch.Tensor, eos: list[int], pad: int) -> tuple[list[str], list[int]]:
        """Decoded answers and their token counts (up to the first stop) for new tokens [rows, n]."""
        tokenizer = getattr(self.vlm.processor, "tokenizer", self.vlm.processor)
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        stops = set(eos) | {pad}
        return texts, [_count_until(row.tolist(), stops) for row in new.cpu()]

    def _generate_hf(self, batch: dict[str, torch.Tensor], vectors: torch.Tensor, *,
                     uniforms: torch.Tensor | None,
                     masks: torch.Tensor | None) -> tuple[list[str], list[int], torch.Tensor]:
        """HF generate with the steering hook, greedy at the transformers level."""
        from transformers import LogitsProcessorList

        s = self.settings
        prompt_len = batch["input_ids"].shape[1]
        eos, pad = self._stop_ids()
        # Always greedy at the transformers level; sampled rows pick their token in SeededSampler.
        # The sampling knobs a checkpoint's generation_config may carry are unset to keep logs quiet.
        gen_kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "do_sample": False, "temperature": None,
                                      "top_p": None, "top_k": None, "return_dict_in_generate": True,
                                      "pad_token_id": pad}
        # The recorder runs first, so it sees the model's own distribution (before the minimum
        # length and the sampler). transformers would put a checkpoint's repetition penalty before
        # every processor of ours: it is switched off there and run right after the recorder instead.
        recorder = FirstStepLogProbs(prompt_len)
        processors: list[Any] = [recorder]
        penalty = repetition_penalty(self.vlm.model.generation_config)
        if penalty is not None:
            from transformers import RepetitionPenaltyLogitsProcessor

            gen_kwargs["repetition_penalty"] = 1.0
            mask = batch.get("attention_mask")
            processors.append(RepetitionPenaltyLogitsProcessor(
                penalty, prompt_ignore_length=None if mask is None else (mask != 0).int().argmax(dim=1)))
        if s.min_new_tokens:
            processors.append(MinNewTokens(prompt_len, s.min_new_tokens, eos))
        if uniforms is not None and not bool(torch.isnan(uniforms[:, 0]).all()):
            processors.append(SeededSampler(uniforms, prompt_len, s.temperature, s.top_k, s.top_p))
        gen_kwargs["logits_processor"] = LogitsProcessorList(processors)
        with steer(self.vlm.vision, self.layer, vectors, masks):
            out = self.vlm.model.generate(**batch, **gen_kwargs)
        new = out.sequences[:, prompt_len:]  # [rows, new_tokens]
        assert recorder.logprobs is not None
        return self._texts(new, eos, pad) + (recorder.logprobs,)  # first-step log-probs [rows, vocab]

    @torch.no_grad()
    def _base_logprobs_for(self, text: str, image_spec: str) -> torch.Tensor:
        """Unsteered next-token log-probs [vocab]; also fills the prefix cache for this image."""
        key = (text, image_spec)
        if key not in self._base_logprobs:
            with capture(self.vlm.vision.layers[self.layer], detach=True) as seen:
                logits = self.vlm.model(**self.inputs(text, image_spec, 1)).logits[:, -1]
            self._prefix.setdefault(image_spec, seen[0])
            self._base_logprobs[key] = torch.log_softmax(logits.float(), dim=-1)[0]
        return self._base_logprobs[key]

    def hidden_norm(self, base_image: str = "white") -> float:
        """Median L2 norm of the unsteered hidden states at the hooked layer on ``base_image``.

        Strengths are meaningful relative to it (METHOD: ~0.8-3x the norm names concepts).
        """
        text, _ = self.prompt_text(Probe(feature=None, base_image=base_image))
        self._forget_if_changed(base_image)
        self._base_logprobs_for(text, base_image)  # captures the layer-L state of this image
        state = self._prefix[base_image]  # [tiles, seq, d] or [tokens, d]
        return float(state.float().norm(dim=-1).flatten().median())

    @torch.no_grad()
    def _prefix_usable(self, text: str, image_spec: str) -> bool:
        """Once per engine: does replaying the cache give exactly the plain path's logits?"""
        if self._prefix_ok is None:
            base = self._base_logprobs_for(text, image_spec)
            with replay_prefix(self.vlm.vision, self.layer, self._prefix[image_spec]):
                logits = self.vlm.model(**self.inputs(text, image_spec, 1)).logits[:, -1]
            replayed = torch.log_softmax(logits.float(), dim=-1)[0]
            self._prefix_ok = bool(torch.allclose(base, replayed, atol=1e-4, rtol=1e-4))
            if not self._prefix_ok:
                log.warning("vision prefix cache disagrees with the plain path for %s; running without it",
                            self.vlm.model_id)
        return self._prefix_ok

    def _prefix_context(self, text: str, image_spec: str):  # type: ignore[no-untyped-def]
        from contextlib import nullcontext

        if not self.settings.prefix_cache:
            return nullcontext()
        self._base_logprobs_for(text, image_spec)
        if not self._prefix_usable(text, image_spec):
            return nullcontext()
        return replay_prefix(self.vlm.vision, self.layer, self._prefix[image_spec])

    def batch_rows(self, prompt_tokens: int = 400) -> int:
        """Rows per generate call: the setting, or as many as free GPU memory holds (KV cache bound)."""
        if self.settings.batch_size > 0:
            return self.settings.batch_size
        if self._decoder is not None and self._decoder.compile and self._decoder.rows:
            return self._decoder.rows  # the compiled step's one batch shape (its cache is already held)
        if self.vlm.device.type != "cuda":
            return 32
        free, _ = torch.cuda.mem_get_info(self.vlm.device)
        if self._decoder is not None:  # the fast decoder's kept cache is reused (or replaced) by the next call
            free += self._decoder.cache_bytes()
        text = getattr(self.vlm.model.config, "text_config", self.vlm.model.config)
        heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        tokens = prompt_tokens + self.settings.max_new_tokens
        kv = 2 * text.num_hidden_layers * heads * head_dim * tokens * self.vlm.dtype.itemsize
        logits = 2 * text.vocab_size * 4  # float32 first-step logits kept per row, plus the step's own
        per_row = 1.5 * (kv + logits) + 4 * tokens * text.hidden_size * self.vlm.dtype.itemsize
        return int(max(8, min(512, 0.6 * free // per_row)))

    def run(self, probes: Sequence[Probe],
            on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
        """Execute probes; results come back in the order of ``probes``. The first error is raised.

        Every (probe, sample) is one row; rows sharing a prompt and base image are packed into
        generate calls of ``batch_size`` rows, whichever probes they come from.
        """
        return self._run(probes, on_result, isolate=False)  # type: ignore[return-value]

    def run_isolated(self, probes: Sequence[Probe],
                     on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult | ProbeError]:
        """Like ``run``, but a probe that fails fails alone: a generate call that raises is split and its
        halves retried, down to the one probe that breaks it, whose entry is then its ProbeError."""
        return self._run(probes, on_result, isolate=True)

    def _run(self, probes: Sequence[Probe], on_result: Callable[[ProbeResult], None] | None,
             isolate: bool) -> list[ProbeResult | ProbeError]:
        run = RunState(probes, on_result)
        groups: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
        for i, p in enumerate(probes):
            try:
                if p.feature is not None:
                    self.sae.check_feature(p.feature)
                text, prefix = self.prompt_text(p)
            except Exception as exc:
                if not isolate:
                    raise
                run.fail(i, exc)
                continue
            groups[(text, prefix, p.base_image)].extend((i, j) for j in range(p.samples))
        for image_spec in {spec for _, _, spec in groups}:
            self._forget_if_changed(image_spec)
        for (text, prefix, image_spec), rows in groups.items():
            try:
                base = self._base_logprobs_for(text, image_spec)
            except Exception as exc:  # e.g. the processor refuses this prompt: only its probes fail
                if not isolate:
                    raise
                for i in sorted({i for i, _ in rows}):
                    run.fail(i, exc)
                continue
            size = self.batch_rows()
            for start in range(0, len(rows), size):
                self._run_rows(run, (text, prefix, image_spec), rows[start:start + size], base, isolate)
        assert all(r is not None for r in run.results)
        return run.results  # type: ignore[return-value]

    def _run_rows(self, run: RunState, group: tuple[str, str, str], chunk: list[tuple[int, int]],
                  base: torch.Tensor, isolate: bool) -> None:
        """One generate call for ``chunk``'s (probe, sample) rows; if it fails, its probes are retried in halves."""
        text, prefix, image_spec = group
        probes = run.probes
        t0 = time.perf_counter()
        try:
            vectors = torch.stack([self.vector(probes[i]) for i, _ in chunk])
            uniforms = torch.stack([self._uniforms(probes[i], j) for i, j in chunk])
            texts, counts, logp = self.generate(text, image_spec, vectors, uniforms=uniforms)
        except Exception as exc:
            if not isolate:
                raise
            owners = sorted({i for i, _ in chunk})
            if len(owners) == 1:
                run.fail(owners[0], exc)
                return
            log.warning("a generate call of %d probes failed (%s); retrying them in halves", len(owners),
                        first_line(exc))
            half = set(owners[: len(owners) // 2])
            for part in ([r for r in chunk if r[0] in half], [r for r in chunk if r[0] not in half]):
                self._run_rows(run, group, part, base, isolate)
            return
        share = (time.perf_counter() - t0) / len(chunk)
        for r, (i, j) in enumerate(chunk):
            run.add(i, j, (strip_answer(texts[r], prefix), counts[r]), logp[r], share, base)

    def _uniforms(self, probe: Probe, sample: int) -> torch.Tensor:
        n = self.settings.max_new_tokens
        if probe.greedy:
            return torch.full((n,), float("nan"), dtype=torch.float64)
        return uniform_stream(probe.seed, sample, n)


def _count_until(tokens: list[int], stops: set[int]) -> int:
    for n, tok in enumerate(tokens):
        if tok in stops:
            return n
    return len(tokens)
