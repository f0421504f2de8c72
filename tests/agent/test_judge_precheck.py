"""A judge that cannot answer is found before any probe (issue 31, item 6): the check before a run sends one
minimal chat request; `judge-check` exits 2 with a summary when no format works; the format choice is INFO."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.judges import JudgeConfig, JudgeFatalError, checked_judge
from agent.judges.scripted import final_reply
from agent.run import run_features
from agent.run.config import RunConfig, SweepConfig
from agent.store.store import Store
from tests.agent.fakes import ChatServer, FakeEngine, Quirks, Reply

FINAL = json.dumps(final_reply())
SECRET = "sk-precheck-SECRET-1234567890"
BROKEN = f"llama_model_load: failed to allocate 9 GiB (key {SECRET})"


def answer(payload: dict) -> str:
    return FINAL


def config(server: ChatServer, **kw) -> JudgeConfig:
    return JudgeConfig(kind="openai", model="m", base_url=server.url, api_key=SECRET, retries=6, backoff=0.01,
                       timeout=5.0, **kw)


def test_a_server_that_fails_every_call_is_refused_by_one_request_in_its_own_words() -> None:
    with ChatServer(Quirks("llama.cpp", answer, broken=BROKEN)) as server:
        with pytest.raises(JudgeFatalError) as info:
            checked_judge(config(server))
        assert len(server.requests) == 1, "one request, not 6 attempts"
    message = str(info.value)
    assert "\n" not in message and "HTTP 500" in message and "failed to allocate 9 GiB" in message
    assert "offline judge" in message and SECRET not in message


def test_a_working_server_passes_the_check_with_one_tiny_request_outside_the_run_s_stats() -> None:
    with ChatServer(Quirks("llama.cpp", answer)) as server:
        judge = checked_judge(config(server))
        [sent] = [r["json"] for r in server.requests]
    assert sent["max_tokens"] <= 8 and "response_format" not in sent and len(json.dumps(sent["messages"])) < 200
    assert judge.backend.stats.requests == 0, "the check is not one of the run's calls"


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_server_passes_the_check(status: int) -> None:
    """llama.cpp answers 503 while its model loads, a rate limit 429: the run's retries wait for them."""
    busy = Reply(status=status, body={"error": {"message": "Loading model", "type": "unavailable_error"}})
    with ChatServer(lambda payload: busy) as server:
        checked_judge(config(server))


def test_a_wrong_model_is_named_by_the_check() -> None:
    missing = Reply(status=404, body={"error": {"message": "model 'm' not found", "type": "not_found_error"}})
    with ChatServer(lambda payload: missing) as server, pytest.raises(JudgeFatalError, match="check --judge-model"):
        checked_judge(config(server))


def test_a_run_against_a_failing_server_stops_before_any_probe(tiny_world: tuple[Path, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from agent import world
    from agent.cli.main import main

    loads: list[object] = []
    real_load = world.load_engine
    monkeypatch.setattr(world, "load_engine", lambda spec: loads.append(spec) or real_load(spec))
    monkeypatch.setenv("PRECHECK_KEY", SECRET)
    model, sae = tiny_world
    with ChatServer(Quirks("llama.cpp", answer, broken=BROKEN)) as server:
        code = main(["--features", "0-3", "--model", str(model), "--sae", str(sae), "--strengths", "4,8",
                     "--judge-base-url", server.url, "--judge-model", "m", "--judge-api-key-env", "PRECHECK_KEY",
                     "--store", str(tmp_path / "store"), "--no-progress"])
        requests = len(server.requests)
    err = capsys.readouterr().err
    assert code == 2 and requests == 1 and loads == [], "refused before the model loads or any probe runs"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "HTTP 500" in lines[0] and "failed to allocate" in lines[0], err
    assert SECRET not in err


def test_judge_check_exits_2_with_a_summary_when_no_format_works(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    with ChatServer(Quirks("llama.cpp", answer, broken=BROKEN)) as server:
        code = main(["judge-check", "--judge-base-url", server.url, "--judge-model", "m"])
    out = capsys.readouterr().out.splitlines()
    assert code == 2
    assert out[-1].startswith("summary: no response format works at http://127.0.0.1:") and "--judge offline" in out[-1]


def test_judge_check_ends_with_the_formats_that_work_and_the_one_a_run_uses(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    with ChatServer(Quirks("llama.cpp", answer)) as server:
        code = main(["judge-check", "--judge-base-url", server.url, "--judge-model", "m"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[-1] == "summary: works: json_object, text; a run would use json_object (--judge-format auto)"


def test_a_successful_run_logs_its_format_choice_at_info_not_warning(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    cfg = RunConfig(sweep=SweepConfig(strengths=(5.0,)))
    with ChatServer(Quirks("llama.cpp", answer)) as server, Store(tmp_path / "s") as store:
        summary = run_features(FakeEngine(), checked_judge(config(server)), store, [0, 1], cfg)
    assert summary.exit_code == 0
    chosen = [r for r in caplog.records if r.getMessage().startswith("judge format: json_object")]
    assert chosen and all(r.levelno == logging.INFO for r in chosen)
    # the project's own lines (a closed event loop's cleanup under load is asyncio's, not a run's warning)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("agent")] == []
