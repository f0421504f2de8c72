"""The judge a JudgeConfig describes, built (and checked before a run)."""

from __future__ import annotations

from typing import Any

from agent.judges.base import JudgeFatalError, check_judge
from agent.judges.config import CHECK_TIMEOUT, DEFAULT_JUDGE_MODEL, JudgeConfig
from agent.judges.llm import LLMJudge
from agent.judges.offline import OfflineJudge


def build_judge(config: JudgeConfig) -> Any:
    """The judge ``config`` describes (raises JudgeFatalError naming the fix, e.g. a missing API key)."""
    if config.kind == "offline":
        return OfflineJudge()
    if config.kind == "openai":
        return LLMJudge(build_backend(config))
    raise JudgeFatalError(f"unknown judge {config.kind!r}: use offline or openai")


def build_backend(config: JudgeConfig, **overrides: Any) -> Any:
    """The OpenAI-compatible client ``config`` describes (agent.judges.openai_chat.OpenAIChat); ``overrides``
    replace its keyword arguments (``judge-check``: one attempt, one request in flight, a format each)."""
    from agent.judges.openai_chat import OpenAIChat
    from agent.judges.retry import RetryPolicy

    options: dict[str, Any] = dict(endpoint=config.endpoint(), json_mode=config.json_mode,
                                   temperature=config.temperature, max_tokens=config.max_tokens, price=config.price,
                                   retry=RetryPolicy(attempts=max(1, config.retries), initial=config.backoff,
                                                     timeout=config.timeout),
                                   concurrency=config.concurrency, down_limit=config.down_limit)
    options.update(overrides)
    backend = OpenAIChat(config.model or DEFAULT_JUDGE_MODEL, **options)
    if config.instructions != "auto":
        backend.instructions = config.instructions
    return backend


def make_judge(kind: str = "offline", **options: Any) -> Any:
    """``build_judge(JudgeConfig(kind, **options))``: a judge from keywords (the JudgeConfig fields)."""
    return build_judge(JudgeConfig(kind=kind, **options))


def checked_judge(config: JudgeConfig) -> Any:
    """The judge, checked before a run starts (check_judge): an endpoint that cannot be reached, or that fails
    a minimal chat request (HTTP 500 to every call), fails now, not after every feature's retries (raises
    JudgeFatalError; JudgeUnreachable for the endpoint)."""
    judge = build_judge(config)
    check_judge(judge, timeout=min(config.timeout, CHECK_TIMEOUT))
    return judge
