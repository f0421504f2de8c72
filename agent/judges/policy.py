"""Call policy for a judge endpoint: request counts, an adaptive in-flight limit, and a circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from agent.judges.base import JudgeFatalError

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
REMOTE_CONCURRENCY = 4
"""Requests in flight to a remote endpoint when --judge-concurrency is not given (a local one: 1)."""


def is_local(url: str | None) -> bool:
    """The endpoint runs on this machine (a llama.cpp or Ollama server usually has one slot)."""
    if not url:
        return False
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    return host in LOCAL_HOSTS or host.startswith("127.")


@dataclass
class CallStats:
    """What the endpoint was really asked, failed and abandoned requests included."""

    requests: int = 0
    """HTTP requests sent."""
    retries: int = 0
    """Requests that repeated a failed one."""
    timeouts: int = 0
    """Requests the client stopped waiting for."""
    abandoned: int = 0
    """Timed-out or cancelled requests the server may still be computing."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: int = 0
    """Replies cut by max_tokens (finish_reason length)."""
    seconds: float = 0.0
    """Wall time of the answered requests."""
    answered: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds_per_call"] = round(self.seconds / self.answered, 3) if self.answered else None
        d["seconds"] = round(self.seconds, 3)
        return d

    def line(self) -> str:
        per = f", {self.seconds / self.answered:.2f} s per answered request" if self.answered else ""
        return (f"{self.requests} requests ({self.retries} retries, {self.timeouts} timeouts, {self.abandoned} "
                f"abandoned, {self.truncated} cut by max_tokens), {self.prompt_tokens + self.completion_tokens} "
                f"tokens{per}")


class AdaptiveLimit:
    """Requests in flight: halved on a timeout, grown by one after a run of quick answers, never above
    ``ceiling``. Polls instead of holding asyncio primitives, so one judge may serve several event loops."""

    def __init__(self, start: int, ceiling: int) -> None:
        self.limit = max(1, start)
        self.ceiling = max(1, ceiling)
        self.in_flight = 0
        self._streak = 0

    async def acquire(self) -> None:
        while self.in_flight >= self.limit:
            await asyncio.sleep(0.02)
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def on_timeout(self) -> None:
        self._streak = 0
        if self.limit > 1:
            self.limit = max(1, self.limit // 2)
            log.warning("judge requests time out: %d in flight from now on", self.limit)

    def on_answer(self, seconds: float, timeout: float) -> None:
        if seconds > timeout / 2:  # latency is not holding: do not grow
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= 4 and self.limit < self.ceiling:
            self.limit += 1
            self._streak = 0


class Breaker:
    """Pauses every call while the endpoint is down, probes it with backoff, and stops the run after
    ``down_limit`` seconds without an answer."""

    def __init__(self, probe: Callable[[], bool], down_limit: float, where: str) -> None:
        self.probe = probe
        self.down_limit = down_limit
        self.where = where
        self.down_since: float | None = None
        self._probing = False

    async def wait_until_up(self) -> None:
        """Return once the endpoint accepts connections again (raises JudgeFatalError past the limit)."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("the judge at %s does not answer: pausing judge calls and probing it", self.where)
        delay = 0.25
        while True:
            elapsed = time.monotonic() - self.down_since if self.down_since is not None else 0.0
            if self.down_since is None:  # another caller saw it come back
                return
            if elapsed >= self.down_limit:
                raise JudgeFatalError(
                    f"the judge at {self.where} has not answered for {elapsed:.0f} s: stopped (finished work is "
                    f"kept; restart the server and rerun, or raise --judge-down-limit, now {self.down_limit:g} s)")
            if not self._probing:
                self._probing = True
                try:
                    up = await asyncio.to_thread(self.probe)
                finally:
                    self._probing = False
                if up:
                    log.warning("the judge at %s answers again after %.0f s: resuming", self.where, elapsed)
                    self.down_since = None
                    return
            await asyncio.sleep(min(delay, max(0.05, self.down_limit - elapsed)))
            delay = min(delay * 2, 8.0)

    def mark_up(self) -> None:
        self.down_since = None
