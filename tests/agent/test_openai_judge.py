"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1 with scripted faults."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.judges.evidence import Evidence
from agent.store.export import export_records
from agent.judges import JudgeCallError, JudgeContext, JudgeFatalError, JudgeQuotaError, make_judge
from agent.judges.scripted import final_reply, probe_reply
from agent.probes import Probe, ProbeResult
from agent.run import run_features
from agent.store.store import Store
from tests.agent.conftest import TEST_KEY
from tests.agent.fakes import BASELINE, ChatServer, FakeEngine, Reply

FINAL = json.dumps(final_reply())


def judge(server: ChatServer, **kw):
    opts = dict(model="gpt-4o-mini", base_url=server.url, api_key=TEST_KEY, retries=4, backoff=0.01, timeout=1.0)
    return make_judge("openai", **{**opts, **kw})


def context() -> JudgeContext:
    ev = Evidence()
    ev.add([ProbeResult(Probe(None), (BASELINE,)), ProbeResult(Probe(4, strength=30.0), ("a red field",), kl_first=1.0)],
           round=1)
    return JudgeContext(feature=4, round=1, max_rounds=4, evidence=ev, strengths=[30.0], probes_left=8)


def decide(j, ctx: JudgeContext | None = None):
    return asyncio.run(j.decide(ctx or context()))


def test_structured_output_usage_and_cost() -> None:
    with ChatServer([Reply(content=FINAL, usage=(1000, 200))]) as server:
        turn = decide(judge(server))
    assert turn.verdict.action == "final" and turn.attempts == 1
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["json"]["model"] == "gpt-4o-mini"
    assert req["json"]["response_format"]["type"] == "json_schema"
    assert req["headers"]["authorization"] == f"Bearer {TEST_KEY}"
    assert turn.usage.prompt_tokens == 1000 and turn.usage.completion_tokens == 200
    assert turn.usage.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)


def test_429_honours_retry_after() -> None:
    limited = Reply(status=429, body={"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
                    headers={"retry-after": "0.4"})
    with ChatServer([limited, Reply(content=FINAL)]) as server:
        t0 = time.monotonic()
        turn = decide(judge(server, backoff=0.0))
        waited = time.monotonic() - t0
    assert turn.verdict is not None and len(server.requests) == 2 and waited >= 0.4


@pytest.mark.parametrize("fault", [
    Reply(status=500, body={"error": {"message": "internal"}}),
    Reply(status=503, body="upstream unavailable"),
    Reply(delay=2.0, content=FINAL),  # past the 1 s timeout
    Reply(drop=True),  # connection closed without an answer
    Reply(body="this is {not json"),  # garbled response body
], ids=["500", "503", "timeout", "dropped", "garbled-body"])
def test_transient_faults_are_retried(fault: Reply) -> None:
    with ChatServer([fault, Reply(content=FINAL)]) as server:
        turn = decide(judge(server))
    assert turn.verdict is not None and turn.verdict.action == "final" and len(server.requests) == 2


def test_retries_run_out_into_a_call_error() -> None:
    with ChatServer([Reply(status=500, body={"error": {"message": "boom"}})] * 3) as server:
        with pytest.raises(JudgeCallError, match="after 3 attempts"):
            decide(judge(server, retries=3))
    assert len(server.requests) == 3


def test_malformed_and_schema_invalid_replies_are_reasked() -> None:
    bad_json = '{"hypothesis": "red", "confidence": 0.5, "action": "final",'
    bad_schema = json.dumps({**final_reply(), "confidence": "very"})
    with ChatServer([Reply(content=bad_json), Reply(content=bad_schema), Reply(content=FINAL)]) as server:
        turn = decide(judge(server))
    assert turn.verdict is not None and turn.attempts == 3
    third = server.requests[2]["json"]["messages"]
    assert [m["role"] for m in third[-4:]] == ["assistant", "user", "assistant", "user"]
    assert third[-4]["content"] == bad_json and "not a JSON object" in third[-3]["content"]
    assert third[-2]["content"] == bad_schema and "confidence" in third[-1]["content"]


def test_never_valid_reply_ends_without_a_verdict() -> None:
    with ChatServer([Reply(content="no idea")] * 3) as server:
        turn = decide(judge(server))
    assert turn.verdict is None and turn.raw == "no idea" and turn.attempts == 3 and len(server.requests) == 3


@pytest.mark.parametrize("reply, error, match", [
    (Reply(status=429, body={"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                       "code": "insufficient_quota"}}), JudgeQuotaError, "quota or credit is exhausted"),
    (Reply(status=402, body={"error": {"message": "Insufficient credits"}}), JudgeQuotaError, "quota or credit"),
    (Reply(status=401, body={"error": {"message": "bad key"}}), JudgeFatalError, "rejected the API key"),
    (Reply(status=403, body={"error": {"message": "no access"}}), JudgeFatalError, "refused access"),
    (Reply(status=404, body={"error": {"message": "no such model"}}), JudgeFatalError, "does not know model"),
    (Reply(status=400, body={"error": {"message": "messages too long"}}), JudgeCallError, "refused the request"),
], ids=["quota-429", "credit-402", "401", "403", "404", "400"])
def test_non_retryable_errors_are_not_retried(reply: Reply, error: type, match: str) -> None:
    with ChatServer([reply, Reply(content=FINAL)]) as server, pytest.raises(error, match=match):
        decide(judge(server))
    assert len(server.requests) == 1


def test_schema_refusal_walks_down_to_json_in_text() -> None:
    refusal = Reply(status=400, body={"error": {"message": "response_format json_schema is not supported"}})
    refusal2 = Reply(status=422, body={"error": {"message": "response_format json_object is not supported"}})
    with ChatServer([refusal, refusal2, Reply(content="Here you go: " + FINAL)]) as server:
        j = judge(server)
        turn = decide(j)
    assert turn.verdict is not None and j.backend.json_mode == "text" and len(server.requests) == 3
    second, third = server.requests[1]["json"], server.requests[2]["json"]
    assert second["response_format"]["type"] == "json_object" and "oneOf" in second["response_format"]["schema"]
    assert "response_format" not in third and "Reply with exactly one JSON object" in third["messages"][0]["content"]


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(JudgeFatalError, match=r"\$MY_KEY"):
        make_judge("openai", model="gpt-4o-mini", api_key_env="MY_KEY")


def test_full_run_keeps_the_key_out_of_store_exports_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", TEST_KEY)

    def script(payload) -> Reply:
        users = [m for m in payload["messages"] if m["role"] == "user"]
        return Reply(content=json.dumps(probe_reply([15.0])) if len(users) == 1 else FINAL)

    caplog.set_level(logging.DEBUG)
    with ChatServer(script) as server, Store(tmp_path / "store") as store:
        j = make_judge("openai", model="gpt-4o-mini", base_url=server.url.replace("127.0.0.1", "user:pw@127.0.0.1"),
                       api_key_env="JUDGE_KEY", retries=3, backoff=0.01, timeout=2.0)
        cfg = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0)))
        summary = run_features(FakeEngine(), j, store, [0, 1, 2], cfg)
        assert summary.exit_code == 0 and summary.stats.judge_calls == 6
        assert summary.stats.cost_usd and summary.stats.cost_usd > 0
        export_records(store, tmp_path / "out.jsonl")
        assert len(server.requests) == 6 and all("authorization" in r["headers"] for r in server.requests)
        rec = store.get_record(0)
        assert rec.judge["backend"]["base_url"] == f"{server.url}"  # user info and query stripped
    blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert blobs and not any(TEST_KEY.encode() in b for b in blobs)
    assert not any(b"user:pw" in b for b in blobs)
    assert TEST_KEY not in caplog.text


def test_one_judge_serves_several_runs(tmp_path: Path) -> None:
    """A UI starts several runs (each with its own event loop) with the same judge object."""
    with ChatServer(lambda payload: Reply(content=FINAL)) as server, Store(tmp_path / "s") as store:
        j = judge(server)
        cfg = RunConfig(sweep=SweepConfig(strengths=(5.0,)))
        for features in ([0], [1], [0]):
            summary = run_features(FakeEngine(), j, store, features, RunConfig(**{**cfg.__dict__, "rejudge": True}))
            assert summary.exit_code == 0
        assert len(server.requests) == 3 and TEST_KEY not in repr(j.backend)


def test_check_finds_an_unreachable_or_malformed_endpoint_before_a_run() -> None:
    from agent.judges import JudgeUnreachable, check_judge

    check_judge(make_judge("offline"))
    with ChatServer(lambda payload: Reply(content="OK", usage=(12, 1))) as server:
        check_judge(make_judge("openai", base_url=server.url, api_key="k"), timeout=2)
        [sent] = [r["json"] for r in server.requests]  # one minimal request: a few tokens billed, no format
        assert sent["max_tokens"] <= 8 and "response_format" not in sent
    with pytest.raises(JudgeUnreachable, match="cannot reach the judge at 127.0.0.1:9"):
        check_judge(make_judge("openai", base_url="http://127.0.0.1:9/v1", api_key="k"), timeout=2)
    with pytest.raises(JudgeUnreachable, match=r"bad judge URL 'ftp://127.0.0.1/v1': use http\(s\)://HOST"):
        check_judge(make_judge("openai", base_url="ftp://127.0.0.1/v1", api_key="k"), timeout=2)
    assert issubclass(JudgeUnreachable, JudgeFatalError)


def test_image_parts_count_toward_the_estimated_prompt_tokens() -> None:
    from agent.judges.openai_chat import IMAGE_TOKENS, _estimate_tokens

    parts = [{"type": "text", "text": "x" * 400}, {"type": "image_url", "image_url": {"url": "data:..."}}]
    assert _estimate_tokens(parts) == 100 + IMAGE_TOKENS and _estimate_tokens("y" * 40) == 10
