"""Judges: the protocol, the offline (no-LLM) judge, and the LLM judge over an OpenAI-compatible API."""

from __future__ import annotations

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
from agent.judges.config import DEFAULT_JUDGE_MODEL, Endpoint, JudgeConfig, default_kind, url_problem
from agent.judges.factory import build_judge, checked_judge, make_judge
from agent.judges.llm import ChatBackend, Completion, LLMJudge, SchemaUnsupportedError
from agent.judges.offline import NOT_AN_LLM, OfflineJudge, OfflineParams

__all__ = [
    "DEFAULT_JUDGE_MODEL", "NOT_AN_LLM", "ChatBackend", "Completion", "Endpoint", "Judge", "JudgeCallError",
    "JudgeConfig", "JudgeContext", "JudgeError", "JudgeFatalError", "JudgeQuotaError", "JudgeTurn", "JudgeUnreachable",
    "LLMJudge", "OfflineJudge", "OfflineParams", "PastTurn", "SchemaUnsupportedError", "Usage", "build_judge",
    "check_judge", "checked_judge", "default_kind", "make_judge", "url_problem",
]
