"""Fast decode: one multimodal prefill, then the language model alone on a static KV cache.

HF ``generate`` on a VLM pays for its generality at every step: it rebuilds the multimodal inputs,
grows a dynamic cache by concatenation, rebuilds the attention mask, runs the processors and
stopping criteria, and syncs with the host to ask whether every row is done. Here the vision
tower, projector and language-model prefill run once through the model's own forward (so the
steering hook, the prefix cache and Gemma-3's bidirectional image attention apply exactly as on the
HF path), the prefill cache is copied into preallocated static layers, and every later step is
one call of the language model and its head on the whole batch: token ids in, next-token logits
out. End of sequence lives in a tensor, checked on the host only every few steps. On CUDA the step
can be compiled (with CUDA graphs), which the static cache makes possible.

The answers are the HF path's: same positions and padding, the same greedy choice, the same
per-row seeded sampling (steering.sampling), and first-step log-probs from the same prefill. What a
family's generate does differently (PaliGemma's 1-based positions and capped logits, Qwen2.5-VL's
multimodal rotary positions) is data in ``FamilyRules``, one entry per supported model type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from steering.sampling import RepetitionPenalty, SeededSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FamilyRules:
    """What one family's HF generate does beyond a plain causal-LM step (all read off its transformers code).

    Everything else is shared: the decode step attends causally to every earlier non-padding token
    (the prefill's special masks, Gemma-3's bidirectional image blocks and PaliGemma's bidirectional
    prefix, only apply while the image is in the input), and each step's positions are the last
    prompt token's plus the step (transformers' generic ``_update_model_kwargs_for_generation``).
    """

    position_offset: int = 0
    """Added to every position the model sees: PaliGemma's ``prepare_inputs_for_generation`` counts from 1."""
    extra_positions: Callable[[nn.Module, dict[str, torch.Tensor], torch.Tensor], torch.Tensor] | None = None
    """(model, batch, text positions [rows, prompt]) -> [k, rows, prompt] position rows fed after the
    text row: Qwen2.5-VL's multimodal rotary (temporal, height, width) positions."""
    softcap_logits: bool = False
    """The VLM's head caps its logits at the text config's ``final_logit_softcapping`` (PaliGemma 2's
    Gemma-2); Gemma-3's conditional-generation head does not, whatever its text config says."""


def _mrope_positions(model: nn.Module, batch: dict[str, torch.Tensor], text: torch.Tensor) -> torch.Tensor:
    """Qwen2.5-VL's [3, rows, prompt] rotary positions, as its ``_prepare_position_ids_for_generation``
    builds them: ``get_rope_index`` when the processor marked the image tokens, else the text positions."""
    grids = {k: batch[k] for k in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts") if k in batch}
    if batch.get("mm_token_type_ids") is None or not ({"image_grid_thw", "video_grid_thw"} & grids.keys()):
        return text[None].expand(3, -1, -1)
    # Decode steps need no rope deltas here: generate adds 1 per step to all four rows of the
    # prefill's last position (the generic update), which is what FastDecoder does.
    positions, _ = model.model.get_rope_index(batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"],
                                              attention_mask=batch.get("attention_mask"), **grids)
    return positions


_RULES: dict[str, FamilyRules] = {
    "gemma3": FamilyRules(),
    "internvl": FamilyRules(),
    "llava": FamilyRules(),
    "llava_onevision": FamilyRules(),
    "paligemma": FamilyRules(position_offset=1, softcap_logits=True),
    "qwen2_5_vl": FamilyRules(extra_positions=_mrope_positions),
}
"""Per-family rules of the fast path, by ``config.model_type``."""

FAST_FAMILIES: tuple[str, ...] = tuple(_RULES)
"""Model types whose language model is checked token for token against HF generate (tests/steering/test_decode.py)."""

NOT_INPUTS = frozenset({"labels"})
"""Processor outputs that are no input of generation: PaliGemma's processor returns ``labels`` with every
prompt, and a forward given labels computes a loss against them (which fails with ``logits_to_keep=1``)."""


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` (processor outputs) without what the model's forward must not be given (``NOT_INPUTS``)."""
    return {k: v for k, v in batch.items() if k not in NOT_INPUTS}


_ATTENTION = ("sdpa", "eager")
"""Attention implementations whose masks we build ourselves (a boolean or an additive [rows, 1, 1, keys] mask)."""

# Generation-config fields that would make HF generate add processors or stopping rules of its own;
# where one is set we leave the model to HF generate rather than reimplement it. (repetition_penalty,
# which Qwen2.5-VL's checkpoints set, is reimplemented: steering.sampling.RepetitionPenalty.)
_DEFAULTS: dict[str, Any] = {
    "no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,),
    "min_length": (None, 0), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
    "sequence_bias": (None,), "suppress_tokens": (None,), "begin_suppress_tokens": (None,),
    "exponential_decay_length_penalty": (None,), "renormalize_logits": (None, False),
    "guidance_scale": (None, 1.0), "watermarking_config": (None,), "stop_strings": (None,),
    "prefill_chunk_size": (None,), "encoder_no_repeat_ngram_size": (None, 0),
}


def unsupported_reason(model: nn.Module, prompt_len: int, max_new_tokens: int) -> str | None:
    """Why the fast path cannot run this model and length (None: it can)."""
    config = model.config
    family = getattr(config, "model_type", type(model).__name__)
    if family not in FAST_FAMILIES:
        return f"model type {family!r} is not one of {FAST_FAMILIES}"
    text = config.get_text_config(decoder=True)
    if getattr(text, "_attn_implementation", None) not in _ATTENTION:
        return f"attention implementation {text._attn_implementation!r} is not one of {_ATTENTION}"
    # use_bidirectional_attention (PaliGemma's config sets it for its prefix) needs no rule: one decode
    # query sees every earlier key under a bidirectional mask as under a causal one, and the
    # prefill runs through the model's own forward.
    types = set(getattr(text, "layer_types", None) or ["full_attention"])
    if not types <= {"full_attention", "sliding_attention"}:
        return f"layer types {sorted(types)} are not plain full or sliding attention"
    if "sliding_attention" in types and not getattr(text, "sliding_window", None):
        return "sliding layers without a sliding_window"
    if not hasattr(model, "lm_head") or not hasattr(getattr(model, "model", None), "language_model"):
        return "no model.language_model / lm_head"
    gen = model.generation_config
    for name, allowed in _DEFAULTS.items():
        if getattr(gen, name, None) not in allowed:
            return f"generation_config.{name}={getattr(gen, name)!r} needs HF generate's processors"
    return None


@dataclass
class DecodeOutput:
    tokens: torch.Tensor
    """[rows, new_tokens] generated ids; a finished row continues with the pad id, as in HF generate."""
    first_logprobs: torch.Tensor
    """[rows, vocab] float32 log-probs of the first answer token, before any processing."""
    logits: torch.Tensor | None = None
    """[rows, new_tokens, vocab] every step's raw logits, when asked for (tests compare them with HF's)."""


class FastDecoder:
    """Prefill through the VLM's forward, then decode with its language model on a static cache.

    One decoder per model; it keeps the static cache (and the compiled step) between calls of the
    same shape, so a run of equal batches allocates and compiles once.
    """

    def __init__(self, model: nn.Module, *, compile: bool | None = None, check_every: int = 8,
                 rows: int | None = None) -> None:
        self.model = model
        self.rows = rows
        """Rows every compiled step runs on (the engine's rows per call): fewer are padded up to it, so one
        run compiles one shape per cache length instead of one per chunk size; None: powers of two."""
        self.language_model: nn.Module = model.model.language_model
        self.head: nn.Module = model.lm_head
        device = next(model.parameters()).device
        self.compile = device.type == "cuda" if compile is None else compile
        self.check_every = max(1, check_every)
        text = model.config.get_text_config(decoder=True)
        self.rules = _RULES.get(getattr(model.config, "model_type", ""), FamilyRules())
        self._softcap: float | None = (getattr(text, "final_logit_softcapping", None)
                                       if self.rules.softcap_logits else None)
        self._boolean_mask = text._attn_implementation == "sdpa"
        self._layer_types: list[str] | None = getattr(text, "layer_types", None)
        sliding = self._layer_types is not None and "sliding_attention" in self._layer_types
        self._window: int | None = getattr(text, "sliding_window", None) if sliding else None
        self._cache: Any = None
        self._cache_shape: tuple[int, int] | None = None
        self._step: Callable[..., torch.Tensor] = self._forward
        if self.compile:
            # reduce-overhead = CUDA graphs: the step's kernels replay with one launch; the cache's
            # tensors keep their addresses (static layers, reset in place between calls).
            self._step = torch.compile(self._forward, mode="reduce-overhead", dynamic=False)

    # ------------------------------------------------------------------ cache

    def _static_cache(self, prefill: Any, rows: int, length: int) -> Any:
        """Static layers [rows, heads, length, head_dim] holding the prefill (reused when shapes repeat)."""
        from transformers.cache_utils import Cache, StaticLayer

        if self._cache is None or self._cache_shape != (rows, length) or len(self._cache.layers) != len(prefill.layers):
            # Plain static layers, also for sliding-window layers (their window is a mask in
            # _forward): StaticSlidingWindowLayer's Python-int bookkeeping would make a compiled
            # step recompile at every position, and the memory saved is small at answer lengths.
            self._cache = Cache(layers=[StaticLayer(max_cache_len=length) for _ in prefill.layers])
            self._cache_shape = (rows, length)
        else:
            self._cache.reset()
        return self._cache

    def _bucket(self, rows: int) -> int:
        """Rows the decode step runs on. A compiled step is specialised to its batch size, and compiling a
        full-size language model takes a minute or more, so every call pads up to ``self.rows`` (one
        shape; a decode step is bound by reading the weights, so padded rows cost little), or without it
        to a power of two (a handful of shapes, whatever the chunk sizes). Uncompiled: as asked."""
        if not self.compile:
            return rows
        if self.rows is not None and rows <= self.rows:
            return self.rows
        return 1 << max(0, rows - 1).bit_length()

    def _cache_length(self, tokens: int) -> int:
        """Cache slots for ``tokens``: rounded up to 128 when compiled, so prompts of nearby lengths
        share one cache and one compiled step (the extra slots stay masked)."""
        return -(-tokens // 128) * 128 if self.compile else tokens

    def cache_bytes(self) -> int:
        """GPU/CPU memory the kept static cache holds between calls."""
        if self._cache is None:
            return 0
        return sum(t.nbytes for layer in self._cache.layers if layer.is_initialized for t in (layer.keys, layer.values))

    # ------------------------------------------------------------------ one decode step

    def _forward(self, input_ids: torch.Tensor, positions: torch.Tensor, keep: torch.Tensor,
                 slot: torch.Tensor) -> torch.Tensor:
        """Logits [rows, vocab] (float32) for one new token per row written at cache slot ``slot``.

        input_ids: [rows]; positions: [*lead, rows] (lead: the family's extra position rows, if any);
        keep: [rows, length] keys a row may see (its prompt without left padding, and every answer
        slot); slot: 0-d index of the token being written.
        """
        slots = torch.arange(keep.shape[1], device=keep.device)
        visible = keep & (slots <= slot)  # causal over the cache: [rows, length]
        mask: torch.Tensor | dict[str, torch.Tensor] = self._attention_mask(visible)
        if self._layer_types is not None:
            # Sliding layers see the last `window` slots, counted in cache slots as HF's mask does.
            window = self._attention_mask(visible & (slots > slot - self._window)) if self._window else mask
            mask = {"full_attention": mask, "sliding_attention": window}
        out = self.language_model(input_ids=input_ids[:, None], attention_mask=mask, position_ids=positions[..., None],
                                  cache=self._cache, use_cache=True)
        return self._logits(out.last_hidden_state[:, -1])

    def _run_step(self, *args: torch.Tensor) -> torch.Tensor:
        """One decode step; a compiled step that fails (no C compiler, an unsupported op in this torch)
        is dropped for the uncompiled one with a warning, rather than failing the run it serves."""
        if self._step is self._forward:
            return self._forward(*args)
        try:
            return self._step(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure; the eager step re-raises real errors
            log.warning("the compiled decode step failed (%s: %s); decoding uncompiled from here on "
                        "(pass --no-compile to skip compiling)", type(exc).__name__, str(exc).splitlines()[0][:200])
            self._step = self._forward
            return self._forward(*args)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[rows, vocab] float32 logits from the last hidden states [rows, d], as the VLM's head computes them."""
        logits = self.head(hidden)
        if self._softcap is not None:  # in the model's dtype, before the float32 copy, as HF does
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits.float()

    def _attention_mask(self, visible: torch.Tensor) -> torch.Tensor:
        """[rows, 1, 1, length]: boolean for sdpa, additive for eager attention."""
        mask = visible[:, None, None, :]
        if self._boolean_mask:
            return mask
        dtype = self.head.weight.dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)

    # ------------------------------------------------------------------ generation

    def prefill_positions(self, batch: dict[str, torch.Tensor], attention: torch.Tensor) -> torch.Tensor:
        """The position ids HF generate feeds the prefill, [*lead, unique, prompt] (lead: extra rows).

        attention: [unique, prompt] (left padding 0). Real tokens count from 0 and padding sits at 0
        (``_prepare_position_ids_for_generation``), then the family's rules apply.
        """
        text = (attention.long().cumsum(-1) - 1).masked_fill(attention == 0, 0)  # [unique, prompt]
        positions = text
        if self.rules.extra_positions is not None:
            positions = torch.cat([text[None], self.rules.extra_positions(self.model, batch, text)])
        return positions + self.rules.position_offset

    @torch.no_grad()
    def generate(self, batch: dict[str, torch.Tensor], *, max_new_tokens: int, min_new_tokens: int = 0,
                 eos: list[int], pad: int, sampler: SeededSampler | None = None,
                 rows_of: torch.Tensor | None = None, keep_logits: bool = False,
                 repetition_penalty: float | None = None) -> DecodeOutput:
        """Greedy (or per-row seeded) answers for processor outputs ``batch``.

        One function on purpose: prefill, cache fan-out and the per-step loop share a dozen tensors whose
        shapes must stay in step (rows, cache length, slots); split apart, each piece would take and
        return most of them, and the loop is the hot path a GPU profile reads as one block.

        batch: the model's inputs for the distinct prompt rows (input_ids [unique, prompt], ...), run
        inside whatever steering / prefix-cache context the caller holds. rows_of: [rows] index of the
        prefill row each output row continues (rows that only differ in their samples share a
        prefill); None = one output row per batch row. sampler: per-output-row sampling, or None.
        keep_logits: also return every step's raw logits (memory: rows x steps x vocab).
        repetition_penalty: HF's repetition penalty over each row's prompt and answer (None: off),
        applied after the first-step log-probs are taken and before the minimum length and sampling.
        """
        from transformers import DynamicCache

        model = self.model
        batch = model_inputs(batch)
        ids = batch["input_ids"]  # [unique, prompt]
        unique, prompt_len = ids.shape
        device = ids.device
        attention = batch.get("attention_mask")
        if attention is None:
            attention = torch.ones_like(ids)
        positions = self.prefill_positions(batch, attention)  # [*lead, unique, prompt]
        prefill = DynamicCache(config=model.config.get_text_config(decoder=True))
        out = model(**batch, position_ids=positions, cache=prefill, use_cache=True, logits_to_keep=1,
                    return_dict=True)
        first = out.logits[:, -1].float()  # [unique, vocab]
        del out
        if rows_of is None:
            rows_of = torch.arange(unique, device=device)
        rows_of = rows_of.to(device)
        wanted = rows_of.shape[0]
        rows = self._bucket(wanted)
        if rows > wanted:  # greedy copies of row 0: they finish with it and are dropped at the end
            rows_of = torch.cat([rows_of, rows_of[:1].expand(rows - wanted)])
            sampler = sampler.padded(rows) if sampler is not None else None
        logits = first[rows_of]  # [rows, vocab]
        first_logprobs = torch.log_softmax(first, dim=-1)[rows_of]
        penalty = None
        if repetition_penalty is not None:
            penalty = RepetitionPenalty(repetition_penalty, ids, attention, first.shape[-1], rows_of)

        length = self._cache_length(prompt_len + max_new_tokens)
        cache = self._static_cache(prefill, rows, length)
        for layer, src in zip(cache.layers, prefill.layers):
            keys, values = src.keys[rows_of], src.values[rows_of]
            held = keys.shape[-2]
            if held < prompt_len:
                # A sliding layer's prefill cache holds only its last slots; the earlier ones lie
                # outside every later query's window, so they stay zero (and masked) here.
                keys = torch.cat([keys.new_zeros(*keys.shape[:2], prompt_len - held, keys.shape[-1]), keys], dim=-2)
                values = torch.cat([values.new_zeros(*values.shape[:2], prompt_len - held, values.shape[-1]), values],
                                   dim=-2)
            layer.update(keys, values)
        del prefill
        keep = torch.ones(rows, length, dtype=torch.bool, device=device)
        keep[:, :prompt_len] = attention[rows_of].bool()
        last_position = positions[..., -1][..., rows_of]  # [*lead, rows]

        eos_ids = torch.tensor(eos, dtype=torch.long, device=device)
        tokens = torch.full((rows, max_new_tokens), pad, dtype=torch.long, device=device)
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        pad_t = torch.tensor(pad, dtype=torch.long, device=device)
        slots = torch.arange(prompt_len, prompt_len + max_new_tokens, device=device)  # answer token i's slot
        steps = max_new_tokens
        kept: list[torch.Tensor] = []
        for step in range(max_new_tokens):
            if step > 0:
                logits = self._run_step(tokens[:, step - 1].contiguous(), last_position + step, keep, slots[step - 1])
            if keep_logits:
                kept.append(logits.clone())
            scores = logits if penalty is None else penalty.apply(logits)
            if step < min_new_tokens and eos:
                scores = scores.index_fill(-1, eos_ids, float("-inf"))
            if sampler is not None:
                scores = sampler.choose(scores, step)
            chosen = torch.where(done, pad_t, scores.argmax(-1))
            tokens[:, step] = chosen
            if penalty is not None:
                penalty.hold(chosen)
            if eos:
                done |= torch.isin(chosen, eos_ids)
                if (step + 1) % self.check_every == 0 and bool(done.all()):
                    steps = step + 1
                    break
        tokens = tokens[:, :steps]
        if eos:  # HF stops right after the step at which the last row finished
            hit = torch.isin(tokens, eos_ids)
            if bool(hit.any(-1).all()):
                tokens = tokens[:, : int(hit.int().argmax(-1).max()) + 1]
        tokens, first_logprobs = tokens[:wanted], first_logprobs[:wanted]
        stacked = torch.stack(kept[: tokens.shape[1]], dim=1)[:wanted] if keep_logits else None
        return DecodeOutput(tokens=tokens, first_logprobs=first_logprobs, logits=stacked)
