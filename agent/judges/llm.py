"""A judge backed by a chat model: renders the evidence, validates the reply, re-asks on invalid replies."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import prompts
from agent.evidence import EvidenceItem, ImageItem
from agent.judges.base import JudgeContext, JudgeError, JudgeTurn, Usage
from agent.judges.redact import redact
from agent.probes import describe_probe
from agent.verdicts import VERDICT_SCHEMA, VerdictError, parse_verdict

log = logging.getLogger(__name__)

MAX_REASKS = 2
PROMPT_NAMES = ("judge_system", "judge_round", "judge_reask")


@dataclass
class Completion:
    """One chat completion: the reply text and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""


class SchemaUnsupportedError(JudgeError):
    """The endpoint refused a request because of its JSON-schema response format."""


class ChatBackend(Protocol):
    """Something that answers a list of chat messages (an OpenAI-compatible server, or a script)."""

    def describe(self) -> dict[str, Any]:
        """kind, model and endpoint, never secrets (part of the judge-call cache key)."""
        ...

    @property
    def json_mode(self) -> str:
        """``schema`` when the backend enforces VERDICT_SCHEMA, else ``text`` (JSON asked for in words)."""
        ...

    def use_text_mode(self) -> None:
        """Stop sending the schema (the server does not support structured output)."""
        ...

    async def complete(self, messages: list[dict[str, Any]], *, schema: dict[str, Any] | None) -> Completion:
        """Raises SchemaUnsupportedError, JudgeCallError or JudgeFatalError on failure. A message's
        content is text, or a list of OpenAI content parts (text and image_url) when images are attached."""
        ...


def prompt_refs() -> list[str]:
    return [prompts.load(n).ref for n in PROMPT_NAMES]


def item_view(item: EvidenceItem) -> dict[str, Any]:
    p = item.probe
    if item.role == "baseline":
        title = "baseline (strength 0)"
    elif item.role == "control":
        title = f"control: random direction, strength {p.strength:g}"
    else:
        title = f"steered, strength {p.strength:g}"
    if p.samples > 1:
        title += f", {p.samples} samples"
    if p.base_image != "white":
        title += f", {p.base_image} base image"
    if p.prompt == "ask":
        title += f", asked {p.question!r}"
    return {"id": item.id, "title": title, "texts": list(item.result.texts), "reason": item.reason,
            "kl": None if item.role == "baseline" else f"{item.result.kl_first:.3f}", "name": describe_probe(p)}


def image_view(item: ImageItem) -> dict[str, Any]:
    r = item.result
    shown = len(r.image_ids)
    images = f"{shown} masked top image{'s' if shown != 1 else ''}"
    if r.mode == "hybrid":
        title = f"hybrid description of {images}, steered at strength {r.strength:g} where the feature fires"
    else:
        title = f"top-k description of {images}"
    texts = [t for t in r.texts if t.strip()]
    if not r.texts:
        title = f"{r.mode}: no description ({r.note or 'the feature fired on none of the images'})"
    elif not texts:
        title += " (the model's answer was empty)"
    return {"id": item.id, "title": title, "texts": texts}


def build_messages(ctx: JudgeContext, json_mode: str) -> list[dict[str, Any]]:
    """The conversation for round ``ctx.round``: system, then per round its evidence and the accepted reply.

    With ``ctx.pictures`` the first user message is a list of content parts: its text, then one
    ``image_url`` part (a PNG data URL) per masked top image.
    """
    world = ctx.world
    modes = sorted({i.role for i in ctx.evidence.images}, key=["topk", "hybrid"].index)
    system = prompts.load("judge_system").render(
        model=world.get("model", "?"), sae=world.get("sae", "?"), layer=world.get("layer", "?"),
        base_image=world.get("base_image", "white"), max_rounds=ctx.max_rounds, max_samples=ctx.max_samples,
        json_mode=json_mode, image_modes=modes,
        n_images=max((i.result.n_images for i in ctx.evidence.images), default=0), pictures=bool(ctx.pictures),
    )
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    replies = {t.round: t.raw for t in ctx.history}
    for r in range(1, ctx.round + 1):
        last = r == ctx.round
        items = [item_view(i) for i in ctx.evidence.in_round(r)]
        images = [image_view(i) for i in ctx.evidence.images_in_round(r)]
        user = prompts.load("judge_round").render(
            round=r, max_rounds=ctx.max_rounds, feature=ctx.feature, items=items, images=images,
            pictures=bool(ctx.pictures) and r == 1,
            strengths=[f"{s:g}" for s in ctx.strengths], note=ctx.note if r == 1 else None,
            force_final=ctx.force_final if last else False,
            probes_left=ctx.probes_left if last else 0,
        )
        if r == 1 and ctx.pictures:
            parts: list[dict[str, Any]] = [{"type": "text", "text": user}]
            parts += [{"type": "image_url", "image_url": {"url": url}} for url in ctx.pictures]
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": user})
        if not last:
            messages.append({"role": "assistant", "content": replies.get(r, "")})
    return messages


def request_key(backend: dict[str, Any], messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> str:
    payload = json.dumps({"backend": backend, "messages": messages, "schema": schema}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class LLMJudge:
    """Judge that asks a chat backend, with validated verdicts and at most ``max_reasks`` re-asks."""

    is_llm = True

    def __init__(self, backend: ChatBackend, max_reasks: int = MAX_REASKS) -> None:
        self.backend = backend
        self.max_reasks = max_reasks
        desc = backend.describe()
        self.name = f"{desc.get('kind', 'llm')}:{desc.get('model', '?')}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "llm", "backend": self.backend.describe(), "prompts": prompt_refs(),
                "max_reasks": self.max_reasks}

    async def decide(self, ctx: JudgeContext) -> JudgeTurn:
        t0 = time.perf_counter()
        turn = JudgeTurn(verdict=None, raw="", attempts=0, cached=True)
        mode = self.backend.json_mode
        messages = build_messages(ctx, mode)
        attempt = 0
        while attempt < 1 + self.max_reasks:
            try:
                completion, cached, key = await self._call(ctx, messages, mode)
            except SchemaUnsupportedError as exc:
                if mode == "text":
                    raise
                # The server refuses structured output: ask for JSON in words from now on.
                log.warning("judge endpoint refuses JSON-schema output (%s); falling back to JSON in text",
                            redact(str(exc)))
                self.backend.use_text_mode()
                mode = "text"
                messages = build_messages(ctx, mode)
                continue
            attempt += 1
            turn.attempts = attempt
            turn.usage.add(completion.usage)
            turn.cached = turn.cached and cached
            turn.calls.append({"key": key, "cached": cached, "tokens": completion.usage.total_tokens,
                               "cost_usd": completion.usage.cost_usd})
            turn.raw = completion.text
            try:
                turn.verdict = parse_verdict(completion.text, ctx.validation_context())
                turn.error = None
                break
            except VerdictError as exc:
                turn.error = redact(str(exc))  # stored and shown: no credential a reply may quote
                log.info("feature %d round %d: invalid verdict (attempt %d): %s", ctx.feature, ctx.round, attempt,
                         turn.error)
                messages = messages + [
                    {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": prompts.load("judge_reask").render(error=str(exc))},
                ]
        turn.seconds = time.perf_counter() - t0
        return turn

    def check(self, timeout: float = 3.0) -> None:
        """The backend's own check (an OpenAI endpoint: reachable); backends without one pass."""
        check = getattr(self.backend, "check", None)
        if callable(check):
            check(timeout=timeout)

    async def aclose(self) -> None:
        close = getattr(self.backend, "aclose", None)
        if close is not None:
            await close()

    async def _call(self, ctx: JudgeContext, messages: list[dict[str, Any]],
                    mode: str) -> tuple[Completion, bool, str]:
        schema = VERDICT_SCHEMA if mode == "schema" else None
        key = request_key(self.backend.describe(), messages, schema)
        if ctx.cache is not None and ctx.read_cache:
            hit = ctx.cache.get_judge_call(key)
            if hit is not None:
                return Completion(text=hit["text"], usage=Usage(), model=hit.get("model", "")), True, key
        completion = await self.backend.complete(messages, schema=schema)
        if ctx.cache is not None:
            ctx.cache.put_judge_call(key, {
                "text": completion.text, "model": completion.model, "usage": completion.usage.to_dict(),
                "backend": self.backend.describe(), "feature": ctx.feature, "round": ctx.round,
                "at": time.time(),
            })
        return completion, False, key
