"""Retries of one judge call on tenacity: which errors retry, how long to wait (a server's Retry-After
honoured), when to stop, and the hooks between attempts (a timed-out request goes again at once with twice
the timeout; a call that finds the endpoint down waits on the circuit breaker and spends no attempt)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from agent.judges.policy import Breaker

T = TypeVar("T")

_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "insufficient_credits", "billing_not_active"}
_QUOTA_TEXT = re.compile(r"exceeded your current quota|insufficient[_ ](?:quota|credits?|balance|funds)|"
                         r"billing (?:hard )?limit|out of credits|credit balance is too low", re.IGNORECASE)


@dataclass
class RetryPolicy:
    """How transient failures are retried (tenacity, with this module's callables; the openai client's are off)."""

    attempts: int = 6
    """Calls in all, the first included."""
    initial: float = 1.0
    """Backoff scale in seconds: waits grow as initial * 2^n, with full jitter."""
    max_wait: float = 60.0
    """Longest wait between two attempts (also caps a server's Retry-After)."""
    timeout: float = 60.0
    """Seconds one HTTP request may take (once sent: time queued behind the in-flight limit is not counted)."""
    timeout_retries: int = 1
    """Times a timed-out request is sent again (with twice the timeout): a local server is still computing
    the abandoned one, so re-queueing it blindly only lengthens the queue."""


@dataclass
class Attempts:
    """What one call has spent so far: the policy's stop and wait read it, its hooks and the attempt change it."""

    timeout: float
    """Seconds the next request may take (doubled after a timeout, up to 4 times the policy's)."""
    spent: int = 0
    """Attempts made, the first included (a timed-out one too); a wait for a down endpoint gives its one back."""
    timeouts: int = 0
    """Requests of this call that timed out (the attempt counts them)."""


class EndpointDown(Exception):
    """A request found no connection and the endpoint refuses TCP connections: the breaker waits, no retry
    is spent."""


# -- which errors are which -------------------------------------------------------------------------------


def status_of(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def error_fields(exc: BaseException) -> tuple[str, str]:
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
    status = status_of(exc)
    if status not in (402, 429, 403):
        return False
    code, message = error_fields(exc)
    return status == 402 or code in _QUOTA_CODES or bool(_QUOTA_TEXT.search(message))


def is_transient(exc: BaseException) -> bool:
    """Worth another try: rate limits (not quota), 5xx, timeouts, dropped connections, garbled bodies."""
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.APIResponseValidationError,
                        json.JSONDecodeError)):  # the last: a garbled (non-JSON) response body
        return True
    status = status_of(exc)
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


def _timed_out(exc: BaseException | None) -> bool:
    import openai

    return isinstance(exc, openai.APITimeoutError)


def retryable(exc: BaseException) -> bool:
    """tenacity's retry predicate: a transient error, or a down endpoint (the attempt turns the errors it
    will not retry into typed judge errors, which pass through)."""
    return isinstance(exc, EndpointDown) or is_transient(exc)


# -- the policy ---------------------------------------------------------------------------------------------


async def sleep(seconds: float) -> None:
    """The wait between two attempts (tests may replace it); none at all when there is nothing to wait."""
    if seconds > 0:
        await asyncio.sleep(seconds)


class CallRetry:
    """tenacity's stop, wait and before-sleep callables for one call, over its Attempts."""

    def __init__(self, policy: RetryPolicy, breaker: Breaker, log: logging.Logger,
                 fail: Callable[[BaseException, Attempts], Exception]) -> None:
        self.policy = policy
        self.breaker = breaker
        self.log = log
        """Where the retry lines go (the backend's own logger)."""
        self.fail = fail
        """The typed error a call ends with once its retries are spent, from the last error."""
        self.attempts = Attempts(policy.timeout)

    def count(self, state: RetryCallState) -> None:
        """tenacity's ``before``: one more attempt."""
        self.attempts.spent += 1

    def stop(self, state: RetryCallState) -> bool:
        """Timeouts have their own budget, a down endpoint none (the breaker stops the run), and the other
        errors stop once the call's attempts are spent."""
        exc = _failure(state)
        if isinstance(exc, EndpointDown):
            return False
        if _timed_out(exc):
            return self.attempts.timeouts > self.policy.timeout_retries
        return self.attempts.spent >= self.policy.attempts

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: what the server asked (capped), else exponential with full jitter;
        none after a timeout (the server is slow, not busy) or a down endpoint (the breaker did the waiting)."""
        exc = _failure(state)
        if isinstance(exc, EndpointDown) or _timed_out(exc):
            return 0.0
        asked = retry_after(exc)
        if asked is not None:
            return min(asked, self.policy.max_wait)
        ceiling = self.policy.initial * 2 ** (self.attempts.spent - 1)
        return random.uniform(0, min(self.policy.max_wait, ceiling))

    async def before_sleep(self, state: RetryCallState) -> None:
        """The hooks before another attempt: a timed-out request gets twice the timeout, a down endpoint
        holds the call until it answers (raises JudgeFatalError past --judge-down-limit), and a retried
        error is logged."""
        exc = _failure(state)
        if _timed_out(exc):
            self.attempts.timeout = min(self.attempts.timeout * 2, self.policy.timeout * 4)
        elif isinstance(exc, EndpointDown):
            self.attempts.spent -= 1  # a down server does not spend the call's attempts
            await self.breaker.wait_until_up()
        else:
            self.log.warning("judge call failed (%s); retry %d of %d", describe(exc), self.attempts.spent,
                             self.policy.attempts - 1)

    def give_up(self, state: RetryCallState) -> NoReturn:
        """tenacity's ``retry_error_callback``: the typed error instead of tenacity's RetryError."""
        raise self.fail(_failure(state), self.attempts) from None

    def controller(self) -> AsyncRetrying:
        return AsyncRetrying(retry=retry_if_exception(retryable), before=self.count, stop=self.stop,
                             wait=self.wait, before_sleep=self.before_sleep, retry_error_callback=self.give_up,
                             sleep=sleep)


async def retried(attempt: Callable[[Attempts], Awaitable[T]], policy: RetryPolicy, *, breaker: Breaker,
                  log: logging.Logger, fail: Callable[[BaseException, Attempts], Exception]) -> T:
    """``attempt(attempts)`` until it returns, under ``policy``: errors ``retryable`` rejects pass through,
    and the last retryable one, once the retries are spent, ends as ``fail(error, attempts)``."""
    call = CallRetry(policy, breaker, log, fail)
    return await call.controller()(attempt, call.attempts)


def _failure(state: RetryCallState) -> Any:
    assert state.outcome is not None and state.outcome.failed
    return state.outcome.exception()


def describe(exc: BaseException | None) -> str:
    """An error's class and HTTP status, for a log line (never its text: a server may echo secrets)."""
    if exc is None:
        return "unknown error"
    status = status_of(exc)
    name = type(exc).__name__
    return f"{name} {status}" if status else name
