"""A judge backed by a chat model: renders the evidence, validates the reply, re-asks on invalid replies."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import prompts
from agent.judges.evidence import EvidenceItem, ImageItem, TestItem, item_view  # noqa: F401 - item_view re-exported
from agent.judges.examples import example_for, examples_ref, reply_json
from agent.judges.base import JudgeCallError, JudgeContext, JudgeError, JudgeTurn, Usage
from agent.judges.redact import redact
from agent.judges.verdicts import (
    CONSTRAINED_SCHEMA,
    MINIMAL_EXAMPLE,
    VERDICT_SCHEMA,
    VerdictError,
    constrained_schema,
    parse_verdict,
)
from steering.activation_tests import EDIT_MEANING, EDITS, RENDER_FAMILIES

log = logging.getLogger(__name__)

MAX_REASKS = 2
PROMPT_NAMES = ("judge_system", "judge_round", "judge_reask")


@dataclass
class Completion:
    """One chat completion: the reply text and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    truncated: bool = False
    """The reply was cut by max_tokens (finish_reason ``length``)."""
    seconds: float = 0.0
    format: str = ""
    """The response format the request used (schema, json_object or text)."""
    stored: Usage = field(default_factory=Usage)
    """For a reply served from the store: what it cost when it was first asked."""
    cut: int = 0
    """Characters dropped from a reply longer than ``reply_cap`` allows (the server ignored max_tokens)."""


class SchemaUnsupportedError(JudgeError):
    """The endpoint refused a request because of its response format (``mode``: the one sent)."""

    def __init__(self, message: str, mode: str | None = None) -> None:
        super().__init__(message)
        self.mode = mode


class ContextTooLongError(JudgeError):
    """The request does not fit the server's context window (``limit`` tokens, where the error says)."""

    def __init__(self, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


SCHEMAS = {"schema": VERDICT_SCHEMA, "json_object": CONSTRAINED_SCHEMA, "text": None}
"""The schema each response format sends (json_object: the union a constrained decoder can follow)."""
SHRINK_LEVELS = 3
"""Ever shorter transcripts tried when the context window is too small (0: all the evidence)."""
REPLY_SHOWN = 300
"""Characters of an invalid reply sent back in a re-ask (never the whole runaway reply)."""
CHARS_PER_TOKEN_KEPT = 16
"""Characters of a reply kept (stored, parsed, exported) per token of max_tokens: four times a typical token,
so a reply the server cut at max_tokens is kept whole, and only one from a server that ignored the cap is cut."""
UNCAPPED_CHARS = 65_536
"""Characters of a reply kept when no max_tokens is set."""


def reply_cap(max_tokens: int | None) -> int:
    """The longest reply kept, in characters, for a request capped at ``max_tokens``."""
    return max_tokens * CHARS_PER_TOKEN_KEPT if max_tokens else UNCAPPED_CHARS


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
    return [prompts.load(n).ref for n in PROMPT_NAMES] + [examples_ref()]


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


def result_view(item: TestItem) -> dict[str, Any]:
    """An activation test's result in one line (ActivationTestResult.line), under its number."""
    return {"id": item.id, "line": item.result.line(), "reason": item.reason}


def tests_offered(ctx: JudgeContext) -> list[str]:
    """The test kinds the judge may ask for in this round (none in a forced final round)."""
    if ctx.force_final or not ctx.world.get("tests_left", 1):
        return []
    return [k for k in ("render", "edit") if k in (ctx.world.get("tests") or [])]


def _example(kinds: list[str]) -> dict[str, Any] | None:
    example = example_for(kinds)
    if example is None:
        return None
    return {**example, "ask_json": reply_json(example["ask"]), "final_json": reply_json(example["final"])}


def shrink_view(view: dict[str, Any], level: int) -> dict[str, Any]:
    """An evidence item with fewer samples and shorter descriptions (level 0: unchanged)."""
    if level <= 0:
        return view
    keep, chars = (2, 160) if level == 1 else (1, 80)
    texts = [t if len(t) <= chars else t[: chars - 3] + "..." for t in view["texts"][:keep]]
    return {**view, "texts": texts}


def build_messages(ctx: JudgeContext, json_mode: str, *, instructions: str = "system",
                   shrink: int = 0) -> list[dict[str, Any]]:
    """The conversation for round ``ctx.round``: instructions, then per round its evidence and the accepted reply.

    ``instructions="user"`` puts them at the top of the first user message instead of a system message
    (some chat templates, e.g. llama-cpp-python's gemma, drop system messages). ``shrink`` 1-2 sends
    fewer samples and shorter descriptions, and from 2 on older rounds' replies as one-line summaries.
    With ``ctx.pictures`` the first user message is a list of content parts: its text, then one
    ``image_url`` part (a PNG data URL) per masked top image.
    """
    world = ctx.world
    modes = sorted({i.role for i in ctx.evidence.images}, key=["topk", "hybrid"].index)
    kinds = tests_offered(ctx)
    system = prompts.load("judge_system").render(
        model=world.get("model", "?"), sae=world.get("sae", "?"), layer=world.get("layer", "?"),
        base_image=world.get("base_image", "white"), max_rounds=ctx.max_rounds, max_samples=ctx.max_samples,
        json_mode=json_mode, image_modes=modes,
        n_images=max((i.result.n_images for i in ctx.evidence.images), default=0), pictures=bool(ctx.pictures),
        tests=kinds, tests_left=world.get("tests_left"), families=list(RENDER_FAMILIES),
        edits=[{"name": e, "meaning": EDIT_MEANING[e]} for e in EDITS], example=_example(kinds),
    )
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if instructions == "system" else []
    replies = {t.round: t.raw if shrink < 2 else _summary(t) for t in ctx.history}
    dropped = {t.round + 1: [d.line() for d in t.verdict.dropped] for t in ctx.history}
    for r in range(1, ctx.round + 1):
        last = r == ctx.round
        items = [shrink_view(item_view(i), shrink) for i in ctx.evidence.in_round(r)]
        images = [shrink_view(image_view(i), shrink) for i in ctx.evidence.images_in_round(r)]
        tests = [result_view(i) for i in ctx.evidence.tests if i.round == r]
        user = prompts.load("judge_round").render(
            round=r, max_rounds=ctx.max_rounds, feature=ctx.feature, items=items, images=images,
            pictures=bool(ctx.pictures) and r == 1,
            strengths=[f"{s:g}" for s in ctx.strengths], note=ctx.note if r == 1 else None,
            dropped=dropped.get(r, []),
            force_final=ctx.force_final if last else False,
            probes_left=ctx.probes_left if last else 0,
            tests=tests, tests_left=world.get("tests_left", 0) if last and kinds else 0,
        )
        if r == 1 and instructions != "system":
            user = f"{system}\n\n{user}"
        if r == 1 and ctx.pictures:
            parts: list[dict[str, Any]] = [{"type": "text", "text": user}]
            parts += [{"type": "image_url", "image_url": {"url": url}} for url in ctx.pictures]
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": user})
        if not last:
            messages.append({"role": "assistant", "content": replies.get(r, "")})
    return messages


def _summary(turn: Any) -> str:
    """An earlier round's reply in one line (when the full transcript does not fit the context)."""
    v = turn.verdict
    asked = ", ".join(f"strength {p.strength:g}" for p in v.probes)
    tests = ", ".join(_test_name(t) for t in v.tests)
    return json.dumps({"hypothesis": v.hypothesis[:120], "confidence": v.confidence, "action": v.action,
                       "probes": f"(asked for {asked})", **({"tests": f"(asked for {tests})"} if tests else {})})


def _test_name(t: Any) -> str:
    if t.kind == "edit":
        return f"edit {t.edit}"
    held = ", ".join(f"{f} {v}" for f, v in t.hold)
    return f"render {t.family}" + (f" holding {held}" if held else "")


def trimmed(text: str, n: int = REPLY_SHOWN) -> str:
    """The start of a reply, with how much was cut."""
    return text if len(text) <= n else f"{text[:n]}... [{len(text) - n} more characters cut]"


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

    @property
    def instructions(self) -> str:
        """Where the instructions go: ``user`` for backends that say so (local servers), else ``system``."""
        return getattr(self.backend, "instructions", "system")

    def messages(self, ctx: JudgeContext, mode: str, shrink: int = 0) -> list[dict[str, Any]]:
        return build_messages(ctx, mode, instructions=self.instructions, shrink=shrink)

    async def decide(self, ctx: JudgeContext) -> JudgeTurn:
        t0 = time.perf_counter()
        turn = JudgeTurn(verdict=None, raw="", attempts=0, cached=True)
        self._recall_format(ctx)
        mode, shrink = self.backend.json_mode, 0
        messages, reasks = self.messages(ctx, mode), []
        while turn.attempts < 1 + self.max_reasks:
            try:
                completion, cached, key = await self._call(ctx, messages + reasks, mode)
            except SchemaUnsupportedError as exc:
                mode = self._downgrade(ctx, exc)
                messages = self.messages(ctx, mode, shrink)
                continue
            except ContextTooLongError as exc:
                shrink += 1
                if shrink >= SHRINK_LEVELS:
                    raise JudgeCallError(self._context_message(exc)) from None
                log.warning("feature %d round %d: the transcript does not fit the judge's context window%s; "
                            "sending shorter evidence", ctx.feature, ctx.round, _limit_text(exc))
                messages, reasks = self.messages(ctx, mode, shrink), []
                continue
            self._learned(ctx, mode, cached)
            turn.attempts += 1
            turn.usage.add(completion.usage)
            turn.replayed.add(completion.stored)
            turn.cached = turn.cached and cached
            turn.calls.append({"key": key, "cached": cached, "tokens": completion.usage.total_tokens,
                               "cost_usd": completion.usage.cost_usd, "format": mode,
                               "seconds": round(completion.seconds, 3), "truncated": completion.truncated,
                               **({"cut_chars": completion.cut} if completion.cut else {})})
            turn.raw = completion.text
            try:
                if completion.truncated:
                    raise VerdictError(self._truncated_message())
                try:
                    turn.verdict = parse_verdict(completion.text, ctx.validation_context())
                except VerdictError as exc:
                    if completion.cut:
                        raise VerdictError(self._overlong_message(completion, exc)) from exc
                    raise
                turn.error = None
                break
            except VerdictError as exc:
                turn.error = redact(str(exc))  # stored and shown: no credential a reply may quote
                log.info("feature %d round %d: invalid verdict (attempt %d): %s", ctx.feature, ctx.round,
                         turn.attempts, turn.error)
                reasks = reasks + [
                    {"role": "assistant", "content": trimmed(completion.text)},
                    {"role": "user", "content": prompts.load("judge_reask").render(error=str(exc),
                                                                                  example=MINIMAL_EXAMPLE)},
                ]
        turn.seconds = time.perf_counter() - t0
        return turn

    def _truncated_message(self) -> str:
        cap = getattr(self.backend, "max_tokens", None)
        return (f"the reply was cut at the {cap or 'server'}-token cap (finish_reason length, --judge-max-tokens "
                f"{cap}) before the JSON object ended; reply with a short JSON object only")

    def _overlong_message(self, completion: Completion, exc: VerdictError) -> str:
        """Why a reply longer than the server should have allowed is no verdict (``exc``: about its kept start)."""
        cap = getattr(self.backend, "max_tokens", None)
        kept = reply_cap(cap)
        return (f"the reply ran to {kept + completion.cut} characters, past the --judge-max-tokens {cap} cap (the "
                f"server did not enforce it; its first {kept} were read): {exc}")

    def _context_message(self, exc: ContextTooLongError) -> str:
        cap = getattr(self.backend, "max_tokens", None)
        return (f"the transcript does not fit the judge's context window{_limit_text(exc)} even with shortened "
                f"evidence: start the server with a larger context (llama.cpp: --n_ctx 4096), or lower "
                f"--max-rounds or --judge-max-tokens (now {cap})")

    def _recall_format(self, ctx: JudgeContext) -> None:
        """Use the format this endpoint accepted before (store meta), when ``auto`` has not yet learnt it."""
        key = getattr(self.backend, "endpoint_key", None)
        if getattr(self.backend, "format_known", True) or key is None or ctx.cache is None:
            return
        known = getattr(ctx.cache, "get_meta", lambda *_: None)(key())
        if known:
            self.backend.use_format(known)
            log.info("judge format: %s (remembered for this endpoint and model)", known)

    def _learned(self, ctx: JudgeContext, mode: str, cached: bool) -> None:
        """An answer came back in ``mode``: remember it for the run and the store."""
        if cached or getattr(self.backend, "format_known", True):
            return
        self.backend.use_format(mode)
        log.info("judge format: %s (%s)", mode, _FORMAT_WHY.get(mode, ""))
        key = getattr(self.backend, "endpoint_key", None)
        setter = getattr(ctx.cache, "set_meta", None)
        if key is not None and callable(setter):
            setter(key(), mode)

    def _downgrade(self, ctx: JudgeContext, exc: Exception) -> str:
        """The next response format after a refusal (raises JudgeCallError when none is left)."""
        downgrade = getattr(self.backend, "downgrade", None)
        mode = downgrade(getattr(exc, "mode", None)) if callable(downgrade) else None
        if mode is None and not callable(downgrade) and self.backend.json_mode != "text":
            self.backend.use_text_mode()
            mode = "text"
        if mode is None:
            raise JudgeCallError(f"the judge endpoint refuses the response format ({redact(str(exc))}): use "
                                 "--judge-format auto or text") from None
        log.info("judge endpoint refuses that response format (%s); trying %s", redact(str(exc)), mode)
        return mode

    def call_line(self) -> str:
        """One line for the run summary: the format in use and what the endpoint was really asked."""
        stats = getattr(self.backend, "stats", None)
        if stats is None or not stats.requests:
            return ""
        return f"format {self.backend.json_mode}, {stats.line()}"

    def call_stats(self) -> dict[str, Any]:
        stats = getattr(self.backend, "stats", None)
        return {"format": self.backend.json_mode, **stats.to_dict()} if stats is not None else {}

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
        schema = SCHEMAS.get(mode)
        if mode == "json_object":  # a grammar can enforce this round's own limits too
            schema = constrained_schema(ctx.max_samples, ctx.force_final, ctx.evidence.ids, tests_offered(ctx))
        key = request_key(self.backend.describe(), messages, schema)
        if ctx.cache is not None and ctx.read_cache:
            hit = ctx.cache.get_judge_call(key)
            if hit is not None and _still_valid(hit, ctx):
                return Completion(text=hit["text"], usage=Usage(), model=hit.get("model", ""), format=mode,
                                  stored=Usage.from_dict(hit.get("usage") or {})), True, key
        completion = await self.backend.complete(messages, schema=schema)
        cap = reply_cap(getattr(self.backend, "max_tokens", None))
        if len(completion.text) > cap:  # never kept whole: it would be stored, exported and parsed as is
            completion.cut = len(completion.text) - cap
            completion.text = trimmed(completion.text, cap)
        if ctx.cache is not None:
            ctx.cache.put_judge_call(key, {
                "text": completion.text, "model": completion.model, "usage": completion.usage.to_dict(),
                "backend": self.backend.describe(), "feature": ctx.feature, "round": ctx.round,
                "at": time.time(), "truncated": completion.truncated, "format": mode,
                **({"cut_chars": completion.cut} if completion.cut else {}),
            })
        return completion, False, key


_FORMAT_WHY = {"schema": "response_format json_schema accepted",
               "json_object": "json_schema refused; json_object with the schema in the prompt and in "
                              "response_format.schema",
               "text": "structured output refused; JSON asked for in the prompt"}


def _limit_text(exc: ContextTooLongError) -> str:
    return f" ({exc.limit} tokens)" if exc.limit else ""


def _still_valid(hit: dict[str, Any], ctx: JudgeContext) -> bool:
    """A cached reply is replayed only when it is a valid verdict: a failed round is asked again."""
    if hit.get("truncated"):
        return False
    try:
        parse_verdict(hit.get("text", ""), ctx.validation_context())
    except VerdictError:
        return False
    return True
