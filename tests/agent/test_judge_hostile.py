"""A hostile or careless judge endpoint (issue 27 items 10-12): credentials in its URL and replies, a query
string in the base URL, replies far past max_tokens."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.store.export import export_records
from agent.judges import JudgeUnreachable, check_judge, make_judge
from agent.judges.config import url_problem
from agent.judges.redact import MASK, redact
from agent.judges.scripted import final_reply
from agent.run import run_features
from agent.store.store import Store
from tests.agent.conftest import TEST_KEY
from tests.agent.fakes import ChatServer, FakeEngine, Reply
from tests.agent.test_judge_servers import context, decide

FINAL = json.dumps(final_reply())
CFG = RunConfig(sweep=SweepConfig(strengths=(20.0,)))
PASSWORD, TOKEN, OTHER = "hunter2pw", "TOPSECRET123", "abcdefSECRET"


def judge(url: str, **kw):
    opts = dict(model="m", api_key=TEST_KEY, retries=1, backoff=0.01, timeout=2.0)
    return make_judge("openai", base_url=url, **{**opts, **kw})


def files_under(*paths: Path) -> bytes:
    return b"".join(p.read_bytes() for root in paths for p in ([root] if root.is_file() else root.rglob("*"))
                    if p.is_file())


# -- 11. a query string in the base URL -------------------------------------------------------------------


def test_a_query_in_the_base_url_arrives_after_the_path() -> None:
    with ChatServer([Reply(content=FINAL)]) as server:
        assert decide(judge(f"{server.url}?token={TOKEN}&t={OTHER}")).verdict is not None
    assert server.requests[0]["path"] == f"/v1/chat/completions?token={TOKEN}&t={OTHER}"


def test_a_base_url_repeating_a_query_parameter_is_refused_in_one_line() -> None:
    problem = url_problem("http://127.0.0.1:8000/v1?t=aaaaaaaa&t=bbbbbbbb")
    assert problem and "'t' is given twice" in problem and "aaaaaaaa" not in problem


# -- 10. secrets: verbose logs, bad URLs, echoed keys ---------------------------------------------------------


def test_verbose_logs_mask_every_query_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with ChatServer([Reply(content=FINAL)]) as server:
        decide(judge(f"{server.url}?t={OTHER}&api-version=2024-06-01"))
    assert "HTTP Request" in caplog.text and OTHER not in caplog.text and f"t={MASK}" in caplog.text
    assert redact("GET https://h/v1?t=SECRET&x=1#top") == f"GET https://h/v1?t={MASK}&x={MASK}#top"


BAD_URLS = [f"http://user:{PASSWORD}@127.0.0.1:99999/v1?token={TOKEN}", f"http://user:{PASSWORD}@[::1/v1?token={TOKEN}",
            f"ftp://user:{PASSWORD}@127.0.0.1/v1?token={TOKEN}", f"http://user:{PASSWORD}@127.0.0.1:0/v1?token={TOKEN}"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_judge_url_is_named_without_its_credentials(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    problem = url_problem(url)
    assert problem and "bad judge URL" in problem and f"//{MASK}@" in problem
    assert PASSWORD not in problem and TOKEN not in problem
    with pytest.raises(JudgeUnreachable) as info:  # the judge itself: no ValueError, nothing shown whole
        check_judge(judge(url), timeout=1)
    assert str(info.value) == problem, "the judge's check and the front doors' say the same line"
    assert main(["--features", "0", "--judge-base-url", url]) == 2
    assert main(["judge-check", "--judge-base-url", url]) == 2
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err and TOKEN not in out.out + out.err and "Traceback" not in out.err
    assert [line.startswith("error:") for line in out.err.splitlines()] == [True, True]


def test_the_key_a_server_echoes_into_its_replies_is_never_stored_or_exported(tmp_path: Path) -> None:
    """The key (and the URL's password and token) quoted in a valid verdict and in an invalid reply."""
    server: ChatServer

    def script(payload) -> Reply:
        echo = f"Bearer {TEST_KEY} {server.requests[-1]['path']} {PASSWORD}"  # what it was sent, quoted back
        if "Feature 0" in json.dumps(payload["messages"]):
            return Reply(content=json.dumps({**final_reply(), "explanation": f"Red things, {echo}."}))
        return Reply(content=f"no verdict, {echo}")

    server = ChatServer(script)
    url = f"http://user:{PASSWORD}@" + server.url.split("://", 1)[1] + f"?token={TOKEN}"
    with server, Store(tmp_path / "store") as store:
        run_features(FakeEngine(), judge(url), store, [0, 1], CFG)
        done, failed = store.get_record(0), store.get_record(1)
        export_records(store, tmp_path / "out.jsonl")
    assert TOKEN in server.requests[0]["path"]
    assert done.status == "done" and f"Bearer {MASK}" in done.final_explanation
    assert failed.status == "failed" and f"Bearer {MASK}" in failed.raw_reply
    blob = files_under(tmp_path)
    assert all(s.encode() not in blob for s in (TEST_KEY, PASSWORD, TOKEN)), "a secret reached the store or export"


# -- 12. replies far past max_tokens ----------------------------------------------------------------------


def test_replies_that_ignore_max_tokens_are_cut_where_kept_and_counted(tmp_path: Path) -> None:
    runaway = "x" * 2_000_000
    with ChatServer(lambda p: Reply(content=runaway)) as server, Store(tmp_path / "store") as store:
        j = judge(server.url)
        summary = run_features(FakeEngine(), j, store, [0, 1], CFG)
        record = store.get_record(0)
        export_records(store, tmp_path / "out.jsonl")
    assert summary.stats.failed == 2 and len(server.requests) == 6
    assert "6 cut by max_tokens" in j.call_line()
    cap = 600 * 16  # characters kept: 16 a token of --judge-max-tokens (agent.judges.llm.reply_cap)
    assert len(record.raw_reply) < cap + 100 and record.raw_reply.endswith(f"[{2_000_000 - cap} more characters cut]")
    assert "the reply ran to 2000000 characters, past the --judge-max-tokens 600 cap" in record.error
    stored = json.dumps(record.to_dict())
    assert stored.count("more characters cut]") == 1, "the failing reply is stored once (raw_reply), not twice"
    assert len(files_under(tmp_path)) < 500_000, "2 MB replies are not kept whole (they were: 20 MB)"


def test_a_valid_verdict_with_a_runaway_tail_is_kept_cut_and_replayed(tmp_path: Path) -> None:
    with ChatServer(lambda p: Reply(content=FINAL + " " * 500_000)) as server, Store(tmp_path / "s") as store:
        j = judge(server.url)
        first = decide(j, context(cache=store))
        again = decide(judge(server.url), context(cache=store))
    assert first.verdict is not None and len(first.raw) < 600 * 16 + 100 and j.backend.stats.truncated == 1
    assert again.verdict is not None and again.cached and len(server.requests) == 1


# -- 2. terminal text --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, shown", [
    ("red \x1b[31m thing\x1b[2J", "red \ufffd thing\ufffd"),
    ("title \x1b]0;pwned\x07 x", "title \ufffd x"),
    ("a\x00b\x9bc\x7fd", "a\ufffdb\ufffd\ufffdd"),
    ("two\nlines\there", "two lines here"),
    ("[bold]red[/] thing", "[bold]red[/] thing"),
])
def test_printable_replaces_escape_sequences_and_controls(text: str, shown: str) -> None:
    from agent.judges.redact import printable

    assert printable(text) == shown


def test_shown_url_masks_user_info_and_every_query_value() -> None:
    from agent.judges.redact import shown_url

    assert shown_url(f"http://user:{PASSWORD}@h:8/v1?token={TOKEN}&t=1") == f"http://{MASK}@h:8/v1?token={MASK}&t={MASK}"
    assert shown_url(None) == "" and shown_url("http://h/v1") == "http://h/v1"
