"""Which judge reads the evidence: one typed JudgeConfig for every front end, and the judge it builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.judges.base import JudgeFatalError, check_judge
from agent.judges.llm import LLMJudge
from agent.judges.offline import OfflineJudge

CHECK_TIMEOUT = 5.0
"""Most seconds the check before a run waits for an endpoint (less when the request timeout is shorter)."""


@dataclass(frozen=True)
class JudgeConfig:
    """A judge's kind and, for an LLM judge, its endpoint and call policy."""

    kind: str = "offline"
    """offline (a deterministic heuristic, not an LLM), openai (any OpenAI-compatible endpoint), or a
    front end's own kind (the TUI's ``injected``), which build_judge refuses."""
    model: str | None = None
    """Model name at the endpoint (None: gpt-4o-mini)."""
    base_url: str | None = None
    """Endpoint URL (None: $OPENAI_BASE_URL or OpenAI)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key."""
    api_key: str | None = field(default=None, repr=False)
    """The key itself (tests); None reads ``api_key_env``."""
    json_mode: str = "auto"
    """auto, schema or text: JSON-schema structured output (auto falls back to JSON in text when refused)."""
    timeout: float = 60.0
    """Seconds per request."""
    retries: int = 6
    """Attempts per call (at least 1)."""
    backoff: float = 1.0
    """Backoff scale in seconds between attempts."""
    temperature: float | None = None
    """Sampling temperature (None: the server's)."""
    max_tokens: int | None = 600
    """Reply length cap per call (a verdict needs about 500 tokens; a cut reply is reported as truncated)."""
    concurrency: int | None = None
    """Requests in flight to the endpoint (None: 1 for a local server, 4 for a remote one)."""
    down_limit: float = 120.0
    """Seconds without an answer from a down endpoint before the run stops."""
    instructions: str = "auto"
    """Where the instructions go: system, user (the first user message; every chat template keeps it), or
    auto (user for a local server, system otherwise)."""
    price: tuple[float, float] | None = None
    """USD per million input, output tokens for the cost estimate (None: built in for known models)."""


def default_kind(model: str | None, base_url: str | None) -> str:
    """The judge a front end uses when none is named: openai when an endpoint or model is given."""
    return "openai" if (model or base_url) else "offline"


def build_judge(config: JudgeConfig) -> Any:
    """The judge ``config`` describes (raises JudgeFatalError naming the fix, e.g. a missing API key)."""
    if config.kind == "offline":
        return OfflineJudge()
    if config.kind == "openai":
        from agent.judges.openai_chat import DEFAULT_MODEL, OpenAIChat, RetryPolicy

        backend = OpenAIChat(config.model or DEFAULT_MODEL, config.base_url, config.api_key,
                             api_key_env=config.api_key_env, json_mode=config.json_mode,
                             temperature=config.temperature, max_tokens=config.max_tokens, price=config.price,
                             retry=RetryPolicy(attempts=max(1, config.retries), initial=config.backoff,
                                               timeout=config.timeout),
                             concurrency=config.concurrency, down_limit=config.down_limit)
        if config.instructions != "auto":
            backend.instructions = config.instructions
        return LLMJudge(backend)
    raise JudgeFatalError(f"unknown judge {config.kind!r}: use offline or openai")


def make_judge(kind: str = "offline", **options: Any) -> Any:
    """``build_judge(JudgeConfig(kind, **options))``: a judge from keywords (the JudgeConfig fields)."""
    return build_judge(JudgeConfig(kind=kind, **options))


def checked_judge(config: JudgeConfig) -> Any:
    """The judge, checked before a run starts: an endpoint that does not answer fails now, not mid-run
    (raises JudgeFatalError; JudgeUnreachable for the endpoint)."""
    judge = build_judge(config)
    check_judge(judge, timeout=min(config.timeout, CHECK_TIMEOUT))
    return judge
