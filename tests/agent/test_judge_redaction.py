"""Judge secrets stay out of stores, exports, errors and logs (issue 17 item 7)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.store.export import export_records
from agent.judges import JudgeCallError, make_judge
from agent.judges.redact import MASK, redact
from agent.run import run_features
from agent.store.store import Store
from tests.agent.conftest import TEST_KEY
from tests.agent.fakes import ChatServer, FakeEngine, Reply
from tests.agent.test_openai_judge import decide


def _echoing_server() -> ChatServer:
    """A server whose error body quotes the request's Authorization header back."""
    server: ChatServer

    def script(_payload) -> Reply:
        sent = server.requests[-1]["headers"].get("authorization", "")
        return Reply(status=400, body={"error": {"message": f"invalid request, headers: Authorization: {sent}",
                                                 "code": "bad_request"}})

    server = ChatServer(script)
    return server


def test_an_echoed_key_reaches_no_store_export_error_or_log(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    with _echoing_server() as server, Store(tmp_path / "store") as store:
        j = make_judge("openai", model="gpt-4o-mini", base_url=server.url, api_key=TEST_KEY, retries=1,
                       backoff=0.01, timeout=2.0)
        summary = run_features(FakeEngine(), j, store, [0, 1], RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0))))
        assert summary.exit_code != 0
        assert all(TEST_KEY in r["headers"]["authorization"] for r in server.requests)  # it was sent, and echoed
        records = store.list_records()
        assert records and all(r.status == "failed" and MASK in (r.error or "") for r in records)
        export_records(store, tmp_path / "out.jsonl")
    blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert blobs and not any(TEST_KEY.encode() in b for b in blobs)
    out = capsys.readouterr()
    assert TEST_KEY not in out.out + out.err and TEST_KEY not in caplog.text


def test_the_error_raised_by_one_call_is_redacted() -> None:
    with _echoing_server() as server:
        with pytest.raises(JudgeCallError) as info:
            decide(make_judge("openai", model="m", base_url=server.url, api_key=TEST_KEY, retries=1, backoff=0.01,
                              timeout=2.0))
    assert TEST_KEY not in str(info.value) and f"Bearer {MASK}" in str(info.value)


def test_verbose_logs_hide_url_credentials_and_query_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with ChatServer([Reply(status=404, body={"error": {"message": "nope"}})]) as server:
        url = server.url.replace("127.0.0.1", "user:hunter2pw@127.0.0.1") + "?token=TOPSECRET123"
        j = make_judge("openai", model="m", base_url=url, api_key=TEST_KEY, retries=1, backoff=0.01, timeout=2.0)
        with pytest.raises(Exception):
            decide(j)
    assert "HTTP Request" in caplog.text  # the client did log the URL at INFO (-v)
    assert "hunter2pw" not in caplog.text and "TOPSECRET123" not in caplog.text


@pytest.mark.parametrize("text, gone", [
    ("Authorization: Bearer abcdef123456", "abcdef123456"),
    ('{"api_key": "k-998877665544"}', "k-998877665544"),
    ("see https://bob:s3cr3tpass@host/v1", "s3cr3tpass"),
    ("GET /v1/x?a=1&access_token=QQQQ1234&b=2", "QQQQ1234"),
    ("key sk-proj-0123456789abcdefXYZ leaked", "sk-proj-0123456789abcdefXYZ"),
])
def test_redact_patterns(text: str, gone: str) -> None:
    clean = redact(text)
    assert gone not in clean and MASK in clean


def test_redact_keeps_ordinary_text_and_masks_given_secrets() -> None:
    assert redact("the model is not found (404)") == "the model is not found (404)"
    assert redact("value plainsecretvalue here", ["plainsecretvalue"]) == f"value {MASK} here"
