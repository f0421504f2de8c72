"""An OpenAI-compatible chat backend (OpenAI, vLLM, Ollama, OpenRouter...) with tenacity-owned retries."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.judges.base import JudgeCallError, JudgeFatalError, JudgeQuotaError, JudgeUnreachable, Usage
from agent.judges.llm import Completion, SchemaUnsupportedError
from agent.judges.redact import install_log_redaction, redact

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_URL = "https://api.openai.com/v1"
IMAGE_TOKENS = 255
"""Prompt tokens one attached image is estimated at where the server reports no usage."""

# USD per million tokens (input, output), for the cost estimate; unknown models show no cost.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40), "gpt-5-mini": (0.25, 2.00), "gpt-5": (1.25, 10.00),
    "o4-mini": (1.10, 4.40), "o3-mini": (1.10, 4.40),
}
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "insufficient_credits", "billing_not_active"}
_QUOTA_TEXT = re.compile(r"exceeded your current quota|insufficient[_ ](?:quota|credits?|balance|funds)|"
                         r"billing (?:hard )?limit|out of credits|credit balance is too low", re.IGNORECASE)
_SCHEMA_TEXT = re.compile(r"response_format|json_schema|structured output", re.IGNORECASE)


@dataclass
class RetryPolicy:
    """How transient failures are retried (tenacity owns this; the openai client's retries are off)."""

    attempts: int = 6
    """Calls in all, the first included."""
    initial: float = 1.0
    """Backoff scale in seconds: waits grow as initial * 2^n, with full jitter."""
    max_wait: float = 60.0
    """Longest wait between two attempts (also caps a server's Retry-After)."""
    timeout: float = 60.0
    """Seconds one HTTP request may take."""


def price_for(model: str) -> tuple[float, float] | None:
    name = model.split("/")[-1].lower()
    if name in PRICES:
        return PRICES[name]
    for known in sorted(PRICES, key=len, reverse=True):  # dated snapshots, e.g. gpt-4o-mini-2024-07-18
        if name.startswith(known + "-"):
            return PRICES[known]
    return None


def safe_url(url: str | None) -> str | None:
    """``url`` without user info, query or fragment (they may carry credentials)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _error_fields(exc: BaseException) -> tuple[str, str]:
    """(code or type, message) from an APIStatusError's body."""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    code, message = "", str(getattr(exc, "message", "") or exc)
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("type") or "")
        message = str(err.get("message") or message)
    code = code or str(getattr(exc, "code", "") or "")
    return code, message


def is_quota_error(exc: BaseException) -> bool:
    status = _status(exc)
    if status not in (402, 429, 403):
        return False
    code, message = _error_fields(exc)
    return status == 402 or code in _QUOTA_CODES or bool(_QUOTA_TEXT.search(message))


def is_transient(exc: BaseException) -> bool:
    """Worth another try: rate limits (not quota), 5xx, timeouts, dropped connections, garbled bodies."""
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.APIResponseValidationError,
                        json.JSONDecodeError)):  # the last: a garbled (non-JSON) response body
        return True
    status = _status(exc)
    if status is None:
        return False
    if is_quota_error(exc):
        return False
    return status in (408, 409, 429) or status >= 500


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After or retry-after-ms), if it did."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIChat:
    """Chat Completions over the openai client; transient errors retried by tenacity."""

    def __init__(self, model: str = DEFAULT_MODEL, base_url: str | None = None, api_key: str | None = None,
                 *, api_key_env: str = DEFAULT_KEY_ENV, json_mode: str = "auto", temperature: float | None = None,
                 max_tokens: int | None = None, retry: RetryPolicy | None = None,
                 price: tuple[float, float] | None = None) -> None:
        import openai

        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        if not key:
            if self.base_url and safe_url(self.base_url) != safe_url("https://api.openai.com/v1"):
                key = "not-needed"  # local servers (vLLM, Ollama) accept any key
            else:
                raise JudgeFatalError(f"no API key for the judge: set ${api_key_env} (or --judge-api-key-env NAME), "
                                      "or use --judge offline")
        self.api_key_env = api_key_env
        self.retry = retry or RetryPolicy()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.price = price or price_for(model)
        self._mode = "schema" if json_mode in ("auto", "schema") else "text"
        self._key = key
        install_log_redaction([key])
        # One client per event loop: its connection pool belongs to the loop that opened it, and a UI
        # may start several runs (each with its own loop) with the same judge.
        self._clients: dict[int, Any] = {}
        openai.AsyncOpenAI(api_key=key, base_url=self.base_url, max_retries=0)  # fail early on bad options

    def _client(self) -> Any:
        import asyncio

        import openai

        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None:
            client = openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url, max_retries=0,
                                        timeout=self.retry.timeout)
            self._clients = {id(loop): client}  # clients of finished loops are dropped
        return client

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChat(model={self.model!r}, base_url={safe_url(self.base_url)!r})"

    # -- identity ------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"kind": "openai", "model": self.model, "base_url": safe_url(self.base_url) or "openai",
                "temperature": self.temperature, "max_tokens": self.max_tokens}

    @property
    def json_mode(self) -> str:
        return self._mode

    def use_text_mode(self) -> None:
        self._mode = "text"

    # -- checks --------------------------------------------------------------------------------

    def check(self, timeout: float = 3.0) -> None:
        """Before a run: the URL names a host, and a TCP connection to it opens (no request is sent,
        so nothing is billed). Raises JudgeUnreachable naming the fix."""
        import socket

        url = self.base_url or DEFAULT_URL
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise JudgeUnreachable(f"judge URL {safe_url(url)!r} names no http(s) host: use e.g. "
                                   "http://localhost:8000/v1")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise JudgeUnreachable(f"judge URL {safe_url(url)!r} has a bad port: fix the judge URL") from None
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise JudgeUnreachable(f"cannot reach the judge at {parts.hostname}:{port} ({reason}): start the "
                                   "server, fix the judge URL, or use the offline judge") from None

    # -- calls ---------------------------------------------------------------------------------

    def _wait(self, state: Any) -> float:
        import random

        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after(exc) if exc is not None else None
        if asked is not None:
            return min(asked, self.retry.max_wait)
        # Exponential backoff with full jitter.
        ceiling = min(self.retry.max_wait, self.retry.initial * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)

    async def complete(self, messages: list[dict[str, Any]], *, schema: dict[str, Any] | None) -> Completion:
        import openai
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if schema is not None:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "verdict", "schema": schema, "strict": True}}

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception()
            log.warning("judge call failed (%s); retry %d of %d", _describe(exc), state.attempt_number,
                        self.retry.attempts - 1)

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(is_transient), wait=self._wait,
                stop=stop_after_attempt(self.retry.attempts), reraise=True, before_sleep=before_sleep,
            ):
                with attempt:
                    response = await self._client().chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise self._classify(exc, schema is not None) from None
        except (openai.APIConnectionError, openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise JudgeCallError(f"judge call failed after {self.retry.attempts} attempts: {_describe(exc)}") from None
        return self._completion(response, messages)

    def _classify(self, exc: Any, with_schema: bool) -> Exception:
        status = _status(exc)
        code, message = _error_fields(exc)
        code, message = redact(code, [self._key]), redact(message, [self._key])  # servers may echo headers
        where = safe_url(self.base_url) or "the OpenAI API"
        if is_quota_error(exc):
            return JudgeQuotaError(f"the judge endpoint ({where}) says the quota or credit is exhausted "
                                   f"({status} {code or ''}: {_short(message)}); finished work is kept: top up the "
                                   "account or change --judge-model, then rerun to resume")
        if with_schema and status in (400, 422) and _SCHEMA_TEXT.search(message):
            return SchemaUnsupportedError(f"{status}: {_short(message)}")
        if status == 401:
            return JudgeFatalError(f"the judge endpoint ({where}) rejected the API key (401): check "
                                   f"${self.api_key_env} or --judge-api-key-env")
        if status == 403:
            return JudgeFatalError(f"the judge endpoint ({where}) refused access (403: {_short(message)}): check the "
                                   "key's permissions for this model")
        if status == 404:
            return JudgeFatalError(f"the judge endpoint ({where}) does not know model {self.model!r} or the URL is "
                                   f"wrong (404: {_short(message)}): check --judge-model and --judge-base-url")
        if is_transient(exc):
            return JudgeCallError(f"judge call failed after {self.retry.attempts} attempts ({status}: "
                                  f"{_short(message)})")
        return JudgeCallError(f"the judge endpoint refused the request ({status}: {_short(message)})")

    def _completion(self, response: Any, messages: list[dict[str, Any]]) -> Completion:
        choices = getattr(response, "choices", None) or []
        text = ""
        if choices:
            message = choices[0].message
            text = message.content or getattr(message, "refusal", None) or ""
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None) if usage else None
        completion = getattr(usage, "completion_tokens", None) if usage else None
        if prompt is None:  # servers that report no usage: estimate ~4 characters a token
            prompt = sum(_estimate_tokens(m["content"]) for m in messages)
        if completion is None:
            completion = len(text) // 4
        cost = None
        if self.price is not None:
            cost = (prompt * self.price[0] + completion * self.price[1]) / 1e6
        return Completion(text=text, usage=Usage(prompt_tokens=int(prompt), completion_tokens=int(completion),
                                                 cost_usd=cost, calls=1),
                          model=str(getattr(response, "model", "") or self.model))

    async def aclose(self) -> None:
        """Close the current loop's connection pool (call from inside the loop that used it)."""
        import asyncio

        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.close()


def _estimate_tokens(content: str | list[dict[str, Any]]) -> int:
    """Rough prompt tokens of one message's content (text, or OpenAI content parts)."""
    if isinstance(content, str):
        return len(content) // 4
    n = 0
    for part in content:
        if part.get("type") == "text":
            n += len(str(part.get("text", ""))) // 4
        else:
            n += IMAGE_TOKENS
    return n


def _short(message: str, n: int = 160) -> str:
    line = " ".join(str(message).split())
    return line if len(line) <= n else line[: n - 3] + "..."


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    status = _status(exc)
    name = type(exc).__name__
    return f"{name} {status}" if status else name
