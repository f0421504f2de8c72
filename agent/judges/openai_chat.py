"""An OpenAI-compatible chat backend (OpenAI, vLLM, llama.cpp, Ollama...): formats, retries, limits, a breaker."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from agent.judges.base import JudgeCallError, JudgeFatalError, JudgeQuotaError, JudgeUnreachable, Usage
from agent.judges.config import DEFAULT_JUDGE_MODEL, DEFAULT_KEY_ENV, OPENAI_URL, Endpoint, read_endpoint, url_problem
from agent.judges.llm import Completion, ContextTooLongError, SchemaUnsupportedError, reply_cap
from agent.judges.policy import REMOTE_CONCURRENCY, AdaptiveLimit, Breaker, CallStats, is_local
from agent.judges.redact import install_log_redaction, mask_secrets, printable, redact, shown_url, url_secrets
from agent.judges.retry import (
    Attempts,
    EndpointDown,
    RetryPolicy,
    describe,
    error_fields,
    is_quota_error,
    is_transient,
    retried,
    status_of,
)

__all__ = ["FORMATS", "IMAGE_TOKENS", "PRICES", "OpenAIChat", "RetryPolicy", "price_for", "safe_url", "split_query"]

log = logging.getLogger(__name__)

IMAGE_TOKENS = 255
"""Prompt tokens one attached image is estimated at where the server reports no usage."""

# USD per million tokens (input, output), for the cost estimate; unknown models show no cost.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40), "gpt-5-mini": (0.25, 2.00), "gpt-5": (1.25, 10.00),
    "o4-mini": (1.10, 4.40), "o3-mini": (1.10, 4.40),
}
_SCHEMA_TEXT = re.compile(r"response_format|json_schema|json_object|structured output|argument supplied: schema|"
                          r"Input should be 'text'", re.IGNORECASE)
_CONTEXT_TEXT = re.compile(r"context[_ ]length|context window|maximum context|n_ctx|prompt is too long|"
                           r"too many tokens", re.IGNORECASE)
_CONTEXT_LIMIT = re.compile(r"(?:context window of|maximum context length is|context length (?:is|of)|n_ctx"
                            r"(?:_slot)?\W{0,3}|limit of)\s*(\d{3,7})", re.IGNORECASE)
CHECK_PROMPT = "Reply with the word OK."
"""The check's request before a run: a few tokens, no response format."""
CHECK_TOKENS = 5
"""Reply cap of that request."""
DEFAULT_MAX_TOKENS = 600
"""Reply cap of one verdict (a verdict needs about 500 tokens; without a cap a runaway reply fills the window)."""
FORMATS = ("schema", "json_object", "text")
"""The ladder ``auto`` walks down: JSON schema, JSON object (its schema in the prompt and, for llama.cpp,
in ``response_format.schema``), then JSON asked for in words."""


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
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port or a broken IPv6 address: shown masked, never whole
        return shown_url(url.split("?", 1)[0].split("#", 1)[0])
    host = parts.hostname or ""
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _readable(url: str | None) -> None:
    """Raise JudgeUnreachable (url_problem's line) when ``url`` cannot even be parsed, so no client can be built:
    a broken IPv6 address or a port that is not a number from 0 to 65535 (the other problems wait for ``check``)."""
    if not url:
        return
    try:
        urlsplit(url).port
    except ValueError:
        raise JudgeUnreachable(str(url_problem(url))) from None


def split_query(url: str | None) -> tuple[str | None, dict[str, str]]:
    """(``url`` without its query and fragment, the query's parameters): the openai client appends paths to
    its base URL, so a query must travel as ``default_query`` to arrive after ``/chat/completions``."""
    if not url or not any(c in url for c in "?#"):
        return url, {}
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


class OpenAIChat:
    """Chat Completions over the openai client, with retries (agent.judges.retry), an in-flight limit and a breaker."""

    def __init__(self, model: str = DEFAULT_JUDGE_MODEL, base_url: str | None = None, api_key: str | None = None,
                 *, api_key_env: str = DEFAULT_KEY_ENV, endpoint: Endpoint | None = None, json_mode: str = "auto",
                 temperature: float | None = None, max_tokens: int | None = DEFAULT_MAX_TOKENS,
                 retry: RetryPolicy | None = None, price: tuple[float, float] | None = None,
                 concurrency: int | None = None, down_limit: float = 120.0) -> None:
        """``endpoint``: the URL and key as already read (JudgeConfig.endpoint); without it they are read here
        from ``base_url``, ``api_key`` and the environment."""
        endpoint = endpoint or read_endpoint(base_url, api_key, api_key_env)
        self.model = model
        self.base_url = endpoint.url
        _readable(self.base_url)
        key = endpoint.key
        self._secrets = [key, *url_secrets(self.base_url)]
        """What is masked wherever the judge's text goes: the key, the URL's password and query values."""
        if not key:
            if self.base_url and safe_url(self.base_url) != safe_url(OPENAI_URL):
                key = "not-needed"  # local servers (vLLM, Ollama) accept any key
            else:
                raise JudgeFatalError(f"no API key for the judge: set ${endpoint.key_env} (or --judge-api-key-env "
                                      "NAME), or use --judge offline")
        self.api_key_env = endpoint.key_env
        self.retry = retry or RetryPolicy()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.price = price or price_for(model)
        self.requested_format = json_mode
        self._mode = json_mode if json_mode in FORMATS else "schema"
        self.format_known = json_mode != "auto"
        """False while ``auto`` has not yet seen the server accept or refuse a format."""
        self.local = is_local(self.base_url)
        self.concurrency = concurrency
        start = concurrency or (1 if self.local else REMOTE_CONCURRENCY)
        self.limit = AdaptiveLimit(start, start)
        self.stats = CallStats()
        self.instructions = "user" if self.local else "system"
        """Where the instructions go: a local server's chat template may drop system messages."""
        self.breaker = Breaker(lambda: self._reachable(2.0), down_limit, safe_url(self.base_url) or "the OpenAI API")
        self._key = key
        install_log_redaction(self._secrets)
        self._endpoint, self._query = split_query(self.base_url)
        self._http: Any = self._new_client()  # built now: bad options fail here, not on the first call
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        """The event loop ``_http`` belongs to (None: not used yet)."""

    def _new_client(self) -> Any:
        import openai

        # max_retries=0: agent.judges.retry owns the retries (the client's own would multiply them). The URL is
        # always given, so the client reads no $OPENAI_BASE_URL of its own.
        return openai.AsyncOpenAI(api_key=self._key, base_url=self._endpoint or OPENAI_URL,
                                  default_query=self._query or None, max_retries=0, timeout=self.retry.timeout)

    def _client(self) -> Any:
        """The client for the running loop. Its connection pool belongs to the loop that first used it, and a UI
        may start several runs (each with its own loop) with the same judge: a new loop gets a new client (the
        finished loop's is dropped)."""
        loop = asyncio.get_running_loop()
        if self._http is None or (self._loop is not None and self._loop() is not loop):
            self._http = self._new_client()
        self._loop = weakref.ref(loop)
        return self._http

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChat(model={self.model!r}, base_url={safe_url(self.base_url)!r})"

    # -- identity ------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"kind": "openai", "model": self.model, "base_url": safe_url(self.base_url) or "openai",
                "temperature": self.temperature, "max_tokens": self.max_tokens}

    def endpoint_key(self) -> str:
        """Where the learned format is remembered: the URL (no credentials) and the model."""
        return f"judge_format:{safe_url(self.base_url) or 'openai'}|{self.model}"

    def settings(self) -> str:
        """The call settings in force, as the flags that change them."""
        conc = self.concurrency or f"{self.limit.limit} (auto{', local server' if self.local else ''})"
        return (f"--judge-format {self.requested_format} (using {self._mode}), --judge-timeout "
                f"{self.retry.timeout:g}, --judge-concurrency {conc}, --judge-max-tokens {self.max_tokens}")

    @property
    def json_mode(self) -> str:
        return self._mode

    def use_format(self, mode: str) -> None:
        """Use ``mode`` (one of FORMATS) from now on, e.g. the one remembered for this endpoint."""
        if mode in FORMATS:
            self._mode = mode
            self.format_known = True

    def downgrade(self, refused: str | None = None) -> str | None:
        """The next format down the ladder after ``refused`` was refused (None: none left, or the user chose
        this one). A refusal of a format already left behind (a concurrent request) changes nothing."""
        if self.requested_format != "auto":
            return None
        if refused is not None and refused != self._mode:
            return self._mode
        if self._mode == "text":
            return None
        self._mode = FORMATS[FORMATS.index(self._mode) + 1]
        return self._mode

    def use_text_mode(self) -> None:
        self._mode = "text"

    # -- checks --------------------------------------------------------------------------------

    def _host_port(self) -> tuple[str, int]:
        """(host, port) of the endpoint; raises JudgeUnreachable with url_problem's line for a URL that cannot work."""
        url = self.base_url or OPENAI_URL
        problem = url_problem(url)
        if problem:
            raise JudgeUnreachable(problem)
        parts = urlsplit(url)
        return str(parts.hostname), parts.port or (443 if parts.scheme == "https" else 80)

    def _reachable(self, timeout: float) -> bool:
        import socket

        try:
            with socket.create_connection(self._host_port(), timeout=timeout):
                return True
        except OSError:
            return False

    def reach(self, timeout: float = 3.0) -> None:
        """The URL names a host, and a TCP connection to it opens within ``timeout`` (no request is sent).
        Raises JudgeUnreachable naming the fix."""
        import socket

        host, port = self._host_port()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise JudgeUnreachable(f"cannot reach the judge at {host}:{port} ({reason}): start the "
                                   "server, fix the judge URL, or use the offline judge") from None

    def check(self, timeout: float = 3.0) -> None:
        """Before a run: the endpoint is reachable (``reach``), and one minimal chat request (a few tokens, no
        response format) is answered, so that a server failing every call is refused now, in its own words,
        rather than after every feature's retries. Raises JudgeFatalError (JudgeUnreachable, JudgeQuotaError)
        naming the fix. The request is not counted in ``stats``."""
        self.reach(timeout)
        self.answers()

    def answers(self) -> None:
        """One minimal chat request, on a client of its own (sync: callable from any thread, inside a running
        event loop too). A busy server (429, 503: loading, rate-limited) passes: the run's retries wait for it."""
        import openai

        where = safe_url(self.base_url) or "the OpenAI API"
        kwargs = self.request([{"role": "user", "content": CHECK_PROMPT}], None)
        if self.max_tokens is not None:
            kwargs["max_tokens"] = min(self.max_tokens, CHECK_TOKENS)
        client = openai.OpenAI(api_key=self._key, base_url=self._endpoint or OPENAI_URL,
                               default_query=self._query or None, max_retries=0, timeout=self.retry.timeout)
        try:
            with client:
                client.chat.completions.create(**kwargs)
        except (openai.APIResponseValidationError, ValueError):  # answered, if garbled: the run's retries cope
            log.info("the judge at %s answered a test request with a garbled body", where)
        except openai.APITimeoutError:
            raise JudgeUnreachable(f"the judge at {where} did not answer a test request within "
                                   f"{self.retry.timeout:g} s: check the server, raise --judge-timeout, or use "
                                   "the offline judge") from None
        except openai.APIConnectionError as exc:
            reason = printable(redact(describe(exc), self._secrets))
            raise JudgeUnreachable(f"the judge at {where} did not answer a test request ({reason}): check the "
                                   "server and the judge URL, or use the offline judge") from None
        except openai.APIStatusError as exc:
            status = status_of(exc)
            if status in (429, 503) and not is_quota_error(exc):
                log.info("the judge at %s is busy (%s); the run's calls will wait for it", where, status)
                return
            if is_quota_error(exc) or status in (401, 403, 404):
                raise self._classify(exc, kwargs, "text") from None
            message = printable(_short(redact(error_fields(exc)[1], self._secrets))) or "no message"
            raise JudgeFatalError(f"the judge at {where} cannot answer: a test request got HTTP {status} "
                                  f"({message}): fix the server (its log says why) or the judge options, or use "
                                  "the offline judge") from None

    # -- calls ---------------------------------------------------------------------------------

    def request(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> dict[str, Any]:
        """The request body's options for the format in use."""
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if schema is not None and self._mode == "schema":
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "verdict", "schema": schema, "strict": True}}
        elif schema is not None and self._mode == "json_object":
            # llama.cpp's servers turn ``schema`` into a grammar; others ignore the extra field.
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        return kwargs

    async def complete(self, messages: list[dict[str, Any]], *, schema: dict[str, Any] | None) -> Completion:
        kwargs, sent = self.request(messages, schema), self._mode

        async def attempt(attempts: Attempts) -> Completion:
            return await self._attempt(attempts, kwargs, messages, sent)

        def fail(error: BaseException, attempts: Attempts) -> Exception:
            return self._give_up(error, attempts, kwargs, sent)

        return await retried(attempt, self.retry, breaker=self.breaker, log=log, fail=fail)

    async def _attempt(self, attempts: Attempts, kwargs: dict[str, Any], messages: list[dict[str, Any]],
                       sent: str) -> Completion:
        """One request. Errors not worth a retry leave as typed judge errors; the rest are agent.judges.retry's."""
        import openai

        await self.limit.acquire()
        self.stats.requests += 1
        self.stats.retries += int(attempts.spent > 1)
        t0 = time.perf_counter()
        try:
            response = await self._client().chat.completions.create(**kwargs, timeout=attempts.timeout)
        except openai.APITimeoutError:
            self.stats.timeouts += 1
            self.stats.abandoned += 1
            self.limit.on_timeout()
            attempts.timeouts += 1
            raise
        except openai.APIConnectionError as exc:
            if not await asyncio.to_thread(self._reachable, 2.0):
                raise EndpointDown(describe(exc)) from exc
            raise
        except openai.APIStatusError as exc:
            if not is_transient(exc) or self._is_format_refusal(exc, kwargs) or self._is_context_error(exc):
                raise self._classify(exc, kwargs, sent) from None
            raise
        finally:
            self.limit.release()
        seconds = time.perf_counter() - t0
        self.limit.on_answer(seconds, attempts.timeout)
        self.breaker.mark_up()
        return self._completion(response, messages, seconds)

    def _give_up(self, error: BaseException, attempts: Attempts, kwargs: dict[str, Any], sent: str) -> Exception:
        """The error a call ends with once its retries are spent on ``error``."""
        import openai

        if isinstance(error, openai.APITimeoutError):
            return JudgeCallError(self._timeout_message(attempts.timeout, attempts.timeouts))
        if isinstance(error, openai.APIStatusError):
            return self._classify(error, kwargs, sent)
        return JudgeCallError(f"judge call failed after {self.retry.attempts} attempts: {describe(error)} "
                              f"(--judge-retries {self.retry.attempts})")

    def _timeout_message(self, timeout: float, timeouts: int) -> str:
        where = safe_url(self.base_url) or "the OpenAI API"
        return (f"the judge at {where} did not answer within {timeout:g} s ({timeouts} timeouts; the server may "
                f"still be computing them): raise --judge-timeout (now {self.retry.timeout:g}) or lower "
                f"--judge-concurrency (now {self.concurrency or self.limit.limit}), or cap replies with "
                f"--judge-max-tokens (now {self.max_tokens})")

    def _is_format_refusal(self, exc: Any, kwargs: dict[str, Any]) -> bool:
        """The server refused the request's response_format (judged by what was sent, not the mode now)."""
        if "response_format" not in kwargs or status_of(exc) not in (400, 422, 500):
            return False
        return bool(_SCHEMA_TEXT.search(error_fields(exc)[1])) and not self._is_context_error(exc)

    @staticmethod
    def _is_context_error(exc: Any) -> bool:
        code, message = error_fields(exc)
        return status_of(exc) in (400, 413, 422, 500) and (code == "context_length_exceeded"
                                                         or bool(_CONTEXT_TEXT.search(message)))

    def _classify(self, exc: Any, kwargs: dict[str, Any], sent: str) -> Exception:
        status = status_of(exc)
        code, message = error_fields(exc)
        code, message = redact(code, self._secrets), redact(message, self._secrets)  # servers may echo headers
        where = safe_url(self.base_url) or "the OpenAI API"
        if is_quota_error(exc):
            return JudgeQuotaError(f"the judge endpoint ({where}) says the quota or credit is exhausted "
                                   f"({status} {code or ''}: {_short(message)}); finished work is kept: top up the "
                                   "account or change --judge-model, then rerun to resume")
        if self._is_context_error(exc):
            found = _CONTEXT_LIMIT.search(message)
            return ContextTooLongError(f"{status}: {_short(message)}", limit=int(found.group(1)) if found else None)
        if self._is_format_refusal(exc, kwargs):
            return SchemaUnsupportedError(f"{status}: {_short(message)} (--judge-format {self.requested_format}, "
                                          f"sending {sent})", mode=sent)
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
                                  f"{_short(message)}) (--judge-retries {self.retry.attempts})")
        return JudgeCallError(f"the judge endpoint refused the request ({status}: {_short(message)})")

    def _completion(self, response: Any, messages: list[dict[str, Any]], seconds: float = 0.0) -> Completion:
        choices = getattr(response, "choices", None) or []
        text, finish = "", None
        if choices:
            message = choices[0].message
            text = message.content or getattr(message, "refusal", None) or ""
            finish = getattr(choices[0], "finish_reason", None)
        text = mask_secrets(text, self._secrets)  # a server may echo the key into the reply itself
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
        self.stats.answered += 1
        self.stats.seconds += seconds
        self.stats.prompt_tokens += int(prompt)
        self.stats.completion_tokens += int(completion)
        truncated = finish == "length"
        # A server that ignores max_tokens: a reply longer than the cap allows counts as cut (and is cut
        # where it is kept, LLMJudge._call).
        reported = getattr(usage, "completion_tokens", None) if usage else None
        over = self.max_tokens is not None and reported is not None and reported > self.max_tokens
        self.stats.truncated += int(truncated or over or len(text) > reply_cap(self.max_tokens))
        model = mask_secrets(str(getattr(response, "model", "") or self.model), self._secrets)
        return Completion(text=text, usage=Usage(prompt_tokens=int(prompt), completion_tokens=int(completion),
                                                 cost_usd=cost, calls=1),
                          model=model, truncated=truncated, seconds=seconds, format=self._mode)

    async def aclose(self) -> None:
        """Close the connection pool, if the running loop's or not used yet (call from inside the loop that used
        it); a later call opens a new one."""
        owner = self._loop() if self._loop is not None else None
        if self._http is not None and owner in (None, asyncio.get_running_loop()):
            client, self._http, self._loop = self._http, None, None
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

