"""Keep API keys and URL credentials out of every error text and log line the judge produces."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "[redacted]"
_MIN_SECRET = 6
"""Shorter "secrets" (placeholders such as the key local servers get) are not worth masking."""

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ in any URL
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#]+@"), rf"\1{MASK}@"),
    # query parameters that carry credentials: ?token=..., &api_key=..., &sig=...
    (re.compile(r"([?&][^=&\s#]*(?:token|key|secret|sig|signature|password|auth)[^=&\s#]*=)[^&\s#\"']+",
                re.IGNORECASE), rf"\1{MASK}"),
    # Authorization: Bearer ... / Basic ...
    (re.compile(r"\b(bearer|basic)(\s+)[^\s\"',;]+", re.IGNORECASE), rf"\1\2{MASK}"),
    # "api_key": "...", x-api-key=..., password: ...
    (re.compile(r"\b((?:x-)?api[-_]?key|access[-_]?token|secret|password)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+",
                re.IGNORECASE), rf"\1\2{MASK}"),
    # OpenAI-style keys wherever they appear
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), MASK),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each of ``secrets`` and anything that looks like a credential replaced by [redacted]."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with ``redact`` (httpx logs request URLs, servers echo headers)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = RedactingFilter()
LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "openai._base_client", "agent")
"""Loggers that may carry a judge URL or a server's error body (a logger filter sees only its own records)."""


def install_log_redaction(secrets: Iterable[str | None] = ()) -> RedactingFilter:
    """Mask ``secrets`` (and credential-like text) in records of the judge's loggers and at every root handler.

    Idempotent: one shared filter, whose set of secrets grows with each judge made.
    """
    _FILTER.secrets.update(s for s in secrets if s and len(s) >= _MIN_SECRET)
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in LOGGERS]
    targets += logging.getLogger().handlers
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
    return _FILTER
