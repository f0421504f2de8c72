"""Forced choice, a measure that needs no ground truth: given a feature's explanation and three sets
of steered descriptions (the feature's own and two other features'), which set is the feature's?
An explanation that says something specific lets a reader pick right more often than chance (1/3).

Two readers: an embedding one (works offline, pairs with the offline judge), and any chat model
behind an OpenAI-compatible endpoint (``LLMChooser``), validated and re-asked like the judge.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

import prompts
from agent.eval.embeddings import Embedder, set_similarity
from agent.eval.metrics import rate
from steering.text import degenerate

log = logging.getLogger(__name__)

PROMPT = "judge_forced_choice"
MAX_TEXTS_PER_SET = 8
"""Descriptions shown per set (distinct ones first), to keep the prompt short."""


@dataclass(frozen=True)
class Trial:
    """One forced choice: the explained feature, the features behind sets 1..n, and the right answer."""

    feature: int
    options: tuple[int, ...]
    """Features whose descriptions make up sets 1..n, in the order shown."""

    @property
    def answer(self) -> int:
        """1-based number of the explained feature's set."""
        return self.options.index(self.feature) + 1


def make_trials(features: Sequence[int], pool: Sequence[int], distractors: int, seed: int) -> list[Trial]:
    """One trial per feature: ``distractors`` other features from ``pool`` and a shuffled order,
    both drawn from (seed, feature) so a trial does not depend on which other features are evaluated."""
    out = []
    for f in features:
        others = sorted(set(pool) - {f})
        if len(others) < distractors:
            continue
        rng = random.Random(f"forced-choice:{seed}:{f}")
        options = [f] + rng.sample(others, distractors)
        rng.shuffle(options)
        out.append(Trial(f, tuple(options)))
    return out


def shown_texts(texts: Sequence[str], limit: int = MAX_TEXTS_PER_SET) -> list[str]:
    """Distinct texts first (in order), then repeats, at most ``limit``."""
    distinct = list(dict.fromkeys(texts))
    return distinct[:limit]


# ----------------------------------------------------------------------------- readers


def embedding_choice(embedder: Embedder, explanation: str, sets: Sequence[Sequence[str]]) -> int:
    """1-based number of the set whose descriptions are most similar to the explanation."""
    sims = set_similarity(embedder, explanation, sets)
    return 1 + max(range(len(sims)), key=lambda i: (sims[i], -i))


class Choice(BaseModel):
    """A reader's answer to one forced choice."""

    choice: int = Field(ge=1)
    reason: str = ""


def choice_schema(n: int) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["choice", "reason"],
            "properties": {"choice": {"type": "integer", "enum": list(range(1, n + 1))},
                           "reason": {"type": "string"}}}


def parse_choice(text: str, n: int) -> int:
    """The chosen set from a reply (JSON, possibly fenced); raises ValueError when there is none."""
    body = text.strip()
    fenced = re.search(r"\{.*\}", body, re.DOTALL)
    if fenced:
        body = fenced.group(0)
    try:
        c = Choice.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"not a JSON object with an integer 'choice' ({exc.__class__.__name__})") from None
    if not 1 <= c.choice <= n:
        raise ValueError(f"'choice' must be between 1 and {n}, got {c.choice}")
    return c.choice


def render_messages(explanation: str, sets: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    text = prompts.load(PROMPT).render(explanation=explanation, sets=[shown_texts(s) for s in sets], n=len(sets))
    return [{"role": "user", "content": text}]


class LLMChooser:
    """Asks a chat backend (agent.judges ChatBackend) to pick the set; caches each call."""

    def __init__(self, backend: Any, cache: Any | None = None, max_reasks: int = 1, concurrency: int = 4) -> None:
        self.backend = backend
        self.cache = cache
        self.max_reasks = max_reasks
        self.concurrency = concurrency
        self.tokens = 0
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend.describe(), "prompt": prompts.load(PROMPT).ref}

    async def _ask(self, messages: list[dict[str, str]], n: int) -> int | None:
        schema = choice_schema(n) if self.backend.json_mode == "schema" else None
        for attempt in range(1 + self.max_reasks):
            key = hashlib.sha256(json.dumps({"b": self.backend.describe(), "m": messages, "s": schema},
                                            sort_keys=True).encode()).hexdigest()
            hit = self.cache.get_judge_call(key) if self.cache is not None else None
            if hit is not None:
                text = hit["text"]
            else:
                from agent.judges.llm import SchemaUnsupportedError

                try:
                    completion = await self.backend.complete(messages, schema=schema)
                except SchemaUnsupportedError:
                    self.backend.use_text_mode()
                    schema = None
                    completion = await self.backend.complete(messages, schema=None)
                self.calls += 1
                self.tokens += completion.usage.total_tokens
                text = completion.text
                if self.cache is not None:
                    self.cache.put_judge_call(key, {"text": text, "model": completion.model, "kind": "forced-choice"})
            try:
                return parse_choice(text, n)
            except ValueError as exc:
                log.info("forced choice: invalid reply (attempt %d): %s", attempt + 1, exc)
                messages = messages + [{"role": "assistant", "content": text},
                                       {"role": "user", "content": prompts.load("judge_reask").render(error=str(exc))}]
        return None

    async def achoose(self, items: Sequence[tuple[str, Sequence[Sequence[str]]]]) -> list[int | None]:
        slots = asyncio.Semaphore(max(1, self.concurrency))

        async def one(explanation: str, sets: Sequence[Sequence[str]]) -> int | None:
            async with slots:
                try:
                    return await self._ask(render_messages(explanation, sets), len(sets))
                except Exception as exc:  # noqa: BLE001 - a failed call is an unanswered trial
                    log.warning("forced choice call failed: %s", exc)
                    return None

        try:
            return list(await asyncio.gather(*(one(e, s) for e, s in items)))
        finally:
            close = getattr(self.backend, "aclose", None)
            if close is not None:
                await close()

    def choose(self, items: Sequence[tuple[str, Sequence[Sequence[str]]]]) -> list[int | None]:
        return asyncio.run(self.achoose(items))


# ----------------------------------------------------------------------------- scoring


def forced_choice(trials: Sequence[Trial], explanations: dict[int, str | None], texts: dict[int, list[str]],
                  reader: Embedder | LLMChooser) -> dict[str, Any]:
    """Accuracy of ``reader`` over the trials whose feature has an explanation.

    A trial without an explanation (a failed record) or without an answer counts as wrong: the
    measure is of the explainer, and saying nothing should not raise it.
    """
    usable = [t for t in trials if all(texts.get(o) for o in t.options)]
    items = [("" if degenerate(explanations.get(t.feature)) else str(explanations.get(t.feature)),
              [texts[o] for o in t.options]) for t in usable]
    if isinstance(reader, LLMChooser):
        asked = [i for i, (e, _s) in enumerate(items) if e]
        answers: list[int | None] = [None] * len(items)
        for i, a in zip(asked, reader.choose([items[i] for i in asked])):
            answers[i] = a
    else:
        answers = [embedding_choice(reader, e, s) if e else None for e, s in items]
    right = [a == t.answer for a, t in zip(answers, usable)]
    n_opts = len(usable[0].options) if usable else 3
    return {"accuracy": rate(right).to_dict(), "chance": round(1 / n_opts, 6),
            "unanswered": sum(a is None for a in answers),
            "trials": [{**asdict(t), "answer": t.answer, "chosen": a} for t, a in zip(usable, answers)]}
