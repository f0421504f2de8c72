"""The judge's retries are tenacity's (agent.judges.retry), its client is built once, and its endpoint's
configuration has one truth (agent.judges.config): issue 28, parts 1 and 3."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import pytest
import tenacity

import agent.judges.retry as retry_module
from agent.judges import JudgeCallError, JudgeConfig, JudgeUnreachable, build_judge, check_judge, make_judge
from agent.judges.config import BASE_URL_ENV, url_problem
from agent.judges.redact import MASK
from tests.agent.conftest import TEST_KEY
from tests.agent.fakes import ChatServer, Reply
from tests.agent.test_judge_servers import FINAL, context, decide, judge

RATE_LIMITED = {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}
BOOM = {"error": {"message": "boom"}}


def counted(cls: type) -> tuple[type, list[Any]]:
    """A subclass of ``cls`` that keeps each instance made, and that list."""
    made: list[Any] = []

    class Counted(cls):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            made.append(self)

    return Counted, made


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds the retries asked to wait, through the seam (nothing is really waited)."""
    seconds: list[float] = []

    async def record(s: float) -> None:
        seconds.append(float(s))

    monkeypatch.setattr(retry_module, "sleep", record)
    return seconds


def test_tenacity_is_what_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded, made = counted(tenacity.AsyncRetrying)
    monkeypatch.setattr(retry_module, "AsyncRetrying", recorded)
    with ChatServer([Reply(status=500, body=BOOM), Reply(content=FINAL)]) as server:
        j = judge(server)
        assert decide(j).verdict is not None
    assert len(made) == 1 and made[0].statistics["attempt_number"] == 2 and len(server.requests) == 2
    assert j.backend._http.max_retries == 0, "the openai client's own retries would multiply tenacity's"


@pytest.mark.parametrize("headers, wait", [
    ({"retry-after": "30"}, 30.0),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after": "600"}, 60.0),  # capped by RetryPolicy.max_wait
], ids=["seconds", "milliseconds", "capped"])
def test_retry_after_is_what_is_waited(slept: list[float], headers: dict[str, str], wait: float) -> None:
    limited = Reply(status=429, body=RATE_LIMITED, headers=headers)
    with ChatServer([limited, Reply(content=FINAL)]) as server:
        assert decide(judge(server, backoff=0.0)).verdict is not None
    assert slept == [wait] and len(server.requests) == 2


def test_other_waits_grow_exponentially_with_full_jitter_and_are_logged(monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Through the older seam, asyncio.sleep; random.uniform at its top end shows each wait's ceiling."""
    seconds: list[float] = []
    real_sleep = asyncio.sleep

    async def record(s: float, *args: Any) -> None:
        if s:  # the in-flight limit polls with short sleeps; only the retries' waits are long
            seconds.append(s)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", record)
    monkeypatch.setattr(retry_module.random, "uniform", lambda low, high: high)
    caplog.set_level(logging.WARNING, logger="agent.judges.openai_chat")
    with ChatServer([Reply(status=500, body=BOOM)] * 4) as server:
        with pytest.raises(JudgeCallError, match=r"after 4 attempts \(500: boom\) \(--judge-retries 4\)"):
            decide(judge(server, retries=4, backoff=1.0))
    assert [s for s in seconds if s >= 1.0] == [1.0, 2.0, 4.0] and len(server.requests) == 4
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.judges.openai_chat"]
    assert lines == [f"judge call failed (InternalServerError 500); retry {n} of 3" for n in (1, 2, 3)]


def test_a_timed_out_request_goes_again_at_once_with_twice_the_timeout(slept: list[float]) -> None:
    replies = iter([Reply(content=FINAL, delay=1.5), Reply(content=FINAL, delay=0.6)])
    with ChatServer(lambda payload: next(replies)) as server:
        j = judge(server, timeout=0.5)
        turn = decide(j)  # 0.6 s fits the second request's 1.0 s, not the first's 0.5 s
    assert turn.verdict is not None and len(server.requests) == 2
    assert j.backend.stats.timeouts == 1 and j.backend.stats.retries == 1 and sum(slept) == 0


def test_the_client_is_built_once_per_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    client, built = counted(openai.AsyncOpenAI)
    monkeypatch.setattr(openai, "AsyncOpenAI", client)
    with ChatServer(lambda payload: Reply(content=FINAL)) as server:
        j = judge(server)
        assert len(built) == 1, "built with the judge (a bad option fails there)"

        async def two_calls() -> None:
            await j.decide(context())
            await j.decide(context(text="a blue field"))

        asyncio.run(two_calls())
        assert len(built) == 1 and len(server.requests) == 2, "the judge's client served its first loop"
        asyncio.run(two_calls())
    assert len(built) == 2, "another loop, another connection pool"


def test_the_environment_is_read_once_per_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []

    class Environ(dict):
        def get(self, key: str, default: Any = None) -> Any:
            reads.append(key)
            return super().get(key, default)

    monkeypatch.setattr(os, "environ", Environ({**os.environ, "JUDGE_KEY": TEST_KEY}))
    os.environ.pop(BASE_URL_ENV, None)
    chat = build_judge(JudgeConfig(kind="openai", api_key_env="JUDGE_KEY")).backend

    async def use() -> None:
        chat._client()
        await chat.aclose()

    asyncio.run(use())
    assert reads.count(BASE_URL_ENV) == 1 and reads.count("JUDGE_KEY") == 1
    assert chat.base_url is None and chat._key == TEST_KEY


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:8000/v1", None),
    ("https://api.example.com/v1?api-version=1", None),
    ("http://h:99999/v1", "bad judge URL 'http://h:99999/v1' (Port out of range 0-65535): use e.g. "
                          "http://localhost:8000/v1"),
    ("ftp://h/v1", "bad judge URL 'ftp://h/v1': use http(s)://HOST[:PORT]/PATH, e.g. http://localhost:8000/v1"),
    ("localhost:8000/v1", "bad judge URL 'localhost:8000/v1': use http(s)://HOST[:PORT]/PATH, e.g. "
                          "http://localhost:8000/v1"),
    ("http://h:0/v1", "bad judge URL 'http://h:0/v1': port 0 cannot be reached: use the server's port"),
    ("http://u:pw@h/v1?t=a&t=b", f"bad judge URL 'http://{MASK}@h/v1?t={MASK}&t={MASK}': query parameter 't' is "
                                 "given twice: give it once"),
])
def test_the_one_url_check_says_the_lines_the_front_doors_show(url: str, problem: str | None) -> None:
    """The CLI, the TUI (agent.session) and the judge's own check all say these lines (agent.judges.config)."""
    assert url_problem(url) == problem


def test_a_judge_refuses_a_url_without_a_scheme_at_its_check() -> None:
    with pytest.raises(JudgeUnreachable, match="bad judge URL 'localhost:8000/v1': use http"):
        check_judge(make_judge("openai", base_url="localhost:8000/v1", api_key="k"), timeout=1)
