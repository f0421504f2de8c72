"""The LLM judge against fakes of real servers' quirks (llama.cpp, vLLM, Ollama, OpenAI), as measured in issue 20."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.judges.evidence import Evidence
from agent.judges import JudgeCallError, JudgeContext, JudgeFatalError, make_judge
from agent.judges.scripted import final_reply, probe_reply
from agent.probes import Probe, ProbeResult
from agent.run import run_features
from agent.store.store import Store
from tests.agent.fakes import BASELINE, ChatServer, FakeEngine, Quirks, Reply

FINAL = json.dumps(final_reply())


def always(text: str):
    return lambda payload: text


def judge(server: ChatServer, **kw):
    opts = dict(model="m", base_url=server.url, api_key="k", retries=3, backoff=0.01, timeout=2.0)
    return make_judge("openai", **{**opts, **kw})


def context(samples: int = 1, text: str = "a red field", cache=None) -> JudgeContext:
    ev = Evidence()
    ev.add([ProbeResult(Probe(None), (BASELINE,)),
            ProbeResult(Probe(4, strength=30.0, samples=samples), tuple(text for _ in range(samples)), kl_first=1.0)],
           round=1)
    return JudgeContext(feature=4, round=1, max_rounds=4, evidence=ev, strengths=[30.0], probes_left=8, cache=cache)


def decide(j, ctx: JudgeContext | None = None):
    return asyncio.run(j.decide(ctx or context()))


def formats(server: ChatServer) -> list[str]:
    return [(r["json"].get("response_format") or {}).get("type", "text") for r in server.requests]


# -- 1. --judge-format auto learns the format once per endpoint ---------------------------------------


def test_llama_cpp_refuses_json_schema_once_then_json_object_with_the_schema(tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.judges")  # the format choice is news, not a warning
    with ChatServer(Quirks("llama.cpp", always(FINAL))) as server, Store(tmp_path / "s") as store:
        j = judge(server, retries=6)
        assert decide(j, context(cache=store)).verdict is not None
        assert formats(server) == ["json_schema", "json_object"], "one refusal, not 6 retries"
        schema = server.requests[1]["json"]["response_format"]["schema"]
        probe_branch = next(b for b in schema["oneOf"] if b["properties"]["action"] == {"const": "probe"})
        assert probe_branch["properties"]["probes"]["minItems"] == 1
        # Enums, not minimum/maximum: llama.cpp's grammar ignores integer ranges (Gemma 3 270M asked for 5 samples
        # and cited probe 216 of 3).
        assert probe_branch["properties"]["probes"]["items"]["properties"]["samples"]["enum"] == [1, 2, 3, 4]
        final_branch = next(b for b in schema["oneOf"] if b["properties"]["action"] == {"const": "final"})
        assert final_branch["properties"]["evidence"]["items"]["enum"] == [1, 2]
        assert decide(j, context(text="a blue field", cache=store)).verdict is not None
        assert formats(server)[2:] == ["json_object"], "learnt for the run"
        assert store.get_meta(j.backend.endpoint_key()) == "json_object"
        fresh = judge(server)
        assert decide(fresh, context(text="a green field", cache=store)).verdict is not None
        assert formats(server)[3:] == ["json_object"], "remembered in the store"
    assert "judge format: json_object" in caplog.text and "k" not in store.path.name


@pytest.mark.parametrize("kind", ["vllm", "openai", "ollama"])
def test_servers_that_honour_json_schema_get_it(kind: str) -> None:
    with ChatServer(Quirks(kind, always(FINAL))) as server:
        j = judge(server)
        assert decide(j).verdict is not None
    assert formats(server) == ["json_schema"] and j.backend.json_mode == "schema"


def test_openai_rejects_the_llama_cpp_schema_field() -> None:
    with ChatServer(Quirks("openai", always(FINAL))) as server:
        j = judge(server, json_mode="json_object")
        with pytest.raises(JudgeCallError, match="--judge-format"):
            decide(j)


# -- 2. max_tokens, truncation, re-asks -----------------------------------------------------------------


def test_default_max_tokens_and_a_cut_reply_is_reported_as_truncated() -> None:
    runaway = '{"hypothesis": "' + "red " * 2000
    replies = iter([runaway, FINAL])
    with ChatServer(Quirks("ollama", lambda p: next(replies))) as server:
        turn = decide(judge(server))
    first, second = (r["json"] for r in server.requests)
    assert first["max_tokens"] == 600
    assert turn.verdict is not None and turn.attempts == 2 and turn.calls[0]["truncated"]
    reask = second["messages"][-1]["content"]
    assert "cut" in reask and "--judge-max-tokens 600" in reask and '"action": "final"' in reask
    assert len(second["messages"][-2]["content"]) < 400, "the runaway reply is trimmed in the re-ask"


def test_a_never_valid_reply_fails_with_the_raw_reply_kept() -> None:
    bad = json.dumps({**probe_reply([10.0]), "probes": []})
    with ChatServer(Quirks("vllm", always(bad))) as server:
        turn = decide(judge(server))
    assert turn.verdict is None and turn.raw == bad and turn.attempts == 3 and len(server.requests) == 3
    assert "at least one entry in 'probes'" in turn.error


# -- 3. concurrency, timeouts, the circuit breaker ------------------------------------------------------


class Overlap:
    """Counts requests a server computes at once."""

    def __init__(self, delay: float) -> None:
        self.delay, self.now, self.most = delay, 0, 0
        self.lock = threading.Lock()

    def __call__(self, payload) -> Reply:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
        return Reply(content=FINAL)


@pytest.mark.parametrize("given, most", [(None, 1), (3, 3)])
def test_a_local_server_gets_one_request_at_a_time_unless_told(tmp_path: Path, given: int | None, most: int) -> None:
    overlap = Overlap(0.2)
    with ChatServer(overlap) as server, Store(tmp_path / "s") as store:
        j = judge(server, concurrency=given)
        cfg = RunConfig(sweep=SweepConfig(strengths=(20.0,)), concurrency=4)
        summary = run_features(FakeEngine(), j, store, [0, 1, 2, 3, 4, 5], cfg)
    assert summary.exit_code == 0 and overlap.most == most
    assert j.call_line().startswith("format schema, 6 requests (0 retries, 0 timeouts, 0 abandoned")


def test_a_timed_out_request_is_sent_again_once_and_the_error_names_the_flags() -> None:
    with ChatServer(lambda p: Reply(content=FINAL, delay=1.5)) as server:
        j = judge(server, timeout=0.3, retries=6)
        with pytest.raises(JudgeCallError, match=r"--judge-timeout \(now 0.3\).*--judge-concurrency"):
            decide(j)
    stats = j.backend.stats
    assert len(server.requests) == 2 and stats.timeouts == 2 and stats.abandoned == 2 and stats.retries == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_breaker_pauses_while_the_server_is_down_and_resumes() -> None:
    port = free_port()
    j = make_judge("openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", retries=2,
                   backoff=0.01, timeout=2.0, down_limit=20.0)
    server = ChatServer([Reply(content=FINAL)], port=port)
    threading.Timer(1.0, server.__enter__).start()
    try:
        turn = decide(j)  # two quick attempts cannot outlast the second the server is down: the breaker waited
        assert turn.verdict is not None and len(server.requests) == 1
    finally:
        time.sleep(0.1)
        server.__exit__()


def test_breaker_stops_the_run_after_the_down_limit(tmp_path: Path) -> None:
    port = free_port()
    j = make_judge("openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", retries=6,
                   backoff=0.01, timeout=1.0, down_limit=1.0)
    with pytest.raises(JudgeFatalError, match=r"has not answered for \d+ s.*--judge-down-limit, now 1 s"):
        decide(j)


# -- 4. context windows ------------------------------------------------------------------------------


def test_a_small_context_window_shortens_the_evidence_and_retries() -> None:
    long = "a red field with " + "many small red dots " * 60
    quirks = Quirks("llama.cpp", always(FINAL), n_ctx=2000)
    with ChatServer(quirks) as server:
        turn = decide(judge(server, json_mode="json_object"), context(samples=4, text=long))
    statuses = [len(r["json"]["messages"][0]["content"]) for r in server.requests]
    assert turn.verdict is not None and len(server.requests) == 2 and statuses[1] < statuses[0]


def test_a_context_window_too_small_for_anything_fails_in_one_line() -> None:
    with ChatServer(Quirks("vllm", always(FINAL), n_ctx=300)) as server:
        with pytest.raises(JudgeCallError, match=r"context window \(300 tokens\) even with shortened.*--n_ctx"):
            decide(judge(server))
    assert len(server.requests) == 3


# -- 5. cached failed rounds are asked again; counts -----------------------------------------------------


def test_a_cached_invalid_reply_is_not_replayed_on_a_rerun(tmp_path: Path) -> None:
    replies = iter(["no idea"] * 3 + [FINAL])
    cfg = RunConfig(sweep=SweepConfig(strengths=(20.0,)))
    with ChatServer(lambda p: Reply(content=next(replies))) as server, Store(tmp_path / "s") as store:
        first = run_features(FakeEngine(), judge(server), store, [0], cfg)
        assert first.stats.failed == 1 and store.get_record(0).raw_reply == "no idea"
        second = run_features(FakeEngine(), judge(server), store, [0], cfg)
        assert second.stats.failed == 0 and len(server.requests) == 4
        assert store.get_record(0).status == "done"


# -- 6. instructions survive chat templates that drop system messages ---------------------------------------


def test_instructions_reach_a_template_that_drops_system_messages() -> None:
    quirks = Quirks("llama.cpp", always(FINAL), drops_system=True)
    with ChatServer(quirks) as server:
        decide(judge(server))
    assert all("You are a careful interpretability researcher" in seen for seen in quirks.seen)
    assert server.requests[0]["json"]["messages"][0]["role"] == "user"


def test_a_remote_endpoint_keeps_the_system_message() -> None:
    with ChatServer(Quirks("openai", always(FINAL))) as server:
        j = judge(server, instructions="system")
        decide(j)
    assert server.requests[0]["json"]["messages"][0]["role"] == "system"


# -- 7. judge-check -------------------------------------------------------------------------------------


def test_judge_check_prints_formats_latency_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    with ChatServer(Quirks("llama.cpp", always(FINAL))) as server:
        server.models = ["smollm2-135m"]
        code = main(["judge-check", "--judge-base-url", server.url, "--judge-model", "smolm2"])
    out = capsys.readouterr().out
    assert code == 0 and "smollm2-135m" in out and "'smolm2' is not among them" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()[0] in ("schema", "json_object", "text")}
    assert "refused" in lines["schema"] and "Input should be 'text'" in lines["schema"]
    assert "accepted: a valid verdict" in lines["json_object"] and "accepted" in lines["text"]
    assert "instructions go in the user message" in out


def test_a_replayed_round_keeps_its_stored_cost_and_the_export_keeps_a_failed_raw_reply(tmp_path: Path) -> None:
    from agent.store.export import export_records

    def script(payload) -> Reply:
        users = [m for m in payload["messages"] if m["role"] == "user"]
        if len(users) == 1:
            return Reply(content=json.dumps(probe_reply([15.0])), usage=(1000, 500))
        return Reply(content=FINAL if script.fixed else "not json", usage=(2000, 100))

    script.fixed = False
    cfg = RunConfig(sweep=SweepConfig(strengths=(20.0,)))
    with ChatServer(script) as server, Store(tmp_path / "s") as store:
        first = run_features(FakeEngine(), judge(server), store, [0], cfg)
        assert first.stats.failed == 1 and store.get_record(0).usage["total_tokens"] == 1500 + 3 * 2100
        export_records(store, tmp_path / "out.jsonl")
        row = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
        assert row["status"] == "failed" and row["raw_reply"] == "not json"
        script.fixed = True
        second = run_features(FakeEngine(), judge(server), store, [0], cfg)
        rec = store.get_record(0)
        assert second.stats.failed == 0 and rec.status == "done" and len(server.requests) == 5
        assert rec.usage["replayed_tokens"] == 1500 and rec.usage["total_tokens"] == 1500 + 2100


def test_the_constrained_schema_admits_valid_verdicts_and_refuses_an_empty_probe_list() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from agent.judges.verdicts import CONSTRAINED_SCHEMA, MINIMAL_EXAMPLE, parse_verdict

    final = json.loads(MINIMAL_EXAMPLE)
    final.pop("probes")
    probe = {"hypothesis": "red", "confidence": 0.5, "action": "probe", "probes": [
        {"strength": 20.0, "samples": 2, "question": None, "base_image": "white", "control": False, "reason": "x"}]}
    for ok in (final, probe):
        jsonschema.validate(ok, CONSTRAINED_SCHEMA)
        parse_verdict(json.dumps(ok))
    from agent.judges.verdicts import constrained_schema

    assert constrained_schema(force_final=True)["properties"]["action"] == {"const": "final"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(probe, constrained_schema(force_final=True))
    for bad in ({**probe, "probes": []}, {**final, "label": ""}, {**final, "explanation": "x" * 401},
                {**final, "action": "probe"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, CONSTRAINED_SCHEMA)


def test_concurrent_first_calls_refused_together_step_down_once() -> None:
    """Found against the real server: 4 json_schema requests refused at once must not skip json_object."""
    with ChatServer(Quirks("llama.cpp", always(FINAL), delay=0.2)) as server:
        j = judge(server, concurrency=4)

        async def four():
            return await asyncio.gather(*(j.decide(context(text=f"a red field {i}")) for i in range(4)))

        turns = asyncio.run(four())
    assert all(t.verdict is not None for t in turns) and j.backend.json_mode == "json_object"
    assert formats(server).count("json_schema") <= 4 and "text" not in formats(server)
    assert len(server.requests) <= 8, "no refused request is retried"


def test_the_live_stats_carry_endpoint_latency_and_the_format_auto_settled_on(tmp_path: Path) -> None:
    """What the progress display's judge line reads: requests answered by the endpoint, their latency and
    the format (json_object after llama.cpp refuses json_schema)."""
    from agent.cli.progress import stats_lines

    seen = []
    with ChatServer(Quirks("llama.cpp", always(FINAL), delay=0.05)) as server, Store(tmp_path / "s") as store:
        cfg = RunConfig(sweep=SweepConfig(strengths=(20.0,)), concurrency=1)
        summary = run_features(FakeEngine(), judge(server, retries=6), store, [0, 1], cfg,
                               on_event=lambda e: seen.append(e.stats))
    assert summary.exit_code == 0
    last = seen[-1]
    assert last.judge_live_calls == 2 and last.judge_format == "json_object"
    assert last.judge_seconds >= 0.1  # two replies, each held 0.05 s by the server
    assert stats_lines(last)[-1].startswith("judge endpoint ") and "format json_object" in stats_lines(last)[-1]
