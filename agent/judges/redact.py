"""Keep API keys and URL credentials out of every error text and log line the judge produces, and terminal
control sequences out of what is shown."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "[redacted]"
_MIN_SECRET = 6
"""Shorter "secrets" (placeholders such as the key local servers get) are not worth masking."""

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]*")
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]+=)[^&#\s]+")


def _mask_query(match: re.Match[str]) -> str:
    """A URL with every query parameter's value masked (any of them may be a token: ?t=..., ?sig=...)."""
    url = match.group(0)
    head, sep, rest = url.partition("?")
    if not sep:
        return url
    query, hash_, fragment = rest.partition("#")
    return head + _QUERY_VALUE.sub(rf"\1{MASK}", "?" + query) + hash_ + fragment


_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # user:password@ in any URL
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#]+@"), rf"\1{MASK}@"),
    # every query parameter of a URL: ?t=..., &api-version=...
    (_URL, _mask_query),
    # query parameters that carry credentials, in a path without a scheme: ?token=..., &api_key=..., &sig=...
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


def mask_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each of ``secrets`` (long enough to be one) replaced by [redacted], nothing else changed.

    For what a model wrote (a reply, an explanation): only the known secrets go, the rest is its own words.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each of ``secrets`` and anything that looks like a credential replaced by [redacted]."""
    text = mask_secrets(text, secrets)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def shown_url(url: str | None) -> str:
    """``url`` as it may be shown: user info and every query value masked (works on malformed URLs too)."""
    return redact(url or "")


def url_secrets(url: str | None) -> list[str]:
    """The credentials a URL carries: its user info's password and its query values."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        found = [parts.password, parts.username if parts.password is None else None]
        found += [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    except ValueError:  # a malformed URL (bad port, broken IPv6): take what the patterns would mask
        userinfo = re.search(r"://([^/\s@?#]+)@", url)
        found = userinfo.group(1).split(":", 1)[-1:] if userinfo else []
        found += [m.group(0).split("=", 1)[1] for m in _QUERY_VALUE.finditer("?" + url.partition("?")[2])]
    return [s for s in found if s and len(s) >= _MIN_SECRET]


# -- what reaches a terminal -------------------------------------------------------------------------------

REPLACEMENT = "\ufffd"
"""What a control character or an escape sequence becomes (visible, and harmless to a terminal)."""
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"              # CSI: colours, cursor moves, clear screen
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"       # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"                    # other escapes, and a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"               # the 8-bit CSI
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 and C1 control characters, DEL, but not tab and newline."""
_LINE_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\u2028\u2029\x85]")


def printable(text: object, newlines: bool = False) -> str:
    """``text`` safe to print: escape sequences and C0/C1 control characters replaced by U+FFFD, tabs and
    line breaks by spaces (``newlines``: newlines and tabs kept)."""
    text = _ESCAPES.sub(REPLACEMENT, str(text))
    if newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return _CONTROLS.sub(REPLACEMENT, text)
    text = _LINE_BREAKS.sub(" ", text)
    return _CONTROLS.sub(REPLACEMENT, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with ``redact`` (httpx logs request URLs, servers echo headers) and
    without terminal control sequences (a judge's reply or a store's text may carry them)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = printable(redact(message, self.secrets), newlines=True)
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
