"""Per-row seeded sampling inside a greedy generate call, so any batch packing gives the same texts.

Each sampled row owns a stream of uniform numbers drawn from its own seed. At every step the
processor turns the row's logits into the temperature / top-k / top-p distribution and picks the
token by inverse-CDF with the row's next uniform number, then leaves only that token finite, so
the greedy argmax selects it. Greedy rows (NaN streams) are left untouched. Vectorised over rows.
"""

from __future__ import annotations

import hashlib

import torch


def uniform_stream(seed: int, sample: int, length: int) -> torch.Tensor:
    """[length] uniforms in [0, 1) that depend only on (seed, sample)."""
    digest = hashlib.sha256(f"sample:{seed}:{sample}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.rand(length, generator=gen, dtype=torch.float64)


class SeededSampler:
    """A transformers logits processor: row b samples with uniforms[b] (NaN rows stay greedy)."""

    def __init__(self, uniforms: torch.Tensor, prompt_len: int, temperature: float, top_k: int, top_p: float):
        self.uniforms = uniforms  # [rows, max_new_tokens], float64, NaN for greedy rows
        self.prompt_len = prompt_len
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.sampled = ~torch.isnan(uniforms[:, 0])
        self.any_sampled = bool(self.sampled.any())  # once, not a host sync per step

    def padded(self, rows: int) -> SeededSampler:
        """The same sampler over ``rows`` rows, the added ones greedy."""
        extra = self.uniforms.new_full((rows - self.uniforms.shape[0], self.uniforms.shape[1]), float("nan"))
        return SeededSampler(torch.cat([self.uniforms, extra]), self.prompt_len, self.temperature, self.top_k,
                             self.top_p)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # scores: [rows, vocab] after the processors before it (e.g. min new tokens)
        return self.choose(scores, input_ids.shape[1] - self.prompt_len)

    def choose(self, scores: torch.Tensor, step: int) -> torch.Tensor:
        """Scores [rows, vocab] at answer token ``step`` with each sampled row's pick the only finite one."""
        if not self.any_sampled:
            return scores
        u = self.uniforms[:, min(step, self.uniforms.shape[1] - 1)].to(scores.device)
        logits = scores.float() / max(self.temperature, 1e-6)
        k = min(self.top_k, logits.shape[-1]) if self.top_k else logits.shape[-1]
        top_vals, top_idx = logits.topk(k, dim=-1)  # sorted descending: [rows, k]
        probs = torch.softmax(top_vals, dim=-1)
        cum = probs.cumsum(-1)
        keep = (cum - probs) < self.top_p  # always keeps the first token
        probs = probs * keep
        cum = probs.cumsum(-1)
        target = (u.clamp(0, 1 - 1e-12) * cum[:, -1].double()).to(cum.dtype)[:, None]
        pick = torch.searchsorted(cum.contiguous(), target).clamp_max(k - 1)  # [rows, 1]
        chosen = top_idx.gather(-1, pick)  # [rows, 1]
        forced = torch.full_like(scores, float("-inf")).scatter(-1, chosen, 0.0)
        return torch.where(self.sampled.to(scores.device)[:, None], forced, scores)


class MinNewTokens:
    """A logits processor that forbids the end-of-sequence ids before ``min_new`` answer tokens.

    It does what transformers' own ``min_new_tokens`` does, but as one of our processors, so it can run
    after FirstStepLogProbs: transformers puts its own processors first, and the recorded first-step
    distribution (the KL's) would then carry -inf at the eos ids and make the KL NaN.
    """

    def __init__(self, prompt_len: int, min_new: int, eos: list[int]) -> None:
        self.prompt_len = prompt_len
        self.min_new = min_new
        self.eos = torch.tensor(eos, dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] - self.prompt_len >= self.min_new or not len(self.eos):
            return scores
        return scores.index_fill(-1, self.eos.to(scores.device), float("-inf"))


class RepetitionPenalty:
    """A checkpoint's ``repetition_penalty`` for the fast decode path, as one [rows, vocab] mask.

    HF generate's processor gathers the scores of every token the row holds (its prompt without the
    left padding, then its answer so far) and divides them by the penalty (multiplies the negative
    ones); here the set of held tokens is a boolean mask, filled from the prompt once and one token
    per step, so a step costs one ``where`` on the whole batch and no gather over the sequence.
    """

    def __init__(self, penalty: float, input_ids: torch.Tensor, attention: torch.Tensor, vocab: int,
                 rows_of: torch.Tensor | None = None) -> None:
        """input_ids, attention: [prompts, length] (left padding 0); rows_of: the prompt each output row
        continues (None: one row per prompt)."""
        self.penalty = penalty
        self.vocab = vocab
        # One spare column takes the padding and any id past the head's vocabulary (never generated).
        held = input_ids.clamp(max=vocab).masked_fill(attention == 0, vocab)
        seen = torch.zeros(input_ids.shape[0], vocab + 1, dtype=torch.bool, device=input_ids.device)
        seen.scatter_(1, held, True)
        self.seen = seen if rows_of is None else seen[rows_of]  # [rows, vocab + 1]

    def apply(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores [rows, vocab] with every held token's score penalised."""
        penalised = torch.where(scores < 0, scores * self.penalty, scores / self.penalty)
        return torch.where(self.seen[:, : self.vocab], penalised, scores)

    def hold(self, tokens: torch.Tensor) -> None:
        """Add each row's new token [rows] to what it holds."""
        self.seen.scatter_(1, tokens.clamp(max=self.vocab)[:, None], True)


def repetition_penalty(generation_config: object) -> float | None:
    """The penalty a model's generation config asks HF generate for (None: none)."""
    value = getattr(generation_config, "repetition_penalty", None)
    return None if value is None or float(value) == 1.0 else float(value)


class FirstStepLogProbs:
    """A logits processor that keeps only the first step's log-probs [rows, vocab] (float32).

    Cheaper than ``output_logits=True``, which keeps every step's full-vocabulary logits.
    """

    def __init__(self, prompt_len: int) -> None:
        self.prompt_len = prompt_len
        self.logprobs: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == self.prompt_len:
            self.logprobs = torch.log_softmax(scores.float(), dim=-1)
        return scores
