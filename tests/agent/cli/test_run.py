"""`steer-agent` end to end in subprocesses on the tiny world: run, resume, export, exit codes, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.judges.scripted import final_reply, probe_reply
from agent.store.store import Store
from tests.agent.conftest import TEST_KEY
from tests.agent.fakes import ChatServer, Reply

FIELDS = {"feature", "explanation", "label", "confidence", "status", "review", "model", "sae", "layer", "judge",
          "prompt_version", "ground_truth"}


def steer_agent(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "agent.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}, **kw)


def world_args(tiny_world: tuple[Path, Path]) -> list[str]:
    model, sae = tiny_world
    return ["--model", str(model), "--sae", str(sae), "--max-new-tokens", "4", "--strengths", "4,8,16,32"]


def test_run_export_and_resume_from_the_store(tiny_world, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out.jsonl"
    args = ["--features", "0-31", *world_args(tiny_world), "--store", str(store), "--export", str(out)]
    first = steer_agent(*args)
    assert first.returncode == 0, first.stderr
    assert "32 features: 32 done" in first.stdout and "probes: 0 run" not in first.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["feature"] for r in rows] == list(range(32))
    assert all(FIELDS <= set(r) and r["status"] == "done" and r["explanation"] for r in rows)
    assert rows[0]["judge"].startswith("offline") and "not an LLM" in rows[0]["judge"]
    assert rows[0]["layer"] == 1 and rows[0]["model"] == str(tiny_world[0])

    second = steer_agent(*args)  # the rerun resumes: every feature is finished, nothing is probed again
    assert second.returncode == 0 and "0 done, 0 failed, 32 already finished" in second.stdout
    assert "probes: 0 run" in second.stdout, second.stdout
    assert [json.loads(line)["feature"] for line in out.read_text().splitlines()] == list(range(32))

    exported = steer_agent("export", "--store", str(store), "--out", "-", "--features", "3-4")
    assert exported.returncode == 0 and [json.loads(x)["feature"] for x in exported.stdout.splitlines()] == [3, 4]


@pytest.mark.parametrize("args, message", [
    (["--features", "0-x"], "bad feature list item"),
    pytest.param(["--features", "60-70"], "out of range", marks=pytest.mark.slow),
    pytest.param(["--features", "0", "--judge", "openai", "--judge-api-key-env", "NO_SUCH_KEY_VAR"], "NO_SUCH_KEY_VAR",
                 marks=pytest.mark.slow),
    pytest.param(["--features", "0", "--model", "/no/such/model"], "error:", marks=pytest.mark.slow),
])
def test_bad_input_exits_2_with_one_line(tiny_world, tmp_path: Path, args: list[str], message: str) -> None:
    base = world_args(tiny_world) if "--model" not in args else ["--sae", str(tiny_world[1])]
    result = steer_agent(*args, *base, "--store", str(tmp_path / "s"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    assert steer_agent("--strengths", "a,b", "--features", "0").returncode == 2
    assert steer_agent("run").returncode == 2  # --features is required
    assert steer_agent("export", "--store", "/no/such/store", "--out", "-").returncode == 2


def judge_script(payload: dict) -> Reply:
    users = [m for m in payload["messages"] if m["role"] == "user"]
    reply = probe_reply([6.0]) if len(users) == 1 else final_reply()
    return Reply(content=json.dumps(reply), delay=0.1)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tiny_world, tmp_path: Path) -> None:
    store_dir, out = tmp_path / "store", tmp_path / "out.jsonl"
    env = {"SIGKILL_TEST_KEY": TEST_KEY}
    with ChatServer(judge_script) as server:
        args = [*world_args(tiny_world), "--store", str(store_dir), "--judge", "openai", "--judge-base-url",
                server.url, "--judge-api-key-env", "SIGKILL_TEST_KEY", "--judge-model", "gpt-4o-mini",
                "--concurrency", "1", "--in-flight", "2", "--no-progress"]
        assert steer_agent("--features", "0-1", *args, env=env).returncode == 0
        with Store(store_dir) as s:
            s.set_review(0, "accept", reviewer="ann")
            s.set_review(1, "edit", explanation="A human explanation.", label="human label", reviewer="bob")
            before = {f: s.get_record(f).created_at for f in (0, 1)}

        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "--features", "0-11", *args],
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        with Store(store_dir) as s:
            while len(s.features()) < 5 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            finished_at_kill = {f: s.get_record(f).run_id for f in s.features()}
        n_at_kill = len(server.requests)
        assert 5 <= len(finished_at_kill) < 12, "the run was not killed mid-way"

        resumed = steer_agent("--features", "0-11", *args, "--export", str(out), env=env)
        assert resumed.returncode == 0, resumed.stderr

        def feature_of(req: dict) -> int | None:
            first_user = next(m for m in req["json"]["messages"] if m["role"] == "user")["content"]
            if "Feature " not in first_user:
                return None  # the run's up-front check that the judge answers at all
            return int(first_user.split("Feature ")[-1].split(".", 1)[0])  # a local judge's instructions come first

        judged = [r for r in server.requests if feature_of(r) is not None]
        repeated = [feature_of(r) for r in server.requests[n_at_kill:] if feature_of(r) in finished_at_kill]
        assert repeated == [], "judge calls of finished features were repeated"
        seen = [json.dumps(r["json"]["messages"]) for r in judged]
        finished_calls = [m for m, r in zip(seen, judged) if feature_of(r) in finished_at_kill]
        assert len(finished_calls) == len(set(finished_calls))

    with Store(store_dir) as s:
        assert s.features() == list(range(12))
        assert all(s.get_record(f).status == "done" for f in range(12))
        assert {f: s.get_record(f).run_id for f in finished_at_kill} == finished_at_kill  # not redone
        assert s.get_record(0).review.decision == "accept" and s.get_record(0).created_at == before[0]
        assert s.get_record(1).final_explanation == "A human explanation." and s.get_record(1).created_at == before[1]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["feature"] for r in rows] == list(range(12))
    assert rows[1]["review"]["reviewer"] == "bob" and rows[1]["explanation"] == "A human explanation."
    # The API key used over HTTP is nowhere in the store or the export.
    blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(TEST_KEY.encode() in b for b in blobs)


@pytest.mark.slow
def test_ctrl_c_stops_gracefully_and_a_rerun_resumes(tiny_world, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    env = {"SIGINT_TEST_KEY": TEST_KEY}
    with ChatServer(judge_script) as server:
        args = ["--features", "0-9", *world_args(tiny_world), "--store", str(store_dir), "--judge-base-url",
                server.url, "--judge-api-key-env", "SIGINT_TEST_KEY", "--concurrency", "1", "--in-flight", "2"]
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", *args], env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        with Store(store_dir) as s:
            while len(s.features()) < 2 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err
        with Store(store_dir) as s:
            kept = s.features()
            assert 2 <= len(kept) < 10 and all(s.get_record(f).status == "done" for f in kept)
        rerun = steer_agent(*args, env=env)
        assert rerun.returncode == 0 and f"{len(kept)} already finished" in rerun.stdout


def _toy_available() -> bool:
    try:
        from steering import toy

        return toy.is_available()
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _toy_available(), reason="the toy world is not built")
def test_toy_world_end_to_end(tmp_path: Path) -> None:
    """The default world, as a new user runs it: no --model, offline judge, ground truth in the export."""
    store, out = tmp_path / "store", tmp_path / "toy.jsonl"
    args = ["--features", "0-31", "--store", str(store), "--export", str(out)]
    first = steer_agent(*args)
    assert first.returncode == 0, first.stderr
    assert "ground truth named:" in first.stdout and "probes: 0 run" not in first.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["feature"] for r in rows] == list(range(32)) and all(FIELDS <= set(r) for r in rows)
    assert any(r["ground_truth"] and r["ground_truth"]["value"] for r in rows)
    again = steer_agent(*args)  # resumed: no feature is explained twice, no probe runs again
    assert again.returncode == 0 and "0 done, 0 failed, 32 already finished" in again.stdout
    assert "probes: 0 run" in again.stdout, again.stdout
