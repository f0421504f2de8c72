"""Judges: the protocol, the offline (no-LLM) judge, and the LLM judge over an OpenAI-compatible API."""

from __future__ import annotations

from typing import Any

from agent.judges.base import (
    Judge,
    JudgeCallError,
    JudgeContext,
    JudgeError,
    JudgeFatalError,
    JudgeQuotaError,
    JudgeTurn,
    JudgeUnreachable,
    PastTurn,
    Usage,
    check_judge,
)
from agent.judges.llm import ChatBackend, Completion, LLMJudge, SchemaUnsupportedError
from agent.judges.offline import NOT_AN_LLM, OfflineJudge, OfflineParams

__all__ = [
    "NOT_AN_LLM", "ChatBackend", "Completion", "Judge", "JudgeCallError", "JudgeContext", "JudgeError",
    "JudgeFatalError", "JudgeQuotaError", "JudgeTurn", "JudgeUnreachable", "LLMJudge", "OfflineJudge", "OfflineParams",
    "PastTurn", "SchemaUnsupportedError", "Usage", "check_judge", "make_judge",
]


def make_judge(kind: str = "offline", *, model: str | None = None, base_url: str | None = None,
               api_key: str | None = None, api_key_env: str = "OPENAI_API_KEY", json_mode: str = "auto",
               timeout: float = 60.0, retries: int = 6, backoff: float = 1.0, temperature: float | None = None,
               max_tokens: int | None = None, price: tuple[float, float] | None = None) -> Any:
    """Build a judge: ``offline`` or ``openai`` (any OpenAI-compatible endpoint)."""
    if kind == "offline":
        return OfflineJudge()
    if kind == "openai":
        from agent.judges.openai_chat import DEFAULT_MODEL, OpenAIChat, RetryPolicy

        backend = OpenAIChat(model or DEFAULT_MODEL, base_url, api_key, api_key_env=api_key_env, json_mode=json_mode,
                             temperature=temperature, max_tokens=max_tokens, price=price,
                             retry=RetryPolicy(attempts=max(1, retries), initial=backoff, timeout=timeout))
        return LLMJudge(backend)
    raise JudgeFatalError(f"unknown judge {kind!r}: use offline or openai")
