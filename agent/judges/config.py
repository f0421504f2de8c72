"""Which judge reads the evidence: one typed JudgeConfig for every front end, its defaults, its endpoint as read
from the environment, and the one check of an endpoint URL (agent.judges.factory builds the judge)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from agent.judges.redact import shown_url

DEFAULT_JUDGE_MODEL = "gpt-4o-mini"
"""Model an OpenAI-compatible judge asks for when none is named (the only place this name is written)."""
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
"""Environment variable holding the API key when none is named."""
BASE_URL_ENV = "OPENAI_BASE_URL"
"""Environment variable holding the endpoint URL when none is given."""
OPENAI_URL = "https://api.openai.com/v1"
"""The endpoint when neither a URL nor $OPENAI_BASE_URL is given."""
CHECK_TIMEOUT = 5.0
"""Most seconds the check before a run waits for an endpoint (less when the request timeout is shorter)."""


@dataclass(frozen=True)
class JudgeConfig:
    """A judge's kind and, for an LLM judge, its endpoint and call policy."""

    kind: str = "offline"
    """offline (a deterministic heuristic, not an LLM), openai (any OpenAI-compatible endpoint), or a
    front end's own kind (the TUI's ``injected``), which build_judge refuses."""
    model: str | None = None
    """Model name at the endpoint (None: DEFAULT_JUDGE_MODEL)."""
    base_url: str | None = None
    """Endpoint URL (None: $OPENAI_BASE_URL or OpenAI)."""
    api_key_env: str = DEFAULT_KEY_ENV
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

    def endpoint(self) -> Endpoint:
        """Where this judge is reached: ``base_url`` and the key, the environment filling what is not given."""
        return read_endpoint(self.base_url, self.api_key, self.api_key_env)


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible endpoint as a judge reaches it, the environment read once (read_endpoint)."""

    url: str | None
    """Base URL (None: OpenAI's, OPENAI_URL)."""
    key: str | None = field(repr=False)
    """The API key (None: none given, and ``key_env`` unset)."""
    key_env: str = DEFAULT_KEY_ENV
    """Where the key was looked for (errors name it)."""


def read_endpoint(base_url: str | None, api_key: str | None, api_key_env: str = DEFAULT_KEY_ENV) -> Endpoint:
    """The endpoint given, $OPENAI_BASE_URL and ``$api_key_env`` standing in for what is not (the only place
    a judge reads them)."""
    url = base_url or os.environ.get(BASE_URL_ENV) or None
    key = api_key if api_key is not None else os.environ.get(api_key_env)
    return Endpoint(url=url, key=key, key_env=api_key_env)


def url_problem(url: str) -> str | None:
    """A one-line complaint about an endpoint URL (scheme, host, port, query), or None when it can be tried.
    The URL is named with its user info and query values masked: they may be credentials."""
    shown = shown_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError past 65535
    except ValueError as exc:
        return f"bad judge URL {shown!r} ({exc}): use e.g. http://localhost:8000/v1"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"bad judge URL {shown!r}: use http(s)://HOST[:PORT]/PATH, e.g. http://localhost:8000/v1"
    if port == 0:
        return f"bad judge URL {shown!r}: port 0 cannot be reached: use the server's port"
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # the query is sent with every request as one value per name (agent.judges.openai_chat)
        return f"bad judge URL {shown!r}: query parameter {repeated[0]!r} is given twice: give it once"
    return None


def default_kind(model: str | None, base_url: str | None) -> str:
    """The judge a front end uses when none is named: openai when an endpoint or model is given."""
    return "openai" if (model or base_url) else "offline"
